// Package exitcode defines devgate's user-facing error type and the one table
// that maps every failure class to a process exit code and a hint.
//
// Packages below cli return errors wrapped with %w; those that know the
// failure class wrap a *Error (via New or Wrap) so that cli can find it with
// errors.As. It does not print anything: cli decides what the user sees.
package exitcode

import (
	"errors"
	"fmt"
)

// Class is a failure class. Each has its own exit code; the codes are part of
// devgate's interface (scripts and the README depend on them) and never change.
type Class int

// The failure classes. Keep README.md's table in step with this list.
const (
	Generic        Class = 1  // anything unclassified
	Usage          Class = 2  // bad flags or arguments
	Declined       Class = 3  // the user answered no to a confirmation prompt; nothing was changed
	Credentials    Class = 10 // no or invalid AWS credentials
	Region         Class = 11 // no region, or an unknown one
	NotFound       Class = 12 // instance (or alias) not found, or ambiguous
	Terminated     Class = 13 // instance terminated or shutting down
	StartTimeout   Class = 14 // instance did not reach running in time
	AgentOffline   Class = 15 // SSM agent never came online
	KeyPushRefused Class = 16 // EC2 Instance Connect refused the key
	SessionRefused Class = 17 // StartSession refused (permissions, document)
	TunnelLost     Class = 18 // data channel failed and could not be resumed
	Permission     Class = 19 // an AWS permission is missing (AccessDenied)
	Throttled      Class = 20 // AWS kept throttling after retries
	Checksum       Class = 21 // data verification failed
	LocalIO        Class = 22 // local file system problem (disk full, permissions)
	Config         Class = 23 // devgate's own config/state files are bad
	Passphrase     Class = 24 // wrong passphrase for an encrypted key
	RemoteIO       Class = 25 // a file operation on the instance failed (missing, permission, disk full)
	// DirectUnreachable: --path direct and the instance's private address did not answer.
	DirectUnreachable Class = 26
	Interrupted       Class = 130
)

// Error is a classified, user-facing error: what went wrong, the fix, and the
// underlying cause.
type Error struct {
	Class Class
	Msg   string // one line: what went wrong
	Hint  string // one line: what to do about it; may be empty
	Err   error  // the cause; may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a classified error without a cause.
func New(c Class, hint, format string, args ...any) *Error {
	return &Error{Class: c, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// Wrap classifies err. It returns nil when err is nil.
func Wrap(err error, c Class, hint, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Msg: fmt.Sprintf(format, args...), Hint: hint, Err: err}
}

// Code returns the exit code for err: 0 for nil, the class of the outermost
// *Error in the chain, or Generic.
func Code(err error) int {
	if err == nil {
		return 0
	}
	var st *Status
	if errors.As(err, &st) {
		return st.Code
	}
	var e *Error
	if errors.As(err, &e) {
		return int(e.Class)
	}
	return int(Generic)
}

// HintOf returns the hint of the outermost *Error in err's chain, if any.
func HintOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}

// Status is the exit status of a remote command or shell that devgate
// passes on as its own (devgate shell, devgate exec). It is not a failure
// of devgate: cli.Main exits with Code and prints nothing.
type Status struct{ Code int }

func (s *Status) Error() string {
	return fmt.Sprintf("the remote command exited with status %d", s.Code)
}
