//go:build !windows

package shell

import (
	"os"
	"os/signal"
	"syscall"
)

// watchSize calls changed on every SIGWINCH until stop is called.
func watchSize(fd int, changed func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				changed()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
