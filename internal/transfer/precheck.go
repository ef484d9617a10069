package transfer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/devgate/devgate/internal/exitcode"
)

// CheckLocal checks what can be known about a copy on this machine alone,
// before any session is opened (on AWS, a session may start, and bill, a
// stopped instance): an upload's source exists, is readable, and is a
// directory only with Recursive; a download's destination, or the directory
// it goes into, exists. It returns the same classified errors Copy would.
func CheckLocal(o Options) error {
	if o.Direction == Upload {
		fi, err := os.Stat(o.Src)
		if err != nil {
			return localErr(err, "source", o.Src)
		}
		if fi.IsDir() {
			if !o.Recursive {
				return exitcode.New(exitcode.Usage, "add -r to copy a directory", "source %s is a directory", o.Src)
			}
			return nil
		}
		if !fi.Mode().IsRegular() {
			return exitcode.New(exitcode.Usage, "name a regular file or, with -r, a directory", "source %s is not a regular file", o.Src)
		}
		f, err := os.Open(o.Src)
		if err != nil {
			return localErr(err, "source", o.Src)
		}
		return f.Close()
	}
	_, err := os.Stat(o.Dst)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return localErr(err, "destination", o.Dst)
	case strings.HasSuffix(o.Dst, "/") || strings.HasSuffix(o.Dst, string(filepath.Separator)):
		return localErr(err, "destination directory", o.Dst)
	}
	parent := filepath.Dir(o.Dst)
	fi, err := os.Stat(parent)
	if err != nil {
		return localErr(err, "destination directory", parent)
	}
	if !fi.IsDir() {
		return exitcode.New(exitcode.LocalIO, "name a directory, or a new file in one", "%s is not a directory here", parent)
	}
	return nil
}

// localErr classifies a local file-system error found before the copy (as fsErr does during it).
func localErr(err error, what, p string) error {
	return (&copier{}).fsErr(err, localSide{}, what, p)
}
