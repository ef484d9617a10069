package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/sshconn"
)

func TestQuantile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if q := quantile(ds, 0.5); q != 50*time.Millisecond {
		t.Errorf("p50 %s", q)
	}
	if q := quantile(ds, 0.99); q != 99*time.Millisecond {
		t.Errorf("p99 %s", q)
	}
	if q := quantile(nil, 0.5); q != 0 {
		t.Errorf("empty %s", q)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("quantile sorted its input")
	}
}

func TestChecksAndVerdict(t *testing.T) {
	fast := &Throughput{MBps: 300}
	slow := &Throughput{MBps: 0.8}
	direct := PathReport{Path: "direct", Took: "direct", RTTSamples: 20, RTTp50: 2, DownOne: fast, UpOne: fast,
		DownParallel: fast, UpParallel: fast, StableDone: 100, StableTotal: 100, StablePct: 100}
	direct.Checks = checks(&direct)
	ssm := PathReport{Path: "ssm", Took: "ssm", RTTSamples: 20, RTTp50: 45, DownOne: slow, UpOne: slow,
		DownParallel: &Throughput{MBps: 9}, UpParallel: &Throughput{MBps: 9}, StableDone: 19, StableTotal: 20, StablePct: 95}
	ssm.Checks = checks(&ssm)
	if len(direct.Checks) != 6 {
		t.Fatalf("checks %+v", direct.Checks)
	}
	for _, c := range direct.Checks {
		if !c.OK {
			t.Errorf("direct %s not ok", c.Name)
		}
	}
	okBy := map[string]bool{}
	for _, c := range ssm.Checks {
		okBy[c.Name] = c.OK
	}
	if !okBy["round trip p50"] || okBy["download, one session"] || okBy["download, parallel"] || okBy["sessions completed"] {
		t.Fatalf("ssm checks %+v", ssm.Checks)
	}
	v := verdict([]PathReport{direct, ssm})
	if !strings.HasPrefix(v, "use direct (the VPN) for everything") || !strings.Contains(v, "Session Manager is fine for interactive work; move big files") {
		t.Fatalf("verdict %q", v)
	}
	// 20 of 20 cannot show > 99 %: undecided, neither met nor missed.
	few := direct
	few.StableDone, few.StableTotal = 20, 20
	few.Checks = checks(&few)
	if c := few.Checks[5]; c.OK || !c.Undecided || !strings.Contains(c.Why, "too few sessions") {
		t.Fatalf("stability from 20 sessions: %+v", c)
	}
	if v := verdict([]PathReport{few, ssm}); !strings.HasPrefix(v, "use direct (the VPN) for everything: it meets every target it ran enough to show") {
		t.Fatalf("verdict with an undecided check %q", v)
	}
	v = verdict([]PathReport{{Path: "direct", Took: "direct", Err: "refused"}, ssm})
	if !strings.HasPrefix(v, "direct is not available") {
		t.Fatalf("verdict without direct %q", v)
	}
}

// TestRunReportsAnUnusablePath: a path whose connect fails is reported, not an error.
func TestRunReportsAnUnusablePath(t *testing.T) {
	o := Options{Paths: []string{"direct"}, Dial: func(context.Context, string, int) ([]*sshconn.Client, error) {
		return nil, errors.New("direct 10.0.1.10:22 refused the connection")
	}}
	r, err := Run(context.Background(), "gpu1", o)
	if err != nil || len(r.Paths) != 1 || !strings.Contains(r.Paths[0].Err, "refused") || r.Paths[0].Checks != nil {
		t.Fatalf("%v %+v", err, r)
	}
}
