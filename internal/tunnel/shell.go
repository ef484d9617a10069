package tunnel

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/exitcode"
)

// DocShell is the default shell document: the regional Session Manager
// preferences, a Standard_Stream session (protocol doc §1.3).
const DocShell = "SSM-SessionManagerRunShell"

// OpenShell runs Dial's flow (resolve, start a stopped instance, wait for
// its agent, StartSession riding out TargetNotConnected, resume on drops)
// for a shell-type document (o.Document, default DocShell, with
// o.Parameters), without pushing a key. The session's data channel answers a
// KMS handshake with GenerateDataKey (datachannel/kms.go). Conn.Session()
// carries the terminal; Conn.Close ends it (TerminateSession flag and API).
func OpenShell(ctx context.Context, cfg aws.Config, o Options) (*Conn, error) {
	o.Shell, o.NoStream, o.PublicKey, o.Port = true, true, "", 0
	if o.Document == "" {
		o.Document = DocShell
	}
	return Dial(ctx, cfg, o)
}

// shellConfig sets the data channel up for a shell session on target id.
func (d *dialer) shellConfig(c *datachannel.Config, id string) {
	c.Shell = true
	c.TargetID = id
	c.KMS = kms.NewFromConfig(d.cfg)
	c.OnPayload = d.o.OnPayload
}

// IsManagedNode reports whether id is a hybrid-activated managed node
// (mi-…): not an EC2 instance, so EC2 and EC2 Instance Connect cannot reach it.
func IsManagedNode(id string) bool { return strings.HasPrefix(id, "mi-") }

// managedNode is Dial's flow for a hybrid managed node (mi-…, registered
// with an SSM activation): EC2 does not know it, so there is nothing to
// start and EC2 Instance Connect cannot push a key to it (its API takes EC2
// instance ids only). A key push is refused at once (exit 16) unless the
// caller's key is already authorized on the node; then the agent is waited
// for and the session started as usual.
func (d *dialer) managedNode(ctx context.Context, id string) (*Conn, error) {
	if d.o.PublicKey != "" {
		if !d.o.KeyAuthorized {
			return nil, exitcode.New(exitcode.KeyPushRefused,
				"use `devgate shell "+d.o.Target+"` or `devgate exec "+d.o.Target+" -- …` (no key needed), or connect with --key naming a key already in the node's authorized_keys",
				"%s is a hybrid managed node: EC2 Instance Connect cannot push a key to it", id)
		}
		d.o.PublicKey = "" // already authorized: no push
	}
	c, err := d.warm(ctx, id)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, errNotReady) {
		return nil, d.deadline(ctx, err, exitcode.SessionRefused)
	}
	if err := d.waitAgent(ctx, id); err != nil {
		return nil, err
	}
	poll := newPoller()
	for {
		c, err := d.warm(ctx, id)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errNotReady) {
			return nil, d.deadline(ctx, err, exitcode.SessionRefused)
		}
		if werr := poll.wait(ctx); werr != nil {
			return nil, exitcode.Wrap(err, exitcode.AgentOffline,
				"check the node's SSM agent and its network with `devgate doctor`",
				"StartSession kept answering TargetNotConnected for %s", d.o.Timeout)
		}
	}
}
