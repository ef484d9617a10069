// Package forward serves a local TCP port through Session Manager
// port-forwarding sessions (devgate forward; protocol doc §6).
//
// One Forwarder is one local listener and, at any time, at most one session
// to its remote port. When the agent supports it (AgentVersion > 3.0.196.0,
// §6.1) the session carries an smux v1 client with one stream per local
// connection, so a browser's parallel connections share it (mux mode);
// otherwise local connections take turns, one at a time, each ended with
// Flag DisconnectToPort (basic mode, §6.3). A ConnectToPortError flag closes
// only the local connection that hit it. WebSocket drops are resumed below
// (internal/datachannel); a session lost for good (instance restarted,
// idle timeout, terminated) is dropped and the next local connection opens
// a new one, while the listener stays open.
//
// It does not resolve targets, start instances or call StartSession itself
// (Options.Open does, normally tunnel.OpenSession), and prints nothing:
// messages for the user go to Options.Notify.
package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/xtaci/smux"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/ssmmsg"
	"github.com/devgate/devgate/internal/tunnel"
)

// Options configure one Forwarder.
type Options struct {
	Spec Spec
	// Bind is the local address to listen on (default 127.0.0.1).
	Bind string
	// Auto picks a free local port when Spec.LocalPort is in use.
	Auto bool
	// Open starts a session to the spec's remote port (tunnel.OpenSession).
	Open func(ctx context.Context) (*tunnel.Conn, error)
	// Notify receives one line per event the user should see (mode, refused
	// connections, sessions lost and replaced).
	Notify func(format string, args ...any)
	Logger *slog.Logger
	// Sessions is the most sessions opened for this port (default 1): a
	// local connection that finds every session busy opens another one, up
	// to this many, so parallel connections are not all held to one
	// session's throughput (the agent paces each session, §8).
	Sessions int
}

// Forwarder is one listening local port.
type Forwarder struct {
	o  Options
	ln *net.TCPListener

	openMu    sync.Mutex // one session opening at a time
	mu        sync.Mutex
	links     []*link // open sessions, at most Options.Sessions
	conns     map[net.Conn]struct{}
	closed    bool
	saidBasic bool
	wg        sync.WaitGroup
}

// Listen binds the local port. A port in use is a Usage error, unless
// Options.Auto, when a free port is taken instead.
func Listen(o Options) (*Forwarder, error) {
	if o.Bind == "" {
		o.Bind = "127.0.0.1"
	}
	if o.Notify == nil {
		o.Notify = func(string, ...any) {}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sessions < 1 {
		o.Sessions = 1
	}
	addr := net.JoinHostPort(o.Bind, strconv.Itoa(o.Spec.LocalPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil && o.Auto && inUse(err) {
		ln, err = net.Listen("tcp", net.JoinHostPort(o.Bind, "0"))
	}
	if err != nil {
		if inUse(err) {
			return nil, exitcode.Wrap(err, exitcode.Usage,
				fmt.Sprintf("pick another local port (e.g. %d:%s) or pass --auto", o.Spec.LocalPort+10000, o.Spec.Remote()),
				"local port %s is already in use", addr)
		}
		return nil, exitcode.Wrap(err, exitcode.LocalIO, "check --bind", "cannot listen on %s", addr)
	}
	return &Forwarder{o: o, ln: ln.(*net.TCPListener), conns: map[net.Conn]struct{}{}}, nil
}

// inUse reports a listen error for an address in use (Windows says it in
// its own words: WSAEADDRINUSE, 10048).
func inUse(err error) bool {
	var errno syscall.Errno
	return errors.Is(err, syscall.EADDRINUSE) || errors.As(err, &errno) && errno == 10048
}

// Addr is the local address listened on.
func (f *Forwarder) Addr() *net.TCPAddr { return f.ln.Addr().(*net.TCPAddr) }

// Spec is the forwarded spec (LocalPort is the configured one, see Addr).
func (f *Forwarder) Spec() Spec { return f.o.Spec }

// Connect opens the first session now, so that failures (instance not
// found, permission) surface before the user is told the URL.
func (f *Forwarder) Connect(ctx context.Context) error {
	_, err := f.link(ctx)
	return err
}

// Serve accepts local connections until ctx is done, then closes the
// listener and every connection, terminates the session and returns nil.
func (f *Forwarder) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { f.ln.Close() })
	defer stop()
	var err error
	for {
		c, aerr := f.ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = exitcode.Wrap(aerr, exitcode.LocalIO, "", "accepting on %s failed", f.Addr())
			}
			break
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			continue
		}
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			f.handle(ctx, c)
			f.mu.Lock()
			delete(f.conns, c)
			f.mu.Unlock()
			c.Close()
		}()
	}
	f.shutdown()
	return err
}

// Close stops a Forwarder that is not serving (e.g. after Connect failed).
func (f *Forwarder) Close() error {
	f.ln.Close()
	f.shutdown()
	return nil
}

func (f *Forwarder) shutdown() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	links := f.links
	f.links = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Go(l.close)
	}
	wg.Wait()
	f.wg.Wait()
}

// link returns a live session for one more local connection, counted as
// active until release: the least busy one, or a new one when every session
// is busy and fewer than Options.Sessions are open. Dead sessions are closed.
func (f *Forwarder) link(ctx context.Context) (*link, error) {
	if l, err := f.pick(); l != nil || err != nil {
		return l, err
	}
	f.openMu.Lock()
	defer f.openMu.Unlock()
	if l, err := f.pick(); l != nil || err != nil {
		return l, err
	}
	conn, err := f.o.Open(ctx)
	if err != nil {
		return nil, err
	}
	l := newLink(f, conn)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		l.close()
		return nil, errClosed
	}
	f.links = append(f.links, l)
	l.active++
	say := l.mux == nil && !f.saidBasic
	if say {
		f.saidBasic = true
	}
	f.mu.Unlock()
	if say {
		f.o.Notify("forward %s: the SSM agent (version %s) is too old for multiplexing; serving one connection at a time per session (agent 3.0.222.0 or later serves them in parallel)",
			f.o.Spec.Remote(), conn.Session().AgentVersion())
	}
	return l, nil
}

// pick returns the least busy live session when it is idle, or when no
// other may be opened; nil when a new session should be opened. Dead
// sessions are pruned and closed in the background.
func (f *Forwarder) pick() (*link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errClosed
	}
	live := f.links[:0]
	for _, l := range f.links {
		if l.isDead() {
			f.wg.Add(1)
			go func() { defer f.wg.Done(); l.close() }()
			continue
		}
		live = append(live, l)
	}
	clear(f.links[len(live):])
	f.links = live
	var best *link
	for _, l := range live {
		if best == nil || l.active < best.active {
			best = l
		}
	}
	if best == nil {
		return nil, nil
	}
	if best.active == 0 || len(live) >= f.o.Sessions {
		best.active++
		return best, nil
	}
	return nil, nil
}

// release ends one local connection's use of l.
func (f *Forwarder) release(l *link) {
	f.mu.Lock()
	l.active--
	f.mu.Unlock()
}

var errClosed = errors.New("forward: closed")

// lost tells the user that l's session ended by itself. The dead link stays
// listed until the next connection prunes it (pick) or shutdown closes it.
func (f *Forwarder) lost(l *link) {
	f.mu.Lock()
	cur := false
	for _, x := range f.links {
		cur = cur || x == l
	}
	closed := f.closed
	f.mu.Unlock()
	if !cur || closed {
		return
	}
	why := "it ended"
	if err := l.conn.Err(); err != nil {
		why = err.Error()
	}
	f.o.Notify("forward %s: session %s lost (%s); the next connection opens a new one", f.o.Spec.Remote(), l.conn.SessionID, why)
}

// handle serves one local connection; a dead session is replaced once.
func (f *Forwarder) handle(ctx context.Context, c net.Conn) {
	for attempt := 0; attempt < 2; attempt++ {
		l, err := f.link(ctx)
		if err != nil {
			if !errors.Is(err, errClosed) && ctx.Err() == nil {
				f.o.Notify("forward %s: cannot open a session: %v", f.o.Spec.Remote(), err)
			}
			return
		}
		var retry bool
		if l.mux != nil {
			retry = l.serveMux(ctx, c)
		} else {
			retry = l.serveBasic(ctx, c)
		}
		f.release(l)
		if !retry {
			return
		}
	}
}

// link is one session and its mode.
type link struct {
	f       *Forwarder
	conn    *tunnel.Conn
	active  int           // local connections using it (Forwarder.mu)
	mux     *smux.Session // nil: basic mode
	refused chan struct{} // one token per ConnectToPortError
	dead    chan struct{}
	deadOne sync.Once
	wg      sync.WaitGroup
	closeMu sync.Once

	// basic mode
	turn  chan struct{} // holds a token while a local connection is served
	outMu sync.Mutex
	out   net.Conn // the local connection receiving the session's output
}

// sessRW is the session as smux's transport; closing smux does not end it
// (link.close does, with the TerminateSession flag and API).
type sessRW struct{ s *datachannel.Session }

func (r sessRW) Read(p []byte) (int, error)  { return r.s.Read(p) }
func (r sessRW) Write(p []byte) (int, error) { return r.s.Write(p) }
func (r sessRW) Close() error                { return nil }

func newLink(f *Forwarder, conn *tunnel.Conn) *link {
	l := &link{f: f, conn: conn, refused: make(chan struct{}, 64), dead: make(chan struct{}), turn: make(chan struct{}, 1)}
	sess := conn.Session()
	av := sess.AgentVersion()
	if sess.Property("type") == "LocalPortForwarding" && ssmmsg.ClientChoosesMux(av) {
		cfg := smux.DefaultConfig()
		cfg.Version = 1
		cfg.KeepAliveDisabled = !ssmmsg.ClientSmuxKeepalive(av)
		ms, err := smux.Client(sessRW{sess}, cfg)
		if err == nil {
			l.mux = ms
		} else {
			f.o.Logger.Warn("forward: smux client failed; basic mode", "err", err)
		}
	}
	var muxDone <-chan struct{}
	if l.mux != nil {
		muxDone = l.mux.CloseChan()
	} else {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.basicReader() }()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case fl := <-sess.Flags():
				if fl == ssmmsg.FlagConnectToPortError {
					select {
					case l.refused <- struct{}{}:
					default:
					}
				}
			case <-sess.Done():
				l.markDead()
				return
			case <-muxDone:
				l.markDead()
				return
			case <-l.dead:
				return
			}
		}
	}()
	return l
}

// markDead records that the session ended by itself and tells the Forwarder.
func (l *link) markDead() {
	died := false
	l.deadOne.Do(func() { close(l.dead); died = true })
	if died {
		l.f.lost(l)
	}
}

func (l *link) isDead() bool {
	select {
	case <-l.dead:
		return true
	default:
		return false
	}
}

// close ends the session (flag + API) and waits for the link's goroutines.
func (l *link) close() {
	l.closeMu.Do(func() {
		l.deadOne.Do(func() { close(l.dead) })
		if l.mux != nil {
			l.mux.Close()
		}
		if err := l.conn.Close(); err != nil {
			l.f.o.Logger.Info("forward: TerminateSession failed", "session", l.conn.SessionID, "err", err)
		}
		l.wg.Wait()
	})
}

// serveMux bridges c over a new smux stream. It reports true when the
// session was found dead before anything was sent (the caller retries).
func (l *link) serveMux(ctx context.Context, c net.Conn) (retry bool) {
	st, err := l.mux.OpenStream()
	if err != nil {
		l.markDead()
		return true
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Close(); c.Close() })
	defer stop()

	up := make(chan struct{})
	go func() {
		defer close(up)
		_, _ = io.Copy(st, c)
		_ = st.CloseWrite() // the agent closes the target fully (§6.2) and FINs back
	}()
	n, _ := io.Copy(c, st)
	if n == 0 && !l.isDead() && ctx.Err() == nil && l.takeRefusal() {
		l.f.o.Notify("forward %s: the instance could not connect to %s (ConnectToPortError: is anything listening there?); closed that local connection",
			l.f.o.Spec.Remote(), l.f.o.Spec.Remote())
	}
	c.Close()
	st.Close()
	<-up
	return false
}

// takeRefusal consumes a ConnectToPortError received for a stream that ended
// without data. The flag precedes the stream's FIN in the session, but the
// flag watcher may not have picked it up yet: wait briefly.
func (l *link) takeRefusal() bool {
	t := time.NewTimer(200 * time.Millisecond)
	defer t.Stop()
	select {
	case <-l.refused:
		return true
	case <-t.C:
		return false
	}
}

// serveBasic relays c over the raw session when it is c's turn, then sends
// Flag DisconnectToPort so that the agent closes its target connection.
func (l *link) serveBasic(ctx context.Context, c net.Conn) (retry bool) {
	select {
	case l.turn <- struct{}{}:
	case <-l.dead:
		return true
	case <-ctx.Done():
		return false
	}
	defer func() { <-l.turn }()
	if l.isDead() {
		return true
	}
	l.outMu.Lock()
	l.out = c
	l.outMu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	dead := context.AfterFunc(ctxOf(l.dead), func() { c.Close() })
	defer dead()

	_, _ = io.Copy(l.conn, c)
	l.outMu.Lock()
	l.out = nil
	l.outMu.Unlock()
	c.Close()
	if !l.isDead() {
		if err := l.conn.Session().SendFlag(ssmmsg.FlagDisconnectToPort); err != nil {
			l.f.o.Logger.Info("forward: DisconnectToPort not sent", "err", err)
		}
	}
	return false
}

// basicReader copies the session's output to the local connection whose
// turn it is; output with no connection to take it is dropped (§6.3).
func (l *link) basicReader() {
	buf := make([]byte, 32<<10)
	for {
		n, err := l.conn.Read(buf)
		if n > 0 {
			l.outMu.Lock()
			c := l.out
			if c != nil {
				_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
				if _, werr := c.Write(buf[:n]); werr != nil {
					c.Close()
				}
			}
			l.outMu.Unlock()
		}
		if err != nil {
			l.markDead()
			return
		}
	}
}

// ctxOf is a context cancelled when ch closes (for context.AfterFunc).
func ctxOf(ch <-chan struct{}) context.Context {
	return chanCtx(ch)
}

type chanCtx <-chan struct{}

func (chanCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c chanCtx) Done() <-chan struct{}     { return c }
func (c chanCtx) Err() error {
	select {
	case <-c:
		return context.Canceled
	default:
		return nil
	}
}
func (chanCtx) Value(any) any { return nil }
