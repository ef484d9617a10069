// Package tunnel runs devgate's connect flow (docs/product.md "connect"):
// resolve the target, take the warm path (push the key and StartSession at
// once) when the instance is believed running, otherwise describe, start,
// wait for running and for the SSM agent, push the key, StartSession
// (riding out TargetNotConnected), and open the data channel. It returns a
// stream to the target port.
//
// It prints nothing itself: progress goes through Options.Progress. It does
// not parse ssh configs or flags (cli does) and does not know the wire
// format (datachannel does).
package tunnel

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2instanceconnect"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/xtaci/smux"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/filelock"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// Documents devgate can tunnel through.
const (
	DocSSH            = "AWS-StartSSHSession"
	DocPortForwarding = "AWS-StartPortForwardingSession"
	// DocPortForwardingRemoteHost forwards to Options.Host:Port as the instance reaches it.
	DocPortForwardingRemoteHost = "AWS-StartPortForwardingSessionToRemoteHost"
)

// KeyPushReuse is how long a pushed key is trusted to still be on the
// instance (EC2 Instance Connect keeps it 60 s).
const KeyPushReuse = 40 * time.Second

// Options configure one Dial.
type Options struct {
	Target string
	Port   int
	User   string // OS user the key is pushed for
	// PublicKey is the authorized_keys line to push ("" skips the push).
	PublicKey string
	Document  string // DocSSH (default) or DocPortForwarding
	NoStart   bool
	// Timeout bounds the whole wait for the instance, its agent and the session (default 10 min).
	Timeout       time.Duration
	ResumeTimeout time.Duration
	// HoldThread is datachannel.Config.HoldThread: only for a process
	// that runs this one session on one P (devgate connect).
	HoldThread bool
	// Liveness is datachannel.Config.Liveness (0: its default).
	Liveness time.Duration
	Resolve  awsapi.ResolveOptions
	// StateDir holds the key-push stamps and their locks ("" disables the push cache).
	StateDir string
	// Progress receives one line per step.
	Progress func(format string, args ...any)
	Logger   *slog.Logger
	// OnReconnect is passed to the data channel.
	OnReconnect func(err error)
	// Host is the remote host of DocPortForwardingRemoteHost.
	Host string
	// KeyAuthorized says PublicKey is already authorized on the target
	// (connect --key): a managed node (mi-…), which EC2 Instance Connect
	// cannot reach, is then connected to without a push.
	KeyAuthorized bool
	// Reason is StartSession's Reason, shown in CloudTrail and the Session
	// Manager console (at most 256 characters; longer is cut; "" sends none).
	Reason string
	// OnResolved is told the instance a name or alias resolved to (not called
	// for an instance id given directly), before any session is opened.
	OnResolved func(t awsapi.Target)
	// NoStream leaves a port-forwarding session without an smux stream:
	// the caller multiplexes it (see OpenSession). A direct connection has no
	// session: OpenSession's caller checks Conn.Path.
	NoStream bool
	// Path is PathAuto (""), PathDirect or PathSSM (see direct.go).
	// DocPortForwardingRemoteHost always goes through Session Manager.
	Path string
	// DirectBudget is how long PathAuto waits for the direct path (default DefaultDirectBudget).
	DirectBudget time.Duration
	// Shell makes it a shell-type session (see OpenShell): Document is any
	// Standard_Stream, InteractiveCommands or NonInteractiveCommands
	// document, Parameters its parameters, no port and no key push.
	Shell      bool
	Parameters map[string][]string
	// OnPayload receives the agent's StdErr and ExitCode payloads (shell sessions).
	OnPayload func(pt ssmmsg.PayloadType, payload []byte)
}

// Conn is an open tunnel to the target port, through Session Manager
// (Path PathSSM) or straight to the private address (PathDirect).
type Conn struct {
	InstanceID string
	SessionID  string // "" on the direct path
	// Path is PathDirect or PathSSM: the path this connection took.
	Path string
	// Addr is the private address:port of a direct connection.
	Addr      string
	sess      *datachannel.Session
	stream    io.ReadWriteCloser // the smux stream in port-forwarding mux mode, else sess (or the TCP connection)
	mux       *smux.Session
	ssm       *ssm.Client
	log       *slog.Logger
	nc        net.Conn        // the direct path's TCP connection
	bg        *sync.WaitGroup // a race's abandoned Session Manager attempt
	lateStop  func()          // Session Manager won a race: stops the direct attempt still running (lateAnswer)
	closed    chan struct{}   // direct: closed by Close
	closeOnce sync.Once
	// resumeErr is the last ResumeSession failure whose class is Credentials.
	resumeErr atomic.Pointer[error]
}

// Err is why the session ended (nil while it runs, and on the direct path:
// TCP says it by EOF): the data channel's error, except that a session lost
// because the credentials could no longer resume it ends with that
// credentials error (exit 10 and its hint), not with a network one.
func (c *Conn) Err() error {
	if c.sess == nil {
		return nil
	}
	err := c.sess.Err()
	if err == nil {
		return nil
	}
	var xe *exitcode.Error
	if errors.As(err, &xe) && xe.Class == exitcode.TunnelLost {
		if p := c.resumeErr.Load(); p != nil {
			return exitcode.Wrap(err, exitcode.Credentials, exitcode.HintOf(*p),
				"the session was lost and could not be resumed: %v", *p)
		}
	}
	return err
}

func (c *Conn) Read(p []byte) (int, error)  { return c.stream.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.stream.Write(p) }

// WriteTo writes what the tunnel receives to w until it ends, as
// io.Copy(w, c) would: through the data channel's WriteTo when the stream
// is the data channel itself (its reader writes to a datachannel.TryWriter
// directly), else by copying the stream.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if c.sess != nil && c.stream == io.ReadWriteCloser(c.sess) {
		return c.sess.WriteTo(w)
	}
	return io.CopyBuffer(w, c.stream, make([]byte, 32<<10))
}

// Session is the underlying data channel (nil on the direct path).
func (c *Conn) Session() *datachannel.Session { return c.sess }

// Done is closed when the session ended (direct: when Close was called).
func (c *Conn) Done() <-chan struct{} {
	if c.sess == nil {
		return c.closed
	}
	return c.sess.Done()
}

// CloseWrite waits until every byte written reached the agent (direct: half-closes the TCP connection).
func (c *Conn) CloseWrite(ctx context.Context) error {
	if c.nc != nil {
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
		if dc, ok := c.nc.(*directConn); ok {
			if tc, ok := dc.Conn.(*net.TCPConn); ok {
				return tc.CloseWrite()
			}
		}
		return nil
	}
	return c.sess.CloseWrite(ctx)
}

// TerminateWait bounds the TerminateSession API call of Close and Terminate.
const TerminateWait = 2 * time.Second

// Close ends the session as Terminate does, on a fresh context.
func (c *Conn) Close() error { return c.Terminate(context.Background()) }

// Terminate ends the session on the service: the TerminateSession flag on
// the data channel and, at the same time, the TerminateSession API. It
// returns within about TerminateWait even when ctx is already cancelled (a
// signal cancelled it) or the service is silent: the API call runs on
// context.WithoutCancel(ctx) with its own deadline. Only the first call does
// anything. On the direct path it closes the TCP connection and waits (a
// few seconds at most) until the Session Manager attempt that lost the race
// is terminated.
func (c *Conn) Terminate(ctx context.Context) error {
	var err error
	c.closeOnce.Do(func() {
		if c.nc != nil {
			err = c.nc.Close()
			close(c.closed)
			bgWait(c.bg)
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TerminateWait)
		defer cancel()
		api := make(chan error, 1)
		go func() {
			_, err := c.ssm.TerminateSession(actx, &ssm.TerminateSessionInput{SessionId: aws.String(c.SessionID)})
			api <- err
		}()
		if c.mux != nil {
			c.mux.Close()
		}
		c.sess.Close()
		if err = <-api; err != nil {
			err = awsapi.Classify(err, "ssm:TerminateSession")
			c.log.Warn("tunnel: TerminateSession failed", "session", c.SessionID, "err", err)
		} else {
			c.log.Debug("tunnel: session terminated", "session", c.SessionID)
		}
		if c.lateStop != nil {
			c.lateStop()
		}
	})
	return err
}

type dialer struct {
	cfg   aws.Config
	o     Options
	ec2   *ec2.Client
	ssm   *ssm.Client
	eic   *ec2instanceconnect.Client
	start time.Time
	log   *slog.Logger
	// stateMu serialises the direct-path state file of this Dial.
	stateMu sync.Mutex
	// knownIP is the private address seen by this Dial's DescribeInstances ("" unknown).
	knownIP string
	// saidPush: the push line is printed once per Dial (warm and cold paths may both push).
	saidPush    bool
	saidSession bool
}

// Dial runs the connect flow and returns an open tunnel.
func Dial(ctx context.Context, cfg aws.Config, o Options) (*Conn, error) {
	if o.Document == "" {
		o.Document = DocSSH
	}
	if !o.Shell && o.Document != DocSSH && o.Document != DocPortForwarding && o.Document != DocPortForwardingRemoteHost {
		return nil, exitcode.New(exitcode.Usage, "use "+DocSSH+" or "+DocPortForwarding, "unsupported document %q", o.Document)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	path, err := ParsePath(o.Path)
	if err != nil {
		return nil, err
	}
	o.Path = path
	if o.Document == DocPortForwardingRemoteHost || o.Shell {
		// The remote host is not an address EC2 reports for the instance; a shell session has no port.
		o.Path = PathSSM
	}
	d := &dialer{cfg: cfg, o: o, ec2: ec2.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg),
		eic: ec2instanceconnect.NewFromConfig(cfg), start: time.Now(), log: o.Logger}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	t, err := awsapi.Resolve(ctx, cfg, o.Target, o.Resolve)
	if err != nil {
		return nil, d.deadline(ctx, err, exitcode.NotFound)
	}
	c, err := d.dial(ctx, t)
	if t.Cached && (exitcode.Code(err) == int(exitcode.Terminated) || exitcode.Code(err) == int(exitcode.NotFound)) {
		// The cached instance is gone (replaced under the same name): ask AWS again.
		d.log.Info("tunnel: cached instance is gone; resolving again", "target", o.Target, "id", t.ID, "err", err)
		awsapi.Forget(o.Resolve.CacheFile, o.Target, time.Now())
		if t, err = awsapi.Resolve(ctx, cfg, o.Target, o.Resolve); err != nil {
			return nil, d.deadline(ctx, err, exitcode.NotFound)
		}
		c, err = d.dial(ctx, t)
	}
	return c, err
}

func (d *dialer) dial(ctx context.Context, t awsapi.Target) (*Conn, error) {
	if d.o.OnResolved != nil && !awsapi.InstanceIDRe.MatchString(d.o.Target) {
		d.o.OnResolved(t)
	}
	if IsManagedNode(t.ID) {
		return d.managedNode(ctx, t.ID)
	}
	var c *Conn
	var err error
	if t.State == "" || t.State == "running" {
		c, err = d.viaPath(ctx, t.ID)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errNotReady) {
			return nil, d.deadline(ctx, err, exitcode.SessionRefused)
		}
		d.log.Info("tunnel: warm path failed; checking the instance", "err", err)
	}
	c, err = d.cold(ctx, t)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// errNotReady marks warm-path failures that the cold path can fix.
var errNotReady = errors.New("instance or agent not ready")

// deadline turns a context deadline into a timeout error of class c.
func (d *dialer) deadline(ctx context.Context, err error, c exitcode.Class) error {
	if ctx.Err() == context.DeadlineExceeded && !isClassified(err) {
		return exitcode.Wrap(err, c, "raise --timeout, or check the instance with `devgate doctor`",
			"gave up after %s", d.o.Timeout)
	}
	return err
}

func isClassified(err error) bool {
	var e *exitcode.Error
	return errors.As(err, &e)
}

func (d *dialer) elapsed() string {
	s := time.Since(d.start).Seconds()
	if s < 10 {
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	}
	return strconv.FormatFloat(s, 'f', 1, 64) + " s"
}

func (d *dialer) progress(format string, args ...any) {
	d.o.Progress("[%s] "+format, append([]any{d.elapsed()}, args...)...)
}

// warm pushes the key and calls StartSession concurrently (one round trip).
func (d *dialer) warm(ctx context.Context, id string) (*Conn, error) {
	var wg sync.WaitGroup
	var pushErr error
	if d.o.PublicKey != "" {
		wg.Add(1)
		go func() { defer wg.Done(); pushErr = d.pushKey(ctx, id) }()
	}
	if !d.saidSession {
		if d.o.Shell {
			d.progress("Starting session (%s)…", d.o.Document)
		} else {
			d.progress("Starting session (%s, port %d)…", d.o.Document, d.o.Port)
		}
		d.saidSession = true
	}
	out, err := d.startSession(ctx, id)
	wg.Wait()
	if err != nil {
		if out != nil {
			d.terminate(aws.ToString(out.SessionId))
		}
		return nil, err
	}
	if pushErr != nil {
		d.terminate(aws.ToString(out.SessionId))
		return nil, pushErr
	}
	c, err := d.open(ctx, id, out)
	if err != nil {
		return nil, err
	}
	d.progress("Connected in %s (session %s)", d.elapsed(), c.SessionID)
	return c, nil
}

// viaPath connects to the running instance id by the path of Options.Path.
func (d *dialer) viaPath(ctx context.Context, id string) (*Conn, error) {
	switch d.o.Path {
	case PathSSM:
		return d.warm(ctx, id)
	case PathDirect:
		return d.direct(ctx, id)
	}
	return d.race(ctx, id)
}

// cold walks the instance to running and its agent to Online, then connects.
func (d *dialer) cold(ctx context.Context, t awsapi.Target) (*Conn, error) {
	id := t.ID
	started := false
	poll := newPoller()
	for {
		rows, err := awsapi.Describe(ctx, d.cfg, true, []string{id}, time.Now())
		if err != nil {
			return nil, d.deadline(ctx, err, exitcode.StartTimeout)
		}
		if len(rows) != 1 {
			return nil, exitcode.New(exitcode.NotFound, "run `devgate ls` to see the instances", "instance %s not found", id)
		}
		st := rows[0].State
		if rows[0].PrivateIP != "" {
			d.knownIP = rows[0].PrivateIP
		}
		switch st {
		case "running":
			if started {
				d.progress("Instance %s is running", id)
			}
		case "terminated", "shutting-down":
			return nil, exitcode.New(exitcode.Terminated, "launch a new instance; a terminated one cannot be started", "instance %s is %s", id, st)
		case "stopped":
			if d.o.NoStart {
				return nil, exitcode.New(exitcode.StartTimeout, "run `devgate start "+d.o.Target+"` or drop --no-start", "instance %s is stopped and --no-start was given", id)
			}
			d.progress("Starting instance %s (stopped)", id)
			if _, err := d.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
				return nil, d.deadline(ctx, awsapi.Classify(err, "ec2:StartInstances"), exitcode.StartTimeout)
			}
			started = true
			poll.reset()
		case "stopping":
			d.progress("Waiting for %s to finish stopping before starting it", id)
		case "pending":
			if !started {
				d.progress("Waiting for %s to be running (pending)", id)
				started = true
			}
		}
		if st == "running" {
			break
		}
		if err := poll.wait(ctx); err != nil {
			return nil, exitcode.Wrap(err, exitcode.StartTimeout, "raise --timeout or look at the instance in the EC2 console",
				"instance %s did not reach running within %s (last state %s)", id, d.o.Timeout, st)
		}
	}
	awsapi.Remember(d.o.Resolve.CacheFile, d.o.Target, awsapi.Target{ID: id, Name: t.Name, State: "running"}, time.Now())
	switch {
	case d.o.Path == PathDirect: // the direct path needs no agent
	case d.o.Path == PathAuto && !LoadDirectState(d.statePath(id)).FailedRecently(time.Now()):
		c, err := d.directOrAgent(ctx, id)
		if err != nil || c != nil {
			return c, err
		}
	default:
		if err := d.waitAgent(ctx, id); err != nil {
			return nil, err
		}
	}
	// The agent is Online; StartSession may still say TargetNotConnected for a while.
	poll.reset()
	said := false
	for {
		c, err := d.viaPath(ctx, id)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errNotReady) {
			return nil, d.deadline(ctx, err, exitcode.SessionRefused)
		}
		if !said {
			d.progress("SSM agent is online but not yet accepting sessions; retrying")
			said = true
		}
		if werr := poll.wait(ctx); werr != nil {
			return nil, exitcode.Wrap(err, exitcode.AgentOffline,
				"the agent reports Online but Session Manager cannot reach it; check its network (VPC endpoints, NAT) and `devgate doctor`",
				"StartSession kept answering TargetNotConnected for %s", d.o.Timeout)
		}
	}
}

func (d *dialer) waitAgent(ctx context.Context, id string) error {
	poll := newPoller()
	said := false
	for {
		m, err := awsapi.AgentStatus(ctx, d.cfg, []awsapi.Instance{{ID: id}})
		if err != nil {
			return d.deadline(ctx, err, exitcode.AgentOffline)
		}
		status := "not registered"
		if ii, ok := m[id]; ok {
			status = string(ii.PingStatus)
			if ii.PingStatus == ssmtypes.PingStatusOnline {
				if said {
					d.progress("SSM agent is online")
				}
				return nil
			}
		}
		if !said {
			d.progress("Waiting for SSM agent… (%s)", status)
			said = true
		}
		if err := poll.wait(ctx); err != nil {
			return exitcode.Wrap(err, exitcode.AgentOffline,
				"check that the SSM agent runs on the instance and that it has the AmazonSSMManagedInstanceCore role and a route to SSM",
				"the SSM agent of %s did not come online within %s (status %s)", id, d.o.Timeout, status)
		}
	}
}

func (d *dialer) startSession(ctx context.Context, id string) (*ssm.StartSessionOutput, error) {
	params := map[string][]string{"portNumber": {strconv.Itoa(d.o.Port)}}
	if d.o.Document == DocPortForwarding || d.o.Document == DocPortForwardingRemoteHost {
		params["localPortNumber"] = []string{"0"}
	}
	if d.o.Document == DocPortForwardingRemoteHost {
		params["host"] = []string{d.o.Host}
	}
	if d.o.Shell {
		params = d.o.Parameters
	}
	in := &ssm.StartSessionInput{Target: aws.String(id), DocumentName: aws.String(d.o.Document), Parameters: params}
	if r := []rune(strings.Join(strings.Fields(d.o.Reason), " ")); len(r) > 0 {
		in.Reason = aws.String(string(r[:min(len(r), 256)]))
	}
	out, err := d.callStartSession(ctx, in)
	if err == nil {
		return out, nil
	}
	var tnc *ssmtypes.TargetNotConnected
	if errors.As(err, &tnc) {
		return nil, fmt.Errorf("%w: StartSession: %v", errNotReady, err)
	}
	var inv *ssmtypes.InvalidDocument
	if errors.As(err, &inv) {
		return nil, exitcode.Wrap(err, exitcode.SessionRefused, "use --document "+DocPortForwarding+" if your account only allows that one",
			"Session Manager refused the document %s", d.o.Document)
	}
	if c := apiCode(err); c == "AccessDeniedException" || c == "AccessDenied" {
		return nil, exitcode.Wrap(err, exitcode.SessionRefused,
			"grant ssm:StartSession on the instance and the document "+d.o.Document+" (or try --document "+DocPortForwarding+")",
			"StartSession was denied")
	}
	return nil, awsapi.Classify(err, "ssm:StartSession")
}

// startSessionGrace is how long a StartSession call in flight may still
// answer after its caller gave up, so that the session it started can be
// terminated.
const startSessionGrace = 5 * time.Second

// callStartSession calls StartSession so that a caller giving up (Ctrl-C,
// cp done while a joining session starts, auto's direct path winning) does
// not leave a session the service started behind: the call is not cancelled
// with ctx but given startSessionGrace to answer, and a session it answers
// with after ctx ended is terminated. Cancelling the request instead loses
// the answer, and with it the only handle on the session.
func (d *dialer) callStartSession(ctx context.Context, in *ssm.StartSessionInput) (*ssm.StartSessionOutput, error) {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		var c2 context.CancelFunc
		cctx, c2 = context.WithDeadline(cctx, dl.Add(startSessionGrace))
		defer c2()
	}
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(startSessionGrace, cancel) })
	defer stop()
	out, err := d.ssm.StartSession(cctx, in)
	if ctx.Err() == nil {
		return out, err
	}
	if err == nil && out != nil {
		d.log.Info("tunnel: StartSession answered after the dial was abandoned; terminating its session", "session", aws.ToString(out.SessionId))
		d.terminate(aws.ToString(out.SessionId))
	}
	return nil, context.Cause(ctx)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func (d *dialer) terminate(sessionID string) {
	if sessionID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = d.ssm.TerminateSession(ctx, &ssm.TerminateSessionInput{SessionId: aws.String(sessionID)})
}

// pushKey sends the public key with EC2 Instance Connect, unless the same
// key went to the same instance and user less than KeyPushReuse ago. A file
// lock makes parallel connections push once.
func (d *dialer) pushKey(ctx context.Context, id string) error {
	push := func() error {
		if !d.saidPush {
			d.progress("Pushing SSH key for %s…", d.o.User)
			d.saidPush = true
		}
		_, err := d.eic.SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{InstanceId: aws.String(id),
			InstanceOSUser: aws.String(d.o.User), SSHPublicKey: aws.String(d.o.PublicKey)})
		if err == nil {
			return nil
		}
		switch apiCode(err) {
		case "EC2InstanceStateInvalidException", "EC2InstanceUnavailableException":
			return fmt.Errorf("%w: SendSSHPublicKey: %v", errNotReady, err)
		case "AccessDeniedException", "AccessDenied":
			return exitcode.Wrap(err, exitcode.KeyPushRefused, "grant ec2-instance-connect:SendSSHPublicKey for this instance and OS user",
				"EC2 Instance Connect refused the key push")
		case "InvalidArgsException", "EC2InstanceNotFoundException", "EC2InstanceTypeInvalidException", "AuthException":
			return exitcode.Wrap(err, exitcode.KeyPushRefused, "check --user (the OS user must exist on the instance) and the key (ed25519, ecdsa or RSA ≥ 2048)",
				"EC2 Instance Connect refused the key for user %s", d.o.User)
		}
		return awsapi.Classify(err, "ec2-instance-connect:SendSSHPublicKey")
	}
	if d.o.StateDir == "" {
		return push()
	}
	// The stamp names the endpoint and region too: two labs (or partitions) can share instance ids.
	sum := sha256.Sum256([]byte(d.o.PublicKey + "\n" + d.cfg.Region + "\n" + aws.ToString(d.cfg.BaseEndpoint)))
	dir := filepath.Join(d.o.StateDir, "pushed")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return push()
	}
	stamp := filepath.Join(dir, id+"-"+safeName(d.o.User)+"-"+hex.EncodeToString(sum[:8]))
	unlock, err := filelock.Lock(ctx, stamp+".lock", true)
	if err != nil {
		d.log.Warn("tunnel: key-push lock unavailable; pushing", "err", err)
		return push()
	}
	defer unlock()
	if st, err := os.Stat(stamp); err == nil && time.Since(st.ModTime()) < KeyPushReuse && time.Since(st.ModTime()) >= 0 {
		d.log.Debug("tunnel: key pushed recently; not pushing again", "age", time.Since(st.ModTime()))
		return nil
	}
	if err := push(); err != nil {
		return err
	}
	now := time.Now()
	if err := os.WriteFile(stamp, nil, 0o600); err == nil {
		_ = os.Chtimes(stamp, now, now)
	}
	return nil
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// open connects the data channel of a started session.
func (d *dialer) open(ctx context.Context, id string, out *ssm.StartSessionOutput) (*Conn, error) {
	sid := aws.ToString(out.SessionId)
	c := &Conn{InstanceID: id, SessionID: sid, Path: PathSSM, ssm: d.ssm, log: d.log}
	dcfg := datachannel.Config{
		StreamURL: aws.ToString(out.StreamUrl), SessionID: sid, Token: aws.ToString(out.TokenValue),
		ResumeTimeout: d.o.ResumeTimeout, Liveness: d.o.Liveness, Coalesce: datachannel.DefaultCoalesce, HoldThread: d.o.HoldThread,
		Logger: d.log, OnReconnect: d.o.OnReconnect,
		Resume: func(ctx context.Context) (string, error) {
			r, err := d.ssm.ResumeSession(ctx, &ssm.ResumeSessionInput{SessionId: aws.String(sid)})
			if err != nil && awsapi.SessionGone(err) {
				return "", &datachannel.GoneError{Err: awsapi.Classify(err, "ssm:ResumeSession")}
			}
			if err != nil {
				err = awsapi.Classify(err, "ssm:ResumeSession")
				var xe *exitcode.Error
				if errors.As(err, &xe) && xe.Class == exitcode.Credentials {
					c.resumeErr.Store(&err)
				}
				return "", err
			}
			c.resumeErr.Store(nil)
			return aws.ToString(r.TokenValue), nil
		},
		Header: d.signUpgrade,
	}
	dcfg.TLS, dcfg.Proxy = transportOf(d.cfg)
	if d.o.Shell {
		d.shellConfig(&dcfg, id)
	}
	sess, err := datachannel.Open(ctx, dcfg)
	if err != nil {
		d.terminate(sid)
		if awsapi.TLSTrustError(err) {
			return nil, exitcode.Wrap(err, exitcode.SessionRefused,
				"if a proxy or gateway inspects TLS, point AWS_CA_BUNDLE (or ca_bundle in the profile) at its CA certificate (PEM)",
				"the TLS certificate of the data channel (ssmmessages) is not trusted")
		}
		return nil, err
	}
	c.sess, c.stream = sess, sess
	if !d.o.NoStream && d.o.Document == DocPortForwarding && sess.Property("type") == "LocalPortForwarding" && ssmmsg.ClientChoosesMux(sess.AgentVersion()) {
		mcfg := smux.DefaultConfig()
		mcfg.Version = 1
		mcfg.KeepAliveDisabled = !ssmmsg.ClientSmuxKeepalive(sess.AgentVersion())
		ms, err := smux.Client(sess, mcfg)
		if err == nil {
			var st *smux.Stream
			st, err = ms.OpenStream()
			if err == nil {
				c.mux, c.stream = ms, st
			} else {
				ms.Close()
			}
		}
		if err != nil {
			c.Close()
			return nil, exitcode.Wrap(err, exitcode.SessionRefused, "", "could not open a stream in the port-forwarding session")
		}
	}
	return c, nil
}

// transportOf returns the TLS configuration (roots from AWS_CA_BUNDLE or the
// profile's ca_bundle, else the system's) and the proxy function
// (HTTPS_PROXY/NO_PROXY) of the SDK's HTTP client, for the data channel's
// WebSocket. nil, nil when the client is not the SDK's buildable one.
func transportOf(cfg aws.Config) (*tls.Config, func(*http.Request) (*url.URL, error)) {
	bc, ok := cfg.HTTPClient.(interface{ GetTransport() *http.Transport })
	if !ok {
		return nil, nil
	}
	tr := bc.GetTransport()
	var tc *tls.Config
	if tr.TLSClientConfig != nil {
		tc = tr.TLSClientConfig.Clone()
	}
	return tc, tr.Proxy
}

// signUpgrade SigV4-signs the WebSocket upgrade for service ssmmessages, as
// the official plugin 1.3.0.0 does (§2.2).
func (d *dialer) signUpgrade(ctx context.Context, url string) (http.Header, error) {
	if d.cfg.Credentials == nil {
		return nil, errors.New("no credentials")
	}
	creds, err := d.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme == "wss" {
		req.URL.Scheme = "https"
	} else if req.URL.Scheme == "ws" {
		req.URL.Scheme = "http"
	}
	const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptyHash, "ssmmessages", d.cfg.Region, time.Now()); err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, k := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := req.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return h, nil
}

// poller waits with a backoff that starts fast.
type poller struct{ next time.Duration }

func newPoller() *poller { return &poller{next: 250 * time.Millisecond} }
func (p *poller) reset() { p.next = 250 * time.Millisecond }

// delay is the next wait, and grows the one after it.
func (p *poller) delay() time.Duration {
	d := p.next
	p.next = min(p.next*3/2, 3*time.Second)
	return d
}

func (p *poller) wait(ctx context.Context) error {
	t := time.NewTimer(p.delay())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
