package cli_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// journalParts returns the bytes of chunks moved in part that a journal
// records (the last "part I N" line of each chunk not finished after it).
func journalParts(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	part := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "chunk":
			delete(part, f[1])
		case len(f) == 3 && f[0] == "part":
			n, _ := strconv.ParseInt(f[2], 10, 64)
			part[f[1]] = n
		}
	}
	var sum int64
	for _, n := range part {
		sum += n
	}
	return sum
}

// TestCpProgressAndCtrlCMidChunk: through a session paced at 1 MiB/s, a
// copy of one 8 MiB chunk shows its bytes as they arrive (not 0 until the
// chunk is whole, 8 s in), Ctrl-C in the middle of the chunk ends the copy
// at once and keeps what arrived (journaled as a part of the chunk), and
// the same command again moves only the rest and gives a byte-exact file.
func TestCpProgressAndCtrlCMidChunk(t *testing.T) {
	e := slowLab(t, 1<<20)
	const size = 8 << 20
	src, _ := randFile(t, size)
	progressLine := regexp.MustCompile(`^devgate: (\d+(?:\.\d+)? [KMG]?i?B) / 8\.0 MiB \(`)
	for _, up := range []bool{false, true} {
		name := map[bool]string{false: "download", true: "upload"}[up]
		t.Run(name, func(t *testing.T) {
			ctx := ctxFor(t, 2*time.Minute)
			dst := filepath.Join(t.TempDir(), "out.bin")
			args := []string{"-j", "1", "--chunk-size", strconv.Itoa(size)}
			jpath := dst + ".devgate-journal"
			if up {
				args = append(args, src, "gpu1:"+dst)
				jpath = filepath.Join(e.home, ".cache", "devgate", "cp", strings.NewReplacer("/", "_", ":", "_").Replace(e.inst(t, "gpu1")+"_"+dst)+".journal")
			} else {
				args = append(args, "gpu1:"+src, dst)
			}
			in, _ := e.l.Instance("gpu1")
			cmd := exec.CommandContext(ctx, "devgate", append([]string{"cp", "--user", in.User}, args...)...)
			cmd.Env = e.environ
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(pipe)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var seen []string
			// The first progress lines (every 3 s) come while the one chunk is in flight.
			first := ""
			for first == "" {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("cp ended before a progress line:\n%s", strings.Join(seen, "\n"))
					}
					seen = append(seen, l)
					if m := progressLine.FindStringSubmatch(l); m != nil {
						first = m[1]
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("no progress line:\n%s", strings.Join(seen, "\n"))
				}
			}
			if first == "0 B" {
				t.Errorf("progress says %q while the chunk's bytes arrive (counted only per whole chunk)", first)
			}
			sent := time.Now()
			cmd.Process.Signal(os.Interrupt)
			for l := range lines {
				seen = append(seen, l)
			}
			err = cmd.Wait()
			took := time.Since(sent)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
				t.Fatalf("after Ctrl-C: %v, want exit 130\n%s", err, strings.Join(seen, "\n"))
			}
			// The chunk needs ~8 s at 1 MiB/s; Ctrl-C must not wait for it (nor
			// lose it: a second Ctrl-C would). TerminateSession is bounded by 2 s.
			if took > 4*time.Second {
				t.Errorf("cp took %s to end after Ctrl-C", took.Round(time.Millisecond))
			}
			if journaled(t, jpath) != 0 {
				t.Fatalf("the chunk is journaled whole: cp went on after Ctrl-C until it was in (or the pace is wrong and it was in before)")
			}
			kept := journalParts(t, jpath)
			if kept <= 0 || kept >= size {
				t.Fatalf("journal keeps %d bytes of the chunk, want some (what arrived before Ctrl-C)\n%s", kept, strings.Join(seen, "\n"))
			}
			s := e.cp(t, ctx, nil, args...)
			sameFile(t, src, dst)
			if s.Resumed != kept || s.Moved != size-kept {
				t.Fatalf("rerun resumed %d moved %d, want %d and %d", s.Resumed, s.Moved, kept, size-kept)
			}
			t.Logf("%s: progress %s at the first line, Ctrl-C ended cp in %s keeping %d bytes; the rerun moved %d",
				name, first, took.Round(time.Millisecond), kept, s.Moved)
		})
	}
}
