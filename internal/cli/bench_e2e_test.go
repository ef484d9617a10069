package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// TestE2EBench: devgate bench on the lab with the VPN up measures every row
// for both paths (JSON and text), through the real SDK, sshd and VPN model,
// and leaves no session behind.
func TestE2EBench(t *testing.T) {
	e := newE2E(t, lab.Options{})
	e.vpn(t, lab.VPNUp)
	e.environ = append(e.environ, patientBudget)
	ctx := ctxFor(t, 5*time.Minute)
	in, _ := e.l.Instance("gpu1")
	args := []string{"bench", "gpu1", "--user", in.User, "--path", "all", "--runs", "1", "--size", "2MiB", "-j", "2", "--direct-budget", "30s"}
	out, stderr, code := e.devgate(ctx, nil, nil, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s", code, stderr)
	}
	var rep struct {
		Paths []struct {
			Path, Took, Error string
			ConnectMedian     float64     `json:"connect_median_ms"`
			RTTSamples        int         `json:"rtt_samples"`
			DownOne           *throughput `json:"down_one_session"`
			UpOne             *throughput `json:"up_one_session"`
			DownParallel      *throughput `json:"down_parallel"`
			UpParallel        *throughput `json:"up_parallel"`
			StableDone        int         `json:"stability_completed"`
			StableTotal       int         `json:"stability_sessions"`
			Checks            []struct {
				Name string
				OK   bool
			}
			Errors []string
		}
		Verdict string
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Paths) != 2 || rep.Paths[0].Took != "direct" || rep.Paths[1].Took != "ssm" || rep.Verdict == "" {
		t.Fatalf("report: %s", out)
	}
	for _, p := range rep.Paths {
		if p.Error != "" || len(p.Errors) != 0 || p.ConnectMedian <= 0 || p.RTTSamples != 20 ||
			p.DownOne == nil || p.DownOne.Bytes != 2<<20 || p.UpOne == nil || p.UpOne.Bytes != 2<<20 ||
			p.DownParallel == nil || p.DownParallel.Sessions != 2 || p.UpParallel == nil || p.UpParallel.Sessions != 2 ||
			p.StableDone != 4 || p.StableTotal != 4 {
			t.Fatalf("path %s: %+v", p.Path, p)
		}
		// round trip, 4 transfers, stability: every row beside its target.
		if len(p.Checks) != 6 {
			t.Fatalf("path %s: %d checks, want 6: %+v", p.Path, len(p.Checks), p.Checks)
		}
	}
	if !strings.Contains(stderr, "bench ssm: stability 4/4") {
		t.Fatalf("no progress lines on stderr:\n%s", stderr)
	}
	waitNoSessions(t, e)
	// The text report: both paths, ✓/✗ beside the targets, the verdict.
	out, stderr, code = e.devgate(ctx, nil, nil, "bench", "gpu1", "--user", in.User, "--path", "ssm", "--runs", "1", "--size", "1MiB", "-j", "2")
	if code != 0 || !strings.Contains(out, "round trip p50") || !strings.Contains(out, "target > 20 MB/s") ||
		!strings.Contains(out, "sessions completed") || !strings.Contains(out, "verdict: ") {
		t.Fatalf("text report (exit %d):\n%s\n%s", code, out, stderr)
	}
}

type throughput struct {
	Bytes    int64   `json:"bytes"`
	MBps     float64 `json:"mb_per_s"`
	Sessions int     `json:"sessions"`
}
