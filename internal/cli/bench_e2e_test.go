package cli_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
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
				Name      string
				OK        bool
				Undecided bool
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
		// 4 sessions cannot show > 99 %: neither met nor missed.
		if c := p.Checks[5]; c.Name != "sessions completed" || c.OK || !c.Undecided {
			t.Fatalf("path %s: stability check from 4 sessions: %+v", p.Path, c)
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
	if !regexp.MustCompile(`sessions completed +4/4 \(100 %\) +target > 99 % +too few sessions to show > 99 %`).MatchString(out) {
		t.Fatalf("the stability row of 4 sessions is not marked undecided:\n%s", out)
	}

	// --path direct without the VPN: what it could, then exit 26 as connect.
	e.vpn(t, lab.VPNRefuse)
	out, stderr, code = e.devgate(ctx, nil, nil, "bench", "gpu1", "--user", in.User, "--path", "direct", "--runs", "1", "--size", "1MiB", "-j", "2")
	if code != 26 || !strings.Contains(out, "not available: ") || !strings.Contains(out, "verdict: ") || !strings.Contains(stderr, "refused the connection") {
		t.Fatalf("bench --path direct, VPN down: exit %d, want 26\n%s\n%s", code, out, stderr)
	}
}

type throughput struct {
	Bytes    int64   `json:"bytes"`
	MBps     float64 `json:"mb_per_s"`
	Sessions int     `json:"sessions"`
}

// TestE2EBenchS3Relay: with a bucket configured (DEVGATE_BUCKET, the one cp
// --via s3 uses), bench adds the S3 relay row: --size relayed from a sparse
// file on the instance through the lab's S3, beside its target, in JSON and
// text, and leaves nothing behind: no object in the bucket, no source file
// on the instance, no copy here.
func TestE2EBenchS3Relay(t *testing.T) {
	s3 := labs3.New("relay")
	e := newE2E(t, lab.Options{Services: []lab.Service{s3}})
	e.vpn(t, lab.VPNUp)
	tmp := t.TempDir()
	e.environ = append(e.environ, patientBudget, "DEVGATE_BUCKET=relay", "TMPDIR="+tmp)
	ctx := ctxFor(t, 5*time.Minute)
	in, _ := e.l.Instance("gpu1")
	args := []string{"bench", "gpu1", "--user", in.User, "--path", "direct", "--runs", "1", "--size", "3MiB", "-j", "2"}
	out, stderr, code := e.devgate(ctx, nil, nil, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s", code, stderr)
	}
	var rep struct {
		Relay *struct {
			Bucket, Path, Error, Note string
			Down                      *throughput
			Check                     *struct {
				Name, Target string
			}
		} `json:"s3_relay"`
		Verdict string
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := rep.Relay
	if r == nil || r.Error != "" || r.Bucket != "relay" || r.Path != "direct" || r.Down == nil || r.Down.Bytes != 3<<20 ||
		r.Down.MBps <= 0 || r.Check == nil || r.Check.Target != "> 20 MB/s" || !strings.Contains(rep.Verdict, "S3 relay") {
		t.Fatalf("relay row: %s", out)
	}
	src := regexp.MustCompile(`/\S*devgate-bench\.\w+`).FindString(r.Note)
	if src == "" || !strings.Contains(r.Note, "removed") {
		t.Fatalf("the note does not name the instance's source file and its removal: %q", r.Note)
	}
	// The lab's instance is this machine: its temporary file is visible here.
	if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("source file %s left on the instance: %v", src, err)
	}
	if keys, err := s3.Objects("relay"); err != nil || len(keys) != 0 {
		t.Fatalf("objects left in the bucket: %v %v", keys, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left in the local temporary directory: %v", left)
	}
	if s3.Requests() < 3 {
		t.Fatalf("only %d S3 requests: the row did not go through the bucket", s3.Requests())
	}
	if !strings.Contains(stderr, "bench s3: download through the S3 relay") {
		t.Fatalf("no progress line for the relay:\n%s", stderr)
	}
	out, stderr, code = e.devgate(ctx, nil, nil, args...)
	if code != 0 || !strings.Contains(out, "s3 relay (bucket relay, over direct)") || !strings.Contains(out, "download, S3 relay") {
		t.Fatalf("text report (exit %d):\n%s\n%s", code, out, stderr)
	}
}
