package s3relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/sshconn"
)

// stream is the one command a folder relay runs on the instance for the
// whole tree: jobs go in as lines on its stdin and run up to parallel at a
// time (xargs -P), each answering one line "ID STATUS ..." on stdout as it
// finishes. Jobs are sent as soon as they are known, without waiting for
// the answers of earlier ones, so many small files cost neither one SSH
// round trip nor one command each.
//
// A job line is "ID URL KIND PATH ARG...": URL is a presigned URL or "-";
// the reader on the instance moves it into a 0600 file in a private
// temporary directory before the job is handed to xargs, and the job gives
// it to curl as a config file (curl -K), so no URL is ever on a command
// line. PATH is encoded by encodePath (no blanks, no quotes).
type stream struct {
	sess   *ssh.Session
	client *sshconn.Client
	stdin  io.WriteCloser

	mu      sync.Mutex
	queue   []string
	wake    chan struct{}
	closing bool
	next    int64
	waiting map[int64]chan []string
	stderr  strings.Builder

	done chan struct{} // closed when the command has ended
	err  error         // why it ended (nil: stdin closed and every job answered)
}

// streamScript reads job lines on stdin and runs them parallel at a time.
func streamScript(parallel int) string {
	return `command -v curl >/dev/null || { echo 'curl not found' >&2; exit 127; }
umask 077
D=$(mktemp -d) || exit 1
trap 'rm -rf "$D"' EXIT
trap 'exit 1' HUP INT TERM PIPE
export D
while IFS= read -r l; do
  set -f; set -- $l
  id=$1; u=$2; shift 2
  [ "$u" = - ] || printf 'url = "%s"\n' "$u" > "$D/$id" || exit 1
  printf '%s %s\n' "$id" "$*"
done | xargs -d '\n' -n 1 -P ` + strconv.Itoa(parallel) + ` sh -c ` + shquote.Quote(jobScript) + ` _`
}

// jobScript runs one job: $1 is "ID KIND PATH ARG...". It always exits 0
// and answers "ID ok ...", "ID bad SHA256", "ID isdir" or "ID err MESSAGE",
// so that one failed job does not stop the others (xargs stops on 255).
//
//	put              PUT the whole file PATH (single-part object); answers its sha256
//	part N OFF LEN   PUT LEN bytes of PATH from OFF as part N; answers the ETag
//	sum              answers the sha256 of PATH
//	get OFF LEN      GET bytes OFF.. OFF+LEN-1 into PATH (created 0600) at OFF
//	fin SIZE MODE MTIME SHA256 DST
//	                 cut PATH to SIZE, compare its sha256, give it MODE and
//	                 MTIME (seconds.nanoseconds) and rename it to DST
const jobScript = `set -f; set -- $1
id=$1; kind=$2
F=$(printf '%b_' "$3"); F=${F%_}
U="$D/$id"
shift 3
say() { printf '%s %s\n' "$id" "$*"; }
fail() { rm -f "$U" "$U.e" "$U.x"; printf '%s err %s\n' "$id" "$(printf '%s' "$*" | tr '\n' ' ')"; exit 0; }
case $kind in
put)
  curl -sS -f --retry 3 -K "$U" -T "$F" -H "Content-Type: application/octet-stream" -H "Expect:" -o /dev/null 2>"$U.e" ||
    fail "upload of $F failed: $(head -c 300 "$U.e")"
  s=$(sha256sum < "$F") || fail "sha256sum of $F failed"
  rm -f "$U" "$U.e"; say ok "${s%% *}" ;;
part)
  etag=$(dd if="$F" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" 2>/dev/null |
    curl -sS -f --retry 3 -K "$U" -X PUT -H "Content-Type: application/octet-stream" -H "Expect:" --data-binary @- -D - -o /dev/null 2>"$U.e" |
    tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
  [ -n "$etag" ] || fail "part $1 of $F: upload failed: $(head -c 300 "$U.e")"
  rm -f "$U" "$U.e"; say ok "$etag" ;;
sum)
  s=$(sha256sum < "$F") || fail "sha256sum of $F failed"
  say ok "${s%% *}" ;;
get)
  end=$(($1+$2-1))
  [ ! -e "$F" ] || chmod 600 "$F" || fail "cannot write $F"
  { curl -sS -f -K "$U" -r "$1-$end" 2>"$U.e" || echo x > "$U.x"; } |
    dd of="$F" bs=1M conv=notrunc oflag=seek_bytes seek="$1" 2>"$U.d" || fail "cannot write $F: $(tail -c 300 "$U.d")"
  [ ! -e "$U.x" ] || fail "download of bytes $1-$end failed: $(head -c 300 "$U.e")"
  rm -f "$U" "$U.e" "$U.d"; say ok ;;
fin)
  T=$(printf '%b_' "$5"); T=${T%_}
  truncate -s "$1" -- "$F" 2>"$U.d" || fail "cannot write $F: $(tail -c 300 "$U.d")"
  s=$(sha256sum < "$F") || fail "sha256sum of $F failed"
  [ "${s%% *}" = "$4" ] || { say bad "${s%% *}"; exit 0; }
  [ ! -d "$T" ] || { say isdir; exit 0; }
  { chmod "$2" -- "$F" && touch -m -c -d "@$3" -- "$F" && mv -fT -- "$F" "$T"; } 2>"$U.d" ||
    fail "cannot put $T in place: $(tail -c 300 "$U.d")"
  rm -f "$U.d"; say ok ;;
*) fail "unknown job $kind" ;;
esac`

// encodePath writes p for the job script's printf %b: bytes other than
// letters, digits and "/._-+,:@=" as \0OOO (octal), so that the path is one
// word with no blank, quote, backslash or glob character.
func encodePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("/._-+,:@=", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\0%03o`, c)
		}
	}
	return b.String()
}

// openStream starts the stream's command on a new session of c.
func openStream(ctx context.Context, c *sshconn.Client, parallel int) (*stream, error) {
	sess, err := c.SSH.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh session: %w", err)
	}
	st := &stream{sess: sess, client: c, wake: make(chan struct{}, 1), waiting: map[int64]chan []string{}, done: make(chan struct{})}
	if st.stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		return nil, err
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	sess.Stderr = lockedWriter{&st.mu, &st.stderr}
	if err := sess.Start(streamScript(parallel)); err != nil {
		sess.Close()
		return nil, fmt.Errorf("ssh session: %w", err)
	}
	go st.write()
	go st.read(ctx, out)
	return st, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 4096 {
		w.b.Write(p)
	}
	return len(p), nil
}

// write sends queued job lines, as many as are waiting in one write.
func (st *stream) write() {
	for {
		st.mu.Lock()
		lines, closing := st.queue, st.closing
		st.queue = nil
		st.mu.Unlock()
		if len(lines) > 0 {
			if _, err := io.WriteString(st.stdin, strings.Join(lines, "")); err != nil {
				return // read sees the end
			}
			continue
		}
		if closing {
			st.stdin.Close()
			return
		}
		select {
		case <-st.wake:
		case <-st.done:
			return
		}
	}
}

// read hands each answer to its job and, at the end, records why the command ended.
func (st *stream) read(ctx context.Context, out io.Reader) {
	stop := context.AfterFunc(ctx, func() { st.sess.Signal(ssh.SIGKILL); st.sess.Close() })
	defer stop()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		id, f, ok := parseAnswer(sc.Text())
		if !ok {
			continue
		}
		st.mu.Lock()
		ch := st.waiting[id]
		delete(st.waiting, id)
		st.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
	err := st.sess.Wait()
	st.mu.Lock()
	msg := strings.TrimSpace(st.stderr.String())
	pending := len(st.waiting)
	st.mu.Unlock()
	var ee *ssh.ExitError
	switch {
	case ctx.Err() != nil:
		st.err = ctx.Err()
	case errors.As(err, &ee) && ee.ExitStatus() == 127:
		st.err = exitcode.New(exitcode.RemoteIO, "install curl on the instance, or use --via tunnel", "the S3 relay needs curl on the instance")
	case err != nil || pending > 0:
		var xe *exitcode.Error
		if terr := st.client.Err(2 * time.Second); terr != nil && errors.As(terr, &xe) {
			st.err = terr // why the tunnel ended, with its own hint
		} else {
			if err == nil {
				err = errors.New("the relay's command ended early")
			}
			st.err = exitcode.Wrap(fmt.Errorf("%w: %s", err, msg), exitcode.TunnelLost, "run the same command again: it resumes", "the relay's session on the instance ended")
		}
	}
	close(st.done)
}

// parseAnswer splits a job's answer line "ID STATUS [FIELD...]"; ok is
// false for anything else (the line is ignored).
func parseAnswer(line string) (id int64, fields []string, ok bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, nil, false
	}
	id, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, false
	}
	return id, f[1:], true
}

// do runs one job and returns its answer (the fields after the ID). url is
// a presigned URL or "".
func (st *stream) do(ctx context.Context, url, kind, p string, args ...string) ([]string, error) {
	if url == "" {
		url = "-"
	}
	ch := make(chan []string, 1)
	st.mu.Lock()
	if st.closing {
		st.mu.Unlock()
		return nil, errors.New("s3relay: stream closed")
	}
	st.next++
	id := st.next
	st.waiting[id] = ch
	st.queue = append(st.queue, fmt.Sprintf("%d %s %s %s %s\n", id, url, kind, encodePath(p), strings.Join(args, " ")))
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
	answer := func(f []string) ([]string, error) {
		if f[0] == "err" {
			return nil, &jobError{strings.Join(f[1:], " ")}
		}
		return f, nil
	}
	select {
	case f := <-ch:
		return answer(f)
	case <-st.done:
		select {
		case f := <-ch: // answered just before the end
			return answer(f)
		default:
		}
		if st.err == nil {
			return nil, errors.New("s3relay: the relay's command ended without answering")
		}
		return nil, st.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close ends the stream once every job sent has been answered, and waits
// for the command to exit.
func (st *stream) close() error {
	st.mu.Lock()
	st.closing = true
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
	<-st.done
	st.sess.Close()
	return st.err
}

// jobError is a job that failed on the instance (its message).
type jobError struct{ msg string }

func (e *jobError) Error() string { return e.msg }
