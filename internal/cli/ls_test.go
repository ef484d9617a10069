package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// useLab starts devgate-lab in-process and points the environment at it.
func useLab(t *testing.T, opts lab.Options) *lab.Lab {
	t.Helper()
	l := labtest.Start(t, opts)
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "none"))
	return l
}

func TestLs(t *testing.T) {
	l := useLab(t, lab.Options{Instances: []lab.InstanceSpec{
		{Name: "zz-stopped", State: "stopped"}, {Name: "gpu1", State: "running"}, {Name: "aa-stopped", State: "stopped"},
		{Name: "gone", State: "terminated"}}})
	gpu1, _ := l.Instance("gpu1")
	code, out, errs := runCLI(t, "", "ls", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var rows []awsapi.Instance
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err, out)
	}
	if len(rows) != 3 || rows[0].Name != "gpu1" || rows[0].Agent != "Online" || rows[0].UptimeSec <= 0 ||
		rows[0].PrivateIP != gpu1.PrivateIP || rows[0].AgentVersion == "" ||
		rows[1].Name != "aa-stopped" || rows[2].Name != "zz-stopped" || rows[1].Agent == "Online" {
		t.Fatalf("rows (running first, then by name, terminated hidden): %+v", rows)
	}
	if code, out, _ := runCLI(t, "", "ls", "--json", "--all"); code != 0 || !strings.Contains(out, `"gone"`) {
		t.Fatalf("--all lacks the terminated instance: %s", out)
	}
	code, out, _ = runCLI(t, "", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "gpu1") ||
		strings.Index(lines[0], "ID") != strings.Index(lines[1], gpu1.ID) {
		t.Fatalf("table:\n%s", out)
	}
}

func TestStartStopWait(t *testing.T) {
	l := useLab(t, lab.Options{Instances: []lab.InstanceSpec{{Name: "gpu1", State: "stopped"}}})
	gpu1, _ := l.Instance("gpu1")
	code, _, errs := runCLI(t, "", "start", "gpu1", "--wait")
	if code != 0 || !strings.Contains(errs, "running") {
		t.Fatalf("start: %d %s", code, errs)
	}
	if in, _ := l.Instance("gpu1"); in.State != "running" {
		t.Fatalf("state %s", in.State)
	}
	code, _, errs = runCLI(t, "", "stop", gpu1.ID, "--wait")
	if code != 0 || !strings.Contains(errs, "stopped") {
		t.Fatalf("stop: %d %s", code, errs)
	}
	if in, _ := l.Instance("gpu1"); in.State != "stopped" {
		t.Fatalf("state %s", in.State)
	}
	if code, _, errs := runCLI(t, "", "start", "nope"); code != 12 {
		t.Fatalf("unknown target: %d %s", code, errs)
	}
	code, _, errs = runCLI(t, "", "stop", "gpu1")
	if code != 0 || !strings.Contains(errs, "already stopped") {
		t.Fatalf("stop stopped: %d %s", code, errs)
	}
	l.Deny("ec2:StartInstances")
	if code, _, errs := runCLI(t, "", "start", "gpu1"); code != 19 || !strings.Contains(errs, "hint:") {
		t.Fatalf("denied start: %d %s", code, errs)
	}
}

// TestLsDirect: ls says whether each running instance answers on its
// private address (the direct path), for each state of the lab's VPN.
func TestLsDirect(t *testing.T) {
	l := useLab(t, lab.Options{})
	for _, c := range []struct{ vpn, result, timeout string }{
		{lab.VPNUp, "ok", "30s"}, {lab.VPNRefuse, "refused", "30s"}, {lab.VPNSilence, "no answer", "1s"},
	} {
		if err := l.SetVPN(c.vpn); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI(t, "", "ls", "--json", "--probe-timeout", c.timeout)
		if code != 0 {
			t.Fatal(errs)
		}
		var rows []struct {
			Name   string `json:"name"`
			State  string `json:"state"`
			Direct *struct {
				OK     bool   `json:"ok"`
				Result string `json:"result"`
			} `json:"direct"`
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatal(err, out)
		}
		for _, r := range rows {
			switch {
			case r.State != "running" && r.Direct != nil:
				t.Fatalf("VPN %s: %s is %s but was probed", c.vpn, r.Name, r.State)
			case r.State == "running" && (r.Direct == nil || r.Direct.Result != c.result || r.Direct.OK != (c.result == "ok")):
				t.Fatalf("VPN %s: %s direct %+v, want %s", c.vpn, r.Name, r.Direct, c.result)
			}
		}
		code, out, _ = runCLI(t, "", "ls", "--probe-timeout", c.timeout)
		want := c.result
		if want == "ok" {
			want = "yes ("
		}
		if code != 0 || !strings.Contains(out, "DIRECT") || !strings.Contains(out, want) {
			t.Fatalf("VPN %s: table lacks %q:\n%s", c.vpn, want, out)
		}
	}
}

// start right after stop (the instance still stopping, which EC2 refuses with
// IncorrectInstanceState) waits for stopped and starts it.
func TestStartWhileStopping(t *testing.T) {
	l := useLab(t, lab.Options{Instances: []lab.InstanceSpec{{Name: "gpu1", State: "running"}}})
	f := l.Faults()
	f.StopDelay = 3 * time.Second
	l.SetFaults(f)
	if code, _, errs := runCLI(t, "", "stop", "gpu1"); code != 0 {
		t.Fatalf("stop: %d %s", code, errs)
	}
	if in, _ := l.Instance("gpu1"); in.State != "stopping" {
		t.Fatalf("state after stop %s, want stopping", in.State)
	}
	code, _, errs := runCLI(t, "", "start", "gpu1", "--wait")
	if code != 0 || !strings.Contains(errs, "is stopping; it starts once stopped") || !strings.Contains(errs, "start requested (was stopped)") {
		t.Fatalf("start while stopping: %d %s", code, errs)
	}
	if in, _ := l.Instance("gpu1"); in.State != "running" {
		t.Fatalf("state %s, want running", in.State)
	}
}

// TestLsControlCharacters: a Name tag with a newline, a tab and an escape
// sequence (the 8-bit CSI: EC2's XML cannot carry ESC itself) is shown
// escaped on one line of the table (--json keeps it as it is).
func TestLsControlCharacters(t *testing.T) {
	evil := "evil\nname\t\u009b31mred"
	useLab(t, lab.Options{Instances: []lab.InstanceSpec{{Name: evil, State: "running"}}})
	code, out, errs := runCLI(t, "", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || strings.ContainsAny(out, "\t\u009b") || !strings.HasPrefix(lines[1], `evil\nname\t\u009b31mred `) {
		t.Fatalf("table (exit %d):\n%q\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "", "ls", "--json")
	var rows []awsapi.Instance
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 1 || rows[0].Name != evil {
		t.Fatalf("--json: %v %+v", err, rows)
	}
}
