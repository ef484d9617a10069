package sshconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rogpeppe/go-internal/diff"

	"github.com/devgate/devgate/internal/atomicfile"
	"github.com/devgate/devgate/internal/exitcode"
)

// Change is one file that setup (or vscode) wants to write.
type Change struct {
	Path    string
	Old     []byte // nil when the file does not exist
	New     []byte
	Exists  bool
	Mode    fs.FileMode // for new files
	DirMode fs.FileMode // for missing parent directories
}

// Changed reports whether applying the change would alter the file.
func (c Change) Changed() bool { return !c.Exists || !bytes.Equal(c.Old, c.New) }

// Diff returns a unified diff of the change ("" when nothing changes).
func (c Change) Diff() string {
	if !c.Changed() {
		return ""
	}
	oldName := c.Path
	if !c.Exists {
		oldName = "/dev/null"
	}
	return string(diff.Diff(oldName, c.Old, c.Path, c.New))
}

// ReadChange reads path's current content into a Change whose New is newContent.
func ReadChange(path string, newContent []byte, mode, dirMode fs.FileMode) (Change, error) {
	c := Change{Path: path, New: newContent, Mode: mode, DirMode: dirMode}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		c.Old, c.Exists = b, true
	case errors.Is(err, fs.ErrNotExist):
	default:
		return c, exitcode.Wrap(err, exitcode.LocalIO, "check the file's permissions", "cannot read %s", path)
	}
	return c, nil
}

// Apply writes the change: a backup of the existing file to
// "<path>.devgate-backup-<UTC time>" first, then the new content through a
// temporary file and a rename, keeping the existing file's mode. It returns
// the backup's path ("" when there was nothing to back up). A no-op change
// writes nothing.
func (c Change) Apply(now time.Time) (backup string, err error) {
	if !c.Changed() {
		return "", nil
	}
	// A symlinked file (dotfiles managers link ~/.ssh/config into a repo) is
	// written where it points: the link stays a link.
	path := c.Path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		path = r
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, c.DirMode|0o700); err != nil {
		return "", exitcode.Wrap(err, exitcode.LocalIO, "check the directory's permissions", "cannot create %s", dir)
	}
	mode := c.Mode
	if c.Exists {
		fi, err := os.Stat(path)
		if err != nil {
			return "", exitcode.Wrap(err, exitcode.LocalIO, "check the file's permissions", "cannot read %s", c.Path)
		}
		mode = fi.Mode().Perm()
		// Beside the link the user knows; a unique name: two runs in one second keep both backups.
		base := c.Path + ".devgate-backup-" + now.UTC().Format("20060102T150405Z")
		for i := 0; ; i++ {
			backup = base
			if i > 0 {
				backup = fmt.Sprintf("%s.%d", base, i)
			}
			err := atomicfile.Create(backup, c.Old, mode)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) || i >= 1000 {
				return "", exitcode.Wrap(err, exitcode.LocalIO, "check the directory's permissions", "cannot back up %s", c.Path)
			}
		}
	}
	if err := writeAtomic(path, c.New, mode); err != nil {
		return backup, err
	}
	return backup, nil
}

func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	return atomicfile.Write(path, data, mode)
}
