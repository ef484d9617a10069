package mgs

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/xtaci/smux"

	"github.com/devgate/devgate/internal/ssmmsg"
)

// startPlugin picks the port plugin's mode as the real agent does (§6.1):
// smux for LocalPortForwarding with ClientVersion ≥ 1.1.70 when the agent's
// own version has mux (> 3.0.196.0), else basic;
// without a type it is SSH mode (AWS-StartSSHSession).
func (s *session) startPlugin(clientVersion string) (plugin, error) {
	port, err := strconv.Atoi(s.spec.Properties["portNumber"])
	if err != nil {
		return nil, fmt.Errorf("invalid portNumber %q", s.spec.Properties["portNumber"])
	}
	host := s.spec.Properties["host"]
	lpf := s.spec.Properties["type"] == "LocalPortForwarding"
	if lpf && ssmmsg.AgentChoosesMux(clientVersion) && ssmmsg.AgentHasMux(s.spec.AgentVersion) {
		return s.startMux(host, port, clientVersion)
	}
	p := &streamPlugin{s: s, host: host, port: port, ssh: !lpf}
	// Basic and SSH mode dial as soon as the handshake ends (§6.3).
	if err := p.dial(); err != nil {
		return nil, fmt.Errorf("Unable to connect to port %d: %v", port, err)
	}
	return p, nil
}

// pump reads the agent side of a stream the way the real agent does: at
// most 1024 bytes per message and, when pacing is on, a 1 ms sleep after
// each (§8). It returns the read error (io.EOF at the end).
//
// With pacing it logs, when it ends, how many messages it sent, its
// lifetime per message (for a bulk download, the pace its client got) and
// how long each sleep took on average. Like the real
// agent's, the lab's 1 ms sleep is Go's time.Sleep, which oversleeps by up
// to a millisecond when something else wakes the process in the middle of
// it (the runtime's poller waits whole milliseconds; bench/sleepwake), so
// the pace depends on when the client's acks arrive (bench/pace.sh).
func (s *session) pump(r io.Reader) error {
	buf := make([]byte, ssmmsg.MaxPayload)
	var msgs int
	var slept time.Duration
	start := time.Now()
	if s.srv.f.Pacing {
		defer func() {
			if msgs > 0 {
				per := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()*1000/float64(msgs)) }
				s.log.Info("mgs: agent pump ended", "messages", msgs, "ms_per_message", per(time.Since(start)), "sleep_ms_per_message", per(slept))
			}
		}()
	}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, serr := s.ep.Send(s.ctx, ssmmsg.PayloadOutput, append([]byte(nil), buf[:n]...)); serr != nil {
				return serr
			}
			msgs++
			if s.srv.f.Pacing {
				t := time.Now()
				time.Sleep(time.Millisecond)
				slept += time.Since(t)
			}
		}
		if err != nil {
			return err
		}
	}
}

// streamPlugin is basic mode (one target connection at a time) and SSH mode
// (basic without a type: target EOF ends the session).
type streamPlugin struct {
	s    *session
	host string
	port int
	ssh  bool

	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

func (p *streamPlugin) dial() error {
	conn, err := p.s.spec.Dial(p.s.ctx, p.host, p.port)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		conn.Close()
		return errors.New("session ended")
	}
	p.conn = conn
	p.mu.Unlock()
	p.s.wg.Add(1)
	go func() {
		defer p.s.wg.Done()
		err := p.s.pump(conn)
		p.mu.Lock()
		current := p.conn == conn
		if current {
			p.conn = nil
		}
		closed := p.closed
		p.mu.Unlock()
		conn.Close()
		if closed || !current {
			return
		}
		if p.ssh {
			// The agent's plugin exits when the target ends; the service closes the channel.
			if errors.Is(err, io.EOF) {
				p.s.endAfterDrain("")
			} else {
				p.s.endAfterDrain("devgate-lab: connection to the target failed: " + err.Error())
			}
			return
		}
		// Basic LocalPortForwarding: closed silently; the next client data re-dials (§6.3).
		p.s.log.Debug("mgs: target closed; will re-dial on the next client data", "err", err)
	}()
	return nil
}

func (p *streamPlugin) input(b []byte) bool {
	p.mu.Lock()
	conn := p.conn
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return true
	}
	if conn == nil {
		if p.ssh {
			return true // target gone; the session is ending
		}
		if err := p.dial(); err != nil {
			go p.s.end(fmt.Sprintf("Unable to connect to port %d: %v", p.port, err))
			return true
		}
		p.mu.Lock()
		conn = p.conn
		p.mu.Unlock()
		if conn == nil {
			return true
		}
	}
	if _, err := conn.Write(b); err != nil {
		p.s.log.Debug("mgs: write to target failed", "err", err)
	}
	return true
}

func (p *streamPlugin) disconnect() {
	p.mu.Lock()
	conn := p.conn
	p.conn = nil
	p.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

func (p *streamPlugin) close() {
	p.mu.Lock()
	p.closed = true
	conn := p.conn
	p.conn = nil
	p.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// muxPlugin is the agent's smux server (§6.2), fed from Output payloads
// through an in-memory pipe.
type muxPlugin struct {
	s      *session
	host   string
	port   int
	bridge net.Conn // our end of the pipe: Output payloads in, smux bytes out
	sess   *smux.Session
}

func (s *session) startMux(host string, port int, clientVersion string) (plugin, error) {
	agentEnd, bridge := net.Pipe()
	cfg := smux.DefaultConfig()
	cfg.Version = 1
	cfg.KeepAliveDisabled = !ssmmsg.AgentSmuxKeepalive(clientVersion)
	ms, err := smux.Server(agentEnd, cfg)
	if err != nil {
		return nil, err
	}
	p := &muxPlugin{s: s, host: host, port: port, bridge: bridge, sess: ms}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.pump(bridge); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
			s.log.Debug("mgs: mux pump ended", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		for {
			st, err := ms.AcceptStream()
			if err != nil {
				if !ms.IsClosed() || s.ctx.Err() == nil {
					s.log.Info("mgs: smux session ended", "err", err)
					if s.ctx.Err() == nil {
						go s.end("devgate-lab: smux session ended: " + err.Error())
					}
				}
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); p.serveStream(st) }()
		}
	}()
	return p, nil
}

func (p *muxPlugin) serveStream(st *smux.Stream) {
	defer st.Close()
	host := p.host
	if host == "" {
		host = "localhost"
	}
	conn, err := p.s.spec.Dial(p.s.ctx, host, p.port)
	if err != nil {
		p.s.log.Info("mgs: dial for a mux stream failed; sending ConnectToPortError", "err", err)
		_, _ = p.s.ep.Send(p.s.ctx, ssmmsg.PayloadFlag, ssmmsg.FlagPayload(ssmmsg.FlagConnectToPortError))
		return
	}
	defer conn.Close()
	stop := make(chan struct{})
	go func() {
		select {
		case <-p.s.ctx.Done():
			conn.Close()
			st.Close()
		case <-stop:
		}
	}()
	defer close(stop)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(conn, st)
		conn.Close() // full close: TCP half-close is not preserved (§6.2)
		close(done)
	}()
	_, _ = io.Copy(st, conn)
	st.Close()
	conn.Close()
	<-done
}

func (p *muxPlugin) input(b []byte) bool {
	if _, err := p.bridge.Write(b); err != nil {
		p.s.log.Debug("mgs: smux input dropped", "err", err)
	}
	return true
}

func (p *muxPlugin) disconnect() {} // only basic mode handles DisconnectToPort

func (p *muxPlugin) close() {
	p.sess.Close()
	p.bridge.Close()
}
