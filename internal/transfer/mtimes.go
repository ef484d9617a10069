package transfer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/sshconn"
)

// Sub-second modification times. SFTP version 3, which OpenSSH's server
// speaks, carries whole seconds only (draft-ietf-secsh-filexfer-02 §5: ATTR
// "mtime" is a uint32 of seconds). Where both sides keep finer times, a copy
// keeps them: downloads read the instance's times with GNU find's %T@ (one
// command per copy), uploads set them with GNU touch -d @SECONDS.NANOS (one
// command per batch of files). An instance without GNU find or touch keeps
// whole seconds, as SFTP alone would.

// sameMtime reports whether a and b are the same time, at the precision both have.
func sameMtime(a, b time.Time) bool {
	if a.Equal(b) {
		return true
	}
	return a.Unix() == b.Unix() && (a.Nanosecond() == 0 || b.Nanosecond() == 0)
}

// remoteMtimes returns the modification times, with their fractions, of
// root and everything below it on the instance, by path relative to root
// ("" for root itself). Links are not followed (find's default), so a link's
// entry is the link's own time.
func remoteMtimes(ctx context.Context, c *sshconn.Client, root string) (map[string]time.Time, error) {
	out, err := c.Output(ctx, mtimesCommand(root), nil)
	if err != nil {
		return nil, err
	}
	return parseMtimes(out), nil
}

func mtimesCommand(root string) string {
	return "find " + shquote.Quote(root) + ` -printf '%T@\t%P\0'`
}

// parseMtimes decodes find's records (mtimesCommand) by relative path.
func parseMtimes(out []byte) map[string]time.Time {
	m := map[string]time.Time{}
	for _, rec := range bytes.Split(out, []byte{0}) {
		ts, rel, ok := strings.Cut(string(rec), "\t")
		if !ok {
			continue
		}
		if t, ok := parseEpoch(ts); ok {
			m[rel] = t
		}
	}
	return m
}

// mtimeThenSum asks the instance, in one command (one run of the user's
// shell, which on some instances costs a tenth of a CPU-second), for the
// sub-second mtime of the file p and then its sha256. It returns once the
// mtime is in (the copy needs it before its first chunk), as remoteMtimes
// would (an error when the instance has no GNU find), and the channel on
// which the sum comes when the command ends.
func mtimeThenSum(ctx context.Context, c *sshconn.Client, p string) (chan sumResult, map[string]time.Time, error) {
	ch := make(chan sumResult, 1)
	cmd := mtimesCommand(p) + "; " + sumCommand(p)
	s, err := c.SSH.NewSession()
	if err != nil {
		err = fmt.Errorf("ssh session: %w", err)
		ch <- sumResult{"", err}
		return ch, nil, err
	}
	var errb bytes.Buffer
	s.Stderr = &errb
	out, err := s.StdoutPipe()
	if err == nil {
		err = s.Start(cmd)
	}
	if err != nil {
		s.Close()
		err = fmt.Errorf("remote %q: %w", cmd, err)
		ch <- sumResult{"", err}
		return ch, nil, err
	}
	type mtimeResult struct {
		m   map[string]time.Time
		err error
	}
	mt := make(chan mtimeResult, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		br := bufio.NewReader(out)
		rec, rerr := br.ReadBytes(0)
		var rest []byte
		if rerr == nil {
			mt <- mtimeResult{parseMtimes(rec), nil}
			rest, rerr = io.ReadAll(br)
		} else {
			// No record: find failed (its error is on stderr); what came is the sum's.
			mt <- mtimeResult{nil, fmt.Errorf("remote %q printed no mtime: %s", mtimesCommand(p), bytes.TrimSpace(errb.Bytes()))}
			rest, rerr = rec, nil
		}
		werr := s.Wait()
		s.Close()
		switch {
		case rerr != nil:
			ch <- sumResult{"", fmt.Errorf("remote %q: %w", cmd, rerr)}
		case werr != nil:
			ch <- sumResult{"", fmt.Errorf("remote %q: %w: %s", cmd, werr, bytes.TrimSpace(errb.Bytes()))}
		default:
			sum, err := parseSum(rest)
			ch <- sumResult{sum, err}
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Signal(ssh.SIGKILL)
			s.Close()
		case <-ended:
		}
	}()
	r := <-mt // sent before the command's end, also when ctx kills it
	return ch, r.m, r.err
}

// parseEpoch parses "SECONDS[.FRACTION]" (find's %T@) to nanosecond precision.
func parseEpoch(s string) (time.Time, bool) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	frac += strings.Repeat("0", 9-len(frac))
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || ns < 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, ns), true
}

// preciseRemote gives entries (Rel below root, as Walk returns them) the
// fractional mtimes of the instance where it has them and they agree with
// the whole seconds SFTP reported.
func preciseRemote(ctx context.Context, c *sshconn.Client, root string, entries []entry) error {
	m, err := remoteMtimes(ctx, c, root)
	if err != nil {
		return err
	}
	for i, e := range entries {
		if t, ok := m[e.Rel]; ok && t.Unix() == e.Mtime.Unix() {
			entries[i].Mtime = t
		}
	}
	return nil
}

// pathTime is a path on the instance and the mtime it must have.
type pathTime struct {
	path  string
	mtime time.Time
}

// touchBatch is how many bytes of touch commands go into one remote command.
const touchBatch = 32 << 10

// touchRemote sets the fractional mtimes of paths on the instance (those
// without a fraction already have theirs from SFTP), in few commands.
func touchRemote(ctx context.Context, c *sshconn.Client, items []pathTime) error {
	var b strings.Builder
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		_, err := c.Output(ctx, b.String(), nil)
		b.Reset()
		return err
	}
	for _, it := range items {
		if it.mtime.Nanosecond() == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(" && ")
		}
		fmt.Fprintf(&b, "touch -m -c -d @%d.%09d -- %s", it.mtime.Unix(), it.mtime.Nanosecond(), shquote.Quote(it.path))
		if b.Len() >= touchBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
