// Package sshconn makes an SSH client connection over a devgate tunnel, in
// process: tunnel.Dial gives a byte stream to the instance's sshd, and this
// package runs golang.org/x/crypto/ssh over it with devgate's pushed key,
// checking the host key against devgate's known_hosts with accept-new
// semantics (pin on first use under the instance id, refuse a changed key).
//
// It also opens an SFTP client on the connection and runs commands. It does
// not dial AWS itself (tunnel does) and does not move files (transfer does);
// its one AWS question is after a refused login (AuthRefusedError): which
// user the instance is meant for (awsapi.ImageUser), for the hint.
package sshconn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/tunnel"
)

// Stream is what tunnel.Dial returns: a byte stream to port 22 of the instance.
type Stream interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// Client is one SSH connection (and its SFTP subsystem) over one stream.
type Client struct {
	SSH  *ssh.Client
	SFTP *sftp.Client
	// InstanceID is the host name the key was checked under.
	InstanceID string
	// Path is the path of the stream (tunnel.PathDirect or tunnel.PathSSM; "" when not from tunnel).
	Path string
	// Packet is the length in bytes of each SFTP read and write request.
	Packet    int
	stream    Stream
	closeOnce sync.Once
}

// Config of one connection.
type Config struct {
	User       string
	Signer     ssh.Signer
	KnownHosts string // devgate's known_hosts file
	// Lock serialises known_hosts updates between connections of one process.
	Lock *sync.Mutex
	// Timeout bounds the SSH handshake (default 60 s).
	Timeout time.Duration
	// AskLimits asks the SFTP server its limits (limits@openssh.com, on the
	// SFTP channel itself before pkg/sftp takes it: one more round trip) and
	// reads and writes in packets of up to 256 KiB instead of 32 KiB when it
	// answers: an eighth of the requests for a large file, each of which
	// costs a packet and system calls on both sides. A server without the
	// extension gets 32 KiB.
	AskLimits bool
	// Packet, when > 0, is the SFTP read and write length to use without
	// asking (a length an earlier connection to the same server learnt).
	Packet int
}

// HostKeyError is a host key that differs from the pinned one.
type HostKeyError struct {
	Host string
	Err  error
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("host key of %s changed: %v", e.Host, e.Err)
}
func (e *HostKeyError) Unwrap() error { return e.Err }

// AuthRefusedError is a login the instance's sshd refused: the key devgate
// pushed for User (EC2 Instance Connect) was offered for User and not
// accepted — User does not exist on the image, or sshd does not let it in
// (AllowUsers, PermitRootLogin), or the key expired before it was offered.
type AuthRefusedError struct {
	Instance string
	User     string
	// ImageUser is the user the instance is meant to be logged in as (its
	// devgate:user tag, else its image's default user: awsapi.ImageUser),
	// and ImageWhy where that comes from ("image: Ubuntu"); "" when unknown.
	ImageUser, ImageWhy string
	Err                 error // x/crypto/ssh's error
}

func (e *AuthRefusedError) Error() string {
	return fmt.Sprintf("the key was pushed for %s; the instance refused %s", e.User, e.User)
}
func (e *AuthRefusedError) Unwrap() error { return e.Err }

// RefusedError classifies a refused login (exit code 17, session refused)
// with a hint that names the user to try when the image's is known.
func RefusedError(e *AuthRefusedError) error {
	var hint string
	switch {
	case e.ImageUser != "" && e.ImageUser != e.User:
		hint = fmt.Sprintf("check the user name (image default: %s, from %s): --user %s, or %s@<target>", e.ImageUser, e.ImageWhy, e.ImageUser, e.ImageUser)
	case e.ImageUser != "":
		hint = fmt.Sprintf("check the user name: %s is the instance's default (%s), so its sshd refuses it (AllowUsers, PermitRootLogin?); `devgate doctor` checks more", e.User, e.ImageWhy)
	default:
		hint = "check the user name (--user, or user@<target>; the image's default: ec2-user on Amazon Linux, ubuntu on Ubuntu, admin on Debian)"
	}
	return &exitcode.Error{Class: exitcode.SessionRefused, Msg: "ssh login to " + e.Instance, Hint: hint, Err: e}
}

// KnownHostsError is a line of devgate's known_hosts that does not parse.
type KnownHostsError struct {
	Path string
	Line int // 1-based
	Err  error
}

func (e *KnownHostsError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}
func (e *KnownHostsError) Unwrap() error { return e.Err }

// checkKnownHosts finds the first line of the known_hosts file at path that
// ssh.ParseKnownHosts rejects (blank lines and comments are fine).
func checkKnownHosts(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if _, _, _, _, _, err := ssh.ParseKnownHosts(line); err != nil {
			return &KnownHostsError{Path: path, Line: i + 1, Err: err}
		}
	}
	return nil
}

// NewClient runs the SSH handshake over s for the host instanceID and opens SFTP.
func NewClient(ctx context.Context, s Stream, instanceID string, c Config) (*Client, error) {
	if c.Timeout <= 0 {
		c.Timeout = time.Minute
	}
	if c.Lock == nil {
		c.Lock = &sync.Mutex{}
	}
	var offered atomic.Bool // the key was offered: the server's host key was accepted and it answered "none"
	cfg := &ssh.ClientConfig{
		User: c.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			offered.Store(true)
			return []ssh.Signer{c.Signer}, nil
		})},
		HostKeyCallback: acceptNew(c.KnownHosts, c.Lock),
		Timeout:         c.Timeout,
	}
	conn := newStreamConn(s)
	type result struct {
		cc    ssh.Conn
		chans <-chan ssh.NewChannel
		reqs  <-chan *ssh.Request
		err   error
	}
	done := make(chan result, 1)
	go func() {
		cc, chans, reqs, err := ssh.NewClientConn(conn, instanceID+":22", cfg)
		done <- result{cc, chans, reqs, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		s.Close()
		<-done
		return nil, ctx.Err()
	case <-time.After(c.Timeout):
		s.Close()
		<-done
		return nil, exitcode.New(exitcode.TunnelLost, "retry; check the instance with `devgate doctor`", "ssh handshake with %s timed out after %s", instanceID, c.Timeout)
	}
	if r.err != nil {
		s.Close()
		var kh *KnownHostsError
		if errors.As(r.err, &kh) {
			return nil, exitcode.Wrap(kh, exitcode.Config,
				fmt.Sprintf("fix or delete line %d of %s (devgate pins the instance's key again on the next connection)", kh.Line, kh.Path),
				"%s line %d is not a known_hosts entry", kh.Path, kh.Line)
		}
		var hk *HostKeyError
		if errors.As(r.err, &hk) {
			return nil, exitcode.Wrap(hk, exitcode.SessionRefused,
				"if the instance was rebuilt, remove its line from "+c.KnownHosts, "refusing to connect")
		}
		if offered.Load() && conn.ioErr() == nil {
			// The key went out and the server answered, and not with
			// success: it refused the key for this user (no such user on
			// the image, or sshd does not let it in).
			return nil, RefusedError(&AuthRefusedError{Instance: instanceID, User: c.User, Err: r.err})
		}
		return nil, exitcode.Wrap(r.err, exitcode.SessionRefused, "check --user (the OS user must exist on the instance)", "ssh to %s failed", instanceID)
	}
	cl := &Client{SSH: ssh.NewClient(r.cc, r.chans, r.reqs), InstanceID: instanceID, stream: s}
	sc, packet, err := openSFTP(ctx, cl.SSH, c.Packet, c.AskLimits && c.Packet <= 0)
	if err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, exitcode.Wrap(err, exitcode.SessionRefused, "the instance's sshd needs the sftp subsystem", "cannot start sftp on %s", instanceID)
	}
	cl.Packet = packet
	cl.SFTP = sc
	return cl, nil
}

// sftpReadBuffer is the buffer between the SFTP subsystem's channel and
// pkg/sftp. x/crypto/ssh sends a window adjustment (one SSH packet, one write
// system call here and a wake-up of the instance's sshd) for every Read of a
// channel, and pkg/sftp reads each SFTP packet in two or three small Reads
// (its 4-byte length, then the body, which spans two SSH packets for a 32 KiB
// read): reading the channel through this buffer makes that one adjustment
// per Read of up to this many bytes of whatever has arrived.
const sftpReadBuffer = 256 << 10

// openSFTP starts the sftp subsystem on conn, as sftp.NewClient does, with
// its channel read through a buffer (sftpReadBuffer), 64 concurrent requests
// per file, concurrent reads and writes, and reads and writes of packet
// bytes each (DefaultPacket when packet <= 0; pkg/sftp's concurrent ReadAt
// takes a short answer for the end of the file). With ask, it first asks
// the server's limits on that same channel (initLimits: its INIT, VERSION
// and limits@openssh.com request; pkg/sftp then gets the VERSION it read
// and its own INIT is dropped, skipInit) and uses the packet length they
// allow: no second channel, so no second sftp-server and no second run of
// the user's login shell, which sshd starts for every subsystem. It returns
// the packet length used.
func openSFTP(ctx context.Context, conn *ssh.Client, packet int, ask bool) (*sftp.Client, int, error) {
	if packet <= 0 {
		packet = DefaultPacket
	}
	s, err := conn.NewSession()
	if err != nil {
		return nil, 0, err
	}
	pw, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	pr, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		s.Close()
		return nil, 0, err
	}
	var rd io.Reader = bufio.NewReaderSize(pr, sftpReadBuffer)
	var wr io.WriteCloser = pw
	if ask {
		type result struct {
			ver []byte
			l   SFTPLimits
			err error
		}
		done := make(chan result, 1)
		go func() {
			ver, l, err := initLimits(rd, pw)
			done <- result{ver, l, err}
		}()
		var res result
		select {
		case res = <-done:
		case <-ctx.Done():
			s.Close()
			<-done
			return nil, 0, ctx.Err()
		}
		switch {
		case res.err == nil:
			packet = res.l.Packet()
		case errors.Is(res.err, ErrNoLimits):
		default:
			// An answer that does not decode: this channel is out of
			// step, start a plain one.
			s.Close()
			return openSFTP(ctx, conn, DefaultPacket, false)
		}
		rd, wr = io.MultiReader(bytes.NewReader(res.ver), rd), &skipInit{w: pw}
	}
	c, err := sftp.NewClientPipe(rd, wr,
		sftp.MaxConcurrentRequestsPerFile(64), sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true), sftp.MaxPacketUnchecked(packet))
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	return c, packet, nil
}

// Err is why the tunnel under the connection ended, waiting up to wait for
// it to end: the data channel's classified error (such as the service's
// answer that the session no longer exists), or nil when the tunnel still
// runs or does not say (a stream that is not a *tunnel.Conn).
func (c *Client) Err(wait time.Duration) error {
	s, ok := c.stream.(interface {
		Done() <-chan struct{}
		Err() error
	})
	if !ok {
		return nil
	}
	select {
	case <-s.Done():
	case <-time.After(wait):
	}
	return s.Err()
}

// Close closes SSH (and with it the stream), then SFTP. The SSH connection
// goes first: SFTP's Close waits for its reader, which on a paced session
// would first receive every answer still on its way (seconds of them for a
// chunk in flight); with the connection gone the requests in flight fail
// at once. Calls after the first wait for it and do nothing.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.SSH.Close()
		if c.SFTP != nil {
			c.SFTP.Close()
		}
		c.stream.Close()
	})
	return nil
}

// Output runs cmd on the instance and returns its stdout; a non-zero exit is
// an error carrying stderr.
func (c *Client) Output(ctx context.Context, cmd string, stdin []byte) ([]byte, error) {
	s, err := c.SSH.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if stdin != nil {
		s.Stdin = bytes.NewReader(stdin)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("remote %q: %w: %s", cmd, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}

// CreatePrivate makes p on the instance an empty file that only its owner
// may read or write (0600), truncating it (and taking away others' access)
// if it exists. SFTP's open cannot pass a mode in pkg/sftp and the server's
// default is 0644, so it runs `umask 077` in a shell. A missing directory is
// an fs.ErrNotExist, a file or directory that may not be written an
// fs.ErrPermission (both as *fs.PathError).
func (c *Client) CreatePrivate(ctx context.Context, p string) error {
	script := `umask 077; p=` + shquote.Quote(p) + `; d=$(dirname -- "$p")
[ -d "$d" ] || exit 2
if [ -e "$p" ]; then chmod 600 -- "$p" 2>/dev/null || exit 3; fi
{ : > "$p"; } 2>/dev/null || exit 3`
	_, err := c.Output(ctx, script, nil)
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitStatus() {
		case 2:
			return &fs.PathError{Op: "create", Path: p, Err: fs.ErrNotExist}
		case 3:
			return &fs.PathError{Op: "create", Path: p, Err: fs.ErrPermission}
		}
	}
	return err
}

// acceptNew is a HostKeyCallback with ssh's StrictHostKeyChecking=accept-new:
// an unknown host is pinned, a known host must present a known key.
func acceptNew(path string, mu *sync.Mutex) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		mu.Lock()
		defer mu.Unlock()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				return err
			}
		}
		if err := checkKnownHosts(path); err != nil {
			return err
		}
		cb, err := knownhosts.New(path)
		if err != nil {
			return fmt.Errorf("known_hosts %s: %w", path, err)
		}
		// The stream has no address: pin and check under the instance id only.
		err = cb(hostname, &net.TCPAddr{IP: net.IPv4zero, Port: 22}, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
			return err
		case errors.As(err, &ke):
			return &HostKeyError{Host: hostname, Err: err}
		}
		return err
	}
}

// streamReadBuffer is the read buffer of streamConn. x/crypto/ssh reads the
// stream through a 4 KiB bufio.Reader, which hands reads of a packet's body
// (up to 32 KiB) straight to the stream: two or more read system calls per
// packet on the direct path. Through this buffer one system call takes in
// whatever the socket holds, up to this many bytes.
const streamReadBuffer = 128 << 10

// streamConn adapts a tunnel stream to net.Conn (deadlines are not supported;
// the tunnel has its own timeouts), its reads buffered (streamReadBuffer).
// It keeps the first error of a read or write before Close (ioErr): a
// handshake that failed with the stream intact was the server's answer.
type streamConn struct {
	s      Stream
	r      *bufio.Reader
	err    atomic.Pointer[error]
	closed atomic.Bool
}

func newStreamConn(s Stream) *streamConn {
	return &streamConn{s: s, r: bufio.NewReaderSize(s, streamReadBuffer)}
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && !c.closed.Load() {
		c.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	n, err := c.s.Write(p)
	if err != nil && !c.closed.Load() {
		c.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// ioErr is the first read or write error of the stream (nil: none yet).
func (c *streamConn) ioErr() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *streamConn) Close() error {
	c.closed.Store(true) // what fails from now on failed because of this
	return c.s.Close()
}

func (c *streamConn) LocalAddr() net.Addr                { return tunnelAddr("local") }
func (c *streamConn) RemoteAddr() net.Addr               { return tunnelAddr("instance") }
func (c *streamConn) SetDeadline(t time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return nil }

type tunnelAddr string

func (a tunnelAddr) Network() string { return "ssm" }
func (a tunnelAddr) String() string  { return string(a) }

var _ Stream = (*tunnel.Conn)(nil)
