package tunnel_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/tunnel"
)

// lateStartSession hands StartSession to the lab, which starts the session,
// and delivers the answer 500 ms later, unless the request is cancelled
// first: the response still on its way when the command ends (cp done while a joining session was being
// started, Ctrl-C, auto's direct path winning).
type lateStartSession struct {
	next http.RoundTripper
	sent chan struct{}
}

func (l lateStartSession) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") != "AmazonSSM.StartSession" {
		return l.next.RoundTrip(r)
	}
	resp, err := l.next.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
	select {
	case l.sent <- struct{}{}:
	default:
	}
	select {
	case <-time.After(500 * time.Millisecond): // the answer arrives, late
		return resp, err
	case <-r.Context().Done():
		if err == nil {
			resp.Body.Close()
		}
		return nil, r.Context().Err()
	}
}

// TestCancelDuringStartSessionTerminatesIt: a dial cancelled while the
// StartSession answer is on its way still terminates the session the
// service started. Seen in the road test: `devgate cp --via s3` ended while
// a second session was being started, and the lab's tally stayed at "open 1"
// (StartSession logged, never TerminateSession, never attached).
func TestCancelDuringStartSessionTerminatesIt(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	late := lateStartSession{next: tr, sent: make(chan struct{}, 1)}
	cfg := l.AWSConfig()
	cfg.HTTPClient = &http.Client{Transport: late}
	gpu1, _ := l.Instance("gpu1")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		c, err := tunnel.Dial(ctx, cfg, tunnel.Options{Target: "gpu1", Port: 22, User: gpu1.User, PublicKey: pubKey(t),
			Path: tunnel.PathSSM, Timeout: 30 * time.Second})
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case <-late.sent:
	case <-time.After(30 * time.Second):
		t.Fatal("StartSession never reached the lab")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled dial succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled dial did not return")
	}
	for end := time.Now().Add(5 * time.Second); len(l.Mgs().Active()) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the session the service started was left open: active %v, TerminateSession calls %d",
				l.Mgs().Active(), l.Calls("TerminateSession"))
		}
	}
}
