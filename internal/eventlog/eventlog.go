// Package eventlog is devgate's own log of what went wrong: one JSON line
// per event (a failure with its exit class and hint, or a progress line that
// had nowhere visible to go) appended to a file in devgate's state
// directory, so that a failure behind ssh (whose ProxyCommand stderr goes to
// /dev/null under ControlPersist) is never silent. `devgate doctor` reads the
// last failures back.
//
// The file is 0600 in a 0700 directory and bounded: past MaxSize it is
// renamed to <path>.1 (one old generation is kept) under a file lock, so that
// parallel ssh connections neither interleave lines nor lose the history.
// Messages are scrubbed of URL query strings (presigned URLs carry
// signatures and tokens). It does not print anything and never fails its
// caller: a log that cannot be written is skipped.
package eventlog

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/devgate/devgate/internal/filelock"
)

// FileName is the log's name in the state directory.
const FileName = "events.log"

// MaxSize is the size in bytes past which the log is rotated.
const MaxSize = 256 << 10

// maxField bounds one message field (bytes), so a line stays short.
const maxField = 2000

// Kinds of events.
const (
	KindFailure  = "failure"
	KindProgress = "progress"
)

// Event is one line of the log.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`             // KindFailure or KindProgress
	Command string    `json:"command"`          // "connect", "forward", "cp", …
	Target  string    `json:"target,omitempty"` // the instance argument, when there is one
	Code    int       `json:"code,omitempty"`   // the exit code (README's table) of a failure
	Message string    `json:"message"`          // the error, or the progress line
	Hint    string    `json:"hint,omitempty"`   // the fix
	PID     int       `json:"pid"`
}

// Log is the event log at one path.
type Log struct{ path string }

// Open returns the log in dir (devgate's state directory); "" disables it.
func Open(dir string) *Log {
	if dir == "" {
		return &Log{}
	}
	return &Log{path: filepath.Join(dir, FileName)}
}

// Path is the log file's path ("" when disabled).
func (l *Log) Path() string { return l.path }

var urlQuery = regexp.MustCompile(`(?i)(https?|wss?)://[^\s?"']+\?[^\s"']*`)

// Scrub removes what must not reach a log from a message: URL query strings
// (presigned URLs, stream URLs with tokens) and line breaks; it bounds the length.
func Scrub(s string) string {
	s = urlQuery.ReplaceAllStringFunc(s, func(u string) string { return u[:strings.IndexByte(u, '?')] + "?…" })
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxField {
		s = s[:maxField] + "…"
	}
	return s
}

// Append writes e as one line (Time and PID filled in when zero), rotating
// the file first when it is past MaxSize. Errors are returned for tests and
// otherwise ignored by callers.
func (l *Log) Append(e Event) error {
	if l == nil || l.path == "" {
		return nil
	}
	if e.PID == 0 {
		e.PID = os.Getpid()
	}
	e.Message, e.Hint, e.Target = Scrub(e.Message), Scrub(e.Hint), Scrub(e.Target)
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	unlock, err := filelock.Lock(ctx, l.path+".lock", true)
	if err != nil {
		return err
	}
	defer unlock()
	// Stamped under the lock, so that the file's order is the order in time
	// (Last reads newest first by position) even with parallel writers.
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Millisecond)
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if st, err := os.Stat(l.path); err == nil && st.Size()+int64(len(b)) > MaxSize {
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_ = f.Chmod(0o600) // a file created by an older devgate with a wider mode
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Last returns up to n of the most recent events of kind (all kinds when
// ""), newest first, from the log and its rotated generation. Unreadable
// lines are skipped.
func (l *Log) Last(kind string, n int) ([]Event, error) {
	if l == nil || l.path == "" || n <= 0 {
		return nil, nil
	}
	var all []Event
	for _, p := range []string{l.path + ".1", l.path} {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e Event
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.Time.IsZero() {
				continue
			}
			if kind == "" || e.Kind == kind {
				all = append(all, e)
			}
		}
		f.Close()
	}
	out := make([]Event, 0, min(n, len(all)))
	for i := len(all) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, all[i])
	}
	return out, nil
}

// Ago says how long before now t was, as doctor prints it ("3 min ago").
func Ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}
