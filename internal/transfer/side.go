package transfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/sshconn"
)

// entry is a file or directory found under a source.
type entry struct {
	Rel   string // slash-separated path below the source root ("" for the root itself)
	Dir   bool
	Size  int64
	Mode  fs.FileMode
	Mtime time.Time
	// Link is the target of a symbolic link copied as a link (Options.FollowLinks unset).
	Link string
}

// side is one end of a copy: the local file system, or the instance through
// a session. Calls that need a session take one; the local side ignores it.
type side interface {
	// Join and Dir are path operations of this side.
	Join(elem ...string) string
	Base(p string) string
	Stat(c *sshconn.Client, p string) (entry, error)
	// Walk lists root and everything below it. Symbolic links below root are
	// entries with Link set, or, with follow, what they point to (links to
	// directories are not descended into; dangling links are left out).
	Walk(c *sshconn.Client, root string, follow bool) ([]entry, error)
	// Symlink makes p a symbolic link to target, replacing a link (not a file) already at p.
	Symlink(c *sshconn.Client, target, p string) error
	OpenRead(c *sshconn.Client, p string) (io.ReaderAt, io.Closer, error)
	// OpenWrite opens p for writing without truncating it.
	OpenWrite(c *sshconn.Client, p string) (io.WriterAt, io.Closer, error)
	// Reset makes p an empty file of size bytes that only its owner may
	// read (0600: Finish applies the source's mode).
	Reset(ctx context.Context, c *sshconn.Client, p string, size int64) error
	MkdirAll(c *sshconn.Client, p string, mode fs.FileMode) error
	Sum(ctx context.Context, c *sshconn.Client, p string) (string, error)
	ChunkSums(ctx context.Context, c *sshconn.Client, p string, chunk, n int64) ([]string, error)
	// Finish gives partial its mode and mtime and renames it to final atomically.
	Finish(c *sshconn.Client, partial, final string, mode fs.FileMode, mtime time.Time) error
	Chtimes(c *sshconn.Client, p string, mtime time.Time) error
	Remove(c *sshconn.Client, p string) error
}

type localSide struct{}

func (localSide) Join(elem ...string) string { return filepath.Join(elem...) }
func (localSide) Base(p string) string       { return filepath.Base(p) }

func localEntry(rel string, fi fs.FileInfo) entry {
	return entry{Rel: rel, Dir: fi.IsDir(), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
}

func (localSide) Stat(_ *sshconn.Client, p string) (entry, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return entry{}, err
	}
	return localEntry("", fi), nil
}

func (localSide) Walk(_ *sshconn.Client, root string, follow bool) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 && rel != "" {
			if !follow {
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				e := localEntry(filepath.ToSlash(rel), fi)
				e.Link = target
				out = append(out, e)
				return nil
			}
			if fi, err = os.Stat(p); err != nil {
				return nil // a dangling link: nothing to copy
			}
		} else if rel == "" {
			if fi, err = os.Stat(p); err != nil {
				return err
			}
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil
		}
		out = append(out, localEntry(filepath.ToSlash(rel), fi))
		return nil
	})
	return out, err
}

func (localSide) Symlink(_ *sshconn.Client, target, p string) error {
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if cur, err := os.Readlink(p); err == nil && cur == target {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return os.Symlink(target, p)
}

func (localSide) OpenRead(_ *sshconn.Client, p string) (io.ReaderAt, io.Closer, error) {
	f, err := os.Open(p)
	return f, f, err
}

func (localSide) OpenWrite(_ *sshconn.Client, p string) (io.WriterAt, io.Closer, error) {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	return f, f, err
}

func (localSide) Reset(_ context.Context, _ *sshconn.Client, p string, size int64) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil { // a partial left by an older devgate
		f.Close()
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (localSide) MkdirAll(_ *sshconn.Client, p string, mode fs.FileMode) error {
	return os.MkdirAll(p, mode|0o700)
}

func (localSide) Sum(ctx context.Context, _ *sshconn.Client, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (localSide) ChunkSums(ctx context.Context, _ *sshconn.Client, p string, chunk, n int64) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]string, n)
	for i := range n {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, i*chunk, chunk)); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out[i] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

func (localSide) Finish(_ *sshconn.Client, partial, final string, mode fs.FileMode, mtime time.Time) error {
	if err := os.Chmod(partial, mode.Perm()); err != nil {
		return err
	}
	if err := os.Chtimes(partial, mtime, mtime); err != nil {
		return err
	}
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return &IsDirError{Path: final}
	}
	return os.Rename(partial, final)
}

func (localSide) Chtimes(_ *sshconn.Client, p string, mtime time.Time) error {
	return os.Chtimes(p, mtime, mtime)
}

func (localSide) Remove(_ *sshconn.Client, p string) error { return os.Remove(p) }

// remoteSide is the instance, through SFTP and commands on a session.
type remoteSide struct{}

func (remoteSide) Join(elem ...string) string { return path.Join(elem...) }
func (remoteSide) Base(p string) string       { return path.Base(p) }

func (remoteSide) Stat(c *sshconn.Client, p string) (entry, error) {
	fi, err := c.SFTP.Stat(p)
	if err != nil {
		return entry{}, err
	}
	return localEntry("", fi), nil
}

func (remoteSide) Walk(c *sshconn.Client, root string, follow bool) ([]entry, error) {
	var out []entry
	w := c.SFTP.Walk(root)
	for w.Step() {
		if err := w.Err(); err != nil {
			return nil, err
		}
		fi := w.Stat()
		rel := strings.TrimPrefix(strings.TrimPrefix(w.Path(), root), "/")
		if fi.Mode()&fs.ModeSymlink != 0 {
			if !follow && rel != "" {
				target, err := c.SFTP.ReadLink(w.Path())
				if err != nil {
					return nil, err
				}
				e := localEntry(rel, fi)
				e.Link = target
				out = append(out, e)
				continue
			}
			st, err := c.SFTP.Stat(w.Path())
			if err != nil || st.IsDir() {
				continue // links to directories are not descended into
			}
			fi = st
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			continue
		}
		out = append(out, localEntry(rel, fi))
	}
	return out, nil
}

func (remoteSide) Symlink(c *sshconn.Client, target, p string) error {
	if fi, err := c.SFTP.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if cur, err := c.SFTP.ReadLink(p); err == nil && cur == target {
			return nil
		}
		if err := c.SFTP.Remove(p); err != nil {
			return err
		}
	}
	return c.SFTP.Symlink(target, p)
}

func (remoteSide) OpenRead(c *sshconn.Client, p string) (io.ReaderAt, io.Closer, error) {
	f, err := c.SFTP.Open(p)
	return f, f, err
}

func (remoteSide) OpenWrite(c *sshconn.Client, p string) (io.WriterAt, io.Closer, error) {
	f, err := c.SFTP.OpenFile(p, os.O_WRONLY)
	return f, f, err
}

func (remoteSide) Reset(ctx context.Context, c *sshconn.Client, p string, size int64) error {
	if err := c.CreatePrivate(ctx, p); err != nil {
		return err
	}
	return c.SFTP.Truncate(p, size)
}

func (remoteSide) MkdirAll(c *sshconn.Client, p string, mode fs.FileMode) error {
	if err := c.SFTP.MkdirAll(p); err != nil {
		return err
	}
	return nil
}

// Sum returns the sha256 of p on the instance, as lowercase hex.
//
// It runs `openssl dgst -sha256` when the instance has it (OpenSSL uses the
// CPU's SHA extensions: about 3× coreutils' sha256sum on the same core, which
// matters because the hash of a large source runs while its chunks move), and
// sha256sum otherwise or when openssl fails (whose error is then the one
// reported).
func (remoteSide) Sum(ctx context.Context, c *sshconn.Client, p string) (string, error) {
	out, err := c.Output(ctx, sumCommand(p), nil)
	if err != nil {
		return "", err
	}
	return parseSum(out)
}

// sumCommand is the command that prints the sha256 of p on the instance
// (see Sum).
func sumCommand(p string) string {
	q := shquote.Quote(p)
	return "openssl dgst -sha256 -r -- " + q + " 2>/dev/null || sha256sum -- " + q
}

// parseSum takes the sha256 from what sumCommand printed.
func parseSum(out []byte) (string, error) {
	s := strings.TrimPrefix(string(out), "\\")
	if len(s) < 64 {
		return "", fmt.Errorf("unexpected sha256 output %q", out)
	}
	if _, err := hex.DecodeString(s[:64]); err != nil {
		return "", fmt.Errorf("unexpected sha256 output %q", out)
	}
	return s[:64], nil
}

// ChunkSums hashes each chunk on the instance with dd and sha256sum.
func (remoteSide) ChunkSums(ctx context.Context, c *sshconn.Client, p string, chunk, n int64) ([]string, error) {
	cmd := fmt.Sprintf(`f=%s; i=0; while [ $i -lt %d ]; do dd if="$f" bs=%d skip=$i count=1 2>/dev/null | sha256sum; i=$((i+1)); done`,
		shquote.Quote(p), n, chunk)
	out, err := c.Output(ctx, cmd, nil)
	if err != nil {
		return nil, err
	}
	var sums []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if len(sc.Text()) >= 64 {
			sums = append(sums, sc.Text()[:64])
		}
	}
	if int64(len(sums)) != n {
		return nil, fmt.Errorf("remote chunk sums: got %d lines, want %d", len(sums), n)
	}
	return sums, nil
}

func (remoteSide) Finish(c *sshconn.Client, partial, final string, mode fs.FileMode, mtime time.Time) error {
	if err := c.SFTP.Chmod(partial, mode.Perm()); err != nil {
		return err
	}
	if err := c.SFTP.Chtimes(partial, mtime, mtime); err != nil {
		return err
	}
	if fi, err := c.SFTP.Stat(final); err == nil && fi.IsDir() {
		return &IsDirError{Path: final}
	}
	return c.SFTP.PosixRename(partial, final)
}

func (remoteSide) Chtimes(c *sshconn.Client, p string, mtime time.Time) error {
	return c.SFTP.Chtimes(p, mtime, mtime)
}

func (remoteSide) Remove(c *sshconn.Client, p string) error { return c.SFTP.Remove(p) }

// isRemoteFSError reports whether err is the server's answer about a file
// (not a broken connection).
func isRemoteFSError(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

var _ = strconv.Itoa
