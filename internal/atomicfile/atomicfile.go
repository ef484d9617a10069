// Package atomicfile writes files so that a crash, a full disk or a
// concurrent writer never leaves a half-written file at the destination: the
// data goes to a temporary file in the same directory (its mode set before
// any byte is written, so a secret is never readable by others), is synced,
// and only then is renamed over the path (Write) or linked to it when the
// path must not exist yet (Create). Errors are exitcode LocalIO errors.
//
// It does not lock: callers that read-modify-write take their own lock.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/devgate/devgate/internal/exitcode"
)

// Write replaces path with data (mode applies to the new file).
func Write(path string, data []byte, mode fs.FileMode) error {
	tmp, err := temp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return exitcode.Wrap(err, exitcode.LocalIO, "check the directory's permissions", "cannot write %s", path)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// Create writes data to path, which must not exist; the error wraps
// fs.ErrExist when it does (another writer won).
func Create(path string, data []byte, mode fs.FileMode) error {
	tmp, err := temp(path, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return exitcode.Wrap(err, exitcode.LocalIO, "remove the file or choose another path", "cannot create %s", path)
	}
	syncDir(filepath.Dir(path))
	return nil
}

func temp(path string, data []byte, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", exitcode.Wrap(err, exitcode.LocalIO, "check the directory's permissions and free space", "cannot write %s", path)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", exitcode.Wrap(err, exitcode.LocalIO, "check free space and permissions", "cannot write %s", path)
	}
	if runtime.GOOS != "windows" {
		if err := f.Chmod(mode); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", exitcode.Wrap(err, exitcode.LocalIO, "check free space", "cannot write %s", path)
	}
	return name, nil
}

// syncDir makes the rename durable (best effort; not possible on Windows).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
