// Package bench is the engine of `devgate bench`: per connection path
// (direct, ssm, or whatever auto picks) it measures on a real instance
// the figures of product.md's success metrics — warm connect time (median,
// p90), the interactive round trip (1-byte echo through an SSH session,
// p50, p99), bulk throughput down and up through one SSH session and
// through parallel sessions the way cp moves data, and session stability
// (N short sessions, how many completed) — and puts each beside the users'
// target (round trip < 100 ms, transfers > 20 MB/s, > 99 % of sessions).
//
// Data comes from /dev/zero on the instance (head -c) and from a zero
// buffer here, and goes to /dev/null there and io.Discard here: nothing is
// written to a disk and nothing is left on the instance. The S3 relay row
// (Options.Relay, when a bucket is configured) is the exception the relay
// needs: a sparse file of zeros in the instance's temporary directory as
// the source (no disk blocks) and the copy's file here, both removed, and
// the relay's object removed from the bucket. It does not dial
// AWS or parse flags itself: Options.Dial opens SSH connections on a path
// (cli wires it to sshconn.DialN), and it prints nothing (Options.Progress).
// The project's own whole-system benchmarks live in the top-level bench/
// directory, not here.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/sshconn"
)

// The users' targets (docs/product.md, "Success metrics").
const (
	TargetRTT       = 100 * time.Millisecond // interactive round trip, p50
	TargetMBps      = 20.0                   // model transfers, MB/s (10^6 bytes)
	TargetStability = 99.0                   // % of sessions that complete
	// MinStabilitySessions is the fewest sessions that can show "> 99 %
	// complete" (100 of 100); from fewer, all completing is no proof.
	MinStabilitySessions = 100
	// stableSessionsPerRun is how many short sessions each run opens.
	stableSessionsPerRun = 4
)

// Options configure one run.
type Options struct {
	// Paths to measure: "direct", "ssm" or "auto" (each through Dial).
	Paths []string
	// Size is the bytes of each bulk transfer (default 64 MiB); MaxTime
	// bounds each one (default 20 s): throughput is bytes over time either way.
	Size    int64
	MaxTime time.Duration
	// Runs is the number of warm connects (default 5); the round trip takes
	// 20 echoes per run and stability 4 sessions per run.
	Runs int
	// Sessions is the number of parallel sessions of the "parallel" rows (cp's -j, default 8).
	Sessions int
	// Dial opens n SSH connections to the instance on path; the first
	// result's Path says which path auto took.
	Dial func(ctx context.Context, path string, n int) ([]*sshconn.Client, error)
	// Relay, when set (a bucket is configured), is the S3 relay of cp --via s3:
	// it copies src, a file of size bytes on the instance, through the bucket
	// to this machine over c and removes what it wrote here and in the bucket.
	// The engine creates src as a sparse file (zeros, no disk blocks) in the
	// instance's temporary directory and removes it afterwards.
	Relay func(ctx context.Context, c *sshconn.Client, src string, size int64) error
	// RelayBucket names the bucket in the report.
	RelayBucket string
	// Progress receives one line per step ("" for none).
	Progress func(format string, args ...any)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Report is what a run measured.
type Report struct {
	Target string       `json:"target"`
	Size   int64        `json:"size_bytes"`
	Runs   int          `json:"runs"`
	Paths  []PathReport `json:"paths"`
	// Relay is the S3 relay row (nil when no bucket is configured).
	Relay   *RelayReport `json:"s3_relay,omitempty"`
	Verdict string       `json:"verdict"`
}

// RelayReport is the S3 relay's figure: a download of Size bytes from the
// instance through the bucket (cp --via s3's way, its sha256 check included).
type RelayReport struct {
	Bucket string `json:"bucket"`
	// Path is the path of the SSH connection that ran the relay's curls.
	Path  string      `json:"path"`
	Down  *Throughput `json:"down,omitempty"`
	Err   string      `json:"error,omitempty"`
	Check *Check      `json:"check,omitempty"`
	// Note says what the relay wrote where, and that it was removed.
	Note string `json:"note"`
}

// PathReport is one path's figures. Err is set when the path could not be
// used at all (e.g. direct without a VPN); figures that failed are omitted
// and listed in Errors.
type PathReport struct {
	Path string `json:"path"`
	// Took is the path auto took ("direct" or "ssm"); the path itself otherwise.
	Took          string `json:"took"`
	Err           string `json:"error,omitempty"`
	ConnectMedian Millis `json:"connect_median_ms"`
	ConnectP90    Millis `json:"connect_p90_ms"`
	RTTp50        Millis `json:"rtt_p50_ms"`
	RTTp99        Millis `json:"rtt_p99_ms"`
	RTTSamples    int    `json:"rtt_samples"`
	// StartOne and StartParallel are what starting a session (`true` in a
	// new SSH session) took on one connection, and on the parallel rows'
	// connections at once: part of each transfer's time (0: not measured).
	StartOne       Millis      `json:"session_start_one_ms,omitempty"`
	StartParallel  Millis      `json:"session_start_parallel_ms,omitempty"`
	DownOne        *Throughput `json:"down_one_session,omitempty"`
	UpOne          *Throughput `json:"up_one_session,omitempty"`
	DownParallel   *Throughput `json:"down_parallel,omitempty"`
	UpParallel     *Throughput `json:"up_parallel,omitempty"`
	StableDone     int         `json:"stability_completed"`
	StableTotal    int         `json:"stability_sessions"`
	StablePct      float64     `json:"stability_pct"`
	Checks         []Check     `json:"checks"`
	Errors         []string    `json:"errors,omitempty"`
	connectSamples []time.Duration
	err            error // why the path could not be used (Err)
}

// Unusable is why the path could not be used at all (nil when it could),
// as the dial returned it (classified: exitcode).
func (p PathReport) Unusable() error { return p.err }

// Millis is a duration printed and encoded in milliseconds.
type Millis float64

func ms(d time.Duration) Millis { return Millis(math.Round(float64(d.Microseconds())/10) / 100) }

// Throughput is one bulk transfer.
type Throughput struct {
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MBps     float64 `json:"mb_per_s"`
	Sessions int     `json:"sessions"`
}

// Check is one figure beside its target.
type Check struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	// Undecided: too few samples to show the target either way (OK is
	// false; the text report marks it neither ✓ nor ✗, with Why).
	Undecided bool   `json:"undecided,omitempty"`
	Why       string `json:"why,omitempty"`
}

// Run measures every path of o and returns the report; a path that fails is
// reported, not returned as an error. The error is for a cancelled ctx or
// bad options.
func Run(ctx context.Context, target string, o Options) (*Report, error) {
	if o.Dial == nil {
		return nil, errors.New("bench: Options.Dial is nil")
	}
	if o.Size <= 0 {
		o.Size = 64 << 20
	}
	if o.MaxTime <= 0 {
		o.MaxTime = 20 * time.Second
	}
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if o.Sessions <= 0 {
		o.Sessions = 8
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Report{Target: target, Size: o.Size, Runs: o.Runs}
	for _, p := range o.Paths {
		pr := runPath(ctx, p, o)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.Paths = append(r.Paths, pr)
	}
	if o.Relay != nil {
		r.Relay = runRelay(ctx, r.Paths, o)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	r.Verdict = verdict(r.Paths)
	if r.Relay != nil && r.Relay.Check != nil {
		if r.Relay.Check.OK {
			r.Verdict += "; the S3 relay meets the transfer target"
		} else {
			r.Verdict += "; the S3 relay misses the transfer target here"
		}
	}
	return r, nil
}

// runRelay measures the S3 relay over one connection on the first path that
// worked: a sparse file of o.Size bytes (zeros, no disk blocks) made in the
// instance's temporary directory, relayed here by o.Relay, then removed.
func runRelay(ctx context.Context, paths []PathReport, o Options) *RelayReport {
	rr := &RelayReport{Bucket: o.RelayBucket}
	for _, p := range paths {
		if p.Err == "" {
			rr.Path = p.Path
			break
		}
	}
	if rr.Path == "" && len(o.Paths) > 0 {
		rr.Path = o.Paths[0]
	}
	o.Progress("bench s3: download through the S3 relay (%s, bucket %s)", mib(o.Size), o.RelayBucket)
	cs, err := o.Dial(ctx, rr.Path, 1)
	if err != nil {
		rr.Err = err.Error()
		return rr
	}
	defer closeAll(cs)
	c := cs[0]
	out, err := c.Output(ctx, "f=$(mktemp \"${TMPDIR:-/tmp}/devgate-bench.XXXXXXXX\") && truncate -s "+strconv.FormatInt(o.Size, 10)+` "$f" && echo "$f"`, nil)
	src := string(bytes.TrimSpace(out))
	if err != nil || src == "" || strings.Contains(src, "\n") {
		rr.Err = fmt.Sprintf("cannot make a sparse source file on the instance: %v %q", err, out)
		return rr
	}
	rr.Note = "source: a sparse file of zeros " + src + " on the instance (no disk blocks), removed at the end; the relay's object and its local copy are removed too"
	defer func() {
		// Removed on a fresh context: a cancelled run must not leave it behind.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := c.Output(rctx, "rm -f -- "+shquote.Quote(src), nil); err != nil {
			rr.Note += " (removing " + src + " failed: " + err.Error() + ")"
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, max(o.MaxTime, 5*time.Minute))
	defer cancel()
	start := o.Now()
	if err := o.Relay(rctx, c, src, o.Size); err != nil {
		rr.Err = err.Error()
		return rr
	}
	secs := o.Now().Sub(start).Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	rr.Down = &Throughput{Bytes: o.Size, Seconds: round(secs, 3), MBps: round(float64(o.Size)/secs/1e6, 2), Sessions: 1}
	rr.Check = &Check{Name: "download, S3 relay", Value: fmt.Sprintf("%.1f MB/s", rr.Down.MBps), Target: "> 20 MB/s", OK: rr.Down.MBps > TargetMBps}
	return rr
}

func runPath(ctx context.Context, path string, o Options) PathReport {
	pr := PathReport{Path: path, Took: path}
	say := func(format string, a ...any) { o.Progress("bench %s: "+format, append([]any{path}, a...)...) }
	fail := func(what string, err error) { pr.Errors = append(pr.Errors, what+": "+err.Error()) }

	// Warm-up: the first connect may start the instance or fill caches.
	say("warming up")
	first, err := o.Dial(ctx, path, 1)
	if err != nil {
		pr.Err, pr.err = err.Error(), err
		pr.Checks = checks(&pr)
		return pr
	}
	pr.Took = first[0].Path
	closeAll(first)

	for i := range o.Runs {
		say("warm connect %d/%d", i+1, o.Runs)
		start := o.Now()
		cs, err := o.Dial(ctx, path, 1)
		if err != nil {
			fail("connect", err)
			continue
		}
		pr.connectSamples = append(pr.connectSamples, o.Now().Sub(start))
		closeAll(cs)
	}
	pr.ConnectMedian, pr.ConnectP90 = ms(quantile(pr.connectSamples, 0.5)), ms(quantile(pr.connectSamples, 0.9))

	one, err := o.Dial(ctx, path, 1)
	if err != nil {
		fail("session", err)
	} else {
		c := one[0]
		say("round trip (%d echoes)", 20*o.Runs)
		if rtts, err := echoRTT(ctx, c, 20*o.Runs); err != nil {
			fail("round trip", err)
		} else {
			pr.RTTSamples = len(rtts)
			pr.RTTp50, pr.RTTp99 = ms(quantile(rtts, 0.5)), ms(quantile(rtts, 0.99))
		}
		say("session start")
		if d, err := sessionStart(ctx, one); err != nil {
			fail("session start", err)
		} else {
			pr.StartOne = ms(d)
		}
		say("download through one session (%s)", mib(o.Size))
		if t, err := bulk(ctx, one, o.Size, o.MaxTime, true, o.Now); err != nil {
			fail("download, one session", err)
		} else {
			pr.DownOne = t
		}
		say("upload through one session (%s)", mib(o.Size))
		if t, err := bulk(ctx, one, o.Size, o.MaxTime, false, o.Now); err != nil {
			fail("upload, one session", err)
		} else {
			pr.UpOne = t
		}
		closeAll(one)
	}

	many, err := o.Dial(ctx, path, o.Sessions)
	if err != nil {
		fail("parallel sessions", err)
	} else {
		say("session start on %d connections at once", len(many))
		if d, err := sessionStart(ctx, many); err != nil {
			fail("session start, parallel", err)
		} else {
			pr.StartParallel = ms(d)
		}
		say("download through %d sessions (%s)", len(many), mib(o.Size))
		if t, err := bulk(ctx, many, o.Size, o.MaxTime, true, o.Now); err != nil {
			fail("download, parallel", err)
		} else {
			pr.DownParallel = t
		}
		say("upload through %d sessions (%s)", len(many), mib(o.Size))
		if t, err := bulk(ctx, many, o.Size, o.MaxTime, false, o.Now); err != nil {
			fail("upload, parallel", err)
		} else {
			pr.UpParallel = t
		}
		closeAll(many)
	}

	pr.StableTotal = stableSessionsPerRun * o.Runs
	for i := range pr.StableTotal {
		say("stability %d/%d", i+1, pr.StableTotal)
		if err := shortSession(ctx, path, o); err != nil {
			fail("short session "+strconv.Itoa(i+1), err)
			continue
		}
		pr.StableDone++
	}
	pr.StablePct = 100 * float64(pr.StableDone) / float64(pr.StableTotal)
	pr.Checks = checks(&pr)
	return pr
}

func closeAll(cs []*sshconn.Client) {
	for _, c := range cs {
		c.Close()
	}
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB" }

// sessionStart is what starting a session takes on cs at once, the way
// bulk starts its transfers: a new SSH session on each connection running
// `true`, until the last one ends.
func sessionStart(ctx context.Context, cs []*sshconn.Client) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	start := time.Now()
	for i, c := range cs {
		wg.Go(func() {
			s, err := c.SSH.NewSession()
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			stop := context.AfterFunc(ctx, func() { s.Close() })
			defer stop()
			errs[i] = s.Run("true")
		})
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// shortSession is one short session: connect, run `true`, disconnect.
func shortSession(ctx context.Context, path string, o Options) error {
	cs, err := o.Dial(ctx, path, 1)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	s, err := cs[0].SSH.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run("true")
}

// echoRTT sends n single bytes through `cat` on the instance, each after
// the previous came back, and returns the round trips.
func echoRTT(ctx context.Context, c *sshconn.Client, n int) ([]time.Duration, error) {
	s, err := c.SSH.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	in, err := s.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.Start("cat"); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	rtts := make([]time.Duration, 0, n)
	b := []byte{'x'}
	for range n {
		start := time.Now()
		if _, err := in.Write(b); err != nil {
			return rtts, err
		}
		if _, err := io.ReadFull(out, b); err != nil {
			return rtts, err
		}
		rtts = append(rtts, time.Since(start))
	}
	in.Close()
	_ = s.Wait()
	return rtts, nil
}

// bulk moves size bytes split over the clients' sessions, down (head -c
// from /dev/zero there) or up (to /dev/null there), each stopped at
// maxTime; throughput is what moved over the time it took.
func bulk(ctx context.Context, cs []*sshconn.Client, size int64, maxTime time.Duration, down bool, now func() time.Time) (*Throughput, error) {
	ctx, cancel := context.WithTimeout(ctx, maxTime)
	defer cancel()
	per := size / int64(len(cs))
	var mu sync.Mutex
	var total int64
	var firstErr error
	var wg sync.WaitGroup
	start := now()
	for i, c := range cs {
		n := per
		if i == 0 {
			n += size - per*int64(len(cs))
		}
		wg.Go(func() {
			moved, err := transfer(ctx, c, n, down)
			mu.Lock()
			defer mu.Unlock()
			total += moved
			if err != nil && firstErr == nil && ctx.Err() == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	secs := now().Sub(start).Seconds()
	if firstErr != nil {
		return nil, firstErr
	}
	if total == 0 || secs <= 0 {
		return nil, errors.New("nothing moved")
	}
	return &Throughput{Bytes: total, Seconds: round(secs, 3), MBps: round(float64(total)/secs/1e6, 2), Sessions: len(cs)}, nil
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

var zeros = make([]byte, 256<<10)

// transfer moves n bytes through one new SSH session and returns how many moved.
func transfer(ctx context.Context, c *sshconn.Client, n int64, down bool) (int64, error) {
	s, err := c.SSH.NewSession()
	if err != nil {
		return 0, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if down {
		out, err := s.StdoutPipe()
		if err != nil {
			return 0, err
		}
		if err := s.Start("head -c " + strconv.FormatInt(n, 10) + " /dev/zero"); err != nil {
			return 0, err
		}
		moved, err := io.Copy(io.Discard, out)
		if err != nil {
			return moved, err
		}
		if werr := s.Wait(); werr != nil && ctx.Err() == nil {
			return moved, werr
		}
		if moved != n && ctx.Err() == nil {
			return moved, fmt.Errorf("received %d of %d bytes", moved, n)
		}
		return moved, nil
	}
	in, err := s.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := s.Start("cat > /dev/null"); err != nil {
		return 0, err
	}
	var moved int64
	for moved < n && ctx.Err() == nil {
		k := int64(len(zeros))
		if n-moved < k {
			k = n - moved
		}
		w, err := in.Write(zeros[:k])
		moved += int64(w)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return moved, err
		}
	}
	in.Close()
	if werr := s.Wait(); werr != nil && ctx.Err() == nil {
		return moved, werr
	}
	return moved, nil
}

// quantile is the q-quantile of ds (nearest rank); 0 when empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// checks puts pr's figures beside the targets.
func checks(pr *PathReport) []Check {
	if pr.Err != "" {
		return nil
	}
	var cs []Check
	if pr.RTTSamples > 0 {
		cs = append(cs, Check{Name: "round trip p50", Value: fmt.Sprintf("%.1f ms", pr.RTTp50), Target: "< 100 ms", OK: float64(pr.RTTp50) < float64(TargetRTT.Milliseconds())})
	}
	for _, t := range transferRows(pr) {
		if t.v != nil {
			c := Check{Name: t.name, Value: fmt.Sprintf("%.1f MB/s", t.v.MBps), Target: "> 20 MB/s", OK: t.v.MBps > TargetMBps}
			// A transfer's time includes starting its sessions, measured
			// on their own (StartOne, StartParallel). When the rate without
			// that start meets the target, the miss is the start's, which
			// a small --size cannot amortise: undecided, not missed.
			if start := float64(t.start) / 1000; !c.OK && start > 0 &&
				(t.v.Seconds <= start || float64(t.v.Bytes)/(t.v.Seconds-start)/1e6 > TargetMBps) {
				c.Undecided = true
				c.Why = fmt.Sprintf("too small to show the rate: %.2f s of its %.2f s is starting the sessions (--size 64MiB or more)", start, t.v.Seconds)
			}
			cs = append(cs, c)
		}
	}
	if pr.StableTotal > 0 {
		c := Check{Name: "sessions completed", Value: fmt.Sprintf("%d/%d (%.0f %%)", pr.StableDone, pr.StableTotal, pr.StablePct), Target: "> 99 %", OK: pr.StablePct > TargetStability}
		if c.OK && pr.StableTotal < MinStabilitySessions {
			c.OK, c.Undecided = false, true
			c.Why = fmt.Sprintf("too few sessions to show > 99 %% (%d needed: --runs %d)", MinStabilitySessions, (MinStabilitySessions+stableSessionsPerRun-1)/stableSessionsPerRun)
		}
		cs = append(cs, c)
	}
	return cs
}

type transferRow struct {
	name  string
	v     *Throughput
	start Millis // what starting its sessions took (0: not measured)
}

// transferRows are pr's four transfer figures, named as in the checks.
func transferRows(pr *PathReport) []transferRow {
	return []transferRow{{"download, one session", pr.DownOne, pr.StartOne}, {"upload, one session", pr.UpOne, pr.StartOne},
		{"download, parallel", pr.DownParallel, pr.StartParallel}, {"upload, parallel", pr.UpParallel, pr.StartParallel}}
}

// verdict says in one line which path to use for what. With both paths
// measured it compares them figure by figure — round trip p50, warm
// connect median and each transfer row — and never sends a use to the path
// that measured worse for it: the targets say whether a path is good
// enough, the comparison which one is better. Undecided checks (too few
// sessions, a transfer too short to show its rate) count as neither met nor
// missed.
func verdict(ps []PathReport) string {
	var direct, ssm *PathReport
	for i := range ps {
		switch ps[i].Took {
		case "direct":
			if ps[i].Err == "" {
				direct = &ps[i]
			}
		case "ssm":
			if ps[i].Err == "" {
				ssm = &ps[i]
			}
		}
	}
	var b strings.Builder
	switch {
	case direct == nil:
		b.WriteString("direct is not available here (connect the Client VPN to use it)")
	case ssm == nil:
		b.WriteString(alone(direct, "direct (the VPN)"))
	default:
		b.WriteString(compared(direct, ssm))
	}
	if ssm != nil {
		switch {
		case interactiveOK(ssm) && bulkOK(ssm):
			b.WriteString("; Session Manager is fine for interactive work and, with parallel sessions (cp -j), for transfers")
		case interactiveOK(ssm):
			b.WriteString("; Session Manager is fine for interactive work; move big files with cp -j or --via s3")
		default:
			b.WriteString("; Session Manager misses the interactive target here")
		}
	}
	return b.String()
}

func allOK(p *PathReport) bool {
	for _, c := range p.Checks {
		if !c.OK && !c.Undecided {
			return false
		}
	}
	return len(p.Checks) > 0
}

func undecided(p *PathReport) bool {
	return slices.ContainsFunc(p.Checks, func(c Check) bool { return c.Undecided })
}

// missed names p's checks that missed their target.
func missed(p *PathReport) []string {
	var out []string
	for _, c := range p.Checks {
		if !c.OK && !c.Undecided {
			out = append(out, c.Name)
		}
	}
	return out
}

func interactiveOK(p *PathReport) bool {
	return p.RTTSamples > 0 && float64(p.RTTp50) < float64(TargetRTT.Milliseconds())
}

func bulkOK(p *PathReport) bool {
	return p.DownParallel != nil && p.DownParallel.MBps > TargetMBps
}

// alone is the verdict on the one path measured.
func alone(p *PathReport, name string) string {
	switch {
	case allOK(p) && undecided(p):
		return "use " + name + " for everything: it meets every target it ran enough to show"
	case allOK(p):
		return "use " + name + " for everything: it meets every target"
	case bulkOK(p):
		return "use " + name + " for transfers"
	}
	return name + " misses targets (see ✗)"
}

// compared is the verdict on direct beside ssm: for interactive work the
// lower round trip p50, for transfers the faster parallel download (cp's
// way; the one-session download when a parallel row is missing); ties go to
// direct (the path without Session Manager's pacing and session costs).
func compared(direct, ssm *PathReport) string {
	inter := "direct"
	if direct.RTTSamples == 0 || (ssm.RTTSamples > 0 && ssm.RTTp50 < direct.RTTp50) {
		inter = "ssm"
	}
	bulk := "direct"
	if dv, sv := bulkRate(direct), bulkRate(ssm); dv < 0 || (sv >= 0 && sv > dv) {
		bulk = "ssm"
	}
	if inter == "direct" && bulk == "direct" {
		switch {
		case allOK(direct) && undecided(direct):
			return "use direct (the VPN) for everything: it meets every target it ran enough to show"
		case allOK(direct):
			return "use direct (the VPN) for everything: it meets every target"
		}
		if m := missed(direct); len(m) > 0 {
			return "use direct (the VPN) for everything: it measured better than Session Manager, though it misses " +
				strings.Join(m, ", ") + " here (see ✗)"
		}
		return "use direct (the VPN) for everything: it measured better than Session Manager"
	}
	if inter == "ssm" && bulk == "ssm" {
		return "use Session Manager for everything: it measured better than direct here (see the figures)"
	}
	return fmt.Sprintf("use %s for interactive work and %s for transfers: each measured better there", pathName(inter), pathName(bulk))
}

// bulkRate is p's figure for transfers in MB/s: the parallel download,
// else the one-session download; -1 when neither was measured.
func bulkRate(p *PathReport) float64 {
	switch {
	case p.DownParallel != nil:
		return p.DownParallel.MBps
	case p.DownOne != nil:
		return p.DownOne.MBps
	}
	return -1
}

func pathName(p string) string {
	if p == "direct" {
		return "direct (the VPN)"
	}
	return "Session Manager"
}
