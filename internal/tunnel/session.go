package tunnel

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// OpenSession runs Dial's flow for a port-forwarding document
// (DocPortForwarding, or DocPortForwardingRemoteHost with o.Host) and returns
// the session without opening a stream on it: the caller picks mux or basic
// mode (protocol doc §6.1) and uses Conn.Session(). Conn.Close ends it
// (TerminateSession flag and API). With Options.Path auto or direct the
// result may instead be a direct connection (Conn.Path == PathDirect, no
// session), which the caller closes and replaces by one direct connection
// per use.
func OpenSession(ctx context.Context, cfg aws.Config, o Options) (*Conn, error) {
	o.NoStream = true
	if o.Document == "" {
		o.Document = DocPortForwarding
		if o.Host != "" {
			o.Document = DocPortForwardingRemoteHost
		}
	}
	return Dial(ctx, cfg, o)
}
