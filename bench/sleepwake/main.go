//go:build linux

// Command sleepwake shows why the Session Manager agent's pace depends on
// when its process is woken: it times a loop of time.Sleep(1 ms), the
// agent's pump (protocol doc §8), while another process writes one byte to
// a socket of this one every -wake interval (0: nobody does), and prints
// the mean time per sleep.
//
// The Go runtime's network poller waits in epoll_wait(2), whose timeout is
// whole milliseconds (runtime/netpoll_epoll.go: a delay under 1 ms waits
// 1 ms). A sleep that nothing interrupts ends about 1.1 ms after it began;
// a wake-up in its middle (a socket event, such as an ack arriving) makes
// the poller wait again, a whole millisecond from then. Measured on this
// project's 2-core VM (BENCHMARKS.md, "Holding a paced stream"): 1.12 ms
// per sleep alone, 1.33–1.98 ms with a write every 0.5–4 ms, not monotonic
// in the interval.
//
//	go run ./bench/sleepwake -n 3000 -wake 0,0.5,1,1.36,1.5,2,4,8
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 3000, "sleeps per measurement")
	wakes := flag.String("wake", "0,0.5,1,1.5,2,4,8", "comma-separated intervals in ms between the other process's writes (0: none)")
	writer := flag.String("writer", "", "internal: be the writing process, to this address")
	every := flag.Float64("every", 0, "internal: the writer's interval in ms")
	flag.Parse()
	if *writer != "" {
		write(*writer, *every)
		return
	}
	for _, w := range strings.Split(*wakes, ",") {
		ms, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil {
			log.Fatalf("-wake %q: %v", w, err)
		}
		fmt.Printf("writes every %5.2f ms: %.3f ms per time.Sleep(1 ms)\n", ms, measure(*n, ms))
	}
}

// measure times n sleeps of 1 ms while another process writes to this one
// every ms milliseconds.
func measure(n int, ms float64) float64 {
	if ms > 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		defer ln.Close()
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		cmd := exec.Command(self, "-writer", ln.Addr().String(), "-every", strconv.FormatFloat(ms, 'f', -1, 64))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		go func() {
			buf := make([]byte, 64)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	start := time.Now()
	for range n {
		time.Sleep(time.Millisecond)
	}
	return time.Since(start).Seconds() * 1000 / float64(n)
}

// write writes one byte to addr every ms milliseconds, timed with
// nanosleep(2) so that its own cadence does not depend on Go's poller.
func write(addr string, ms float64) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	d := time.Duration(ms * float64(time.Millisecond))
	next := time.Now()
	for {
		next = next.Add(d)
		if w := time.Until(next); w > 0 {
			ts := syscall.NsecToTimespec(int64(w))
			_ = syscall.Nanosleep(&ts, nil)
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			return
		}
	}
}
