package lab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// VPN states of the lab's route into its VPC (the Client VPN of product.md).
const (
	// VPNRefuse: nothing listens on the private addresses; a connection is
	// refused (RST), as from a laptop whose route sends the SYN somewhere that
	// answers with a reset. The state a lab starts in.
	VPNRefuse = "refuse"
	// VPNSilence: every private address:port has a listener whose accept
	// queue is full and is never drained, so Linux drops each new SYN and a
	// connection attempt sees no answer at all, as when the packets go nowhere
	// (no VPN, a blackholed route, a security group that drops).
	VPNSilence = "silence"
	// VPNUp: the VPN is connected; each private address relays port 22 to the
	// instance's sshd and each port of Options.VPNPorts to the same port on
	// 127.0.0.1 (the instance's own services).
	VPNUp = "up"
)

// ErrVPNPort22 is returned by SetVPN("up"/"silence") when this process may
// not bind port 22 (not root and net.ipv4.ip_unprivileged_port_start > 22).
var ErrVPNPort22 = errors.New("binding port 22 on the private addresses needs root or `sysctl net.ipv4.ip_unprivileged_port_start=22`")

// vpn models the Client VPN on loopback. Instances' private addresses are in
// 127.0.0.0/8 (Linux routes all of it to lo), so a listener bound there is
// reachable without setup, and "the VPN" is whether, and how, the lab
// listens on them.
type vpn struct {
	l *Lab

	mu        sync.Mutex
	state     string
	listeners []net.Listener
	silent    []int                  // raw listening sockets of VPNSilence
	fillers   []net.Conn             // connections that fill the silent accept queues
	relayed   map[net.Conn]*instance // both ends of each relayed connection, and the instance behind it
	accepted  int64                  // connections relayed so far
	wg        sync.WaitGroup
}

func newVPN(l *Lab) *vpn {
	return &vpn{l: l, state: VPNRefuse, relayed: map[net.Conn]*instance{}}
}

// vpnTarget is one private address:port and where the VPN relays it.
type vpnTarget struct {
	inst *instance
	addr string // private address:port
	to   string // 127.0.0.1:port
}

func (v *vpn) targets() []vpnTarget {
	v.l.fleet.mu.Lock()
	list := append([]*instance(nil), v.l.fleet.list...)
	v.l.fleet.mu.Unlock()
	return v.targetsOf(list)
}

// targetsOf is targets for the instances of list.
func (v *vpn) targetsOf(list []*instance) []vpnTarget {
	var out []vpnTarget
	for _, inst := range list {
		ip, err := netip.ParseAddr(inst.spec.PrivateIP)
		if err != nil || !ip.Is4() || !ip.IsLoopback() || inst.sshd == nil {
			continue // only loopback addresses can be modelled
		}
		out = append(out, vpnTarget{inst, net.JoinHostPort(ip.String(), "22"), "127.0.0.1:" + strconv.Itoa(inst.sshd.port)})
		for _, p := range v.l.opts.VPNPorts {
			if p == 22 {
				continue
			}
			out = append(out, vpnTarget{inst, net.JoinHostPort(ip.String(), strconv.Itoa(p)), "127.0.0.1:" + strconv.Itoa(p)})
		}
	}
	return out
}

// set moves the VPN to state; every relayed connection is closed (a dropped
// VPN ends the TCP connections that went through it).
func (v *vpn) set(state string) error {
	if state != VPNUp && state != VPNRefuse && state != VPNSilence {
		return fmt.Errorf("lab: VPN state %q: want %s, %s or %s", state, VPNUp, VPNRefuse, VPNSilence)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.teardownLocked()
	v.state = VPNRefuse
	var err error
	switch state {
	case VPNUp:
		err = v.upLocked()
	case VPNSilence:
		err = v.silenceLocked()
	}
	if err != nil {
		v.teardownLocked()
		return err
	}
	v.state = state
	v.l.log.Info("lab: VPN", "state", state)
	return nil
}

func listenErr(addr string, err error) error {
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("lab: listen %s: %w", addr, ErrVPNPort22)
	}
	return fmt.Errorf("lab: listen %s: %w", addr, err)
}

// added covers a newly launched instance's private address in the VPN's
// current state: relayed when up, silent when silent (refuse needs nothing).
func (v *vpn) added(inst *instance) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	ts := v.targetsOf([]*instance{inst})
	switch v.state {
	case VPNUp:
		return v.listenLocked(ts)
	case VPNSilence:
		return v.silenceTargetsLocked(ts)
	}
	return nil
}

func (v *vpn) upLocked() error { return v.listenLocked(v.targets()) }

func (v *vpn) listenLocked(ts []vpnTarget) error {
	for _, t := range ts {
		ln, err := net.Listen("tcp", t.addr)
		if err != nil {
			return listenErr(t.addr, err)
		}
		v.listeners = append(v.listeners, ln)
		v.wg.Add(1)
		go v.serve(ln, t)
	}
	return nil
}

func (v *vpn) serve(ln net.Listener, t vpnTarget) {
	defer v.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go v.relay(c, t)
	}
}

// relay copies between the client and the instance's service until either
// side ends or the VPN changes state.
func (v *vpn) relay(c net.Conn, t vpnTarget) {
	v.l.fleet.mu.Lock()
	running := t.inst.state == "running"
	v.l.fleet.mu.Unlock()
	if !running { // a stopped instance has no host behind its address
		v.l.log.Info("lab: VPN: instance not running; connection closed", "addr", t.addr)
		c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", t.to, 5*time.Second)
	if err != nil {
		v.l.log.Warn("lab: VPN: the instance's port does not answer", "addr", t.addr, "to", t.to, "err", err)
		c.Close()
		return
	}
	v.mu.Lock()
	if v.state != VPNUp {
		v.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	v.relayed[c], v.relayed[up] = t.inst, t.inst
	v.accepted++
	v.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	v.mu.Lock()
	delete(v.relayed, c)
	delete(v.relayed, up)
	v.mu.Unlock()
	c.Close()
	up.Close()
}

// silenceLocked binds every target with a listen backlog of 0, never
// accepts, and fills the accept queue until a connection attempt goes
// unanswered: from then on the kernel drops every SYN to that address.
func (v *vpn) silenceLocked() error { return v.silenceTargetsLocked(v.targets()) }

func (v *vpn) silenceTargetsLocked(ts []vpnTarget) error {
	for _, t := range ts {
		ap, err := netip.ParseAddrPort(t.addr)
		if err != nil {
			return err
		}
		// Close-on-exec under ForkLock, as package net does where SOCK_CLOEXEC
		// does not exist (macOS): the lab forks sshd processes.
		syscall.ForkLock.RLock()
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err == nil {
			syscall.CloseOnExec(fd)
		}
		syscall.ForkLock.RUnlock()
		if err != nil {
			return err
		}
		v.silent = append(v.silent, fd)
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
			return listenErr(t.addr, err)
		}
		if err := syscall.Listen(fd, 0); err != nil {
			return listenErr(t.addr, err)
		}
		silent := false
		for range 16 {
			c, err := net.DialTimeout("tcp", t.addr, 200*time.Millisecond)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					silent = true
					break
				}
				return fmt.Errorf("lab: filling the accept queue of %s: %w", t.addr, err)
			}
			v.fillers = append(v.fillers, c)
		}
		if !silent {
			return fmt.Errorf("lab: %s still answers after 16 queued connections; silence cannot be modelled", t.addr)
		}
	}
	return nil
}

func (v *vpn) teardownLocked() {
	for _, ln := range v.listeners {
		ln.Close()
	}
	v.listeners = nil
	for c := range v.relayed {
		c.Close()
	}
	for _, c := range v.fillers {
		c.Close()
	}
	v.fillers = nil
	for _, fd := range v.silent {
		syscall.Close(fd)
	}
	v.silent = nil
}

// stopped ends the connections relayed to instance id: EC2 stopping an
// instance shuts its OS down, which ends every TCP connection to it (the
// Session Manager side ends its sessions the same way: mgs.TerminateTarget).
func (v *vpn) stopped(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for c, inst := range v.relayed {
		if inst.spec.ID == id {
			c.Close()
			n++
		}
	}
	if n > 0 {
		v.l.log.Info("lab: VPN: instance stopped; its relayed connections closed", "instance", id, "connections", n/2)
	}
}

// VPNStatus is the VPN model's state.
type VPNStatus struct {
	State     string   `json:"state"`
	Addresses []string `json:"addresses"` // private address:port pairs the model covers
	Relayed   int64    `json:"relayed"`   // connections relayed since the lab started
	Open      int      `json:"open"`      // relayed connections open now
}

func (v *vpn) status() VPNStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := VPNStatus{State: v.state, Relayed: v.accepted, Open: len(v.relayed) / 2}
	for _, t := range v.targets() {
		s.Addresses = append(s.Addresses, t.addr)
	}
	return s
}

func (v *vpn) close() {
	v.mu.Lock()
	v.teardownLocked()
	v.state = VPNRefuse
	v.mu.Unlock()
}

// SetVPN moves the lab's VPN model to VPNUp, VPNRefuse or VPNSilence. Every
// connection relayed so far is closed.
func (l *Lab) SetVPN(state string) error { return l.vpn.set(state) }

// VPN reports the VPN model's state.
func (l *Lab) VPN() VPNStatus { return l.vpn.status() }
