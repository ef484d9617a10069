package transfer

import (
	"context"
	"io/fs"
	"log/slog"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/devgate/devgate/internal/sshconn"
)

// TreeFile is one regular file of a folder copy planned by PlanTree.
type TreeFile struct {
	Rel      string // <source base>/<path below the source>, slash-separated (progress and journal name)
	Src, Dst string // paths on their own sides
	Size     int64
	Mode     fs.FileMode
	Mtime    time.Time // with its sub-second part where both sides keep one
	// InPlace: the destination already has this file (same size and mtime,
	// no partial file beside it); it is not copied again.
	InPlace bool
}

// Tree is a folder copy planned for another mover (the S3 relay): the files
// to move, and the directories and symbolic links Finish makes. The
// destination's directories exist once PlanTree returns.
type Tree struct {
	Files []TreeFile
	// Root is where the folder goes: Dst, or Dst/<source base> when Dst
	// was an existing directory (as cp -r).
	Root string
	c    *copier
	dirs []dirTask
}

// PlanTree lists the folder o.Src (o.Recursive is implied) and checks and
// prepares the destination as Copy does (the same errors for a missing
// source or a destination that is a file), over session s. Whether each file
// is already in place is asked in parallel (up to 16 at a time), not one
// round trip after another.
func PlanTree(ctx context.Context, s *sshconn.Client, o Options) (*Tree, error) {
	o.Recursive = true
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &copier{o: o, sessions: []*sshconn.Client{s}}
	if o.Direction == Download {
		c.src, c.dst = remoteSide{}, localSide{}
	} else {
		c.src, c.dst = localSide{}, remoteSide{}
	}
	tasks, dirs, err := c.plan(ctx)
	if err != nil {
		return nil, c.lostErr(s, err)
	}
	t := &Tree{c: c, dirs: dirs, Files: make([]TreeFile, len(tasks)), Root: o.Dst}
	for _, d := range dirs {
		if d.Rel == "" {
			t.Root = d.dstPath
		}
	}
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, k := range tasks {
		t.Files[i] = TreeFile{Rel: k.e.Rel, Src: k.src, Dst: k.dst, Size: k.e.Size, Mode: k.e.Mode, Mtime: k.e.Mtime}
		g.Go(func() error {
			de, err := c.dst.Stat(s, k.dst)
			if err == nil && !de.Dir && de.Size == k.e.Size && de.Mtime.Unix() == k.e.Mtime.Unix() {
				if _, perr := c.dst.Stat(s, k.partial); perr != nil {
					t.Files[i].InPlace = true
				}
			}
			return nil
		})
	}
	g.Wait()
	return t, ctx.Err()
}

// Finish makes the symbolic links and gives the directories their mtimes
// (deepest first, after the files are in), and on the instance sets
// sub-second mtimes of files and directories (GNU touch; whole seconds are
// kept without it). It returns how many links it made.
func (t *Tree) Finish(ctx context.Context) (int, error) {
	c, s := t.c, t.c.sessions[0]
	n := 0
	for _, l := range c.links {
		if err := c.dst.Symlink(s, l.Link, l.dstPath); err != nil {
			return n, c.fsErr(err, c.dst, "symbolic link", l.dstPath)
		}
		n++
	}
	c.finished(s)
	dirs := append([]dirTask(nil), t.dirs...)
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i].Rel) > len(dirs[j].Rel) })
	for _, d := range dirs {
		_ = c.dst.Chtimes(s, d.dstPath, d.Mtime)
	}
	if c.o.Direction == Upload {
		var items []pathTime
		for _, d := range dirs {
			items = append(items, pathTime{d.dstPath, d.Mtime})
		}
		if err := touchRemote(ctx, s, items); err != nil {
			c.o.Logger.Warn("transfer: could not set sub-second mtimes on the instance (GNU touch?); whole seconds kept", "err", err)
		}
	}
	return n, nil
}

// FSError classifies a file-system error as Copy does: what is "source",
// "destination" or the like, remote says whether p is on the instance.
func FSError(err error, remote bool, what, p string) error {
	c := &copier{}
	if remote {
		return c.fsErr(err, remoteSide{}, what, p)
	}
	return c.fsErr(err, localSide{}, what, p)
}
