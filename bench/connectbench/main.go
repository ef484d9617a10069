// Command connectbench measures `devgate connect` side by side with direct
// ssh to the same sshd (the floor) and, when session-manager-plugin is on
// PATH, with the AWS CLI + plugin as ProxyCommand, all on one devgate-lab
// run. It is driven by bench/connect.sh; see BENCHMARKS.md.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type instance struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	User    string `json:"user"`
	SSHPort int    `json:"sshPort"`
}

type client struct {
	name string
	args []string // ssh arguments before the remote command
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-rusage" {
		rusageWrap(os.Args[2], os.Args[3:])
		return
	}
	labDir := flag.String("lab", "", "devgate-lab directory (up and running)")
	bin := flag.String("bin", "", "directory with the devgate binary")
	runs := flag.Int("runs", 10, "warm connects per client")
	sizeMiB := flag.Int("size", 64, "MiB moved each way per client")
	samples := flag.Int("rtt", 200, "1-byte round trips per client")
	parts := flag.String("parts", "abcd", "which measurements to run")
	baseBin := flag.String("base", "", "directory with a baseline devgate binary: measured too in (c), interleaved")
	flag.Parse()

	env := readEnv(filepath.Join(*labDir, "env"))
	env = append(env, "PATH="+*bin+":"+os.Getenv("PATH"))
	var insts []instance
	b, err := os.ReadFile(filepath.Join(*labDir, "instances.json"))
	must(err)
	must(json.Unmarshal(b, &insts))
	gpu1 := insts[0]
	home, _ := os.UserHomeDir()
	key := filepath.Join(home, ".ssh", "devgate", "id_ed25519")
	self, _ := os.Executable()
	cfg := filepath.Join(*labDir, "ssh_config")

	base := []string{"-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none"}
	// The lab's ssh config names the lab's own devgate: -bin's (this tree's or a baseline's) goes first.
	proxyOf := func(dir string) []string {
		return []string{"-o", "ProxyCommand=" + filepath.Join(dir, "devgate") + " connect %h %p --user %r"}
	}
	devgate := client{"devgate", append(proxyOf(*bin), append([]string{"-F", cfg}, append(base, gpu1.Name)...)...)}
	direct := client{"direct ssh (floor)", append(base, "-p", strconv.Itoa(gpu1.SSHPort), "-i", key, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+filepath.Join(*labDir, "known_hosts"), "-o", "HostKeyAlias="+gpu1.ID,
		"-o", "StrictHostKeyChecking=yes", gpu1.User+"@127.0.0.1")}
	clients := []client{devgate, direct}
	if _, err := exec.LookPath("session-manager-plugin"); err == nil {
		endpoint := envValue(env, "AWS_ENDPOINT_URL")
		pc := "ProxyCommand=aws ssm start-session --endpoint-url " + endpoint + " --target %h --document-name AWS-StartSSHSession --parameters portNumber=%p"
		clients = append(clients, client{"aws ssm start-session + plugin", append(base, "-i", key, "-o", pc,
			"-o", "UserKnownHostsFile="+filepath.Join(*labDir, "known_hosts"), "-o", "HostKeyAlias="+gpu1.ID,
			"-o", "StrictHostKeyChecking=yes", gpu1.User+"@"+gpu1.ID)})
	} else {
		fmt.Println("session-manager-plugin is not on PATH: the official client is not measured")
	}

	// Warm up: the first devgate connect creates the key and pushes it (key TTL is long in the bench lab).
	run(env, nil, io.Discard, append(devgate.args, "true")...)

	if strings.Contains(*parts, "a") {
		fmt.Printf("\n(a) warm connect `ssh host true`, median of %d\n", *runs)
		warm := map[string]time.Duration{}
		for _, c := range clients {
			var ds []time.Duration
			for range *runs {
				t := time.Now()
				run(env, nil, io.Discard, append(c.args, "true")...)
				ds = append(ds, time.Since(t))
			}
			warm[c.name] = median(ds)
			fmt.Printf("  %-32s median %7.1f ms   min %7.1f ms   max %7.1f ms\n", c.name, ms(median(ds)), ms(minOf(ds)), ms(maxOf(ds)))
		}
		fmt.Printf("  devgate − floor: %.1f ms\n", ms(warm[devgate.name]-warm[direct.name]))
	}

	size := int64(*sizeMiB) << 20
	if strings.Contains(*parts, "b") {
		fmt.Printf("\n(b) %d MiB through one session (zeros; ssh encrypts them)\n", *sizeMiB)
		for _, c := range clients {
			t := time.Now()
			run(env, nil, io.Discard, append(c.args, fmt.Sprintf("head -c %d /dev/zero", size))...)
			down := time.Since(t)
			t = time.Now()
			run(env, io.LimitReader(zeros{}, size), io.Discard, append(c.args, "cat > /dev/null")...)
			up := time.Since(t)
			fmt.Printf("  %-32s down %7.2f MB/s (%6.1f s)   up %7.2f MB/s (%6.1f s)\n", c.name,
				float64(size)/down.Seconds()/1e6, down.Seconds(), float64(size)/up.Seconds()/1e6, up.Seconds())
		}
	}

	if strings.Contains(*parts, "c") {
		fmt.Printf("\n(c) 1-byte round trip through an interactive session (`ssh host cat`), %d samples per client,\n", *samples)
		fmt.Printf("    one session per client open at once, one sample of each in turn (rotating order): load drift hits all alike\n")
		rc := clients
		if *baseBin != "" {
			base := client{"devgate baseline", append(proxyOf(*baseBin), withoutProxy(devgate.args)...)}
			rc = append([]client{devgate, base}, clients[1:]...)
		}
		all := rttInterleaved(env, rc, *samples)
		p50s := map[string]time.Duration{}
		for i, c := range rc {
			ds := all[i]
			p50s[c.name] = percentile(ds, 50)
			h := len(ds) / 2
			fmt.Printf("  %-32s p50 %7.2f ms   p90 %7.2f ms   p99 %7.2f ms   (p50 of 1st / 2nd half %5.2f / %5.2f ms)\n", c.name,
				ms(percentile(ds, 50)), ms(percentile(ds, 90)), ms(percentile(ds, 99)), ms(percentile(ds[:h], 50)), ms(percentile(ds[h:], 50)))
		}
		fmt.Printf("  devgate p50 − (floor p50 + modeled 2×data-delay): %.2f ms\n",
			ms(p50s[devgate.name]-p50s[direct.name]-2*dataDelay(*labDir)))
	}
	if !strings.Contains(*parts, "d") {
		return
	}

	fmt.Printf("\n(d) process cost while moving %d MiB down through one session: the ProxyCommand's process tree\n", *sizeMiB)
	fmt.Printf("    (wait4 rusage: user+sys CPU, peak RSS of the largest process) and the ssh client's own\n")
	out := filepath.Join(os.TempDir(), "connectbench-rusage")
	for _, c := range clients {
		args := c.args
		proxy := ""
		switch c.name {
		case devgate.name:
			proxy = fmt.Sprintf("%s -rusage %s %s connect %%h %%p --user %%r --quiet", self, out, filepath.Join(*bin, "devgate"))
		case direct.name:
		default: // the official client: the AWS CLI and its plugin child
			proxy = fmt.Sprintf("%s -rusage %s aws ssm start-session --endpoint-url %s --target %%h --document-name AWS-StartSSHSession --parameters portNumber=%%p",
				self, out, envValue(env, "AWS_ENDPOINT_URL"))
		}
		if proxy != "" {
			// A later -o does not override an earlier one in ssh: put ours first.
			args = append([]string{"-o", "ProxyCommand=" + proxy}, withoutProxy(args)...)
		}
		os.Remove(out)
		runEnv := env
		pluginOut := ""
		if proxy != "" && c.name != devgate.name {
			// The plugin process alone (the AWS CLI's Python process is most of
			// the tree's RSS): a wrapper named session-manager-plugin, first on
			// PATH, runs the real one under -rusage.
			pluginOut = out + "-plugin"
			os.Remove(pluginOut)
			var cleanup func()
			runEnv, cleanup = pluginWrapper(env, self, pluginOut)
			defer cleanup()
		}
		ru := run(runEnv, nil, io.Discard, append(args, fmt.Sprintf("head -c %d /dev/zero", size))...)
		sshCPU := cpuSeconds(ru)
		if proxy == "" {
			fmt.Printf("  %-32s proxy: none                                         ssh %6.1f CPU ms/MiB\n",
				c.name, sshCPU*1000/float64(*sizeMiB))
			continue
		}
		var b []byte
		var err error
		for range 100 { // the wrapper writes after ssh has gone
			if b, err = os.ReadFile(out); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		must(err)
		var user, sys float64
		var rss int64
		fmt.Sscan(string(b), &user, &sys, &rss)
		fmt.Printf("  %-32s proxy: %6.2f CPU s = %6.1f CPU ms/MiB, peak RSS %5.1f MiB   ssh %6.1f CPU ms/MiB\n",
			c.name, user+sys, (user+sys)*1000/float64(*sizeMiB), float64(rss)/1024, sshCPU*1000/float64(*sizeMiB))
		if pluginOut != "" {
			for range 100 {
				if b, err = os.ReadFile(pluginOut); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			must(err)
			fmt.Sscan(string(b), &user, &sys, &rss)
			fmt.Printf("  %-32s        %6.2f CPU s = %6.1f CPU ms/MiB, peak RSS %5.1f MiB   (session-manager-plugin alone)\n",
				"", user+sys, (user+sys)*1000/float64(*sizeMiB), float64(rss)/1024)
		}
	}
}

// pluginWrapper returns env with a directory first on PATH that holds a
// session-manager-plugin script running the real plugin under -rusage out.
func pluginWrapper(env []string, self, out string) ([]string, func()) {
	real, err := exec.LookPath("session-manager-plugin")
	must(err)
	dir, err := os.MkdirTemp("", "connectbench-plugin")
	must(err)
	script := fmt.Sprintf("#!/bin/sh\nexec %q -rusage %q %q \"$@\"\n", self, out, real)
	must(os.WriteFile(filepath.Join(dir, "session-manager-plugin"), []byte(script), 0o700))
	path := envValue(env, "PATH")
	return append(append([]string(nil), env...), "PATH="+dir+":"+path), func() { os.RemoveAll(dir) }
}

// withoutProxy drops a "-o ProxyCommand=…" pair from ssh arguments.
func withoutProxy(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" && i+1 < len(args) && strings.HasPrefix(args[i+1], "ProxyCommand=") {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func cpuSeconds(ru *syscall.Rusage) float64 {
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// rusageWrap runs a command and writes its user/sys CPU seconds and peak RSS (KiB) to out.
func rusageWrap(out string, argv []string) {
	signal.Ignore(syscall.SIGHUP) // ssh HUPs its ProxyCommand on exit; outlive it to write the figures
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	_ = cmd.Run()
	if cmd.ProcessState == nil {
		os.Exit(1)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	_ = os.WriteFile(out, fmt.Appendf(nil, "%f %f %d\n", tv(ru.Utime), tv(ru.Stime), ru.Maxrss), 0o600)
	os.Exit(cmd.ProcessState.ExitCode())
}

// rttSession is one interactive `ssh host cat` that echoes single bytes.
type rttSession struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	r   *bufio.Reader
}

func startRTT(env []string, args []string) *rttSession {
	cmd := exec.Command("ssh", append(args, "cat")...)
	cmd.Env = env
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	must(cmd.Start())
	return &rttSession{cmd: cmd, in: in, r: bufio.NewReader(outp)}
}

func (s *rttSession) sample() time.Duration {
	t := time.Now()
	_, err := s.in.Write([]byte{'x'})
	must(err)
	_, err = s.r.ReadByte()
	must(err)
	return time.Since(t)
}

func (s *rttSession) close() {
	s.in.Close()
	_ = s.cmd.Wait()
}

// rttInterleaved opens one session per client, then takes n samples of
// each, one client after another in a rotating order, 5 ms apart (after 5
// warm-up samples each: the first few include session warm-up).
func rttInterleaved(env []string, clients []client, n int) [][]time.Duration {
	ss := make([]*rttSession, len(clients))
	for i, c := range clients {
		ss[i] = startRTT(env, c.args)
		for range 5 {
			ss[i].sample()
		}
	}
	ds := make([][]time.Duration, len(clients))
	for k := range n {
		for j := range clients {
			i := (j + k) % len(clients)
			ds[i] = append(ds[i], ss[i].sample())
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, s := range ss {
		s.close()
	}
	return ds
}

func dataDelay(labDir string) time.Duration {
	b, _ := os.ReadFile(filepath.Join(labDir, "bench-data-delay"))
	d, _ := time.ParseDuration(strings.TrimSpace(string(b)))
	return d
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// run runs ssh with args and returns its resource usage.
func run(env []string, stdin io.Reader, stdout io.Writer, args ...string) *syscall.Rusage {
	cmd := exec.Command("ssh", args...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "ssh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		os.Exit(1)
	}
	return cmd.ProcessState.SysUsage().(*syscall.Rusage)
}

func readEnv(path string) []string {
	b, err := os.ReadFile(path)
	must(err)
	env := os.Environ()
	for _, line := range strings.Split(string(b), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env = append(env, k+"="+strings.Trim(v, "'"))
		}
	}
	return env
}

func envValue(env []string, k string) string {
	v := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			v = kv[len(k)+1:]
		}
	}
	return v
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

func percentile(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func minOf(ds []time.Duration) time.Duration { return percentile(ds, 0) }
func maxOf(ds []time.Duration) time.Duration { return percentile(ds, 100) }
func ms(d time.Duration) float64             { return float64(d) / 1e6 }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "connectbench:", err)
		os.Exit(1)
	}
}
