package lab

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"sync"
	"time"
)

// InstanceSpec describes one simulated instance.
type InstanceSpec struct {
	ID           string `json:"id,omitempty"`
	Name         string `json:"name"`
	Type         string `json:"type,omitempty"`
	State        string `json:"state,omitempty"` // "running", "stopped" or "terminated"
	User         string `json:"user,omitempty"`
	PrivateIP    string `json:"privateIp,omitempty"`
	AgentVersion string `json:"agentVersion,omitempty"`
	// Image is the AMI's name (DescribeImages' Name), e.g.
	// "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423"; the
	// lab derives its ImageId from it. Default: an Amazon Linux 2023 AMI.
	Image string `json:"image,omitempty"`
	// ImageDescription is DescribeImages' Description ("" = none).
	ImageDescription string `json:"imageDescription,omitempty"`
	// Platform is DescribeInstances' PlatformDetails (default "Linux/UNIX";
	// AWS says "Red Hat Enterprise Linux", "SUSE Linux", "Ubuntu Pro" for those
	// billing products).
	Platform string `json:"platform,omitempty"`
	// Tags are tags besides Name (e.g. "devgate:user").
	Tags map[string]string `json:"tags,omitempty"`
	// AuthorizedKeys are public keys (authorized_keys lines) installed for
	// User on the machine itself, as ssh-copy-id leaves them on a server the
	// user runs (a hybrid managed node, where EC2 Instance Connect cannot
	// push): valid until the lab ends.
	AuthorizedKeys []string `json:"authorizedKeys,omitempty"`
}

// installedKeyExpiry is the expiry of an InstanceSpec.AuthorizedKeys line in
// the sshd's key file (never, for a lab).
var installedKeyExpiry = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultImage is the AMI name of instances whose spec names none.
const DefaultImage = "al2023-ami-2023.6.20241121.0-kernel-6.1-x86_64"

// imageID derives a stable AMI id from an image name.
func imageID(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmt.Sprintf("ami-0%016x", h.Sum64())
}

// InstanceInfo is a snapshot of an instance for tests and `devgate-lab up`.
type InstanceInfo struct {
	ID, Name, Type, State, User, PrivateIP string
	SSHPort                                int
	AgentOnline                            bool
	HostKey                                string // authorized_keys line of the host key
	LaunchTime                             time.Time
}

type pushedKey struct {
	user, key string
	expires   time.Time
}

type instance struct {
	spec        InstanceSpec
	state       string
	next        string    // state reached at nextAt ("" when stable)
	nextAt      time.Time // when state becomes next
	launch      time.Time
	agentAt     time.Time // agent Online from then (zero: offline while not running)
	agentForced *bool     // test override of the agent status
	lastPing    time.Time
	keys        []pushedKey
	sshd        *sshd
}

// managedNodeIDRe matches hybrid managed nodes (registered with an SSM
// activation): they have an agent but are not EC2 instances.
var managedNodeIDRe = regexp.MustCompile(`^mi-[0-9a-f]{17}$`)

// managedNode reports whether inst is a hybrid managed node (mi-…): EC2 and
// EC2 Instance Connect do not know it; SSM does (ResourceType ManagedInstance).
func (inst *instance) managedNode() bool { return managedNodeIDRe.MatchString(inst.spec.ID) }

// stateCodes are EC2's instance state codes.
var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// fleet holds the instances and moves their states along with time.
type fleet struct {
	mu        sync.Mutex
	now       func() time.Time
	bootDelay func() time.Duration
	stopDelay func() time.Duration
	agentDly  func() time.Duration
	tncWindow func() time.Duration
	onStop    func(id string)
	list      []*instance
	byID      map[string]*instance
}

// advance moves inst to the state its timers say; f.mu held.
func (f *fleet) advance(inst *instance) {
	now := f.now()
	for inst.next != "" && !now.Before(inst.nextAt) {
		at := inst.nextAt
		inst.state, inst.next = inst.next, ""
		switch inst.state {
		case "running":
			inst.launch = at
			inst.agentAt = at.Add(f.agentDly())
		case "stopped":
			inst.agentAt = time.Time{}
		}
	}
	if f.agentOnlineLocked(inst) {
		inst.lastPing = now
	}
}

func (f *fleet) agentOnlineLocked(inst *instance) bool {
	if inst.agentForced != nil {
		return *inst.agentForced && inst.state == "running"
	}
	return inst.state == "running" && !inst.agentAt.IsZero() && !f.now().Before(inst.agentAt)
}

// connectable says whether StartSession may reach the instance now: agent
// Online and past the TargetNotConnected window.
func (f *fleet) connectable(inst *instance) bool {
	if !f.agentOnlineLocked(inst) {
		return false
	}
	if inst.agentForced != nil {
		return true
	}
	return !f.now().Before(inst.agentAt.Add(f.tncWindow()))
}

// snapshot returns the instances (the list grows when the lab launches one).
func (f *fleet) snapshot() []*instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*instance(nil), f.list...)
}

func (f *fleet) get(id string) (*instance, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.byID[id]
	if ok {
		f.advance(inst)
	}
	return inst, ok
}

// start begins starting inst; it returns the previous and current state.
func (f *fleet) start(id string) (prev, cur string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.byID[id]
	if !ok {
		return "", "", errNotFound(id)
	}
	f.advance(inst)
	prev = inst.state
	switch inst.state {
	case "stopped":
		inst.state, inst.next, inst.nextAt = "pending", "running", f.now().Add(f.bootDelay())
	case "pending", "running":
	default:
		return "", "", fmt.Errorf("%w: the instance '%s' is not in a state from which it can be started", errIncorrectState, id)
	}
	return prev, inst.state, nil
}

func (f *fleet) stop(id string) (prev, cur string, err error) {
	f.mu.Lock()
	inst, ok := f.byID[id]
	if !ok {
		f.mu.Unlock()
		return "", "", errNotFound(id)
	}
	f.advance(inst)
	prev = inst.state
	switch inst.state {
	case "running", "pending":
		inst.state, inst.next, inst.nextAt = "stopping", "stopped", f.now().Add(f.stopDelay())
		inst.agentAt = time.Time{}
	case "stopping", "stopped":
	default:
		f.mu.Unlock()
		return "", "", fmt.Errorf("%w: the instance '%s' is not in a state from which it can be stopped", errIncorrectState, id)
	}
	cur = inst.state
	f.mu.Unlock()
	if prev == "running" || prev == "pending" {
		f.onStop(id)
	}
	return prev, cur, nil
}

// pushKey records key for user on id until expires.
func (f *fleet) pushKey(id, user, key string, expires time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst := f.byID[id]
	now := f.now()
	kept := inst.keys[:0]
	for _, k := range inst.keys {
		if now.Before(k.expires) {
			kept = append(kept, k)
		}
	}
	inst.keys = append(kept, pushedKey{user: user, key: key, expires: expires})
}

// validKeys lists the keys of user on inst that have not expired.
func (f *fleet) keysOf(inst *instance) []pushedKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pushedKey(nil), inst.keys...)
}

func (f *fleet) info(inst *instance) InstanceInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance(inst)
	i := InstanceInfo{ID: inst.spec.ID, Name: inst.spec.Name, Type: inst.spec.Type, State: inst.state,
		User: inst.spec.User, PrivateIP: inst.spec.PrivateIP, AgentOnline: f.agentOnlineLocked(inst), LaunchTime: inst.launch}
	if inst.sshd != nil {
		i.SSHPort = inst.sshd.port
		i.HostKey = inst.sshd.hostKeyPub
	}
	return i
}
