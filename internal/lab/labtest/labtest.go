// Package labtest starts devgate-lab in-process for tests: real sshd
// instances, the SDK-facing endpoint, cleanup through t.Cleanup.
package labtest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/faults"
)

// Fast is a fault configuration for tests: no pacing, short delays.
func Fast() faults.Config {
	c := faults.Defaults()
	c.Pacing = false
	c.BootDelay = 300e6
	c.StopDelay = 200e6
	c.AgentDelay = 200e6
	return c
}

// Start starts a lab with opts (Dir defaults to a temp dir, faults to Fast
// when opts.Faults is the zero value) and closes it when the test ends.
func Start(t testing.TB, opts lab.Options) *lab.Lab {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Faults == (faults.Config{}) {
		opts.Faults = Fast()
	}
	if opts.Logger == nil {
		lvl := slog.LevelWarn
		if os.Getenv("DEVGATE_LAB_DEBUG") != "" {
			lvl = slog.LevelDebug
		}
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	l, err := lab.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Session is what StartSession returned.
type Session struct {
	ID, Token, StreamURL string
}

// StartSession calls StartSession through the SDK against l for the instance
// with this Name tag or id, retrying TargetNotConnected for a few seconds.
func StartSession(t testing.TB, l *lab.Lab, nameOrID, document string, params map[string][]string) Session {
	t.Helper()
	inst, ok := l.Instance(nameOrID)
	if !ok {
		t.Fatalf("no instance %q", nameOrID)
	}
	c := ssm.NewFromConfig(l.AWSConfig())
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := c.StartSession(context.Background(), &ssm.StartSessionInput{Target: aws.String(inst.ID),
			DocumentName: aws.String(document), Parameters: params})
		if err == nil {
			return Session{ID: aws.ToString(out.SessionId), Token: aws.ToString(out.TokenValue), StreamURL: aws.ToString(out.StreamUrl)}
		}
		var tnc *ssmtypes.TargetNotConnected
		if !errors.As(err, &tnc) || time.Now().After(deadline) {
			t.Fatalf("StartSession: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Resume returns a Resume function for datachannel.Config that calls
// ResumeSession against l.
func Resume(l *lab.Lab, sessionID string) func(ctx context.Context) (string, error) {
	c := ssm.NewFromConfig(l.AWSConfig())
	return func(ctx context.Context) (string, error) {
		out, err := c.ResumeSession(ctx, &ssm.ResumeSessionInput{SessionId: aws.String(sessionID)})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.TokenValue), nil
	}
}

// Serve runs handle for every TCP connection on a fresh loopback port until
// the test ends, and returns the port: in the lab, "port P on the instance"
// (StartSession's dial maps localhost:P to 127.0.0.1:P).
func Serve(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}
