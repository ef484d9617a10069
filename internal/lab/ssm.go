package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/devgate/devgate/internal/lab/labapi"
	"github.com/devgate/devgate/internal/lab/mgs"
	"golang.org/x/crypto/ssh"
)

func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return labapi.Errorf(400, "SerializationException", "%v", err)
	}
	return nil
}

// --- EC2 Instance Connect ---

type sendSSHPublicKeyInput struct {
	InstanceId       string
	InstanceOSUser   string
	SSHPublicKey     string
	AvailabilityZone string
}

func (l *Lab) sendSSHPublicKey(ctx context.Context, body []byte) (any, error) {
	var in sendSSHPublicKeyInput
	if err := decodeJSON(body, &in); err != nil {
		return nil, err
	}
	if err := l.authorize("ec2-instance-connect:SendSSHPublicKey"); err != nil {
		return nil, err
	}
	if in.InstanceId == "" || in.InstanceOSUser == "" || in.SSHPublicKey == "" {
		return nil, labapi.Errorf(400, "InvalidArgsException", "InstanceId, InstanceOSUser and SSHPublicKey are required")
	}
	if len(in.InstanceOSUser) > 32 || strings.ContainsAny(in.InstanceOSUser, " /:") {
		return nil, labapi.Errorf(400, "InvalidArgsException", "Invalid InstanceOSUser")
	}
	pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(in.SSHPublicKey))
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, labapi.Errorf(400, "InvalidArgsException", "The provided SSH public key is not valid")
	}
	switch pk.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
	case ssh.KeyAlgoRSA:
		if ck, ok := pk.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(interface{ Size() int }); ok && rk.Size()*8 < 2048 {
				return nil, labapi.Errorf(400, "InvalidArgsException", "RSA keys must be at least 2048 bits")
			}
		}
	default:
		return nil, labapi.Errorf(400, "InvalidArgsException", "Unsupported key type %s", pk.Type())
	}
	inst, ok := l.fleet.get(in.InstanceId)
	if !ok || inst.managedNode() { // EC2 Instance Connect knows EC2 instances only
		return nil, labapi.Errorf(400, "EC2InstanceNotFoundException", "Instance not found")
	}
	if st := l.fleet.info(inst).State; st != "running" {
		return nil, labapi.Errorf(400, "EC2InstanceStateInvalidException", "Instance is not in a valid state (%s)", st)
	}
	expires := l.now().Add(l.faults().KeyTTL)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	l.fleet.pushKey(inst.spec.ID, in.InstanceOSUser, line, expires)
	if inst.sshd != nil {
		if err := inst.sshd.writeKeys(in.InstanceOSUser, l.fleet.keysOf(inst)); err != nil {
			return nil, labapi.Errorf(500, "ServiceException", "%v", err)
		}
	}
	return map[string]any{"RequestId": labapi.RequestID(ctx), "Success": true}, nil
}

// --- SSM ---

// documentParams lists the parameters each session document accepts, with defaults.
var documents = map[string]map[string]string{
	"AWS-StartSSHSession":                        {"portNumber": "22"},
	"AWS-StartPortForwardingSession":             {"portNumber": "80", "localPortNumber": "0"},
	"AWS-StartPortForwardingSessionToRemoteHost": {"host": "", "portNumber": "80", "localPortNumber": "0"},
}

type startSessionInput struct {
	Target       string
	DocumentName string
	Reason       string
	Parameters   map[string][]string
}

func (l *Lab) newSessionID() string {
	var b [9]byte
	rand.Read(b[:])
	return "devgate-lab-" + hex.EncodeToString(b[:])[:17]
}

func (l *Lab) streamURL(host, id string) string {
	scheme := "ws://"
	if l.caPEM != nil {
		scheme = "wss://"
	}
	return scheme + host + "/v1/data-channel/" + id + "?role=publish_subscribe"
}

func (l *Lab) startSession(ctx context.Context, body []byte) (any, error) {
	var in startSessionInput
	if err := decodeJSON(body, &in); err != nil {
		return nil, err
	}
	if err := l.authorize("ssm:StartSession"); err != nil {
		return nil, err
	}
	if in.Target == "" {
		return nil, labapi.Errorf(400, "ValidationException", "1 validation error detected: Value null at 'target' failed to satisfy constraint: Member must not be null")
	}
	// Reason: 1 to 256 characters, pattern ^.{1,256}$ (SSM API reference, StartSession).
	if n := utf8.RuneCountInString(in.Reason); n > 256 || strings.ContainsAny(in.Reason, "\n\r") {
		return nil, labapi.Errorf(400, "ValidationException", "1 validation error detected: Value at 'reason' failed to satisfy constraint: Member must satisfy regular expression pattern: ^.{1,256}$")
	}
	doc := in.DocumentName
	if doc == "" {
		doc = "SSM-SessionManagerRunShell"
	}
	defaults, ok := documents[doc]
	if !ok {
		if sd, isShell := l.lookupSessionDoc(doc); isShell {
			return l.startShellSession(ctx, in, doc, sd)
		}
		return nil, labapi.Errorf(400, "InvalidDocument", "Document %s is not supported by devgate-lab (supported: AWS-StartSSHSession, AWS-StartPortForwardingSession, AWS-StartPortForwardingSessionToRemoteHost, SSM-SessionManagerRunShell, AWS-StartInteractiveCommand, AWS-StartNonInteractiveCommand and shell-type documents in the lab's document store)", doc)
	}
	props := map[string]string{}
	for k, v := range defaults {
		props[k] = v
	}
	for k, vs := range in.Parameters {
		if _, ok := defaults[k]; !ok {
			return nil, labapi.Errorf(400, "InvalidParameters", "Parameter %q is not defined in document %s", k, doc)
		}
		if len(vs) != 1 {
			return nil, labapi.Errorf(400, "InvalidParameters", "Parameter %q takes exactly one value", k)
		}
		props[k] = vs[0]
	}
	port, err := strconv.Atoi(props["portNumber"])
	if err != nil || port < 1 || port > 65535 {
		return nil, labapi.Errorf(400, "InvalidParameters", "portNumber %q is not a port number (1-65535)", props["portNumber"])
	}
	if doc == "AWS-StartPortForwardingSessionToRemoteHost" && props["host"] == "" {
		return nil, labapi.Errorf(400, "InvalidParameters", "host is required by %s", doc)
	}
	inst, err := l.connectableTarget(in.Target)
	if err != nil {
		return nil, err
	}
	// The agent hands the document's properties to the client; SSH has no "type".
	hsProps := map[string]string{"portNumber": props["portNumber"]}
	if doc != "AWS-StartSSHSession" {
		hsProps["type"] = "LocalPortForwarding"
		hsProps["localPortNumber"] = props["localPortNumber"]
		if h := props["host"]; h != "" {
			hsProps["host"] = h
		}
	}
	id := l.newSessionID()
	spec := mgs.SessionSpec{
		SessionID: id, Target: inst.spec.ID, Document: doc, SessionType: "Port", Properties: hsProps,
		AgentVersion: inst.spec.AgentVersion, Dial: l.dialer(inst),
	}
	tok, err := l.mgs.Create(spec)
	if err != nil {
		return nil, labapi.Errorf(500, "InternalServerError", "%v", err)
	}
	l.sessions.Store(id, inst.spec.ID)
	l.reasons.Store(id, in.Reason)
	l.log.Info("StartSession", "session", id, "target", inst.spec.ID, "document", doc, "reason", in.Reason, "user_agent", labapi.UserAgent(ctx))
	host := l.host(ctx)
	return map[string]string{"SessionId": id, "TokenValue": tok, "StreamUrl": l.streamURL(host, id)}, nil
}

// dialer connects the agent of inst to host:port as seen from the instance.
func (l *Lab) dialer(inst *instance) func(ctx context.Context, host string, port int) (net.Conn, error) {
	return func(ctx context.Context, host string, port int) (net.Conn, error) {
		if host == "" || host == "localhost" || host == "127.0.0.1" || host == "::1" {
			if port == 22 && inst.sshd != nil {
				port = inst.sshd.port
			}
			host = "127.0.0.1"
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	}
}

type sessionIDInput struct{ SessionId string }

func (l *Lab) resumeSession(ctx context.Context, body []byte) (any, error) {
	var in sessionIDInput
	if err := decodeJSON(body, &in); err != nil {
		return nil, err
	}
	if err := l.authorize("ssm:ResumeSession"); err != nil {
		return nil, err
	}
	tok, err := l.mgs.Resume(in.SessionId)
	if errors.Is(err, mgs.ErrUnknownSession) {
		return nil, labapi.Errorf(400, "DoesNotExistException", "Session %s does not exist", in.SessionId)
	}
	if err != nil {
		return nil, labapi.Errorf(500, "InternalServerError", "%v", err)
	}
	out := map[string]string{"SessionId": in.SessionId, "TokenValue": tok}
	if tok != "" {
		out["StreamUrl"] = l.streamURL(l.host(ctx), in.SessionId)
	}
	return out, nil
}

func (l *Lab) terminateSession(ctx context.Context, body []byte) (any, error) {
	var in sessionIDInput
	if err := decodeJSON(body, &in); err != nil {
		return nil, err
	}
	if err := l.authorize("ssm:TerminateSession"); err != nil {
		return nil, err
	}
	if err := l.mgs.ClientTerminate(in.SessionId); err != nil && !errors.Is(err, mgs.ErrUnknownSession) {
		return nil, labapi.Errorf(500, "InternalServerError", "%v", err)
	}
	return map[string]string{"SessionId": in.SessionId}, nil
}

type instanceInformation struct {
	InstanceId       string
	PingStatus       string
	LastPingDateTime float64
	AgentVersion     string
	IsLatestVersion  bool
	PlatformType     string
	PlatformName     string
	PlatformVersion  string
	ResourceType     string
	IPAddress        string
	ComputerName     string
}

type describeInstanceInformationInput struct {
	InstanceInformationFilterList []struct {
		Key      string   `json:"key"`
		ValueSet []string `json:"valueSet"`
	}
	Filters []struct {
		Key    string
		Values []string
	}
	MaxResults int
	NextToken  string
}

func (l *Lab) describeInstanceInformation(ctx context.Context, body []byte) (any, error) {
	var in describeInstanceInformationInput
	if err := decodeJSON(body, &in); err != nil {
		return nil, err
	}
	if err := l.authorize("ssm:DescribeInstanceInformation"); err != nil {
		return nil, err
	}
	match := func(key string, vals []string, ii instanceInformation) (bool, error) {
		switch strings.ToLower(key) {
		case "instanceids":
			return contains(vals, ii.InstanceId), nil
		case "pingstatus":
			return contains(vals, ii.PingStatus), nil
		case "agentversion":
			return contains(vals, ii.AgentVersion), nil
		case "platformtypes":
			return contains(vals, ii.PlatformType), nil
		case "resourcetype":
			return contains(vals, ii.ResourceType), nil
		}
		return false, labapi.Errorf(400, "InvalidFilterKey", "The filter key %s is not valid", key)
	}
	var list []instanceInformation
	for _, inst := range l.fleet.snapshot() {
		info := l.fleet.info(inst)
		l.fleet.mu.Lock()
		lastPing := inst.lastPing
		l.fleet.mu.Unlock()
		if lastPing.IsZero() && !info.AgentOnline {
			continue // the agent never registered
		}
		status := "ConnectionLost"
		if info.AgentOnline {
			status = "Online"
		}
		ii := instanceInformation{InstanceId: info.ID, PingStatus: status,
			LastPingDateTime: float64(lastPing.UnixMilli()) / 1000, AgentVersion: inst.spec.AgentVersion,
			IsLatestVersion: true, PlatformType: "Linux", PlatformName: "Amazon Linux", PlatformVersion: "2023",
			ResourceType: resourceType(inst), IPAddress: info.PrivateIP, ComputerName: "ip-" + strings.ReplaceAll(info.PrivateIP, ".", "-") + ".ec2.internal"}
		ok := true
		for _, f := range in.InstanceInformationFilterList {
			m, err := match(f.Key, f.ValueSet, ii)
			if err != nil {
				return nil, err
			}
			ok = ok && m
		}
		for _, f := range in.Filters {
			m, err := match(f.Key, f.Values, ii)
			if err != nil {
				return nil, err
			}
			ok = ok && m
		}
		if ok {
			list = append(list, ii)
		}
	}
	if list == nil {
		list = []instanceInformation{}
	}
	return map[string]any{"InstanceInformationList": list}, nil
}

func (l *Lab) registerSSM(r *labapi.Registry) {
	r.JSON("AWSEC2InstanceConnectService.SendSSHPublicKey", l.sendSSHPublicKey)
	r.JSON("AmazonSSM.StartSession", l.startSession)
	r.JSON("AmazonSSM.ResumeSession", l.resumeSession)
	r.JSON("AmazonSSM.TerminateSession", l.terminateSession)
	r.JSON("AmazonSSM.DescribeInstanceInformation", l.describeInstanceInformation)
}

// authorize fails with the service's access-denied shape when action is denied.
func (l *Lab) authorize(action string) error {
	l.mu.Lock()
	denied := l.denied[action]
	l.mu.Unlock()
	if !denied {
		return nil
	}
	msg := fmt.Sprintf("User: %s is not authorized to perform: %s because no identity-based policy allows the %s action", l.userArn(), action, action)
	if strings.HasPrefix(action, "ec2:") {
		return labapi.Errorf(403, "UnauthorizedOperation", "You are not authorized to perform this operation. %s", msg)
	}
	return labapi.Errorf(400, "AccessDeniedException", "%s", msg)
}

var _ = time.Second

// resourceType is DescribeInstanceInformation's ResourceType.
func resourceType(inst *instance) string {
	if inst.managedNode() {
		return "ManagedInstance"
	}
	return "EC2Instance"
}

// connectableTarget is StartSession's target when its agent is connected (the
// service answers TargetNotConnected otherwise: SSM API reference,
// StartSession "Errors").
func (l *Lab) connectableTarget(id string) (*instance, error) {
	inst, ok := l.fleet.get(id)
	if !ok {
		return nil, labapi.Errorf(400, "TargetNotConnected", "%s is not connected.", id)
	}
	l.fleet.mu.Lock()
	l.fleet.advance(inst)
	connectable := l.fleet.connectable(inst)
	l.fleet.mu.Unlock()
	if !connectable {
		return nil, labapi.Errorf(400, "TargetNotConnected", "%s is not connected.", id)
	}
	return inst, nil
}
