package sshconn_test

// Tests of sshconn against devgate-lab: a real tunnel (StartSession, the
// data channel) to a real sshd.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/sshconn"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/tunnel"
)

type fixture struct {
	l     *lab.Lab
	topts tunnel.Options
	cfg   sshconn.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	l := labtest.Start(t, lab.Options{})
	dir := t.TempDir()
	k, err := sshkey.Ensure(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sshkey.LoadSigner(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := l.Instance("gpu1")
	return &fixture{l: l,
		topts: tunnel.Options{Target: in.ID, Port: 22, User: in.User, PublicKey: k.Public.AuthorizedKey, Timeout: time.Minute},
		cfg:   sshconn.Config{User: in.User, Signer: signer, KnownHosts: filepath.Join(dir, "known_hosts")}}
}

func (f *fixture) dial(t *testing.T, ctx context.Context) (*sshconn.Client, error) {
	t.Helper()
	cs, _, err := sshconn.DialN(ctx, f.l.AWSConfig(), f.topts, f.cfg, 1)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { cs[0].Close() })
	return cs[0], nil
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestKnownHosts: the first connection pins the key under the instance id,
// the second is checked against it; a changed key is refused (exit 17), a
// garbage line is reported with its file and line (exit 23).
func TestKnownHosts(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	c, err := f.dial(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	b, err := os.ReadFile(f.cfg.KnownHosts)
	if err != nil || !strings.HasPrefix(string(b), f.topts.Target+" ") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("known_hosts after the first connection: %q %v", b, err)
	}
	if _, err := f.dial(t, ctx); err != nil {
		t.Fatalf("second connection with the pinned key: %v", err)
	}
	if b2, _ := os.ReadFile(f.cfg.KnownHosts); string(b2) != string(b) {
		t.Fatalf("known_hosts changed on a known host: %q", b2)
	}

	// Another host's key under this instance id.
	gpu2, _ := f.l.Instance("gpu2")
	os.WriteFile(f.cfg.KnownHosts, []byte(f.topts.Target+" "+gpu2.HostKey+"\n"), 0o600)
	_, err = f.dial(t, ctx)
	var hk *sshconn.HostKeyError
	if !errors.As(err, &hk) || exitcode.Code(err) != int(exitcode.SessionRefused) {
		t.Fatalf("changed host key: %v (exit %d), want a HostKeyError", err, exitcode.Code(err))
	}

	// Garbage on line 3.
	os.WriteFile(f.cfg.KnownHosts, []byte("# devgate\n\nthis is not a key line\n"), 0o600)
	_, err = f.dial(t, ctx)
	var kh *sshconn.KnownHostsError
	if !errors.As(err, &kh) || kh.Line != 3 || kh.Path != f.cfg.KnownHosts || exitcode.Code(err) != int(exitcode.Config) {
		t.Fatalf("garbage in known_hosts: %v (exit %d), want line 3 of %s and exit 23", err, exitcode.Code(err), f.cfg.KnownHosts)
	}
	if !strings.Contains(err.Error(), f.cfg.KnownHosts) || !strings.Contains(exitcode.HintOf(err), "line 3") {
		t.Fatalf("message %q hint %q: want the file and the line", err, exitcode.HintOf(err))
	}
}

// TestOutputAndCreatePrivate: commands on the instance (stdout, stdin, a
// failure with its stderr) and CreatePrivate's 0600 files.
func TestOutputAndCreatePrivate(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	c, err := f.dial(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Output(ctx, "tr a-z A-Z", []byte("hello"))
	if err != nil || string(out) != "HELLO" {
		t.Fatalf("Output: %q %v", out, err)
	}
	if _, err := c.Output(ctx, "echo oops >&2; exit 3", nil); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("failing command: %v, want its stderr", err)
	}
	if err := c.Err(0); err != nil {
		t.Fatalf("Err while the tunnel runs: %v", err)
	}

	dir := t.TempDir() // the lab's instance is this machine
	p := filepath.Join(dir, "it's a file")
	if err := c.CreatePrivate(ctx, p); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 0 {
		t.Fatalf("new file: %v %v", st, err)
	}
	// An existing world-readable file is truncated and closed to others.
	os.WriteFile(p, []byte("old bytes"), 0o644)
	os.Chmod(p, 0o644)
	if err := c.CreatePrivate(ctx, p); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 0 {
		t.Fatalf("existing file: %v %v", st, err)
	}
	if err := c.CreatePrivate(ctx, filepath.Join(dir, "no", "such", "dir", "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing directory: %v, want fs.ErrNotExist", err)
	}
}

// TestAskLimits: the lab's sshd (OpenSSH's sftp-server) states its limits;
// a connection with AskLimits asks them on its SFTP channel itself (OpenSSH's
// sftp-server ends the session on a second INIT, so the reads and writes
// below work only if pkg/sftp's INIT was dropped and the VERSION read for it
// handed over) and reads and writes in that packet length, and a file whose
// size is no multiple of it comes back whole both ways (pkg/sftp takes a
// short read for the end of the file only); without AskLimits, and for the
// connections DialN adds, nothing is asked.
func TestAskLimits(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	c, err := f.dial(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Packet != sshconn.DefaultPacket {
		t.Fatalf("without AskLimits: packet %d, want %d", c.Packet, sshconn.DefaultPacket)
	}
	f.cfg.AskLimits = true
	cs, _, err := sshconn.DialN(ctx, f.l.AWSConfig(), f.topts, f.cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		t.Cleanup(func() { c.Close() })
	}
	packet := cs[0].Packet
	// OpenSSH's sftp-server: 256 KiB messages, reads and writes of 255 KiB.
	if packet <= sshconn.DefaultPacket || packet > sshconn.MaxPacket {
		t.Fatalf("packet %d from the asking connection", packet)
	}
	for _, c := range cs[1:] {
		if c.Packet != packet {
			t.Fatalf("packet %d, want the server's %d", c.Packet, packet)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := make([]byte, 5*packet+12345)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	os.WriteFile(src, data, 0o600)
	r, err := cs[0].SFTP.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	n, err := r.ReadAt(got, 0)
	r.Close()
	if err != nil || n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("ReadAt of %d bytes: %d, %v, equal %v", len(data), n, err, bytes.Equal(got, data))
	}
	w, err := cs[0].SFTP.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "dst")); !bytes.Equal(b, data) {
		t.Fatalf("WriteAt: %d bytes back, differ", len(b))
	}
}
