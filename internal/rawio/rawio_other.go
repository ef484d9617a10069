//go:build !unix

package rawio

import (
	"errors"
	"syscall"
	"time"
)

// Supported reports whether Read, Write and TryWrite work on this platform.
const Supported = false

// Conn is not supported here: its methods fail.
type Conn struct{}

// NewConn returns a Conn whose methods fail with errors.ErrUnsupported.
func NewConn(rc syscall.RawConn) *Conn { return &Conn{} }

// Read is not supported here.
func (c *Conn) Read(p []byte) (int, error) { return 0, errors.ErrUnsupported }

// TryRead is not supported here.
func (c *Conn) TryRead(p []byte) (int, error) { return 0, errors.ErrUnsupported }

// Write is not supported here.
func (c *Conn) Write(p []byte) (int, error) { return 0, errors.ErrUnsupported }

// TryWrite is not supported here.
func (c *Conn) TryWrite(p []byte) (int, error) { return 0, errors.ErrUnsupported }

// Read is not supported here.
func Read(rc syscall.RawConn, p []byte) (int, error) { return 0, errors.ErrUnsupported }

// Write is not supported here.
func Write(rc syscall.RawConn, p []byte) (int, error) { return 0, errors.ErrUnsupported }

// TryWrite is not supported here.
func TryWrite(rc syscall.RawConn, p []byte) (int, error) { return 0, errors.ErrUnsupported }

// Pause sleeps d (at most 10 ms); elsewhere than Linux it is time.Sleep.
func Pause(d time.Duration) {
	if d > 0 {
		time.Sleep(min(d, 10*time.Millisecond))
	}
}
