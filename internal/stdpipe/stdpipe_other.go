//go:build !unix

package stdpipe

import "os"

// File is never returned here (no non-blocking descriptors).
type File struct{}

// Open always fails with ErrNotPipe here: the caller writes f as before.
func Open(f *os.File, others ...*os.File) (*File, error) { return nil, ErrNotPipe }

// Read is never reached here.
func (w *File) Read(p []byte) (int, error) { return 0, ErrNotPipe }

// TryWrite is never reached here.
func (w *File) TryWrite(p []byte) (int, error) { return 0, ErrNotPipe }

// Write is never reached here.
func (w *File) Write(p []byte) (int, error) { return 0, ErrNotPipe }

// Close is never reached here.
func (w *File) Close() error { return nil }
