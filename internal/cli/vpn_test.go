package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/lab/labvpn"
	"github.com/devgate/devgate/internal/ovpn"
	"github.com/devgate/devgate/internal/ovpn/openvpntest"
)

const cliPass = "correct horse battery"

// startVPNLab starts a lab with the VPN/ACM/SSM-document service and points
// the SDK's environment at it.
func startVPNLab(t *testing.T) *labvpn.Service {
	t.Helper()
	svc := labvpn.New()
	l := labtest.Start(t, lab.Options{Instances: []lab.InstanceSpec{}, Services: []lab.Service{svc}})
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return svc
}

// vpn runs `devgate vpn ARGS --dir dir` with a cheap scrypt cost.
func vpn(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, "", append(append([]string{"vpn"}, args...), "--dir", dir, "--scrypt-work-factor", "10")...)
}

func dirHash(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" {
			return err
		}
		b, _ := os.ReadFile(p)
		fi, _ := d.Info()
		h := sha256.Sum256(b)
		out[p] = fi.Mode().String() + hex.EncodeToString(h[:])
		return nil
	})
	return out
}

func sameFiles(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: %d files before, %d after", what, len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s changed %s", what, k)
		}
	}
}

func TestVPNEndToEnd(t *testing.T) {
	svc := startVPNLab(t)
	dir := filepath.Join(t.TempDir(), "pki")
	work := t.TempDir()
	t.Chdir(work)

	// No passphrase and no terminal: a clear refusal, nothing created.
	t.Setenv(passphraseEnv, "") // restored after the test
	os.Unsetenv(passphraseEnv)
	code, _, stderr := vpn(t, dir, "pki", "init", "--server-name", "vpn.example.com")
	if code != int(exitcode.Usage) || !strings.Contains(stderr, passphraseEnv) {
		t.Fatalf("init without passphrase: %d %s", code, stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("init without passphrase created the directory")
	}
	t.Setenv(passphraseEnv, cliPass)
	if code, _, stderr := vpn(t, dir, "pki", "init", "--server-name", "vpn"); code != int(exitcode.Usage) || !strings.Contains(stderr, "domain name") {
		t.Fatalf("init with a bare name: %d %s", code, stderr)
	}
	if code, _, stderr := vpn(t, dir, "pki", "init", "--server-name", "vpn.example.com", "--days", "400"); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode: %v %v", fi.Mode(), err)
	}
	if code, _, stderr := vpn(t, dir, "pki", "init", "--server-name", "vpn.example.com"); code != int(exitcode.Usage) || !strings.Contains(stderr, "never overwrites") {
		t.Fatalf("second init: %d %s", code, stderr)
	}
	for _, n := range []string{"alice", "bob"} {
		if code, _, stderr := vpn(t, dir, "pki", "issue", n, "--days", "20"); code != 0 {
			t.Fatalf("issue %s: %d %s", n, code, stderr)
		}
	}

	// Bad input: duplicate name refused unless --force; wrong passphrase
	// changes nothing.
	before := dirHash(t, dir)
	code, _, stderr = vpn(t, dir, "pki", "issue", "alice")
	if code != int(exitcode.Usage) || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "--force") {
		t.Fatalf("duplicate issue: %d %s", code, stderr)
	}
	sameFiles(t, "refused duplicate", before, dirHash(t, dir))
	t.Setenv(passphraseEnv, "not the passphrase")
	for _, args := range [][]string{{"pki", "issue", "carol"}, {"pki", "revoke", "alice"}, {"pki", "crl"}, {"pki", "renew", "bob"}} {
		code, _, stderr = vpn(t, dir, args...)
		if code != int(exitcode.Passphrase) || !strings.Contains(stderr, "wrong passphrase") || !strings.Contains(stderr, "nothing was changed") {
			t.Fatalf("%v with a wrong passphrase: %d %s", args, code, stderr)
		}
	}
	sameFiles(t, "wrong passphrase", before, dirHash(t, dir))
	t.Setenv(passphraseEnv, cliPass)
	if code, _, stderr := vpn(t, dir, "pki", "issue", "alice", "--force", "--days", "20"); code != 0 || !strings.Contains(stderr, "superseded") {
		t.Fatalf("issue --force: %d %s", code, stderr)
	}

	// list: table, JSON, and the soon-to-expire warning.
	code, stdout, stderr := vpn(t, dir, "pki", "list")
	if code != 0 || !strings.Contains(stdout, "NAME") || !strings.Contains(stdout, "vpn.example.com") || !strings.Contains(stderr, "warning: alice expires in 19 days") {
		t.Fatalf("list: %d\n%s\n%s", code, stdout, stderr)
	}
	_, stdout, _ = vpn(t, dir, "pki", "list", "--json")
	var rows []certRow
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != 4 {
		t.Fatalf("list --json: %v %s", err, stdout)
	}
	if rows[1].Name != "alice" || rows[1].Status != "revoked" || rows[1].Reason != "superseded" || rows[3].Name != "alice" || rows[3].Status != "valid" || rows[3].DaysLeft != 19 {
		t.Fatalf("rows: %+v", rows)
	}

	// import: server certificate and chain into ACM; a re-import keeps the ARN.
	code, stdout, stderr = vpn(t, dir, "import")
	if code != 0 {
		t.Fatalf("import: %d %s", code, stderr)
	}
	if !strings.Contains(stderr, "ACM: domain vpn.example.com, RSA_2048") {
		t.Fatalf("import did not report ACM's view:\n%s", stderr)
	}
	arn := field(stdout, "server-certificate-arn")
	if !strings.HasPrefix(arn, "arn:aws:acm:us-east-1:") || field(stdout, "client-root-certificate-chain-arn") != arn {
		t.Fatalf("import output:\n%s", stdout)
	}
	if code, _, stderr := vpn(t, dir, "pki", "renew", "vpn.example.com"); code != 0 {
		t.Fatalf("renew server: %d %s", code, stderr)
	}
	endpoint, err := svc.AddEndpoint(labvpn.EndpointSpec{ServerCertificateArn: arn})
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = vpn(t, dir, "import", "--endpoint", endpoint)
	if code != 0 || field(stdout, "server-certificate-arn") != arn || !strings.Contains(stderr, "re-imported (same ARN)") || svc.Imports(arn) != 2 {
		t.Fatalf("re-import: %d imports=%d\n%s\n%s", code, svc.Imports(arn), stdout, stderr)
	}
	if svc.CRLImports(endpoint) != 1 || !strings.Contains(stderr, "existing client connections were reset") {
		t.Fatalf("CRL import: %d\n%s", svc.CRLImports(endpoint), stderr)
	}

	// profile through the API and from a file.
	code, _, stderr = vpn(t, dir, "profile", "alice", "--endpoint", endpoint)
	if code != 0 {
		t.Fatalf("profile --endpoint: %d %s", code, stderr)
	}
	prof := filepath.Join(work, "alice.ovpn")
	fi, err := os.Stat(prof)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("profile file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(prof)
	p, err := ovpn.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := p.Block("cert")
	key, _ := p.Block("key")
	ca, _ := p.Block("ca")
	if !strings.Contains(cert, "BEGIN CERTIFICATE") || !strings.Contains(key, "BEGIN PRIVATE KEY") || !strings.Contains(ca, "BEGIN CERTIFICATE") || !strings.Contains(string(b), "remote "+endpoint) {
		t.Fatalf("profile:\n%s", b)
	}
	// The certificate in the profile verifies against the CA with openssl.
	certFile := filepath.Join(work, "alice.crt")
	os.WriteFile(certFile, []byte(cert), 0o600)
	if out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", filepath.Join(dir, "ca.crt"), "-CRLfile", filepath.Join(dir, "crl.pem"), certFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v %s", err, out)
	}
	// A real OpenVPN server with the (renewed) server certificate and the CRL
	// accepts the profile exported from the endpoint and completed by devgate.
	srvLog, cliLog := openvpntest.Attempt(t, vpnServer(t, dir), b)
	if !strings.Contains(srvLog, "[alice] Peer Connection Initiated") || !strings.Contains(cliLog, "VERIFY OK: depth=0, CN=vpn.example.com") {
		t.Fatalf("openvpn with alice.ovpn:\nserver:\n%s\nclient:\n%s", srvLog, cliLog)
	}
	code, _, stderr = vpn(t, dir, "profile", "alice", "--endpoint", endpoint)
	if code != int(exitcode.Usage) || !strings.Contains(stderr, "exists") {
		t.Fatalf("profile over an existing file: %d %s", code, stderr)
	}
	exported := filepath.Join(work, "exported.ovpn")
	os.WriteFile(exported, []byte("client\ndev tun\nproto udp\nremote cvpn-endpoint-0aaaaaaaaaaaaaaaa.prod.clientvpn.us-east-1.amazonaws.com 443\n<ca>\n"+ca+"</ca>\n"), 0o600)
	code, stdout, stderr = vpn(t, dir, "profile", "bob", "--config", exported, "-o", "-")
	if code != 0 || !strings.Contains(stdout, "<key>\n-----BEGIN PRIVATE KEY-----") || strings.Contains(stderr, "warning") {
		t.Fatalf("profile --config: %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := vpn(t, dir, "profile", "vpn.example.com", "--config", exported, "-o", "-"); code != int(exitcode.Usage) || !strings.Contains(stderr, "not a client one") {
		t.Fatalf("profile of the server: %d %s", code, stderr)
	}
	if code, _, stderr := vpn(t, dir, "profile", "alice", "--endpoint", "cvpn-endpoint-0123456789abcdef0", "-o", "x.ovpn"); code != int(exitcode.NotFound) || !strings.Contains(stderr, "endpoint not found") {
		t.Fatalf("profile of an unknown endpoint: %d %s", code, stderr)
	}

	// revoke: openssl now refuses the certificate, and import pushes the CRL.
	if code, _, stderr := vpn(t, dir, "pki", "revoke", "alice", "--reason", "keyCompromise"); code != 0 {
		t.Fatalf("revoke: %d %s", code, stderr)
	}
	out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", filepath.Join(dir, "ca.crt"), "-CRLfile", filepath.Join(dir, "crl.pem"), certFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate revoked") {
		t.Fatalf("openssl verify after revoke: %v %s", err, out)
	}
	if code, _, stderr := vpn(t, dir, "import", "--endpoint", endpoint); code != 0 || svc.CRLImports(endpoint) != 2 {
		t.Fatalf("import after revoke: %d %s", code, stderr)
	}
	srvLog, _ = openvpntest.Attempt(t, vpnServer(t, dir), b)
	if !strings.Contains(srvLog, "VERIFY ERROR: depth=0, error=certificate revoked: CN=alice") || strings.Contains(srvLog, "Peer Connection Initiated") {
		t.Fatalf("openvpn after revoke:\n%s", srvLog)
	}
	if code, _, stderr := vpn(t, dir, "pki", "revoke", "alice", "--reason", "sleepy"); code != int(exitcode.Usage) || !strings.Contains(stderr, "keyCompromise") {
		t.Fatalf("bad reason: %d %s", code, stderr)
	}
	if code, _, stderr := vpn(t, dir, "pki", "crl", "--days", "7"); code != 0 || !strings.Contains(stderr, "CRL number") {
		t.Fatalf("crl: %d %s", code, stderr)
	}

	// A corrupted index is detected, reported as such, and nothing changes.
	idx := filepath.Join(dir, "index.txt")
	b, _ = os.ReadFile(idx)
	os.WriteFile(idx, b[:len(b)-20], 0o600)
	before = dirHash(t, dir)
	for _, args := range [][]string{{"pki", "list"}, {"pki", "issue", "dave"}, {"pki", "revoke", "bob"}, {"profile", "bob", "--config", exported, "-o", "-"}, {"import"}} {
		code, _, stderr := vpn(t, dir, args...)
		if code != int(exitcode.Config) || !strings.Contains(stderr, "corrupt index") {
			t.Fatalf("%v on a corrupt index: %d %s", args, code, stderr)
		}
	}
	sameFiles(t, "corrupt index", before, dirHash(t, dir))
}

// vpnServer is the OpenVPN server side of the PKI in dir, read from its files.
func vpnServer(t *testing.T, dir string) openvpntest.Server {
	t.Helper()
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return openvpntest.Server{CA: read("ca.crt"), Cert: read("issued/vpn.example.com.crt"), Key: read("private/vpn.example.com.key"), CRL: read("crl.pem")}
}

func field(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok && k == key {
			return v
		}
	}
	return ""
}

// TestVPNTruncatedCAKey: a CA key file cut short (a full disk, a bad copy)
// is a damaged state file: exit 23 with the file named, not exit 1; nothing changes.
func TestVPNTruncatedCAKey(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv(passphraseEnv, cliPass)
	dir := filepath.Join(t.TempDir(), "pki")
	if code, _, stderr := vpn(t, dir, "pki", "init", "--server-name", "vpn.example.com"); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	key := filepath.Join(dir, "ca.key.age")
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{len(b) / 2, len(b) - 10} {
		os.WriteFile(key, b[:n], 0o600)
		before := dirHash(t, dir)
		code, _, stderr := vpn(t, dir, "pki", "issue", "dave")
		if code != int(exitcode.Config) || !strings.Contains(stderr, "ca.key.age") {
			t.Fatalf("CA key cut to %d of %d bytes: exit %d\n%s", n, len(b), code, stderr)
		}
		sameFiles(t, "truncated CA key", before, dirHash(t, dir))
	}
}
