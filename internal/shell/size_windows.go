//go:build windows

package shell

import (
	"time"

	"golang.org/x/term"
)

// watchSize polls the console size every 500 ms, as the official plugin does
// on every platform (§3.2: size "sent every 500 ms on change"): Windows has
// no SIGWINCH.
func watchSize(fd int, changed func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		lw, lh, _ := term.GetSize(fd)
		for {
			select {
			case <-t.C:
				if w, h, err := term.GetSize(fd); err == nil && (w != lw || h != lh) {
					lw, lh = w, h
					changed()
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
