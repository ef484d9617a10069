// Package transfer copies files and folders between this machine and an
// instance over several SSH sessions at once (devgate cp's tunnel mode).
//
// A file is cut into fixed-size chunks; sessions take chunks from one queue
// and move them with SFTP ranged reads and writes into a partial file
// (<dst>.devgate-part), one SFTP request per piece of a chunk, each counted
// to Options.Progress as its answer arrives. A journal records each finished
// chunk, and, for a chunk whose move was cut short (Ctrl-C, a lost session),
// the bytes that had arrived in order from its start; running the same copy
// again moves only what is missing. When every chunk of
// a file is in, the source is checked for changes (size and mtime; a changed
// source restarts the file), the sha256 of the partial file is compared with
// the source's (openssl or sha256sum on the instance, started while the
// chunks move; a download's partial file is read back and hashed in order as
// its chunks land, see prefixSum), chunks that differ are fetched
// again, and the partial file takes the source's mode and mtime and is renamed
// over the destination atomically.
//
// It does not open sessions (the caller passes connected sshconn clients;
// a cancelled copy closes those with requests in flight, so that it ends
// at once instead of after their answers), print anything (progress goes to
// Options.Progress) or relay through S3.
package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/filelock"
	"github.com/devgate/devgate/internal/sshconn"
)

// MaxChunkSize and MinChunkSize bound the automatic chunk size: a file is cut
// into about 64 chunks (so that small files still spread over the sessions),
// each between 256 KiB and 4 MiB (so that a kill costs at most 4 MiB per session).
const (
	MaxChunkSize = 4 << 20
	MinChunkSize = 256 << 10
)

// ChunkFor returns the automatic chunk size of a file of size bytes.
func ChunkFor(size int64) int64 {
	return min(MaxChunkSize, max(MinChunkSize, size/64))
}

// PartialSuffix names the partial file beside the destination.
const PartialSuffix = ".devgate-part"

// JournalSuffix names a download's journal beside its partial file.
const JournalSuffix = ".devgate-journal"

// maxRounds bounds restarts (changed source) and re-fetches (bad checksum) per file.
const maxRounds = 3

// Direction of a copy.
type Direction int

const (
	Download Direction = iota // instance → here
	Upload                    // here → instance
)

// Options of one copy.
type Options struct {
	Direction Direction
	Src, Dst  string // paths on their own sides
	Recursive bool
	// FollowLinks copies what symbolic links below Src point to (rsync -L);
	// otherwise they are copied as links (rsync -a), their targets unchanged.
	FollowLinks bool
	ChunkSize   int64 // 0: ChunkFor(size) per file
	// JournalDir holds upload journals (their partial files are on the instance).
	JournalDir string
	// Target names the instance in upload journal names.
	Target   string
	Progress Progress
	Logger   *slog.Logger
	// More brings sessions that join the copy as they connect (nil: none),
	// so that the first session moves chunks while the others still run
	// their handshakes. The caller closes it when no more will come; Copy
	// stops taking from it once the copy is over, and does not close the
	// sessions it took (the caller does, as for the others).
	More <-chan *sshconn.Client
}

// Progress receives what a copy does. Calls come from several goroutines.
type Progress interface {
	// Total is called once the sources are listed.
	Total(files int, bytes, resumed int64)
	// FileStart is called when a file is queued with done bytes already in place.
	FileStart(name string, size, done int64)
	// Add counts n bytes moved for name as they arrive (negative when bytes
	// are taken back: a chunk fetched again, bytes of an interrupted chunk
	// that did not arrive in order and are not kept).
	Add(name string, n int64)
	// FileDone is called when name is verified and in place.
	FileDone(name string)
}

// Stats summarises a copy.
type Stats struct {
	Files     int     `json:"files"`
	Bytes     int64   `json:"bytes"`            // total size of the files
	Moved     int64   `json:"bytes_moved"`      // bytes carried through the sessions
	Resumed   int64   `json:"resumed_bytes"`    // bytes of partial files already in place from an earlier run (whole chunks and parts)
	Skipped   int     `json:"skipped_files"`    // files already at the destination (same size and mtime): not copied
	Links     int     `json:"symlinks"`         // symbolic links made at the destination
	Refetched int     `json:"refetched_chunks"` // chunks fetched again after a checksum mismatch
	Restarts  int     `json:"restarts"`         // files restarted because the source changed
	Sessions  int     `json:"sessions"`         // sessions that carried work (0 when every file was skipped)
	Seconds   float64 `json:"seconds"`
}

// IsDirError is a destination that is a directory where a file must go.
type IsDirError struct{ Path string }

func (e *IsDirError) Error() string { return e.Path + " is a directory" }

type nopProgress struct{}

func (nopProgress) Total(int, int64, int64)        {}
func (nopProgress) FileStart(string, int64, int64) {}
func (nopProgress) Add(string, int64)              {}
func (nopProgress) FileDone(string)                {}

// Copy runs one copy over sessions (at least one).
func Copy(ctx context.Context, sessions []*sshconn.Client, o Options) (Stats, error) {
	if len(sessions) == 0 {
		return Stats{}, errors.New("transfer: no sessions")
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &copier{o: o, sessions: sessions, q: newQueue(), fsem: make(chan struct{}, 16)}
	c.hash = newHasher(ctx, sessions[0])
	if o.Direction == Download {
		c.src, c.dst = remoteSide{}, localSide{}
	} else {
		c.src, c.dst = localSide{}, remoteSide{}
	}
	tasks, dirs, err := c.plan(ctx)
	if err != nil {
		return c.stats, c.lostErr(sessions[0], err)
	}
	c.stats.Files = len(tasks)
	for _, t := range tasks {
		c.stats.Bytes += t.e.Size
	}
	var pending []*fileTask
	var skippedBytes int64
	for _, t := range tasks {
		if err := c.prepare(ctx, t); err != nil {
			return c.stats, c.lostErr(sessions[0], err)
		}
		if !t.complete {
			pending = append(pending, t)
		} else {
			skippedBytes += t.e.Size
		}
	}
	o.Progress.Total(len(tasks), c.stats.Bytes, c.stats.Resumed+skippedBytes)
	c.open.Store(int64(len(pending)))
	if len(pending) == 0 {
		c.q.close()
	}
	for _, t := range pending {
		o.Progress.FileStart(t.e.Rel, t.e.Size, t.doneBytesLocked(c))
		c.enqueue(t)
	}
	var wg sync.WaitGroup
	c.live.Store(int64(len(sessions)))
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.worker(ctx, cancel, s)
		}()
	}
	if o.More != nil {
		c.live.Add(1) // the queue stays open while sessions may still join
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.join(ctx, cancel, o.More, &wg)
		}()
	}
	wg.Wait()
	c.fwg.Wait()
	c.stats.Sessions = int(c.used.Load())
	for _, t := range tasks {
		if t.j != nil {
			t.j.close()
		}
		if t.prefix != nil {
			t.prefix.close()
		}
	}
	c.stats.Seconds = time.Since(start).Seconds()
	if err := context.Cause(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return c.stats, err
		}
		return c.stats, err
	}
	if c.open.Load() > 0 {
		c.smu.Lock()
		lost := c.lost
		c.smu.Unlock()
		var xe *exitcode.Error
		if errors.As(lost, &xe) {
			return c.stats, lost // why the tunnel ended, with its own hint
		}
		return c.stats, exitcode.New(exitcode.TunnelLost, "run the same command again: it resumes", "every session was lost")
	}
	for _, l := range c.links {
		if err := c.dst.Symlink(sessions[0], l.Link, l.dstPath); err != nil {
			return c.stats, c.fsErr(err, c.dst, "symbolic link", l.dstPath)
		}
		c.stats.Links++
	}
	c.finished(sessions[0])
	// Directories last, deepest first, so that writing files did not bump their mtimes.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i].Rel) > len(dirs[j].Rel) })
	for _, d := range dirs {
		_ = c.dst.Chtimes(sessions[0], d.dstPath, d.Mtime)
	}
	if o.Direction == Upload {
		var items []pathTime
		for _, t := range tasks {
			items = append(items, pathTime{t.dst, t.e.Mtime})
		}
		for _, d := range dirs {
			items = append(items, pathTime{d.dstPath, d.Mtime})
		}
		if err := touchRemote(ctx, sessions[0], items); err != nil {
			o.Logger.Warn("transfer: could not set sub-second mtimes on the instance (GNU touch?); whole seconds kept", "err", err)
		}
	}
	return c.stats, nil
}

// linkTask is a symbolic link to make at dstPath.
type linkTask struct {
	entry
	dstPath string
}

type dirTask struct {
	entry
	dstPath string
}

type fileTask struct {
	e        entry
	src, dst string
	partial  string
	jpath    string
	n        int64 // chunks
	chunk    int64 // bytes per chunk
	complete bool  // nothing to do (already in place)

	mu        sync.Mutex
	wmu       sync.Mutex // local writes of chunks, one at a time
	done      map[int64]bool
	part      map[int64]int64 // bytes in place from the start of a chunk not done (journaled "part")
	remaining int64
	rounds    int // verification failures
	finishes  int // finishes that failed for a lost session
	restarts  int
	j         *journal
	// srcSum is the source's sha256, computed while the chunks move (nil: compute at the end).
	srcSum chan sumResult
	// prefix hashes a download's partial file while its chunks arrive (nil: uploads).
	prefix *prefixSum
}

type sumResult struct {
	sum string
	err error
}

type copier struct {
	o        Options
	sessions []*sshconn.Client
	src, dst side
	q        *queue
	hash     *hasher
	fwg      sync.WaitGroup // finishing files
	fsem     chan struct{}  // bounds concurrent finishes
	open     atomic.Int64   // files not yet finished
	live     atomic.Int64   // workers still running
	links    []linkTask
	used     atomic.Int64 // workers that took at least one job
	smu      sync.Mutex
	stats    Stats
	lost     error // why the last lost session's tunnel ended
	// marker is the unfinished-copy marker of a folder copy that created
	// its destination ("" when there is none): removed once it succeeds.
	marker string
}

func (c *copier) chunkLen(t *fileTask, i int64) int64 {
	return min(t.chunk, t.e.Size-i*t.chunk)
}

// lostErr is err, unless it came from session s breaking (not an answer of
// a file system) and s's tunnel says why it ended: then that reason, with its
// own class and hint.
func (c *copier) lostErr(s *sshconn.Client, err error) error {
	if isRemoteFSError(err) || errors.Is(err, context.Canceled) {
		return err
	}
	var pe *os.PathError
	if errors.As(err, &pe) { // a local file
		return err
	}
	var xe *exitcode.Error
	if terr := s.Err(2 * time.Second); terr != nil && errors.As(terr, &xe) {
		return terr
	}
	return err
}

// noteLost keeps why the tunnel of a lost session ended, for the error of a
// copy that lost them all.
func (c *copier) noteLost(s *sshconn.Client) {
	if err := s.Err(2 * time.Second); err != nil {
		c.smu.Lock()
		c.lost = err
		c.smu.Unlock()
	}
}

func (c *copier) addStats(f func(s *Stats)) {
	c.smu.Lock()
	f(&c.stats)
	c.smu.Unlock()
}

// plan lists the files to copy and where each goes.
func (c *copier) plan(ctx context.Context) ([]*fileTask, []dirTask, error) {
	s0 := c.sessions[0]
	se, err := c.src.Stat(s0, c.o.Src)
	if err != nil {
		return nil, nil, c.fsErr(err, c.src, "source", c.o.Src)
	}
	dst := c.o.Dst
	de, derr := c.dst.Stat(s0, dst)
	if derr == nil && de.Dir && se.Dir && c.o.Recursive && c.unfinishedInto(s0, dst) {
		// An earlier run of this copy created dst and did not finish: go on
		// into dst itself, not into dst/<base> as for a directory that was
		// there before (cp -r's rule would nest the rerun).
		c.marker = c.dst.Join(dst, UnfinishedMarker)
	} else if derr == nil && de.Dir {
		dst = c.dst.Join(dst, c.src.Base(c.o.Src))
		de, derr = c.dst.Stat(s0, dst)
	} else if derr != nil && !errors.Is(derr, fs.ErrNotExist) {
		return nil, nil, c.fsErr(derr, c.dst, "destination", dst)
	} else if derr != nil && strings.HasSuffix(c.o.Dst, "/") && !se.Dir {
		return nil, nil, c.fsErr(derr, c.dst, "destination directory", dst)
	}
	if !se.Dir {
		if derr == nil && de.Dir {
			return nil, nil, exitcode.New(exitcode.Usage, "name a file, or a directory to copy into", "destination %s is a directory", dst)
		}
		var early chan sumResult
		if c.o.Direction == Download {
			// The source's hash starts now, in the command that asks its
			// sub-second mtime (after it): each command on the instance
			// starts the user's shell (its rc files may take a good part of
			// a second), and the mtime is needed before the first chunk moves.
			var m map[string]time.Time
			var err error
			if !c.inPlace(s0, se, dst) && c.sumEarly(se.Size) {
				early, m, err = mtimeThenSum(ctx, s0, c.o.Src)
			} else {
				m, err = remoteMtimes(ctx, s0, c.o.Src)
			}
			if err := ctx.Err(); err != nil {
				return nil, nil, err // Ctrl-C: stop here, before anything about the partial file is decided
			}
			if err != nil {
				c.o.Logger.Debug("transfer: no sub-second mtime from the instance", "err", err)
			}
			if t, ok := m[""]; ok && t.Unix() == se.Mtime.Unix() {
				se.Mtime = t
			}
		}
		se.Rel = c.src.Base(c.o.Src)
		t := c.newTask(se, c.o.Src, dst)
		t.srcSum = early
		return []*fileTask{t}, nil, nil
	}
	if !c.o.Recursive {
		return nil, nil, exitcode.New(exitcode.Usage, "add -r to copy a directory", "source %s is a directory", c.o.Src)
	}
	if derr == nil && !de.Dir {
		return nil, nil, exitcode.New(exitcode.Usage, "name a directory (or a new path) as the destination of -r", "destination %s is not a directory", dst)
	}
	entries, err := c.src.Walk(s0, c.o.Src, c.o.FollowLinks)
	if err != nil {
		return nil, nil, c.fsErr(err, c.src, "source", c.o.Src)
	}
	if c.o.Direction == Download {
		if err := preciseRemote(ctx, s0, c.o.Src, entries); err != nil {
			c.o.Logger.Debug("transfer: no sub-second mtimes from the instance", "err", err)
		}
	}
	var tasks []*fileTask
	var dirs []dirTask
	base := c.src.Base(c.o.Src)
	created := derr != nil // the copy makes its destination folder
	for _, e := range entries {
		sp, dp := c.o.Src, dst
		if e.Rel != "" {
			sp = c.src.Join(c.o.Src, filepath.FromSlash(e.Rel))
			dp = c.dst.Join(dst, filepath.FromSlash(e.Rel))
		}
		if e.Link != "" {
			c.links = append(c.links, linkTask{e, dp})
			continue
		}
		if e.Dir {
			if err := c.dst.MkdirAll(s0, dp, e.Mode.Perm()); err != nil {
				return nil, nil, c.fsErr(err, c.dst, "destination directory", dp)
			}
			if e.Rel == "" && created {
				if err := c.markUnfinished(ctx, s0, dp); err != nil {
					return nil, nil, c.fsErr(err, c.dst, "destination directory", dp)
				}
			}
			dirs = append(dirs, dirTask{e, dp})
			continue
		}
		e.Rel = base + "/" + e.Rel
		tasks = append(tasks, c.newTask(e, sp, dp))
	}
	return tasks, dirs, nil
}

func (c *copier) newTask(e entry, src, dst string) *fileTask {
	chunk := c.o.ChunkSize
	if chunk <= 0 {
		chunk = ChunkFor(e.Size)
	}
	n := (e.Size + chunk - 1) / chunk
	t := &fileTask{e: e, src: src, dst: dst, partial: dst + PartialSuffix, n: n, chunk: chunk, done: map[int64]bool{}, part: map[int64]int64{}}
	if c.o.Direction == Download {
		t.jpath = dst + JournalSuffix
	} else {
		t.jpath = filepath.Join(c.o.JournalDir, journalName(c.o.Target, dst))
	}
	return t
}

// header is t's journal header. A download's partial file is named by its
// absolute path, so that a rerun that spells the destination another way
// (d512, ./d512, /abs/d512) finds its journal's chunks (journalHeader.resumes).
func (c *copier) header(t *fileTask) journalHeader {
	partial := t.partial
	if _, local := c.dst.(localSide); local {
		if a, err := filepath.Abs(partial); err == nil {
			partial = a
		}
	}
	return journalHeader{V: 1, Src: t.src, Size: t.e.Size, MtimeNs: t.e.Mtime.UnixNano(), Chunk: t.chunk, Partial: partial}
}

// prepare finds what of t is already in place (a finished destination or
// journaled chunks) and starts a fresh partial file otherwise.
func (c *copier) prepare(ctx context.Context, t *fileTask) error {
	s0 := c.sessions[0]
	if c.inPlace(s0, t.e, t.dst) {
		t.complete = true
		c.stats.Skipped++
		return nil
	}
	h := c.header(t)
	if c.o.Direction == Upload {
		if err := os.MkdirAll(c.o.JournalDir, 0o700); err != nil {
			return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot create %s", c.o.JournalDir)
		}
	}
	if done, part, ok := loadJournal(t.jpath, h); ok {
		if pe, err := c.dst.Stat(s0, t.partial); err == nil && pe.Size == t.e.Size {
			if _, remote := c.dst.(remoteSide); remote && pe.Mode.Perm()&0o077 != 0 {
				// Left readable by an older devgate: others lose access before more bytes go in.
				if err := s0.SFTP.Chmod(t.partial, 0o600); err != nil {
					return c.fsErr(err, c.dst, "destination", t.partial)
				}
			}
			j, err := openJournal(t.jpath)
			if err == nil {
				t.j, t.done, t.part = j, done, part
				for i := range done {
					c.stats.Resumed += c.chunkLen(t, i)
				}
				for _, k := range part {
					c.stats.Resumed += k
				}
				t.remaining = t.n - int64(len(done))
				c.newPrefix(t)
				c.startSum(ctx, t)
				return nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err // a copy being cancelled does not start the file over (fresh truncates it)
	}
	if err := c.fresh(ctx, t); err != nil {
		return err
	}
	c.startSum(ctx, t)
	return nil
}

// inPlace reports whether dst already holds the source e: a file of its size
// and mtime (to the second) with no partial file beside it.
func (c *copier) inPlace(s *sshconn.Client, e entry, dst string) bool {
	de, err := c.dst.Stat(s, dst)
	if err != nil || de.Dir || de.Size != e.Size || de.Mtime.Unix() != e.Mtime.Unix() {
		return false
	}
	_, perr := c.dst.Stat(s, dst+PartialSuffix)
	return perr != nil
}

// fresh starts t over: an empty partial file of the right size and a new journal.
func (c *copier) fresh(ctx context.Context, t *fileTask) error {
	if t.j != nil {
		t.j.close()
	}
	if err := c.dst.Reset(ctx, c.sessions[0], t.partial, t.e.Size); err != nil {
		return c.fsErr(err, c.dst, "destination", t.partial)
	}
	j, err := createJournal(t.jpath, c.header(t))
	if err != nil {
		return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write the journal %s", t.jpath)
	}
	t.j, t.done, t.part, t.remaining = j, map[int64]bool{}, map[int64]int64{}, t.n
	c.newPrefix(t)
	return nil
}

// newPrefix gives a download its prefix hasher for the partial file as it
// is now (the chunks in t.done already written), closing any earlier one.
func (c *copier) newPrefix(t *fileTask) {
	if t.prefix != nil {
		t.prefix.close()
		t.prefix = nil
	}
	if _, local := c.dst.(localSide); local {
		t.prefix = newPrefixSum(t.partial, t.e.Size, t.chunk, t.done)
	}
}

// startSum hashes a large source while its chunks move (unless plan started it).
func (c *copier) startSum(ctx context.Context, t *fileTask) {
	if t.srcSum == nil {
		t.srcSum = c.startSumOf(ctx, t.src, t.e.Size)
	}
}

// sumEarly reports whether a source of size bytes is hashed while its
// chunks move: at least 4 chunks (smaller ones are hashed at the end, in
// batches on the instance).
func (c *copier) sumEarly(size int64) bool {
	chunk := c.o.ChunkSize
	if chunk <= 0 {
		chunk = ChunkFor(size)
	}
	return size >= 4*chunk
}

// startSumOf starts hashing the source p of size bytes on the last session
// when it is large (at least 4 chunks: smaller ones are hashed at the end,
// in batches on the instance); nil when it does not.
func (c *copier) startSumOf(ctx context.Context, p string, size int64) chan sumResult {
	if !c.sumEarly(size) {
		return nil
	}
	ch := make(chan sumResult, 1)
	s := c.sessions[len(c.sessions)-1]
	go func() {
		sum, err := c.src.Sum(ctx, s, p)
		ch <- sumResult{sum, err}
	}()
	return ch
}

func (c *copier) enqueue(t *fileTask) {
	t.mu.Lock()
	var jobs []job
	for i := range t.n {
		if !t.done[i] {
			jobs = append(jobs, job{t, i})
		}
	}
	t.mu.Unlock()
	if len(jobs) == 0 {
		// An empty file, or every chunk already journaled (an earlier run
		// stopped during or after the final check): only the finish, which
		// verifies and fetches again what differs. Without this job nothing
		// would ever run the finish and every worker would wait forever.
		jobs = append(jobs, job{t, -1})
	}
	c.q.push(jobs...)
}

// join starts a worker for each session that arrives on more until more is
// closed, the queue is closed (the copy is over) or ctx ends.
func (c *copier) join(ctx context.Context, cancel context.CancelCauseFunc, more <-chan *sshconn.Client, wg *sync.WaitGroup) {
	defer func() {
		if c.live.Add(-1) == 0 {
			c.q.close()
		}
	}()
	for {
		select {
		case s, ok := <-more:
			if !ok {
				return
			}
			c.live.Add(1)
			wg.Add(1) // wg counts this goroutine: the count is above zero
			go func() {
				defer wg.Done()
				c.worker(ctx, cancel, s)
			}()
		case <-c.q.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

type job struct {
	t *fileTask
	i int64 // chunk; -1: nothing to move, finish the file
}

// worker moves chunks over one session until the queue is closed.
func (c *copier) worker(ctx context.Context, cancel context.CancelCauseFunc, s *sshconn.Client) {
	defer func() {
		if c.live.Add(-1) == 0 {
			c.q.close()
		}
	}()
	var buf []byte
	for took := false; ; took = true {
		jb, ok := c.q.pop(ctx)
		if !ok {
			return
		}
		if !took {
			c.used.Add(1)
		}
		t := jb.t
		if jb.i >= 0 {
			err := c.move(ctx, s, t, jb.i, &buf)
			if err != nil {
				if ctx.Err() != nil {
					c.q.push(jb)
					return
				}
				var fatal *fatalError
				if errors.As(err, &fatal) {
					cancel(fatal.err)
					c.q.close()
					return
				}
				// The session broke: give the chunk to another one.
				c.o.Logger.Warn("transfer: session lost; its chunk goes to another session", "err", err)
				c.q.push(jb)
				c.noteLost(s)
				return
			}
		}
		t.mu.Lock()
		if jb.i >= 0 {
			t.remaining--
		}
		last := t.remaining == 0
		t.mu.Unlock()
		if !last {
			continue
		}
		// Verify and rename in the background: the session goes on moving chunks.
		c.fwg.Add(1)
		go func() {
			defer c.fwg.Done()
			select {
			case c.fsem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-c.fsem }()
			if err := c.finish(ctx, s, t); err != nil {
				var fatal *fatalError
				if errors.As(err, &fatal) {
					err = fatal.err
				} else if ctx.Err() == nil && t.finishRetry() {
					// The session broke during the check: another session runs it again.
					c.o.Logger.Warn("transfer: session lost while checking a file; checking it again on another session", "file", t.dst, "err", err)
					c.q.push(job{t, -1})
					return
				}
				if ctx.Err() == nil {
					cancel(err)
				}
				c.q.close()
			}
		}()
	}
}

// lockWait is how long LockDestination tries the lock before it says that
// it waits for another copy.
const lockWait = 200 * time.Millisecond

// LockDestination takes the lock of a copy's destination dst in lockDir
// (nothing when lockDir is ""), named by dst's absolute path here for a
// download, by target and dst's cleaned path for an upload. Two copies to
// one destination took turns writing its partial file and renaming it: one
// failed with a misleading "does not exist", and the file kept the time of
// the copy instead of the source's mtime. The caller takes it before it
// connects, so that a copy waiting for another holds no session (an idle
// Session Manager session times out) and every way of copying (tunnel,
// direct, S3 relay) takes turns; when the lock is busy for lockWait it
// tells notice and waits until it is free or ctx ends (ctx's error).
// Spellings that name one file through a symbolic link, or a target named
// once by alias and once by id, get two locks.
func LockDestination(ctx context.Context, dir Direction, target, dst, lockDir string, notice func(format string, a ...any)) (unlock func(), err error) {
	if lockDir == "" {
		return func() {}, nil
	}
	key := "upload\x00" + target + "\x00" + path.Clean(dst)
	if dir == Download {
		a, err := filepath.Abs(dst)
		if err != nil {
			return nil, exitcode.Wrap(err, exitcode.LocalIO, "", "cannot resolve the destination %s", dst)
		}
		key = "download\x00" + a
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, exitcode.Wrap(err, exitcode.LocalIO, "", "cannot create %s", lockDir)
	}
	sum := sha256.Sum256([]byte(key))
	p := filepath.Join(lockDir, "dst-"+hex.EncodeToString(sum[:12])+".lock")
	tctx, cancel := context.WithTimeout(ctx, lockWait)
	unlock, err = filelock.Lock(tctx, p, true)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		if notice != nil {
			notice("another devgate cp is copying to %s; waiting for it to end (Ctrl-C stops this one)", dst)
		}
		unlock, err = filelock.Lock(ctx, p, true)
	}
	switch {
	case err == nil:
		return unlock, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return nil, exitcode.Wrap(err, exitcode.LocalIO, "", "cannot lock the destination %s", dst)
}

// fatalError ends the whole copy (as opposed to a lost session).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// move copies chunk i of t, from where an earlier move of it stopped
// (t.part[i]; 0 for a chunk not started). The remote side's SFTP requests
// are counted to Progress as their answers arrive (pieces), not when the
// chunk is whole: a chunk takes seconds on a paced Session Manager session.
// When the move is cut short (the copy cancelled, the session lost) the
// bytes that arrived in order from the chunk's start are kept — written
// here (a download), or already written on the instance (an upload) — and
// journaled as a part of the chunk after they are in the partial file, so
// that the next move of the chunk, in this run or the next, starts after
// them. Kept bytes are checked like any others: the file's sha256 against
// the source's before the rename, per-chunk sums on a mismatch.
func (c *copier) move(ctx context.Context, s *sshconn.Client, t *fileTask, i int64, buf *[]byte) error {
	n := c.chunkLen(t, i)
	t.mu.Lock()
	from := t.part[i]
	t.mu.Unlock()
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	off := i * t.chunk
	r, rc, err := c.src.OpenRead(s, t.src)
	if err != nil {
		return c.classify(err, c.src, "source", t.src)
	}
	defer rc.Close()
	w, wc, err := c.dst.OpenWrite(s, t.partial)
	if err != nil {
		return c.classify(err, c.dst, "destination", t.partial)
	}
	closeW := func() error {
		if wc == nil {
			return nil
		}
		err := wc.Close()
		wc = nil
		return err
	}
	defer closeW()
	_, localDst := c.dst.(localSide)
	write := func(lo, hi int64) (int, error) { // bytes [lo, hi) of the chunk into the partial file
		if localDst {
			// Linux writes one file's page cache under the inode's lock, and
			// a writer that waits for it spins on the CPU while the holder
			// runs: with 16 sessions that cost more than a second of system
			// time per GiB on 2 cores. The sessions take turns here instead.
			t.wmu.Lock()
			defer t.wmu.Unlock()
		}
		return w.WriteAt(b[lo:hi], off+lo)
	}
	arrived := &arrivals{p: c.o.Progress, name: t.e.Rel, last: time.Now()}
	var kept int64 // bytes of [from, n) in the partial file, in order
	var moveErr error
	if _, remoteSrc := c.src.(remoteSide); remoteSrc {
		// A download writes each SFTP answer's bytes to the partial file as it
		// arrives, while they are in the CPU's cache: the whole chunk written
		// after its last answer was copied from memory that had long left the
		// cache (half of cp's CPU on a 1 GiB direct download went to that one
		// page-cache copy, BENCHMARKS.md). A failed local write ends the chunk
		// like a lost session would, and is told apart by localErr.
		var lmu sync.Mutex
		var localErr error
		local := func(err error) error {
			lmu.Lock()
			if localErr == nil {
				localErr = err
			}
			lmu.Unlock()
			return err
		}
		kept, moveErr = pieces(ctx, n-from, int64(s.Packet), func(lo, hi int64) (int, error) {
			m, err := r.ReadAt(b[from+lo:from+hi], off+from+lo)
			if m > 0 {
				if k, werr := write(from+lo, from+lo+int64(m)); werr != nil {
					return k, local(werr)
				}
			}
			return m, err
		}, arrived.add, func() { s.Close() })
		switch {
		case localErr != nil:
			arrived.settle(0)
			return c.classify(localErr, c.dst, "destination", t.partial)
		case errors.Is(moveErr, io.EOF): // the source shrank: finish notices the changed size
			arrived.settle(0)
			return nil
		case moveErr != nil:
			moveErr = c.classify(moveErr, c.src, "source", t.src)
		}
	} else {
		// An upload: read the chunk here, then SFTP writes, counted as the
		// instance acknowledges them. (Reading each piece next to its
		// request would save a copy from memory, as for a download, but
		// delays the requests' start, and under load the first ones went
		// out after later ones, which leaves nothing in order to keep at a
		// Ctrl-C.)
		if _, err := r.ReadAt(b[from:], off+from); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the source shrank: finish notices the changed size
			}
			return c.classify(err, c.src, "source", t.src)
		}
		kept, moveErr = pieces(ctx, n-from, int64(s.Packet), func(lo, hi int64) (int, error) {
			return w.WriteAt(b[from+lo:from+hi], off+from+lo)
		}, arrived.add, func() { s.Close() })
		if moveErr != nil {
			moveErr = c.classify(noSpace(s, c.dst, t.partial, n-from, moveErr), c.dst, "destination", t.partial)
		}
	}
	if cerr := closeW(); cerr != nil && moveErr == nil {
		moveErr = c.classify(cerr, c.dst, "destination", t.partial)
		kept = 0
	}
	arrived.settle(kept)
	if kept > 0 {
		c.addStats(func(st *Stats) { st.Moved += kept })
	}
	whole := moveErr == nil && from+kept == n
	t.mu.Lock()
	switch {
	case whole:
		t.done[i] = true
		delete(t.part, i)
		if t.prefix != nil {
			t.prefix.chunkDone(ctx, i)
		}
	case kept > 0:
		t.part[i] = from + kept
	}
	t.mu.Unlock()
	var jerr error
	switch {
	case whole:
		jerr = t.j.done(i)
	case kept > 0:
		jerr = t.j.part(i, from+kept)
	}
	if jerr != nil {
		return &fatalError{exitcode.Wrap(jerr, exitcode.LocalIO, "", "cannot write the journal %s", t.jpath)}
	}
	if moveErr != nil {
		return moveErr
	}
	return ctx.Err()
}

// finish verifies t and renames it into place, or queues what must move again.
func (c *copier) finish(ctx context.Context, s *sshconn.Client, t *fileTask) error {
	cur, err := c.src.Stat(s, t.src)
	if err != nil {
		return c.classify(err, c.src, "source", t.src)
	}
	if cur.Size != t.e.Size || !sameMtime(cur.Mtime, t.e.Mtime) {
		t.restarts++
		c.addStats(func(st *Stats) { st.Restarts++ })
		if t.restarts > maxRounds {
			return &fatalError{exitcode.New(exitcode.Checksum, "copy it when it is no longer being written", "source %s kept changing during the copy", t.src)}
		}
		c.o.Logger.Warn("transfer: source changed during the copy; restarting the file", "file", t.src)
		c.o.Progress.Add(t.e.Rel, -t.doneBytesLocked(c))
		t.e.Size, t.e.Mtime = cur.Size, cur.Mtime
		if c.o.ChunkSize <= 0 {
			t.chunk = ChunkFor(cur.Size)
		}
		t.n = (cur.Size + t.chunk - 1) / t.chunk
		t.srcSum = nil
		if err := c.fresh(ctx, t); err != nil {
			return &fatalError{err}
		}
		c.enqueue(t)
		return nil
	}
	var srcSum sumResult
	dstCh := make(chan sumResult, 1)
	go func() {
		if t.prefix != nil {
			if sum, ok := t.prefix.sum(ctx); ok {
				dstCh <- sumResult{sum, nil}
				return
			}
		}
		sum, err := c.sum(ctx, c.dst, s, t.partial, t.e.Size)
		dstCh <- sumResult{sum, err}
	}()
	if t.srcSum != nil {
		srcSum = <-t.srcSum
		t.srcSum = nil
	} else {
		srcSum.sum, srcSum.err = c.sum(ctx, c.src, s, t.src, t.e.Size)
	}
	dstSum := <-dstCh
	if srcSum.err != nil {
		return c.classify(srcSum.err, c.src, "source", t.src)
	}
	if dstSum.err != nil {
		return c.classify(dstSum.err, c.dst, "destination", t.partial)
	}
	if srcSum.sum == dstSum.sum {
		if err := c.dst.Finish(s, t.partial, t.dst, t.e.Mode, t.e.Mtime); err != nil {
			return c.classify(err, c.dst, "destination", t.dst)
		}
		t.j.remove()
		c.o.Progress.FileDone(t.e.Rel)
		if c.open.Add(-1) == 0 {
			c.q.close()
		}
		return nil
	}
	t.rounds++
	if t.rounds > maxRounds {
		return &fatalError{exitcode.New(exitcode.Checksum, "run the same command again; if it keeps failing, check the instance's disk",
			"sha256 of %s differs from the source's after %d attempts", t.dst, maxRounds)}
	}
	srcSums, err := c.src.ChunkSums(ctx, s, t.src, t.chunk, t.n)
	if err != nil {
		return c.classify(err, c.src, "source", t.src)
	}
	dstSums, err := c.dst.ChunkSums(ctx, s, t.partial, t.chunk, t.n)
	if err != nil {
		return c.classify(err, c.dst, "destination", t.partial)
	}
	var bad []int64
	for i := range t.n {
		if srcSums[i] != dstSums[i] {
			bad = append(bad, i)
		}
	}
	c.o.Logger.Warn("transfer: checksum mismatch; fetching the bad chunks again", "file", t.dst, "chunks", bad)
	if len(bad) == 0 { // the source changed between the two hashes
		bad = make([]int64, t.n)
		for i := range bad {
			bad[i] = int64(i)
		}
	}
	c.addStats(func(st *Stats) { st.Refetched += len(bad) })
	t.mu.Lock()
	var jobs []job
	for _, i := range bad {
		delete(t.done, i)
		delete(t.part, i)
		t.remaining++
		jobs = append(jobs, job{t, i})
		c.o.Progress.Add(t.e.Rel, -c.chunkLen(t, i))
	}
	t.mu.Unlock()
	c.q.push(jobs...)
	return nil
}

// sum hashes p on side sd; small remote files go through the batching hasher.
func (c *copier) sum(ctx context.Context, sd side, s *sshconn.Client, p string, size int64) (string, error) {
	if _, ok := sd.(remoteSide); ok && size < 4*MaxChunkSize {
		return c.hash.sum(ctx, p)
	}
	return sd.Sum(ctx, s, p)
}

// finishRetry counts a finish lost with its session and reports whether it
// may run again (bounded, so that a check that always fails ends the copy).
func (t *fileTask) finishRetry() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishes++
	return t.finishes <= maxRounds
}

func (t *fileTask) doneBytesLocked(c *copier) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b int64
	for i := range t.done {
		b += c.chunkLen(t, i)
	}
	for _, k := range t.part {
		b += k
	}
	return b
}

// classify turns a file-system error into a fatal, user-facing error; other
// errors (a broken session) are returned as they are.
func (c *copier) classify(err error, sd side, what, p string) error {
	if _, ok := sd.(localSide); ok || isRemoteFSError(err) {
		return &fatalError{c.fsErr(err, sd, what, p)}
	}
	var ce *exitcode.Error
	if errors.As(err, &ce) {
		return &fatalError{err}
	}
	return err
}

// fsErr classifies a file-system error on side sd.
func (c *copier) fsErr(err error, sd side, what, p string) error {
	where := "here"
	class := exitcode.LocalIO
	if _, ok := sd.(remoteSide); ok {
		where = "on the instance"
		class = exitcode.RemoteIO
	}
	var ide *IsDirError
	var nse *NoSpaceError
	switch {
	case errors.As(err, &ide):
		return exitcode.Wrap(err, exitcode.Usage, "name a file, or a directory to copy into", "%s %s is a directory %s", what, p, where)
	case errors.Is(err, fs.ErrNotExist):
		return exitcode.Wrap(err, class, "check the path", "%s %s does not exist %s", what, p, where)
	case errors.Is(err, fs.ErrPermission):
		hint := "check the file's permissions and the user devgate connects as (--user)"
		if class == exitcode.LocalIO { // this machine's file: the instance's user has nothing to do with it
			hint = "check the permissions (and, as root, chattr's immutable flag) of " + filepath.Dir(p) + " here, or copy somewhere else"
		}
		return exitcode.Wrap(err, class, hint, "permission denied: %s %s %s", what, p, where)
	case errors.As(err, &nse):
		return exitcode.Wrap(err, class, "free some space on the instance and run the same command again: it resumes",
			"no space left on the instance for %s %s: %s free (partial file kept)", what, p, humanBytes(nse.Free))
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left"):
		return exitcode.Wrap(err, class, "free some space and run the same command again: it resumes", "no space left for %s %s %s (partial file kept)", what, p, where)
	}
	return exitcode.Wrap(err, class, "", "%s %s %s", what, p, where)
}

// NoSpaceError is a write on the instance refused for lack of space. SFTP
// has no status for a full disk (OpenSSH's sftp-server answers
// SSH_FX_FAILURE), so it is recognised by asking the server's
// statvfs@openssh.com extension how much room is left.
type NoSpaceError struct {
	Path string
	Free uint64 // bytes available to the user on the file system of Path
	Err  error
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("%s free on the instance's file system of %s: %v", humanBytes(e.Free), e.Path, e.Err)
}
func (e *NoSpaceError) Unwrap() error { return e.Err }

// noSpace turns a failed write of n bytes to p on the instance into a
// *NoSpaceError when the file system has less than n bytes free; other
// errors are returned as they are.
func noSpace(s *sshconn.Client, sd side, p string, n int64, err error) error {
	var se *sftp.StatusError
	if _, remote := sd.(remoteSide); !remote || !errors.As(err, &se) || se.FxCode() != sftp.ErrSSHFxFailure {
		return err
	}
	vfs, verr := s.SFTP.StatVFS(path.Dir(p))
	if verr != nil {
		return err // the server has no statvfs@openssh.com: say what it said
	}
	if free := vfs.Frsize * vfs.Bavail; free < uint64(n) {
		return &NoSpaceError{Path: p, Free: free, Err: err}
	}
	return err
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// journalName names an upload's journal after the target and remote path.
func journalName(target, dst string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", ":", "_")
	name := r.Replace(target + "_" + dst)
	if len(name) > 150 {
		name = name[len(name)-150:]
	}
	return fmt.Sprintf("%s.journal", name)
}

// queue is the chunk queue shared by the sessions.
type queue struct {
	mu     sync.Mutex
	items  []job
	closed bool
	wake   chan struct{}
	done   chan struct{} // closed by close
}

func newQueue() *queue { return &queue{wake: make(chan struct{}), done: make(chan struct{})} }

func (q *queue) push(jobs ...job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.items = append(q.items, jobs...)
	close(q.wake)
	q.wake = make(chan struct{})
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.wake)
		close(q.done)
	}
}

// pop returns the next job; false when the queue is closed or ctx is done.
func (q *queue) pop(ctx context.Context) (job, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return job{}, false
		}
		if len(q.items) > 0 {
			j := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return j, true
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return job{}, false
		}
	}
}

// UnfinishedMarker is the file a folder copy leaves in the destination
// folder it created until it succeeds. It holds the source, so that a rerun
// of the same copy (the folder now exists) goes on into that folder instead
// of nesting into <folder>/<source base> as for a folder that was there
// before; any other copy into that folder nests as usual.
const UnfinishedMarker = ".devgate-cp-unfinished"

// markerText is what the marker of this copy holds.
func (c *copier) markerText() string {
	return fmt.Sprintf("devgate cp -r direction %d target %s source %s\n", c.o.Direction, c.o.Target, c.o.Src)
}

// markUnfinished writes the marker into dir, the destination folder this
// copy has just created.
func (c *copier) markUnfinished(ctx context.Context, s *sshconn.Client, dir string) error {
	p := c.dst.Join(dir, UnfinishedMarker)
	text := c.markerText()
	if err := c.dst.Reset(ctx, s, p, 0); err != nil {
		return err
	}
	w, cl, err := c.dst.OpenWrite(s, p)
	if err != nil {
		return err
	}
	_, err = w.WriteAt([]byte(text), 0)
	if cerr := cl.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		c.marker = p
	}
	return err
}

// unfinishedInto reports whether dir holds this copy's marker.
func (c *copier) unfinishedInto(s *sshconn.Client, dir string) bool {
	return c.readMarker(s, c.dst.Join(dir, UnfinishedMarker)) == c.markerText()
}

// readMarker returns the marker file's text ("" when absent or unreadable).
func (c *copier) readMarker(s *sshconn.Client, p string) string {
	r, cl, err := c.dst.OpenRead(s, p)
	if err != nil {
		return ""
	}
	defer cl.Close()
	buf := make([]byte, 4096)
	n, _ := r.ReadAt(buf, 0)
	return string(buf[:n])
}

// finished removes the marker of a folder copy that succeeded (before the
// folders' mtimes are set, so that the removal does not change them).
func (c *copier) finished(s *sshconn.Client) {
	if c.marker != "" {
		if err := c.dst.Remove(s, c.marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.o.Logger.Warn("transfer: could not remove the unfinished-copy marker", "path", c.marker, "err", err)
		}
	}
}
