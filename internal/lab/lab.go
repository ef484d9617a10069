// Package lab is devgate-lab: a simulated AWS region on one loopback port.
//
// It answers the control-plane calls devgate makes (STS, EC2, EC2 Instance
// Connect, SSM) with AWS's wire protocols and error shapes, verifies SigV4
// against its own credentials, runs a real sshd per instance, and mounts the
// data-channel WebSocket and emulated agent of package mgs. Other services
// (ACM, Client VPN, SSM documents, S3) plug in through labapi.Registry. It
// models time (boot, agent, stop delays) and injects the faults of package
// faults. It is never linked into devgate itself.
package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/devgate/devgate/internal/lab/faults"
	"github.com/devgate/devgate/internal/lab/labapi"
	"github.com/devgate/devgate/internal/lab/labkms"
	"github.com/devgate/devgate/internal/lab/mgs"
	"github.com/devgate/devgate/internal/lab/sigv4"
	"github.com/devgate/devgate/internal/osuser"
)

// Default credentials and identity of a lab.
const (
	DefaultAccessKey = "AKIADEVGATELAB000001"
	DefaultSecret    = "devgate-lab-secret-key-do-not-use-in-aws0"
	DefaultRegion    = "us-east-1"
	DefaultAccount   = "123456789012"
)

// Service is a service that plugs into the lab's endpoint.
type Service interface {
	Register(r *labapi.Registry)
}

// Options configure a lab.
type Options struct {
	Dir       string // state: host keys, pushed keys, sshd configs and logs (required)
	Addr      string // listen address; default 127.0.0.1:0
	Region    string
	Account   string // 12-digit account id; default DefaultAccount
	AccessKey string
	Secret    string
	Instances []InstanceSpec // default: gpu1 running, gpu2 stopped
	Faults    faults.Config
	Logger    *slog.Logger
	// Services are extra services mounted on the endpoint (ACM, S3, …).
	Services []Service
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// VPNPorts are the instance ports besides 22 that the VPN model relays
	// (the security group's other ingress ports); see SetVPN.
	VPNPorts []int
	// TLS serves the endpoint (API and data channel) over HTTPS/WSS with a
	// certificate from the lab's own CA, written to Dir/ca.pem.
	TLS bool
	// Hostname, when set, is the name the lab puts in its URLs (Endpoint,
	// StartSession's StreamUrl) and in its TLS certificate instead of
	// 127.0.0.1: a name no resolver knows (e.g. "lab.devgate.test", RFC 2606
	// reserves .test), so that only a proxy that maps it to the listener can
	// reach the lab, as a corporate HTTPS_PROXY reaches AWS's endpoints for
	// clients without direct DNS or routes.
	Hostname string
	// SessionMinute is how long one minute of the preferences'
	// idleSessionTimeout and maxSessionDuration lasts (default a minute;
	// tests shrink it).
	SessionMinute time.Duration
}

// DefaultInstances is the fleet of a lab started without instances.
func DefaultInstances() []InstanceSpec {
	return []InstanceSpec{
		{Name: "gpu1", Type: "g5.xlarge", State: "running"},
		{Name: "gpu2", Type: "g5.2xlarge", State: "stopped"},
	}
}

// Lab is a running simulated region.
type Lab struct {
	opts     Options
	region   string
	account  string
	addr     string
	ln       net.Listener
	srv      *http.Server
	front    *front
	fleet    *fleet
	mgs      *mgs.Server
	kms      *labkms.Service
	reg      *labapi.Registry
	log      *slog.Logger
	sessions sync.Map
	vpn      *vpn
	admin    string   // token of the /_lab/ admin endpoint
	netBase  [2]byte  // x.y of the private addresses 127.10.x.y+i
	caPEM    []byte   // the CA of a TLS lab
	reasons  sync.Map // session id → StartSession's Reason

	mu     sync.Mutex
	fcfg   faults.Config
	denied map[string]bool
	// expiredKeys are access keys whose credentials have expired.
	expiredKeys map[string]bool
	tempKeys    map[string]tempKey // temporary credentials (SSO, AssumeRole)
	sso         ssoState
	usedCodes   map[string]bool // MFA codes already used (each is accepted once)
	closed      bool
}

// Start starts a lab: its sshd processes and its endpoint.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	if opts.Dir == "" {
		return nil, errors.New("lab: Options.Dir is required")
	}
	if err := opts.Faults.Validate(); err != nil {
		return nil, err
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.Account == "" {
		opts.Account = DefaultAccount
	}
	if opts.AccessKey == "" {
		opts.AccessKey, opts.Secret = DefaultAccessKey, DefaultSecret
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Instances == nil {
		opts.Instances = DefaultInstances()
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	l := &Lab{opts: opts, region: opts.Region, account: opts.Account, log: opts.Logger, fcfg: opts.Faults, denied: map[string]bool{}}
	l.sso = ssoState{clients: map[string]string{}, devices: map[string]*device{}, byCode: map[string]*device{},
		tokens: map[string]time.Time{}, tokenTTL: 8 * time.Hour}
	fc := l.opts.Faults
	l.mgs = mgs.New(mgs.Config{Faults: &fc, Logger: opts.Logger})
	l.fleet = &fleet{
		now:       opts.Now,
		bootDelay: func() time.Duration { return l.faults().BootDelay },
		stopDelay: func() time.Duration { return l.faults().StopDelay },
		agentDly:  func() time.Duration { return l.faults().AgentDelay },
		tncWindow: func() time.Duration { return l.faults().TNCWindow },
		onStop: func(id string) {
			l.mgs.TerminateTarget(id, "instance stopped")
			if l.vpn != nil {
				l.vpn.stopped(id)
			}
		},
		byID: map[string]*instance{},
	}
	// Private addresses: loopback standing in for the VPC's 10.x.y.z (see vpn.go),
	// random per lab so that labs running at once do not share addresses.
	l.netBase = [2]byte{byte(rand.IntN(256)), byte(10 + rand.IntN(200))}
	ids, err := loadIDs(opts.Dir)
	if err != nil {
		return nil, err
	}
	for i, spec := range opts.Instances {
		if spec.ID == "" {
			spec.ID = ids.idFor(spec.Name, i)
		}
		if _, err := l.addInstance(spec, i); err != nil {
			return nil, err
		}
	}
	if err := ids.save(); err != nil {
		return nil, err
	}
	for _, inst := range l.fleet.list {
		if err := l.startInstanceSSHD(ctx, inst); err != nil {
			l.stopSSHDs()
			return nil, err
		}
	}
	l.vpn = newVPN(l)
	l.admin = randomToken()
	l.reg = labapi.NewRegistry()
	l.registerEC2(l.reg)
	l.registerSTS(l.reg)
	l.registerSSM(l.reg)
	l.kms = labkms.New(l.region, l.account, l.userArn())
	l.kms.Register(l.reg)
	for _, s := range opts.Services {
		s.Register(l.reg)
	}
	l.front = &front{
		reg: l.reg,
		verifier: &sigv4.Verifier{Region: opts.Region, Now: opts.Now, Secret: func(k string) (string, bool) {
			if k == opts.AccessKey {
				return opts.Secret, true
			}
			if t, ok := l.tempKey(k); ok {
				return t.secret, true
			}
			return "", false
		}},
		unsigned: l.serveSSO,
		sessionToken: func(k string) (string, bool) {
			t, ok := l.tempKey(k)
			return t.token, ok
		},
		dataPath: l.mgs,
		admin:    &adminHandler{l: l},
		log:      opts.Logger,
		latency:  func() time.Duration { return l.faults().APILatency },
		throttle: func() float64 { return l.faults().ThrottleRate },
		rnd:      rand.New(rand.NewPCG(uint64(opts.Faults.Seed), 7)),
		calls:    map[string]int{},
		expired: func(k string) bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			if t, ok := l.tempKeys[k]; ok && !l.opts.Now().Before(t.expires) {
				return true
			}
			return l.expiredKeys[k]
		},
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		l.stopSSHDs()
		return nil, fmt.Errorf("lab: listen %s: %w", opts.Addr, err)
	}
	if opts.TLS {
		tcfg, caPEM, err := labTLS(opts.Dir, opts.Hostname, opts.Now())
		if err != nil {
			ln.Close()
			l.stopSSHDs()
			return nil, fmt.Errorf("lab: TLS: %w", err)
		}
		l.caPEM = caPEM
		ln = tls.NewListener(ln, tcfg)
	}
	l.ln, l.addr = ln, ln.Addr().String()
	l.srv = &http.Server{Handler: l.front, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug)} // TLS handshake refusals are expected in tests
	go l.srv.Serve(ln)
	return l, nil
}

func (l *Lab) faults() faults.Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fcfg
}

// Faults returns the lab's current models and faults (see SetFaults).
func (l *Lab) Faults() faults.Config { return l.faults() }

// SetFaults changes the control-plane models (latency, throttling, delays, key
// TTL, TNC window) of a running lab. Data-channel faults are fixed at Start.
func (l *Lab) SetFaults(c faults.Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fcfg = c
}

func (l *Lab) now() time.Time { return l.opts.Now() }

func (l *Lab) host(context.Context) string { return l.urlHost() }

// urlHost is host:port as the lab's URLs name it (Options.Hostname, else
// the listener's address).
func (l *Lab) urlHost() string {
	if l.opts.Hostname == "" {
		return l.addr
	}
	_, port, _ := net.SplitHostPort(l.addr)
	return net.JoinHostPort(l.opts.Hostname, port)
}

// Addr is the listener's own address (host:port), which a proxy maps
// Options.Hostname to.
func (l *Lab) Addr() string { return l.addr }

// Endpoint is the URL to use as AWS_ENDPOINT_URL.
func (l *Lab) Endpoint() string {
	if l.caPEM != nil {
		return "https://" + l.urlHost()
	}
	return "http://" + l.urlHost()
}

// CAFile is the CA certificate of a TLS lab (for AWS_CA_BUNDLE); "" without TLS.
func (l *Lab) CAFile() string {
	if l.caPEM == nil {
		return ""
	}
	return filepath.Join(l.opts.Dir, CAFile)
}

// Region is the lab's region.
func (l *Lab) Region() string { return l.region }

// Credentials are the lab's access key and secret.
func (l *Lab) Credentials() (accessKey, secret string) { return l.opts.AccessKey, l.opts.Secret }

// Env is the environment a client needs to reach the lab.
func (l *Lab) Env() []string {
	env := []string{
		"AWS_ENDPOINT_URL=" + l.Endpoint(),
		// The SDK builds the SSO portal client (and the SSO OIDC client that
		// refreshes tokens) while it resolves credentials, before it applies
		// AWS_ENDPOINT_URL (aws-sdk-go-v2 config: resolveCredentials runs before
		// resolveBaseEndpoint): only the service-specific variables reach them.
		"AWS_ENDPOINT_URL_SSO=" + l.Endpoint(),
		"AWS_ENDPOINT_URL_SSO_OIDC=" + l.Endpoint(),
		"AWS_ENDPOINT_URL_STS=" + l.Endpoint(), // the AssumeRole client of a role profile, likewise
		"AWS_REGION=" + l.region,
		"AWS_DEFAULT_REGION=" + l.region,
		"AWS_ACCESS_KEY_ID=" + l.opts.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + l.opts.Secret,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if f := l.CAFile(); f != "" {
		env = append(env, "AWS_CA_BUNDLE="+f)
	}
	return env
}

// AWSConfig is an SDK configuration that reaches the lab with its
// credentials, at its listener's address (no proxy needed with a Hostname).
func (l *Lab) AWSConfig() aws.Config {
	endpoint := "http://" + l.addr
	if l.caPEM != nil {
		endpoint = "https://" + l.addr
	}
	cfg := aws.Config{
		Region:       l.region,
		Credentials:  credentials.NewStaticCredentialsProvider(l.opts.AccessKey, l.opts.Secret, ""),
		BaseEndpoint: aws.String(endpoint),
	}
	if l.caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(l.caPEM)
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		})
	}
	return cfg
}

// addInstance fills spec's defaults (i numbers the default id and address)
// and adds it to the fleet, without starting its sshd.
func (l *Lab) addInstance(spec InstanceSpec, i int) (*instance, error) {
	osUser, err := user.Current()
	if err != nil {
		return nil, err
	}
	if spec.ID == "" {
		spec.ID = fmt.Sprintf("i-0%016x", 0xdeadbeef00+uint64(i)*0x1111)
	}
	if spec.Type == "" {
		spec.Type = "g5.xlarge"
	}
	if spec.State == "" {
		spec.State = "running"
	}
	if spec.State != "running" && spec.State != "stopped" && spec.State != "terminated" {
		return nil, fmt.Errorf("lab: instance %s: state must be running, stopped or terminated, not %q", spec.Name, spec.State)
	}
	if spec.User == "" {
		spec.User = osUser.Username
		// An instance whose image and user the lab chose (neither named):
		// the default image's user (ec2-user) would be refused by an sshd
		// that lets in the account running the lab, so the instance is
		// tagged with its user, as a team tags an instance whose image's
		// default is not who logs in (devgate:user, which devgate setup reads
		// before the image). A spec that names an image keeps the mismatch it models.
		if _, tagged := spec.Tags["devgate:user"]; !tagged && spec.Image == "" && spec.User != imageDefaultUser(spec) {
			tags := map[string]string{"devgate:user": spec.User}
			for k, v := range spec.Tags {
				tags[k] = v
			}
			spec.Tags = tags
		}
	}
	if _, err := user.Lookup(spec.User); err != nil {
		return nil, fmt.Errorf("lab: instance %s: OS user %q does not exist on this machine (the lab's sshd logs in as it; create it, e.g. useradd -m %s): %w",
			spec.Name, spec.User, spec.User, err)
	}
	if spec.PrivateIP == "" {
		spec.PrivateIP = fmt.Sprintf("127.10.%d.%d", l.netBase[0], (int(l.netBase[1])+i)%256)
	}
	if spec.AgentVersion == "" {
		spec.AgentVersion = "3.3.1142.0"
	}
	if spec.Image == "" {
		spec.Image = DefaultImage
	}
	if spec.Platform == "" {
		spec.Platform = "Linux/UNIX"
	}
	if !instanceIDRe.MatchString(spec.ID) && !managedNodeIDRe.MatchString(spec.ID) {
		return nil, fmt.Errorf("lab: instance id %q is not i- and 8 or 17 hex digits, nor mi- and 17 (a managed node)", spec.ID)
	}
	l.fleet.mu.Lock()
	defer l.fleet.mu.Unlock()
	if _, dup := l.fleet.byID[spec.ID]; dup {
		return nil, fmt.Errorf("lab: duplicate instance id %s", spec.ID)
	}
	now := l.opts.Now()
	inst := &instance{spec: spec, state: spec.State, launch: now.Add(-time.Hour)}
	for _, k := range spec.AuthorizedKeys {
		inst.keys = append(inst.keys, pushedKey{user: spec.User, key: strings.TrimSpace(k), expires: installedKeyExpiry})
	}
	if spec.State == "running" {
		inst.agentAt = now.Add(-time.Hour)
		inst.lastPing = now
	}
	l.fleet.list = append(l.fleet.list, inst)
	l.fleet.byID[spec.ID] = inst
	return inst, nil
}

func (l *Lab) startInstanceSSHD(ctx context.Context, inst *instance) error {
	var subsystem string
	if spec := l.opts.Faults.CorruptChunk; spec != "" {
		once := filepath.Join(l.opts.Dir, "corrupt-chunk")
		if err := os.MkdirAll(once, 0o700); err != nil {
			return err
		}
		var err error
		if subsystem, err = faultSubsystem(spec, once); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	s, err := startSSHD(ctx, filepath.Join(l.opts.Dir, "instances", inst.spec.ID), inst.spec.User, 0, subsystem)
	if err != nil {
		return fmt.Errorf("lab: instance %s: %w", inst.spec.Name, err)
	}
	l.fleet.mu.Lock()
	inst.sshd = s
	l.fleet.mu.Unlock()
	if len(inst.spec.AuthorizedKeys) > 0 {
		if err := s.writeKeys(inst.spec.User, l.fleet.keysOf(inst)); err != nil {
			return fmt.Errorf("lab: instance %s: %w", inst.spec.Name, err)
		}
	}
	return nil
}

// Launch adds a running instance to the lab (as RunInstances would, with the
// agent Online at once): a new id, a new host key. spec.ID "" picks a fresh id.
func (l *Lab) Launch(ctx context.Context, spec InstanceSpec) (InstanceInfo, error) {
	n := len(l.fleet.snapshot())
	if spec.ID == "" {
		spec.ID = fmt.Sprintf("i-0%016x", 0xfeed0000+uint64(n)*0x1011)
	}
	spec.State = "running" // spec.PrivateIP "": the next 127.10.x.y of the lab's VPN model
	inst, err := l.addInstance(spec, n)
	if err != nil {
		return InstanceInfo{}, err
	}
	if err := l.startInstanceSSHD(ctx, inst); err != nil {
		return InstanceInfo{}, err
	}
	// With the VPN up (or silent), the new address is covered at once, as a
	// Client VPN routes the whole VPC, instances launched later included.
	if err := l.vpn.added(inst); err != nil {
		return InstanceInfo{}, err
	}
	return l.fleet.info(inst), nil
}

// Terminate terminates an instance (as TerminateInstances, without the
// shutting-down interval): its sessions end and its sshd stops.
func (l *Lab) Terminate(nameOrID string) error {
	inst, err := l.lookupLive(nameOrID)
	if err != nil {
		return err
	}
	l.fleet.mu.Lock()
	inst.state, inst.next, inst.agentAt = "terminated", "", time.Time{}
	s := inst.sshd
	l.fleet.mu.Unlock()
	l.mgs.TerminateTarget(inst.spec.ID, "instance terminated")
	s.stop()
	return nil
}

// lookupLive finds a not-terminated instance by Name tag or id.
func (l *Lab) lookupLive(nameOrID string) (*instance, error) {
	for _, inst := range l.fleet.snapshot() {
		if (inst.spec.Name == nameOrID || inst.spec.ID == nameOrID) && l.fleet.info(inst).State != "terminated" {
			return inst, nil
		}
	}
	return nil, fmt.Errorf("lab: no live instance %q", nameOrID)
}

// Instances lists the instances.
func (l *Lab) Instances() []InstanceInfo {
	out := make([]InstanceInfo, 0, len(l.fleet.list))
	for _, inst := range l.fleet.snapshot() {
		out = append(out, l.fleet.info(inst))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Instance returns the instance with this Name tag or id.
func (l *Lab) Instance(nameOrID string) (InstanceInfo, bool) {
	for _, inst := range l.fleet.snapshot() {
		if inst.spec.Name == nameOrID || inst.spec.ID == nameOrID {
			return l.fleet.info(inst), true
		}
	}
	return InstanceInfo{}, false
}

// SetAgentOnline forces the agent status of an instance (nil-like reset with Online from timers: use ResetAgent).
func (l *Lab) SetAgentOnline(nameOrID string, online bool) error {
	inst, err := l.lookup(nameOrID)
	if err != nil {
		return err
	}
	l.fleet.mu.Lock()
	inst.agentForced = &online
	l.fleet.mu.Unlock()
	if !online {
		l.mgs.TerminateTarget(inst.spec.ID, "agent offline")
	}
	return nil
}

// ResetAgent gives the agent status back to the lifecycle timers.
func (l *Lab) ResetAgent(nameOrID string) error {
	inst, err := l.lookup(nameOrID)
	if err != nil {
		return err
	}
	l.fleet.mu.Lock()
	inst.agentForced = nil
	l.fleet.mu.Unlock()
	return nil
}

func (l *Lab) lookup(nameOrID string) (*instance, error) {
	for _, inst := range l.fleet.snapshot() {
		if inst.spec.Name == nameOrID || inst.spec.ID == nameOrID {
			return inst, nil
		}
	}
	return nil, fmt.Errorf("lab: no instance %q", nameOrID)
}

// StopInstance stops an instance as StopInstances would.
func (l *Lab) StopInstance(nameOrID string) error {
	inst, err := l.lookup(nameOrID)
	if err != nil {
		return err
	}
	_, _, err = l.fleet.stop(inst.spec.ID)
	return err
}

// Deny makes the lab answer action (e.g. "ssm:StartSession", "ec2:StartInstances") with AccessDenied.
func (l *Lab) Deny(action string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.denied[action] = true
}

// ExpireCredentials makes the lab treat the credentials of accessKey (the
// lab's own when "") as expired from now on: every call signed with them is
// answered with ExpiredTokenException / ExpiredToken.
func (l *Lab) ExpireCredentials(accessKey string) {
	if accessKey == "" {
		accessKey = l.opts.AccessKey
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.expiredKeys == nil {
		l.expiredKeys = map[string]bool{}
	}
	l.expiredKeys[accessKey] = true
}

// Calls counts the API calls of an operation (e.g. "SendSSHPublicKey") so far.
func (l *Lab) Calls(op string) int { return l.front.callCount(op) }

// CallsTotal is the number of API calls the lab has answered, of every
// service and operation (what a command that must not touch AWS is checked against).
func (l *Lab) CallsTotal() int { return l.front.callTotal() }

// UserAgent is the User-Agent header of the last call of an operation
// ("StartSession", "DescribeInstances"; "" when it was never called).
func (l *Lab) UserAgent(op string) string { return l.front.userAgent(op) }

// SessionReason is the Reason StartSession was given for a session ("" when none).
func (l *Lab) SessionReason(sessionID string) string {
	v, _ := l.reasons.Load(sessionID)
	s, _ := v.(string)
	return s
}

// Throttled returns how many API calls the throttling fault refused.
func (l *Lab) Throttled() int { return l.front.throttleCount() }

// SSHDConnections counts the connections open on an instance's sshd (its
// child processes): 0 once every session to it has ended.
func (l *Lab) SSHDConnections(nameOrID string) (int, error) {
	inst, err := l.lookup(nameOrID)
	if err != nil {
		return 0, err
	}
	return inst.sshd.children()
}

// Mgs is the lab's data-channel server (tests terminate sessions through it).
func (l *Lab) Mgs() *mgs.Server { return l.mgs }

// Registry is the lab's service registry (tests may add services).
func (l *Lab) Registry() *labapi.Registry { return l.reg }

func (l *Lab) stopSSHDs() {
	var wg sync.WaitGroup
	for _, inst := range l.fleet.snapshot() {
		wg.Add(1)
		go func(s *sshd) { defer wg.Done(); s.stop() }(inst.sshd)
	}
	wg.Wait()
}

// Close stops the endpoint, ends every session and stops every sshd.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l.srv.Shutdown(ctx)
	l.vpn.close()
	l.mgs.Close()
	l.srv.Close()
	l.stopSSHDs()
	return nil
}

// imageDefaultUser is the user devgate setup would pick from the spec's image
// alone (its name, description and platform; the default image when none).
func imageDefaultUser(spec InstanceSpec) string {
	img := spec.Image
	if img == "" {
		img = DefaultImage
	}
	u, _ := osuser.Pick(nil, osuser.Image{Name: img, Description: spec.ImageDescription, PlatformDetails: spec.Platform})
	return u
}
