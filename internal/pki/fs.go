package pki

import (
	"context"
	"path/filepath"

	"github.com/devgate/devgate/internal/atomicfile"
	"github.com/devgate/devgate/internal/filelock"
)

// writeFile replaces path with data atomically (0600, fsync, rename, fsync of the directory).
func writeFile(path string, data []byte) error { return atomicfile.Write(path, data, 0o600) }

// lockDir takes the PKI's lock: exclusive for writers, shared for readers.
func lockDir(dir string, exclusive bool) (func(), error) {
	return filelock.Lock(context.Background(), filepath.Join(dir, fileLock), exclusive)
}
