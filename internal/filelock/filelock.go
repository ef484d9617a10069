// Package filelock takes advisory locks on files between processes (flock on
// Unix, LockFileEx on Windows): exclusive for writers, shared for readers.
// The lock belongs to the open file, so it also excludes other callers in the
// same process. It waits, polling, until the lock is free or ctx ends.
//
// It does not protect the file's contents from programs that do not lock.
package filelock

import (
	"context"
	"fmt"
	"os"
	"time"
)

// pollInterval is how often a busy lock is retried.
const pollInterval = 10 * time.Millisecond

// Lock opens (creating, 0600) the lock file at path and locks it. The
// returned function releases the lock and closes the file.
func Lock(ctx context.Context, path string, exclusive bool) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("filelock: open %s: %w", path, err)
	}
	for {
		busy, err := try(f, exclusive)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("filelock: lock %s: %w", path, err)
		}
		if !busy {
			return func() { release(f); f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("filelock: waiting for %s: %w", path, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}
