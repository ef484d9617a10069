// Package labtest starts devgate-lab in-process for tests: real sshd
// instances, the SDK-facing endpoint, cleanup through t.Cleanup.
package labtest

import (
	"context"
	"log/slog"
	"os"
	"testing"

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
