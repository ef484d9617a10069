package datachannel

import (
	"testing"
	"time"
)

// TestPauseBeforeRead: the reader sleeps (Config.Coalesce) only after a
// batch that ended with a full message and arrived at the agent's pace; a
// short message (a keystroke's echo, the end of a stream), an empty batch
// and a batch that arrived faster than the pace (unpaced bytes: the socket
// holds more) read at once.
func TestPauseBeforeRead(t *testing.T) {
	const co = 4 * time.Millisecond
	for _, c := range []struct {
		name  string
		n     int
		full  bool
		since time.Duration
		want  time.Duration
	}{
		{"one full message after a millisecond (the agent's pace)", 1, true, time.Millisecond, co},
		{"five full messages after a pause", 5, true, co + 2*time.Millisecond, co},
		{"a short message (echo, end of output)", 1, false, time.Millisecond, 0},
		{"full messages ending with a short one", 5, false, co, 0},
		{"nothing (a TLS record's rest, an ack)", 0, false, time.Millisecond, 0},
		{"forty full messages in a millisecond (unpaced)", 40, true, time.Millisecond, 0},
		{"three full messages in a millisecond (faster than the pace)", 3, true, time.Millisecond, 0},
	} {
		s := &Session{cfg: Config{Coalesce: co}}
		s.batchMsgs, s.lastFull, s.batchStart = c.n, c.full, time.Now().Add(-c.since)
		if got := s.pauseBeforeRead(); got != c.want {
			t.Errorf("%s: pause %s, want %s", c.name, got, c.want)
		}
		if s.batchMsgs != 0 || s.lastFull || time.Since(s.batchStart) > time.Second {
			t.Errorf("%s: the batch was not reset (%d messages, full %v)", c.name, s.batchMsgs, s.lastFull)
		}
	}
}
