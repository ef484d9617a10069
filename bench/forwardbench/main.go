// Command forwardbench measures a notebook-like page load — N requests of
// SIZE bytes over P parallel keep-alive connections — through `devgate
// forward`, through the official client's port forwarding (aws ssm
// start-session + session-manager-plugin, when on PATH) and directly, all on
// one in-process devgate-lab run with the real agent's pacing and a one-way
// data-channel delay. It is driven by bench/forward.sh; see BENCHMARKS.md.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/faults"
)

func main() {
	devgate := flag.String("devgate", "devgate", "devgate binary")
	runs := flag.Int("runs", 3, "page loads per client")
	requests := flag.Int("requests", 200, "requests per page load")
	size := flag.Int("size", 200<<10, "bytes per response")
	parallel := flag.Int("parallel", 6, "parallel connections (a browser's per-host limit)")
	delay := flag.Duration("data-delay", 20*time.Millisecond, "one-way data-channel delay, each direction")
	sessions := flag.String("sessions", "1,6", "devgate forward --sessions values to measure, comma-separated")
	pacing := flag.Bool("pacing", true, "the real agent's pacing (1024-byte reads, 1 ms sleep)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "forwardbench")
	must(err)
	defer os.RemoveAll(dir)
	f := faults.Defaults()
	f.Pacing = *pacing
	f.DataDelay = *delay
	f.BootDelay, f.AgentDelay, f.StopDelay = 0, 0, 0
	l, err := lab.Start(context.Background(), lab.Options{Dir: filepath.Join(dir, "lab"), Faults: f,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	must(err)
	defer l.Close()

	// "The instance's" web server: GET / returns size bytes.
	body := make([]byte, *size)
	for i := range body {
		body[i] = byte(i)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srvPort := ln.Addr().(*net.TCPAddr).Port
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))

	env := append(os.Environ(), l.Env()...)
	env = append(env, "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	fmt.Printf("forward benchmark — %s, %d cores\n", time.Now().UTC().Format(time.RFC3339), nproc())
	fmt.Printf("lab: data-delay %s each way, agent pacing %v; page load: %d requests of %d KB over %d connections, %d runs\n\n",
		*delay, *pacing, *requests, *size>>10, *parallel, *runs)

	type client struct {
		name string
		url  string
		stop func()
	}
	var clients []client
	clients = append(clients, client{name: "direct (floor)", url: fmt.Sprintf("http://127.0.0.1:%d/", srvPort), stop: func() {}})

	for _, ns := range strings.Split(*sessions, ",") {
		dg := exec.Command(*devgate, "forward", "gpu1", "0:"+strconv.Itoa(srvPort), "--quiet", "--sessions", ns)
		dg.Env = env
		dg.Stderr = os.Stderr
		out, err := dg.StdoutPipe()
		must(err)
		must(dg.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		must(err)
		clients = append(clients, client{name: "devgate forward --sessions " + ns, url: strings.Fields(line)[0] + "/", stop: func() {
			dg.Process.Signal(syscall.SIGINT)
			dg.Wait()
		}})
	}

	if _, err := exec.LookPath("session-manager-plugin"); err == nil {
		inst, _ := l.Instance("gpu1")
		free, _ := net.Listen("tcp", "127.0.0.1:0")
		lp := free.Addr().(*net.TCPAddr).Port
		free.Close()
		cmd := exec.Command("aws", "ssm", "start-session", "--endpoint-url", l.Endpoint(), "--target", inst.ID,
			"--document-name", "AWS-StartPortForwardingSession",
			"--parameters", fmt.Sprintf("portNumber=%d,localPortNumber=%d", srvPort, lp))
		cmd.Env = env
		// The AWS CLI ignores SIGINT and waits for its plugin child: start
		// them in their own process group and stop them through it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		po, _ := cmd.StdoutPipe()
		must(cmd.Start())
		br := bufio.NewReader(po)
		for {
			s, err := br.ReadString('\n')
			if err != nil || strings.Contains(s, "Waiting for connections") {
				break
			}
		}
		go io.Copy(io.Discard, br)
		clients = append(clients, client{name: "aws ssm start-session + plugin", url: fmt.Sprintf("http://127.0.0.1:%d/", lp),
			stop: func() { stopGroup(cmd, 5*time.Second) }})
	} else {
		fmt.Println("session-manager-plugin is not on PATH: the official client is not measured")
	}

	fmt.Printf("| client | page load (median of %d) | min | request p50 | request p99 | MB/s |\n| --- | --- | --- | --- | --- | --- |\n", *runs)
	var base time.Duration
	for _, c := range clients {
		var totals []time.Duration
		var lat []time.Duration
		for range *runs {
			t, l := pageLoad(c.url, *requests, *parallel, *size)
			totals = append(totals, t)
			lat = append(lat, l...)
		}
		c.stop()
		sort.Slice(totals, func(i, j int) bool { return totals[i] < totals[j] })
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		med := totals[len(totals)/2]
		if base == 0 {
			base = med
		}
		mbs := float64(*requests**size) / med.Seconds() / 1e6
		fmt.Printf("| %s | %s | %s | %s | %s | %.1f |\n", c.name, round(med), round(totals[0]),
			round(lat[len(lat)/2]), round(lat[len(lat)*99/100]), mbs)
	}
}

// pageLoad fetches url n times over p connections and returns the total
// time and each request's latency.
func pageLoad(url string, n, p, size int) (time.Duration, []time.Duration) {
	tr := &http.Transport{MaxConnsPerHost: p, MaxIdleConnsPerHost: p, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Minute}
	jobs := make(chan int)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for range p {
		wg.Go(func() {
			for range jobs {
				t := time.Now()
				resp, err := c.Get(url)
				must(err)
				got, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				must(err)
				if got != int64(size) {
					must(fmt.Errorf("got %d bytes, want %d", got, size))
				}
				mu.Lock()
				lat = append(lat, time.Since(t))
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return time.Since(start), lat
}

func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

func nproc() int {
	b, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "forwardbench:", err)
		os.Exit(1)
	}
}

// stopGroup ends cmd, started with Setpgid, and everything in its process
// group: SIGINT to the group (the plugin ends its session on it), SIGKILL to
// the group if cmd has not exited after grace. It returns when cmd has exited.
func stopGroup(cmd *exec.Cmd, grace time.Duration) {
	pgid := cmd.Process.Pid // Setpgid: the group id is the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // children the leader left behind
}
