package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveOnce listens on loopback and runs f on the first connection.
func serveOnce(t *testing.T, f func(c net.Conn)) (ip string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		f(c)
	}()
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func TestDialAddrBanner(t *testing.T) {
	ctx := context.Background()
	// Lines before the identification line are allowed (RFC 4253 §4.2); Read gives every byte back.
	ip, port := serveOnce(t, func(c net.Conn) {
		c.Write([]byte("hello\r\nSSH-2.0-Test"))
		time.Sleep(50 * time.Millisecond)
		c.Write([]byte("_1\r\nKEX"))
		io.Copy(io.Discard, c)
	})
	dc, err := dialAddr(ctx, net.JoinHostPort(ip, strconv.Itoa(port)), true)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(dc, b, len("hello\r\nSSH-2.0-Test_1\r\n"))
	if !strings.HasPrefix(string(b[:n]), "hello\r\nSSH-2.0-Test_1\r\n") {
		t.Fatalf("replayed %q", b[:n])
	}
	dc.Close()

	// Something that accepts and sends no banner: no SSH banner in time.
	ip, port = serveOnce(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = dialAddr(cctx, net.JoinHostPort(ip, strconv.Itoa(port)), true)
	if kind, why := classify("x:22", err); !errors.Is(err, errNoBanner) || kind != ResultNoAnswer || !strings.Contains(why, "no SSH banner in time") {
		t.Fatalf("silent server: %v (%s, %s)", err, kind, why)
	}

	// A server that closes without a banner.
	ip, port = serveOnce(t, func(c net.Conn) { c.Write([]byte("not ssh\n")) })
	_, err = dialAddr(ctx, net.JoinHostPort(ip, strconv.Itoa(port)), true)
	if kind, _ := classify("x:22", err); kind != ResultNoBanner {
		t.Fatalf("closing server: %v (%s)", err, kind)
	}

	// Garbage without end: refused after 8 KiB.
	ip, port = serveOnce(t, func(c net.Conn) {
		c.Write([]byte(strings.Repeat("x", 10000)))
		io.Copy(io.Discard, c)
	})
	_, err = dialAddr(ctx, net.JoinHostPort(ip, strconv.Itoa(port)), true)
	if !errors.Is(err, errNoBanner) {
		t.Fatalf("garbage: %v", err)
	}

	// Nothing listening: refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := ProbeAddr(ctx, "127.0.0.1", ln.Addr().(*net.TCPAddr).Port, time.Second)
	if p.OK || p.Result != ResultRefused || p.Addr != addr {
		t.Fatalf("probe of a closed port: %+v", p)
	}
}

func TestParsePath(t *testing.T) {
	for in, want := range map[string]string{"": PathAuto, "auto": PathAuto, "direct": PathDirect, "ssm": PathSSM} {
		if got, err := ParsePath(in); err != nil || got != want {
			t.Errorf("ParsePath(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePath("vpn"); err == nil {
		t.Error("ParsePath(vpn) succeeded")
	}
}

func TestDirectState(t *testing.T) {
	now := time.Now()
	if (DirectState{FailedAt: now.Add(-time.Minute)}).FailedRecently(now) != true ||
		(DirectState{FailedAt: now.Add(-DirectMemory - time.Second)}).FailedRecently(now) ||
		(DirectState{}).FailedRecently(now) || (DirectState{FailedAt: now.Add(time.Hour)}).FailedRecently(now) {
		t.Fatal("FailedRecently")
	}
	if !(DirectState{OKAt: now.Add(-time.Minute)}).AnsweredRecently(now) ||
		(DirectState{OKAt: now.Add(-time.Minute), FailedAt: now}).AnsweredRecently(now) ||
		(DirectState{OKAt: now.Add(-DirectMemory - time.Second)}).AnsweredRecently(now) ||
		(DirectState{}).AnsweredRecently(now) || (DirectState{OKAt: now.Add(time.Hour)}).AnsweredRecently(now) {
		t.Fatal("AnsweredRecently")
	}
	p := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(p, []byte("{not json"), 0o600)
	if s := LoadDirectState(p); s != (DirectState{}) {
		t.Fatalf("corrupt state: %+v", s)
	}
}

// FuzzLoadDirectState: any bytes in the state file give a state or the zero
// state, never a panic.
func FuzzLoadDirectState(f *testing.F) {
	f.Add([]byte(`{"privateIp":"10.0.1.10","describedAt":"2026-11-30T00:00:00Z","failedAt":"2026-11-30T00:00:00Z","why":"x"}`))
	f.Add([]byte(`{"failedAt":"garbage"}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "s.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := LoadDirectState(p)
		_ = s.FailedRecently(time.Now())
		_ = s.AnsweredRecently(time.Now())
	})
}
