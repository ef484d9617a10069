//go:build !unix

package rawio

import (
	"errors"
	"syscall"
)

// Supported reports whether Read, Write and TryWrite work on this platform.
const Supported = false

// Read is not supported here.
func Read(rc syscall.RawConn, p []byte) (int, error) { return 0, errors.ErrUnsupported }

// Write is not supported here.
func Write(rc syscall.RawConn, p []byte) (int, error) { return 0, errors.ErrUnsupported }

// TryWrite is not supported here.
func TryWrite(rc syscall.RawConn, p []byte) (int, error) { return 0, errors.ErrUnsupported }
