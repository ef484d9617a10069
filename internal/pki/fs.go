package pki

import "github.com/devgate/devgate/internal/atomicfile"

// writeFile replaces path with data atomically (0600, fsync, rename, fsync of the directory).
func writeFile(path string, data []byte) error { return atomicfile.Write(path, data, 0o600) }
