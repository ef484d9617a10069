// Package progress shows the progress of a copy on stderr: bars on a
// terminal (a total bar and one per file in flight: bytes, rate, ETA), a line
// every few seconds otherwise. It implements transfer.Progress; it does not
// decide what is copied, and it never writes to stdout.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// LineInterval is how often the non-terminal reporter prints.
const LineInterval = 3 * time.Second

// Copy reports a copy's progress.
type Copy struct {
	w     io.Writer
	start time.Time

	mu       sync.Mutex
	total    int64
	done     int64
	resumed  int64
	files    int
	finished int

	// terminal mode
	p     *mpb.Progress
	bar   *mpb.Bar
	bars  map[string]*mpb.Bar
	sizes map[string]int64

	// line mode
	stop chan struct{}
	wg   sync.WaitGroup
}

// NewCopy returns a reporter writing to w: bars when tty, lines otherwise.
func NewCopy(w io.Writer, tty bool, sessions int) *Copy {
	c := &Copy{w: w, start: time.Now(), bars: map[string]*mpb.Bar{}, sizes: map[string]int64{}}
	if tty {
		c.p = mpb.New(mpb.WithOutput(w), mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
		return c
	}
	c.stop = make(chan struct{})
	c.wg.Add(1)
	go c.lines()
	return c
}

// Total implements transfer.Progress.
func (c *Copy) Total(files int, bytes, resumed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total, c.files, c.resumed, c.done = bytes, files, resumed, resumed
	if c.p != nil {
		c.bar = c.p.AddBar(bytes, mpb.BarPriority(-1),
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("total (%s) ", plural(files, "file"))),
				decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")),
			mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), " % .1f", decor.WCSyncSpace),
				decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)))
		c.bar.SetCurrent(resumed)
		c.bar.DecoratorAverageAdjust(time.Now())
	}
}

// FileStart implements transfer.Progress.
func (c *Copy) FileStart(name string, size, done int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sizes[name] = size
	if c.p != nil && done > 0 {
		c.fileBar(name).SetCurrent(done)
	}
}

// fileBar returns name's bar, adding it on first use (so that only files in flight have one).
func (c *Copy) fileBar(name string) *mpb.Bar {
	b, ok := c.bars[name]
	if !ok {
		b = c.p.AddBar(c.sizes[name], mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Name(shorten(name, 28), decor.WC{W: 29, C: decor.DindentRight}),
				decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")),
			mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), " % .1f", decor.WCSyncSpace),
				decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)))
		c.bars[name] = b
	}
	return b
}

// Add implements transfer.Progress.
func (c *Copy) Add(name string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done += n
	if c.p == nil {
		return
	}
	if c.bar != nil {
		c.bar.SetCurrent(c.bar.Current() + n)
	}
	b := c.fileBar(name)
	b.SetCurrent(b.Current() + n)
}

// FileDone implements transfer.Progress.
func (c *Copy) FileDone(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished++
	if b, ok := c.bars[name]; ok {
		b.SetTotal(-1, true)
		delete(c.bars, name)
	}
}

// Close stops the reporter (bars are completed or aborted).
func (c *Copy) Close() {
	if c.p != nil {
		c.mu.Lock()
		for name, b := range c.bars {
			b.Abort(true)
			delete(c.bars, name)
		}
		if c.bar != nil {
			if c.done >= c.total {
				c.bar.SetTotal(-1, true)
			} else {
				c.bar.Abort(false)
			}
		}
		c.mu.Unlock()
		c.p.Wait()
		return
	}
	close(c.stop)
	c.wg.Wait()
}

func (c *Copy) lines() {
	defer c.wg.Done()
	t := time.NewTicker(LineInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			fmt.Fprintf(c.w, "devgate: %s\n", c.lineLocked())
			c.mu.Unlock()
		}
	}
}

func (c *Copy) lineLocked() string {
	el := time.Since(c.start).Seconds()
	moved := c.done - c.resumed
	rate := float64(moved) / max(el, 0.001)
	pct := 100.0
	if c.total > 0 {
		pct = 100 * float64(c.done) / float64(c.total)
	}
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(c.total-c.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	files := ""
	if c.files > 1 {
		files = fmt.Sprintf(", %d/%d files", c.finished, c.files)
	}
	if c.done >= c.total && c.finished < c.files {
		// Every byte is across; what is left is checking the sha256s and renaming.
		return fmt.Sprintf("%s / %s (100%%)%s, verifying", Bytes(c.done), Bytes(c.total), files)
	}
	return fmt.Sprintf("%s / %s (%.0f%%)%s, %.1f MB/s, ETA %s",
		Bytes(c.done), Bytes(c.total), pct, files, rate/1e6, eta)
}

// plural is "1 file", "2 files".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Bytes formats n in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
