package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/devgate/devgate/internal/ovpn"
	"github.com/devgate/devgate/internal/tunnel"
)

// DirectTarget is what EC2 reports about the instance for the direct path.
type DirectTarget struct {
	ID, PrivateIP, PrivateDNS string
}

// CertWarnDays: a VPN client certificate closer than this to its expiry is flagged.
const CertWarnDays = 14

// DirectChecks are the direct-path checks (the Client VPN troubleshooting
// list of the analysis devgate was built from): does the private address
// answer on port 22 (routing, security group), does the private DNS name
// resolve (the VPN's DNS servers), is the client certificate in the VPN
// profile valid and for how long, and one line saying whether auto takes
// the direct path and why.
//
// path is the effective --path. With PathAuto a failing direct check is
// informational (Session Manager still works); with PathDirect it fails;
// with PathSSM the checks are not run. lookup describes the instance;
// profile is the user's .ovpn file ("" when unknown).
func DirectChecks(path string, lookup func(ctx context.Context) (DirectTarget, error), profile string, now func() time.Time, timeout time.Duration) []Check {
	if path == tunnel.PathSSM {
		return []Check{{Name: "direct path", Run: func(context.Context) Result {
			return pass("not used (--path ssm)")
		}}}
	}
	bad := func(detail, fix string) Result {
		r := fail(detail, fix)
		if path != tunnel.PathDirect {
			r.Info = true
		}
		return r
	}
	var t DirectTarget
	var lookupErr error
	var probe *tunnel.Probe
	return []Check{
		{Name: "direct: private address answers on port 22", Run: func(ctx context.Context) Result {
			t, lookupErr = lookup(ctx)
			if lookupErr != nil {
				return skipped("instance not found")
			}
			if t.PrivateIP == "" {
				return bad("EC2 reports no private address for "+t.ID, "the instance needs a private IPv4 address in the VPC")
			}
			p := tunnel.ProbeAddr(ctx, t.PrivateIP, 22, timeout)
			probe = &p
			if !p.OK {
				return bad(p.Why, "connect the Client VPN (profile from `devgate vpn profile`); check the endpoint's authorization rule and route to the VPC subnet, and that the instance's security group allows TCP 22 from the VPN's client CIDR")
			}
			return pass(fmt.Sprintf("%s answered with an SSH banner in %d ms", p.Addr, p.Took.Milliseconds()))
		}},
		{Name: "direct: private DNS name resolves", Run: func(ctx context.Context) (r Result) {
			// devgate dials the address EC2 reports, never the name: a name that does not
			// resolve troubles other tools, not the direct path, so this is information even
			// with --path direct.
			defer func() {
				if !r.OK && !r.Skipped {
					r.Info = true
				}
			}()
			if lookupErr != nil {
				return skipped("instance not found")
			}
			if t.PrivateDNS == "" {
				return bad("EC2 reports no private DNS name", "enable DNS hostnames on the VPC")
			}
			rctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
			defer cancel()
			addrs, err := net.DefaultResolver.LookupHost(rctx, t.PrivateDNS)
			if err != nil {
				return bad(fmt.Sprintf("%s does not resolve: %v", t.PrivateDNS, err),
					"give the Client VPN endpoint the VPC's DNS server (the VPC CIDR base + 2) so that private names resolve over the VPN")
			}
			if t.PrivateIP != "" && !slices.Contains(addrs, t.PrivateIP) {
				return bad(fmt.Sprintf("%s resolves to %v, not %s", t.PrivateDNS, addrs, t.PrivateIP), "the resolver in use is not the VPC's; check the VPN's DNS servers")
			}
			return pass(fmt.Sprintf("%s → %v", t.PrivateDNS, addrs))
		}},
		{Name: "direct: VPN client certificate", Run: func(context.Context) Result {
			if profile == "" { // nothing to check: the VPN may well be connected with a profile devgate was not told of
				return Result{Info: true, Detail: "no VPN profile given: its certificate is not checked",
					Fix: "pass --vpn-profile FILE.ovpn or set DEVGATE_VPN_PROFILE (from `devgate vpn profile NAME`)"}
			}
			cert, err := profileCert(profile)
			if err != nil {
				return bad(err.Error(), "write the profile again: devgate vpn profile NAME …")
			}
			n := now()
			days := int(cert.NotAfter.Sub(n).Hours() / 24)
			switch {
			case n.Before(cert.NotBefore):
				return bad(fmt.Sprintf("%s is not valid before %s", cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.DateOnly)), "check the local clock")
			case !n.Before(cert.NotAfter):
				return bad(fmt.Sprintf("%s expired on %s", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.DateOnly)), "ask for a new one: devgate vpn pki renew "+cert.Subject.CommonName+", then devgate vpn profile")
			case days < CertWarnDays:
				return bad(fmt.Sprintf("%s expires in %d days (%s)", cert.Subject.CommonName, days, cert.NotAfter.UTC().Format(time.DateOnly)), "renew it soon: devgate vpn pki renew "+cert.Subject.CommonName)
			}
			return pass(fmt.Sprintf("%s valid until %s (%d days)", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.DateOnly), days))
		}},
		{Name: "direct path", Run: func(context.Context) Result {
			switch {
			case lookupErr != nil:
				return skipped("instance not found")
			case probe != nil && probe.OK && path == tunnel.PathDirect:
				return pass(fmt.Sprintf("used (--path direct): %s answers", probe.Addr))
			case probe != nil && probe.OK:
				return pass(fmt.Sprintf("auto takes it: %s answered in %d ms, within the %d ms budget", probe.Addr, probe.Took.Milliseconds(), timeout.Milliseconds()))
			case path == tunnel.PathDirect:
				return fail("--path direct, but the private address does not answer", "connect the VPN, or use --path auto")
			case probe != nil:
				return pass("not used: " + probe.Why + "; auto takes Session Manager")
			}
			return pass("not used: no private address; auto takes Session Manager")
		}},
	}
}

// profileCert reads the client certificate inline in an .ovpn profile.
func profileCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ovpn.Parse(b)
	if err != nil {
		return nil, err
	}
	block, ok := p.Block("cert")
	if !ok {
		return nil, fmt.Errorf("%s has no <cert> block", path)
	}
	der, _ := pem.Decode([]byte(block))
	if der == nil {
		return nil, fmt.Errorf("%s: <cert> is not PEM", path)
	}
	return x509.ParseCertificate(der.Bytes)
}
