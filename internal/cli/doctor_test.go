package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/doctor"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// doctorHome runs setup (no inventory) and vscode --write in a short HOME.
func doctorHome(t *testing.T) string {
	home, err := os.MkdirTemp("/tmp", "dgd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	t.Setenv("HOME", home)
	if code, _, errs := runCLI(t, "", "setup", "--yes"); code != 0 {
		t.Fatal(errs)
	}
	os.MkdirAll(filepath.Join(home, ".config/Code/User"), 0o700)
	if code, _, errs := runCLI(t, "", "vscode", "--write"); code != 0 {
		t.Fatal(errs)
	}
	return home
}

func doctorResults(t *testing.T, args ...string) (int, map[string]doctor.Result) {
	t.Helper()
	code, out, errs := runCLI(t, "", append([]string{"doctor", "--json"}, args...)...)
	var rs []doctor.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errs)
	}
	m := map[string]doctor.Result{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return code, m
}

// TestDoctorCommand runs doctor against devgate-lab (the real SDK, a real
// session to the instance's sshd) and checks it names the right failing
// check for each broken thing.
func TestDoctorCommand(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	home := doctorHome(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))

	code, m := doctorResults(t, "devbox-gpu1")
	for name, r := range m {
		if !r.OK && !r.Info { // direct-path checks are informational with --path auto
			t.Errorf("healthy: %s failed: %s (fix: %s)", name, r.Detail, r.Fix)
		}
	}
	if code != 0 || !m["test key push"].OK || !m["ssh -G devbox-gpu1"].OK || !m["clock skew"].OK ||
		!strings.HasPrefix(m["SSM session to port 22"].Detail, "SSH-2.0-") {
		t.Fatalf("healthy: exit %d %+v", code, m)
	}

	// DEVGATE_USER is the user of the test key push, as in every command, for a
	// target without a host entry; a host's own user (what ssh logs in as
	// through the managed config) comes first.
	t.Setenv("DEVGATE_USER", "ubuntu")
	if _, m = doctorResults(t, "gpu1"); !strings.HasSuffix(m["test key push"].Detail, "for ubuntu") {
		t.Fatalf("DEVGATE_USER ignored: %+v", m["test key push"])
	}
	if _, m = doctorResults(t, "devbox-gpu1"); strings.HasSuffix(m["test key push"].Detail, "for ubuntu") {
		t.Fatalf("DEVGATE_USER beat the host's user: %+v", m["test key push"])
	}
	t.Setenv("DEVGATE_USER", "")
	// DEVGATE_SSH_CONFIG names the ssh config doctor checks (the lab's D/env sets it): one without
	// devgate's Include fails the ssh -G check, which names the file.
	bare := filepath.Join(t.TempDir(), "ssh_config")
	os.WriteFile(bare, []byte("Host *\n    User nobody\n"), 0o600)
	t.Setenv("DEVGATE_SSH_CONFIG", bare)
	if _, m = doctorResults(t, "gpu1"); m["ssh -G gpu1"].OK || !strings.Contains(m["ssh -G gpu1"].Detail, bare) {
		t.Fatalf("DEVGATE_SSH_CONFIG ignored: %+v", m["ssh -G gpu1"])
	}
	// An alias setup wrote is checked in ~/.ssh/config, the file `ssh devbox-gpu1` reads: the lab's
	// env (DEVGATE_SSH_CONFIG=D/ssh_config, where devbox-gpu1 is not) stays set in the shell where
	// a new user then runs setup and doctor, which said "✗ … run devgate setup" after setup.
	if _, m = doctorResults(t, "devbox-gpu1"); !m["ssh -G devbox-gpu1"].OK {
		t.Fatalf("a setup alias checked in DEVGATE_SSH_CONFIG: %+v", m["ssh -G devbox-gpu1"])
	}
	t.Setenv("DEVGATE_SSH_CONFIG", "")

	code, m = doctorResults(t, "devbox-gpu2") // stopped
	// With --json there are no ✗ lines: the hint names the entries instead.
	if _, _, errs := runCLI(t, "", "doctor", "--json", "devbox-gpu2"); strings.Contains(errs, "✗ lines") ||
		!strings.Contains(errs, `devgate: hint: fix the entries with "ok": false`) {
		t.Errorf("doctor --json's hint: %s", errs)
	}
	if code == 0 || m["instance devbox-gpu2"].OK || !strings.Contains(m["instance devbox-gpu2"].Fix, "devgate start") ||
		!m["SSM agent"].Skipped || !m["SSM session to port 22"].Skipped {
		t.Fatalf("stopped: exit %d %+v", code, m)
	}

	l.SetAgentOnline("gpu1", false)
	if code, m = doctorResults(t, "gpu1"); code == 0 || m["SSM agent"].OK || m["SSM agent"].Skipped || !m["instance gpu1"].OK {
		t.Fatalf("agent offline: exit %d %+v", code, m["SSM agent"])
	}
	l.ResetAgent("gpu1")

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if _, m = doctorResults(t, "gpu1"); m["AWS credentials"].OK || !strings.Contains(m["AWS credentials"].Detail, "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: %+v", m["AWS credentials"])
	}
	_, secret := l.Credentials()
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)

	os.Chmod(filepath.Join(home, ".ssh/devgate/id_ed25519"), 0o644)
	if _, m = doctorResults(t, "gpu1"); m["key permissions"].OK {
		t.Fatal("0644 key passed")
	}
	// Human output: one ✓/✗ line per check, the fix under each ✗.
	code, out, _ := runCLI(t, "", "doctor", "gpu1")
	if code == 0 || !strings.Contains(out, "✗ key permissions") || !strings.Contains(out, "    fix: chmod 600") || !strings.Contains(out, "✓ AWS credentials") {
		t.Fatalf("text output (%d):\n%s", code, out)
	}
	os.Chmod(filepath.Join(home, ".ssh/devgate/id_ed25519"), 0o600)

	// A HOME deep enough that ~/.ssh/devgate/cm/%C passes the socket-path limit: setup chooses the
	// short directory and the check passes; a too-long ControlPath of the user's own fails it.
	long := filepath.Join(home, strings.Repeat("d", 60))
	os.MkdirAll(long, 0o700)
	t.Setenv("HOME", long)
	if code, _, errs := runCLI(t, "", "setup", "--yes"); code != 0 {
		t.Fatal(errs)
	}
	if _, m = doctorResults(t, "devbox-gpu1"); !m["ControlPath length"].OK || !strings.Contains(m["ControlPath length"].Detail, "of 90 bytes") {
		t.Fatalf("a %d-byte HOME: %+v", len(long), m["ControlPath length"])
	}
	f, _ := os.OpenFile(filepath.Join(long, ".ssh", "config"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\nHost devbox-gpu1\n    ControlPath " + long + "/.ssh/cm/%C\n")
	f.Close()
	if _, m = doctorResults(t, "devbox-gpu1"); m["ControlPath length"].OK {
		t.Fatalf("the user's %d-byte ControlPath passed: %+v", len(long)+48, m["ControlPath length"])
	}
}

// TestDoctorDirect: doctor's direct-path checks against the lab's VPN model.
func TestDoctorDirect(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	home := doctorHome(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	profile := func(days int) string {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "alice"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Duration(days)*24*time.Hour + time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "alice.ovpn")
		b := "client\ndev tun\n<cert>\n" + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + "</cert>\n"
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := profile(100)
	const probe, certCheck, summary = "direct: private address answers on port 22", "direct: VPN client certificate", "direct path"

	if err := l.SetVPN(lab.VPNUp); err != nil {
		t.Fatal(err)
	}
	code, m := doctorResults(t, "devbox-gpu1", "--vpn-profile", good, "--direct-budget", "30s")
	for name, r := range m {
		if !r.OK && !r.Info {
			t.Errorf("VPN up: %s failed: %s", name, r.Detail)
		}
	}
	if code != 0 || !m[probe].OK || !strings.Contains(m[summary].Detail, "auto takes it") ||
		!m[certCheck].OK || !strings.Contains(m[certCheck].Detail, "alice valid until") || !strings.Contains(m[certCheck].Detail, "(100 days)") {
		t.Fatalf("VPN up: exit %d\n%+v\n%+v\n%+v", code, m[probe], m[summary], m[certCheck])
	}
	// The lab's private DNS names do not resolve (not modelled): informational with auto.
	if r := m["direct: private DNS name resolves"]; r.OK || !r.Info || !strings.Contains(r.Detail, "does not resolve") {
		t.Fatalf("DNS: %+v", r)
	}

	// --path direct with the VPN up passes: devgate dials the private address, so the name that does
	// not resolve is information (it failed doctor), and without a profile there is no certificate to
	// check (it failed too).
	for _, extra := range [][]string{{"--vpn-profile", good}, nil} {
		code, m = doctorResults(t, append([]string{"devbox-gpu1", "--path", "direct", "--direct-budget", "30s"}, extra...)...)
		if code != 0 || !m[probe].OK || !m[summary].OK || !m["direct: private DNS name resolves"].Info ||
			(extra == nil && (m[certCheck].OK || !m[certCheck].Info)) {
			t.Fatalf("VPN up, --path direct %v: exit %d\n%+v", extra, code, m)
		}
	}

	if err := l.SetVPN(lab.VPNRefuse); err != nil {
		t.Fatal(err)
	}
	code, m = doctorResults(t, "devbox-gpu1", "--vpn-profile", profile(5), "--direct-budget", "30s")
	if code != 0 || m[probe].OK || !m[probe].Info || !strings.Contains(m[summary].Detail, "refused the connection; auto takes Session Manager") ||
		!m[certCheck].Info || !strings.Contains(m[certCheck].Detail, "expires in 5 days") {
		t.Fatalf("VPN down, auto: exit %d\n%+v\n%+v\n%+v", code, m[probe], m[summary], m[certCheck])
	}
	code, m = doctorResults(t, "devbox-gpu1", "--vpn-profile", good, "--path", "direct", "--direct-budget", "30s")
	if code == 0 || m[probe].OK || m[probe].Info || m[summary].OK {
		t.Fatalf("VPN down, --path direct: exit %d\n%+v\n%+v", code, m[probe], m[summary])
	}
	code, out, _ := runCLI(t, "", "doctor", "devbox-gpu1", "--vpn-profile", good, "--direct-budget", "30s")
	if code != 0 || !strings.Contains(out, "· "+probe) || !strings.Contains(out, "✓ "+summary+": not used: direct") {
		t.Fatalf("text output (%d):\n%s", code, out)
	}
}
