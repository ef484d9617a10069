package datachannel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

func open(t *testing.T, l *lab.Lab, port int, mod func(*datachannel.Config)) *datachannel.Session {
	t.Helper()
	ss := labtest.StartSession(t, l, "gpu1", "AWS-StartSSHSession", map[string][]string{"portNumber": {strconv.Itoa(port)}})
	cfg := datachannel.Config{StreamURL: ss.StreamURL, SessionID: ss.ID, Token: ss.Token, Resume: labtest.Resume(l, ss.ID)}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Deadline(20*time.Second))
	defer cancel()
	s, err := datachannel.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// roundTrip writes n random bytes and reads them back through an echo target.
func roundTrip(t *testing.T, s *datachannel.Session, n int) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() { _, err := s.Write(data); werr <- err }()
	got := make([]byte, n)
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("%d bytes came back different", n)
	}
}

func TestEchoSSHMode(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	port := labtest.Serve(t, echo)
	s := open(t, l, port, nil)
	if s.SessionType() != "Port" || s.Property("portNumber") != strconv.Itoa(port) || s.Property("type") != "" {
		t.Fatalf("handshake: type %q properties portNumber=%q type=%q", s.SessionType(), s.Property("portNumber"), s.Property("type"))
	}
	roundTrip(t, s, testutil.Size(8<<20))
	// A lone LF is sent as LF (the official plugin rewrites it to CR, §9 item 14).
	if _, err := s.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(s, b); err != nil || b[0] != '\n' {
		t.Fatalf("lone LF came back as %q, %v", b, err)
	}
	s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(l.Mgs().Active()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Close did not end the session in the lab: active %v", l.Mgs().Active())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestTargetEOFEndsWithChannelClosed(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	port := labtest.Serve(t, func(c net.Conn) { c.Write([]byte("bye from the target")) })
	s := open(t, l, port, nil)
	defer s.Close()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if string(got) != "bye from the target" {
		t.Fatalf("read %q", got)
	}
	var ce *datachannel.ClosedError
	if !errors.As(s.Err(), &ce) {
		t.Fatalf("Err = %v, want a ClosedError", s.Err())
	}
	if _, err := s.Write([]byte("late")); err == nil {
		t.Fatal("Write after channel_closed succeeded")
	}
}

func TestReconnectUnderDropsAndFaults(t *testing.T) {
	for _, mode := range []string{"tcp", "bye"} {
		t.Run(mode, func(t *testing.T) {
			f := labtest.Fast()
			f.DropEvery = 250 * time.Millisecond
			f.BandwidthCap = 8 << 20
			f.DropMode = mode
			f.ReorderProb = 0.05
			f.DuplicateProb = 0.05
			f.PauseEvery = 200 * time.Millisecond
			f.PauseFor = 20 * time.Millisecond
			f.DataDelay = 2 * time.Millisecond
			l := labtest.Start(t, lab.Options{Faults: f})
			port := labtest.Serve(t, echo)
			var drops, heals atomic.Int32
			s := open(t, l, port, func(c *datachannel.Config) {
				c.OnReconnect = func(err error) {
					if err != nil {
						drops.Add(1)
					} else {
						heals.Add(1)
					}
				}
			})
			defer s.Close()
			// Round trips until the faults have exercised two reconnects
			// (one usually suffices; a race build moves less per second).
			deadline := time.Now().Add(testutil.Deadline(2 * time.Minute))
			for {
				roundTrip(t, s, testutil.Size(6<<20))
				if drops.Load() >= 2 && heals.Load() >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("drops %d, resumed %d: the fault did not exercise reconnects", drops.Load(), heals.Load())
				}
			}
		})
	}
}

func TestResumeGivesUp(t *testing.T) {
	f := labtest.Fast()
	f.DropEvery = 200 * time.Millisecond
	l := labtest.Start(t, lab.Options{Faults: f})
	port := labtest.Serve(t, echo)
	s := open(t, l, port, func(c *datachannel.Config) {
		c.ResumeTimeout = 500 * time.Millisecond
		c.Resume = func(context.Context) (string, error) { return "", errors.New("network unreachable") }
	})
	defer s.Close()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session did not give up")
	}
	if code := exitcode.Code(s.Err()); code != int(exitcode.TunnelLost) {
		t.Fatalf("Err = %v (exit %d), want TunnelLost", s.Err(), code)
	}
	if _, err := s.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Fatalf("Read after a lost tunnel = %v, want the error", err)
	}
}

func TestWrongTokenRefused(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	ss := labtest.StartSession(t, l, "gpu1", "AWS-StartSSHSession", map[string][]string{"portNumber": {"22"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := datachannel.Open(ctx, datachannel.Config{StreamURL: ss.StreamURL, SessionID: ss.ID, Token: "forged"})
	if exitcode.Code(err) != int(exitcode.SessionRefused) {
		t.Fatalf("Open with a wrong token = %v, want SessionRefused", err)
	}
	// The real token still works once, and not twice.
	s, err := datachannel.Open(ctx, datachannel.Config{StreamURL: ss.StreamURL, SessionID: ss.ID, Token: ss.Token})
	if err != nil {
		t.Fatalf("Open with the real token: %v", err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(s, buf); err != nil || !bytes.HasPrefix(buf, []byte("SSH-2.0")) {
		t.Fatalf("sshd banner: %q %v", buf, err)
	}
	s.Close()
	if _, err := datachannel.Open(ctx, datachannel.Config{StreamURL: ss.StreamURL, SessionID: ss.ID, Token: ss.Token}); err == nil {
		t.Fatal("a used token opened the channel again")
	}
}

// TestLivenessDetectsFrozenService: a data channel frozen by the lab (open
// sockets, nothing read or written) is found silent, resumed when the lab
// thaws, and reported once as a drop and once as healed.
func TestLivenessDetectsFrozenService(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	port := labtest.Serve(t, echo)
	var drops, heals atomic.Int32
	var cause atomic.Pointer[error] // the first drop's
	// Scaled under -race (a 1 s liveness is shorter than a race build's stalls).
	liveness := testutil.Deadline(time.Second)
	s := open(t, l, port, func(c *datachannel.Config) {
		c.Liveness = liveness
		c.OnReconnect = func(err error) {
			t.Logf("OnReconnect(%v)", err)
			if err != nil {
				if drops.Add(1) == 1 {
					cause.Store(&err)
				}
			} else {
				heals.Add(1)
			}
		}
	})
	defer s.Close()
	roundTrip(t, s, 64<<10)
	ids := l.Mgs().Active()
	if len(ids) != 1 {
		t.Fatalf("active %v", ids)
	}
	if err := l.Mgs().Freeze(ids[0], 4*liveness); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s, 1<<20) // written into the frozen channel, echoed after the thaw
	if drops.Load() != 1 || heals.Load() != 1 {
		t.Fatalf("drops %d, heals %d; want one outage", drops.Load(), heals.Load())
	}
	if p := cause.Load(); p == nil || !errors.Is(*p, datachannel.ErrSilent) {
		t.Fatalf("drop cause %v, want ErrSilent", p)
	}
}
