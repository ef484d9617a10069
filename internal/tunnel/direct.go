package tunnel

// The direct path (docs/product.md "Connection paths"): a TCP connection to
// the instance's private address, as EC2 reports it (PrivateIpAddress), which
// works when the laptop has a route into the VPC (the Client VPN of `devgate
// vpn`). For port 22 the SSH banner is the proof that the path works. In
// auto, the direct path races Session Manager in the spirit of RFC 8305
// ("happy eyeballs"): direct is taken when it answers within a budget, else
// Session Manager, and an instance whose direct path did not answer is
// remembered (state dir) so that the next connects do not wait the budget.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/devgate/devgate/internal/atomicfile"
	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
)

// Paths a connection may take (Options.Path).
const (
	PathAuto   = "auto"   // race direct against Session Manager; direct wins within the budget
	PathDirect = "direct" // only the private address
	PathSSM    = "ssm"    // only Session Manager
)

const (
	// DefaultDirectBudget is how long auto waits for the direct path before
	// it takes Session Manager: a few VPN round trips (a Client VPN in the
	// same region answers a SYN and sends the SSH banner in tens of ms).
	DefaultDirectBudget = 300 * time.Millisecond
	// DirectMemory is how long an instance whose direct path did not answer
	// is remembered: meanwhile auto still tries direct but does not wait for it.
	DirectMemory = 10 * time.Minute
	// DirectTimeout bounds one direct attempt (TCP connect and banner) with --path direct.
	DirectTimeout = 15 * time.Second
	// addrTTL is how long a private address from DescribeInstances is reused
	// (an instance keeps its primary private address for its life).
	addrTTL = time.Hour
	// okRefresh: a direct answer is written to the state file only when the
	// one recorded is older than this.
	okRefresh = time.Minute
)

// ParsePath checks a --path value ("" is auto).
func ParsePath(s string) (string, error) {
	switch s {
	case "", PathAuto:
		return PathAuto, nil
	case PathDirect, PathSSM:
		return s, nil
	}
	return "", exitcode.New(exitcode.Usage, "use --path auto, direct or ssm", "unknown path %q", s)
}

// DirectState is what devgate remembers about an instance's direct path
// (StateDir/direct/<instance>-<endpoint hash>.json).
type DirectState struct {
	PrivateIP   string    `json:"privateIp,omitempty"`
	PrivateDNS  string    `json:"privateDns,omitempty"`
	DescribedAt time.Time `json:"describedAt,omitzero"`
	// FailedAt is when the direct path last did not answer (zero: it did, or never tried).
	FailedAt time.Time `json:"failedAt,omitzero"`
	Why      string    `json:"why,omitempty"`
	// OKAt is when the direct path last answered.
	OKAt time.Time `json:"okAt,omitzero"`
}

// FailedRecently says whether auto should not wait for the direct path at now.
func (s DirectState) FailedRecently(now time.Time) bool {
	return !s.FailedAt.IsZero() && now.Sub(s.FailedAt) < DirectMemory && now.Sub(s.FailedAt) >= 0
}

// AnsweredRecently says whether the direct path answered less than
// DirectMemory before now and has not failed since: auto then gives it a
// head start before it calls StartSession at all.
func (s DirectState) AnsweredRecently(now time.Time) bool {
	return s.FailedAt.IsZero() && !s.OKAt.IsZero() && now.Sub(s.OKAt) < DirectMemory && now.Sub(s.OKAt) >= 0
}

// DirectStatePath is where the direct-path state of instance id lives for the
// endpoint and region of cfg ("" when stateDir is "").
func DirectStatePath(stateDir string, cfg aws.Config, id string) string {
	if stateDir == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(cfg.Region + "\n" + aws.ToString(cfg.BaseEndpoint)))
	return filepath.Join(stateDir, "direct", id+"-"+hex.EncodeToString(sum[:6])+".json")
}

// LoadDirectState reads an instance's direct-path state (zero when absent or unreadable).
func LoadDirectState(path string) DirectState {
	var s DirectState
	if path == "" {
		return s
	}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

func (d *dialer) statePath(id string) string { return DirectStatePath(d.o.StateDir, d.cfg, id) }

// updateState changes the instance's state file under its lock (best effort).
func (d *dialer) updateState(id string, f func(*DirectState)) {
	p := d.statePath(id)
	if p == "" {
		return
	}
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	s := LoadDirectState(p)
	f(&s)
	b, err := json.Marshal(s)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	if err := atomicfile.Write(p, b, 0o600); err != nil {
		d.log.Debug("tunnel: direct state not saved", "err", err)
	}
}

// privateAddr returns the instance's private IPv4 address as EC2 reports it:
// from the state file when described less than addrTTL ago, else from
// DescribeInstances. devgate dials no other address.
func (d *dialer) privateAddr(ctx context.Context, id string) (string, error) {
	if d.knownIP != "" {
		return d.knownIP, nil
	}
	s := LoadDirectState(d.statePath(id))
	if s.PrivateIP != "" && time.Since(s.DescribedAt) < addrTTL && time.Since(s.DescribedAt) >= 0 {
		return s.PrivateIP, nil
	}
	rows, err := awsapi.Describe(ctx, d.cfg, true, []string{id}, time.Now())
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || rows[0].PrivateIP == "" {
		return "", errNoPrivateAddr
	}
	ip, dns := rows[0].PrivateIP, rows[0].PrivateDNS
	d.updateState(id, func(s *DirectState) { s.PrivateIP, s.PrivateDNS, s.DescribedAt = ip, dns, time.Now() })
	return ip, nil
}

var errNoPrivateAddr = errors.New("EC2 reports no private address for the instance")

// errNoBanner: something accepted the connection on port 22 but did not
// send an SSH banner.
var errNoBanner = errors.New("no SSH banner")

// directConn is a TCP connection to the private address; for port 22 it
// holds the banner already read, which Read returns first.
type directConn struct {
	net.Conn
	pre []byte
}

func (c *directConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// dialDirect connects to the instance's private address and port; for port
// 22 it reads up to the SSH identification line (RFC 4253 §4.2, lines before
// it allowed). ctx bounds the whole attempt.
func (d *dialer) dialDirect(ctx context.Context, id string) (*directConn, string, error) {
	ip, err := d.privateAddr(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return nil, "", fmt.Errorf("EC2 reported private address %q: %w", ip, err)
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(d.o.Port))
	dc, err := dialAddr(ctx, addr, d.o.Port == 22)
	return dc, addr, err
}

// dialAddr connects to addr; with banner it reads up to the SSH
// identification line (RFC 4253 §4.2, lines before it allowed), which the
// returned connection's Read gives back first. ctx bounds the whole attempt.
func dialAddr(ctx context.Context, addr string, banner bool) (*directConn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	dc := &directConn{Conn: c}
	if !banner {
		return dc, nil
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var buf []byte
	tmp := make([]byte, 512)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if i := bytes.Index(buf, []byte("SSH-")); i >= 0 && (i == 0 || buf[i-1] == '\n') && bytes.IndexByte(buf[i:], '\n') >= 0 {
			break
		}
		if err != nil || len(buf) > 8192 {
			c.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", errNoBanner, ctx.Err())
			}
			if err == nil {
				err = errors.New("too long")
			}
			return nil, fmt.Errorf("%w: %w", errNoBanner, err)
		}
	}
	if !stop() {
		c.Close()
		return nil, fmt.Errorf("%w: %w", errNoBanner, ctx.Err())
	}
	c.SetReadDeadline(time.Time{})
	dc.pre = buf
	return dc, nil
}

// Probe is one check of a private address.
type Probe struct {
	Addr string        `json:"addr"`
	OK   bool          `json:"ok"`
	Took time.Duration `json:"took"`
	// Result is ResultOK or the kind of failure.
	Result string `json:"result"`
	// Why is the failure in a few words ("refused the connection", "did not answer").
	Why string `json:"why,omitempty"`
}

// ProbeAddr connects to ip:port within timeout and closes again; for port 22
// an SSH banner is required. It is what `devgate ls` and `doctor` show.
func ProbeAddr(ctx context.Context, ip string, port int, timeout time.Duration) Probe {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	c, err := dialAddr(ctx, addr, port == 22)
	p := Probe{Addr: addr, Took: time.Since(start)}
	if err != nil {
		p.Result, p.Why = classify(addr, err)
		return p
	}
	c.Close()
	p.OK, p.Result = true, ResultOK
	return p
}

// Kinds of direct-path failure (Probe.Result).
const (
	ResultOK        = "ok"
	ResultRefused   = "refused"   // RST: nothing listens, or a firewall rejects
	ResultNoAnswer  = "no answer" // SYN or banner unanswered within the time given
	ResultNoRoute   = "no route"  // the OS has no route (no VPN)
	ResultNoBanner  = "no ssh banner"
	ResultNoAddress = "no private address"
	ResultError     = "error"
)

// classify names a direct attempt's failure: its kind and a few words.
func classify(addr string, err error) (kind, why string) {
	if addr == "" {
		addr = "path"
	}
	var ne net.Error
	switch {
	case errors.Is(err, errNoPrivateAddr):
		return ResultNoAddress, "direct: " + err.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return ResultRefused, "direct " + addr + " refused the connection"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ResultNoRoute, "direct " + addr + ": no route (is the VPN connected?)"
	case errors.Is(err, errNoBanner) && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
		return ResultNoAnswer, "direct " + addr + " sent no SSH banner in time"
	case errors.Is(err, errNoBanner):
		return ResultNoBanner, "direct " + addr + ": " + err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ResultNoAnswer, "direct " + addr + " did not answer"
	case errors.As(err, &ne) && ne.Timeout():
		return ResultNoAnswer, "direct " + addr + " did not answer"
	}
	return ResultError, fmt.Sprintf("direct %s: %v", addr, err)
}

// directWhy says in a few words why a direct attempt failed.
func directWhy(addr string, err error) string {
	_, why := classify(addr, err)
	return why
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + " ms" }

// direct is --path direct: push the key and connect to the private address at once.
func (d *dialer) direct(ctx context.Context, id string) (*Conn, error) {
	pushCh := d.pushAsync(ctx, id)
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, DirectTimeout)
	defer cancel()
	dc, addr, err := d.dialDirect(dctx, id)
	if err != nil {
		<-pushCh
		why := directWhy(addr, err)
		d.updateState(id, func(s *DirectState) { s.FailedAt, s.Why = time.Now(), why })
		return nil, exitcode.Wrap(err, exitcode.DirectUnreachable,
			"connect the Client VPN (devgate vpn), check the security group allows port "+strconv.Itoa(d.o.Port)+" from it, or use --path auto",
			"%s", why)
	}
	if err := <-pushCh; err != nil {
		dc.Close()
		return nil, err
	}
	return d.directWon(id, dc, addr, time.Since(start), nil), nil
}

// directOrAgent is auto's wait on an instance that has just reached
// running: the SSM agent reports Online some seconds after sshd answers (it
// starts later in the boot and then registers with Systems Manager), so
// while the agent is awaited the direct path is tried on every poll, each
// attempt bounded by the budget. It returns a direct Conn when the private
// address answers first, or nil once the agent is Online (the caller then
// connects as usual: the race). A direct path that never answers here is not
// remembered as failed: the race that follows decides that.
func (d *dialer) directOrAgent(ctx context.Context, id string) (*Conn, error) {
	budget := d.o.DirectBudget
	if budget <= 0 {
		budget = DefaultDirectBudget
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	agent := make(chan error, 1)
	go func() { agent <- d.waitAgent(actx, id) }()
	poll := newPoller()
	for {
		start := time.Now()
		dctx, dcancel := context.WithTimeout(actx, budget)
		dc, addr, err := d.dialDirect(dctx, id)
		dcancel()
		if err == nil {
			cancel()
			<-agent
			if err := d.pushKey(ctx, id); err != nil {
				dc.Close()
				return nil, err
			}
			d.progress("direct %s answered before the SSM agent was online", addr)
			return d.directWon(id, dc, addr, time.Since(start), nil), nil
		}
		d.log.Debug("tunnel: direct path not answering yet", "addr", addr, "err", err)
		t := time.NewTimer(poll.delay())
		select {
		case err := <-agent: // Online (nil: the race next), or the wait failed
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

func (d *dialer) pushAsync(ctx context.Context, id string) <-chan error {
	ch := make(chan error, 1)
	if d.o.PublicKey == "" {
		ch <- nil
		return ch
	}
	go func() { ch <- d.pushKey(ctx, id) }()
	return ch
}

func (d *dialer) directWon(id string, dc *directConn, addr string, took time.Duration, bg *sync.WaitGroup) *Conn {
	// The state file is rewritten (fsync'd) only when it says something
	// else than "answered in the last minute": not on every connect.
	if s := LoadDirectState(d.statePath(id)); !s.FailedAt.IsZero() || time.Since(s.OKAt) >= okRefresh || time.Since(s.OKAt) < 0 {
		d.updateState(id, func(s *DirectState) { s.FailedAt, s.Why, s.OKAt = time.Time{}, "", time.Now() })
	}
	d.progress("direct %s in %s", addr, ms(took))
	d.progress("Connected in %s (direct %s)", d.elapsed(), addr)
	return &Conn{InstanceID: id, Path: PathDirect, Addr: addr, nc: dc, stream: dc, bg: bg, closed: make(chan struct{})}
}

type ssmResult struct {
	c   *Conn
	err error
}

type directResult struct {
	dc   *directConn
	addr string
	err  error
	took time.Duration
}

// race is --path auto: the key push, the direct attempt and StartSession
// start together. Direct wins if it answers within the budget (or before
// Session Manager is ready once the budget is spent); the data channel is
// opened only once direct failed or the budget ran out, so that a winning
// direct path leaves no data-channel session behind, and a StartSession
// that lost is terminated.
//
// When the direct path answered recently (DirectState.AnsweredRecently),
// StartSession waits for a head start of half the budget, or until direct
// fails: the usual connect on the VPN then calls neither StartSession nor
// TerminateSession, and a direct path that stopped answering still falls
// back within the budget (Session Manager is started halfway through it).
func (d *dialer) race(ctx context.Context, id string) (*Conn, error) {
	start := time.Now()
	budget := d.o.DirectBudget
	if budget <= 0 {
		budget = DefaultDirectBudget
	}
	mem := LoadDirectState(d.statePath(id))
	waitBudget := !mem.FailedRecently(time.Now())
	var headStart time.Duration
	if waitBudget && mem.AnsweredRecently(time.Now()) {
		headStart = budget / 2
	}
	pushCh := d.pushAsync(ctx, id)

	// The direct attempt's context ends with ctx while race runs, but not
	// when Dial returns: a late answer is still recorded (lateAnswer).
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), DirectTimeout)
	unlink := context.AfterFunc(ctx, dcancel)
	lateDirect := false // the direct attempt goes on after race returns (lateAnswer)
	defer func() {
		if !lateDirect {
			dcancel()
		}
	}()
	directCh := make(chan directResult, 1)
	go func() {
		dc, addr, err := d.dialDirect(dctx, id)
		directCh <- directResult{dc, addr, err, time.Since(start)}
	}()

	if !d.saidSession {
		if headStart > 0 {
			d.progress("Trying the direct path (it answered %s ago; Session Manager after %s)…", time.Since(mem.OKAt).Round(time.Second), ms(headStart))
		} else {
			d.progress("Starting session (%s, port %d) and trying the direct path…", d.o.Document, d.o.Port)
		}
		d.saidSession = true
	}
	gate, abandon, kick := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var gateOnce, kickOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(gate) }) }
	kickSSM := func() { kickOnce.Do(func() { close(kick) }) }
	bg := &sync.WaitGroup{}
	ssmCh := make(chan ssmResult, 1)
	// The session's own context: it must outlive ctx when direct wins, so
	// that a session StartSession created is known and terminated.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.Timeout)
	bg.Add(1)
	go func() {
		defer bg.Done()
		defer scancel()
		if headStart > 0 {
			t := time.NewTimer(headStart)
			select {
			case <-t.C:
				d.log.Info("tunnel: direct path slower than its head start; starting Session Manager", "head_start", headStart)
			case <-kick:
				t.Stop()
			case <-abandon: // direct won: no session was ever started
				t.Stop()
				ssmCh <- ssmResult{err: context.Canceled}
				return
			}
		}
		out, err := d.startSession(sctx, id)
		if err != nil {
			ssmCh <- ssmResult{err: err}
			return
		}
		select {
		case <-gate:
		case <-abandon:
			d.terminate(aws.ToString(out.SessionId))
			ssmCh <- ssmResult{err: context.Canceled}
			return
		}
		c, err := d.open(sctx, id, out)
		ssmCh <- ssmResult{c, err}
	}()

	var budgetC <-chan time.Time
	if waitBudget {
		t := time.NewTimer(budget)
		defer t.Stop()
		budgetC = t.C
	} else {
		openGate()
	}
	budgetSpent := !waitBudget
	var dres *directResult
	var ssmErr error
	ssmDone := false
	lose := func() {
		// The Session Manager attempt lost: terminate whatever it made.
		close(abandon)
		if ssmDone {
			return
		}
		bg.Add(1)
		go func() {
			defer bg.Done()
			if r := <-ssmCh; r.c != nil {
				r.c.Close()
			}
		}()
	}
	for {
		select {
		case r := <-directCh:
			directCh = nil
			if r.err == nil {
				lose()
				if err := <-pushCh; err != nil {
					r.dc.Close()
					bgWait(bg)
					return nil, err
				}
				return d.directWon(id, r.dc, r.addr, r.took, bg), nil
			}
			dres = &r
			d.log.Info("tunnel: direct path failed", "addr", r.addr, "err", r.err)
			kickSSM()
			openGate()
			if ssmDone {
				return nil, ssmErr
			}
		case <-budgetC:
			budgetC = nil
			budgetSpent = true
			kickSSM()
			openGate()
			if ssmDone {
				return nil, ssmErr
			}
		case r := <-ssmCh:
			ssmDone = true
			if r.err != nil {
				ssmErr = r.err
				if dres != nil || budgetSpent {
					dcancel()
					return nil, ssmErr
				}
				continue // direct may still answer within the budget
			}
			var why string
			switch {
			case dres != nil:
				why = directWhy(dres.addr, dres.err)
			case waitBudget:
				why = "direct did not answer in " + ms(budget)
			default:
				why = fmt.Sprintf("direct did not answer %s ago (%s); not waiting for it", time.Since(mem.FailedAt).Round(time.Second), mem.Why)
			}
			if waitBudget || dres != nil {
				d.updateState(id, func(s *DirectState) { s.FailedAt, s.Why = time.Now(), why })
			}
			if err := <-pushCh; err != nil {
				r.c.Close()
				return nil, err
			}
			if dres == nil && !waitBudget {
				// Not waited for: let it answer within the budget, so that
				// an answer clears the remembered failure.
				lateDirect = true
				unlink()
				r.c.lateStop = d.lateAnswer(id, directCh, dcancel, budget-time.Since(start))
			} else {
				dcancel()
			}
			d.progress("%s; Session Manager", why)
			d.progress("Connected in %s (session %s)", d.elapsed(), r.c.SessionID)
			return r.c, nil
		}
	}
}

// lateAnswer lets the direct attempt of a race that Session Manager won
// while direct was not waited for (a remembered failure) run on for at most
// left: a direct answer is recorded (the failure cleared, so the next
// connect goes direct) and its connection closed at once; a failure changes
// nothing. The returned func stops the attempt and waits for it; the
// Session Manager connection calls it when it closes, so nothing outlives
// the connection.
func (d *dialer) lateAnswer(id string, directCh <-chan directResult, cancel context.CancelFunc, left time.Duration) (stop func()) {
	if left <= 0 {
		cancel()
		return func() {}
	}
	t := time.AfterFunc(left, cancel)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		defer t.Stop()
		r := <-directCh
		if r.err != nil {
			d.log.Info("tunnel: direct path still does not answer", "addr", r.addr, "err", r.err)
			return
		}
		r.dc.Close()
		d.updateState(id, func(s *DirectState) { s.FailedAt, s.Why, s.OKAt = time.Time{}, "", time.Now() })
		d.log.Info("tunnel: direct path answered after Session Manager was taken; the next connect goes direct", "addr", r.addr, "took", r.took)
	}()
	return func() { cancel(); <-done }
}

// bgWait waits for the abandoned attempts of a race, at most a few seconds.
func bgWait(bg *sync.WaitGroup) {
	if bg == nil {
		return
	}
	done := make(chan struct{})
	go func() { bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}
