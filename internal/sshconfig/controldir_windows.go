package sshconfig

// EnsureControlDir does nothing on Windows: OpenSSH for Windows has no
// connection sharing and the managed config sets ControlPath none.
func EnsureControlDir(home, dir string) error { return nil }
