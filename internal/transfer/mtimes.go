package transfer

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	out, err := c.Output(ctx, "find "+shquote.Quote(root)+` -printf '%T@\t%P\0'`, nil)
	if err != nil {
		return nil, err
	}
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
	return m, nil
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
