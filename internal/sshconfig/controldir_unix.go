//go:build !windows

package sshconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// EnsureControlDir makes sure the ControlMaster directory dir (ssh's form:
// "~/" and "%i" are expanded with home and the uid) exists as a directory of
// this user, mode 0700, not a symlink: a directory under /tmp that someone
// else created could hand ssh's mux sockets to them. ssh itself only binds
// the socket, so devgate creates the directory (setup, and connect before ssh
// binds: /tmp is emptied at boot).
func EnsureControlDir(home, dir string) error {
	uid := os.Getuid()
	p := strings.ReplaceAll(dir, "%i", strconv.Itoa(uid))
	if strings.HasPrefix(p, "~/") {
		p = home + p[1:]
	}
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		if errors.Is(err, fs.ErrNotExist) {
			return os.MkdirAll(p, 0o700)
		}
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("ControlMaster directory %s is not a directory", p)
	case ok && int(st.Uid) != uid:
		return fmt.Errorf("ControlMaster directory %s belongs to uid %d, not to you (uid %d)", p, st.Uid, uid)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("ControlMaster directory %s is mode %v; it must be 0700", p, fi.Mode().Perm())
	}
	return nil
}
