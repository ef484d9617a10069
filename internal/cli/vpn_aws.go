package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/cvpn"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/ovpn"
	"github.com/devgate/devgate/internal/pki"
)

func newVPNProfileCommand(io IO, o *vpnOptions) *cobra.Command {
	var af awsFlags
	var config, endpoint, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "profile NAME (--config exported.ovpn | --endpoint cvpn-endpoint-…)",
		Short: "Write NAME's .ovpn: the endpoint's exported profile with <cert> and <key> added",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if (config == "") == (endpoint == "") {
				return exitcode.New(exitcode.Usage, "pass --config exported.ovpn (from the console or aws ec2 export-client-vpn-client-configuration) or --endpoint cvpn-endpoint-…", "exactly one of --config and --endpoint is needed")
			}
			p, err := o.open()
			if err != nil {
				return err
			}
			b, err := p.Current(name)
			if err != nil {
				return pkiError(err)
			}
			if b.Entry.Kind != pki.KindClient {
				return exitcode.New(exitcode.Usage, "issue a client certificate with `devgate vpn pki issue NAME`", "%s is a %s certificate, not a client one", name, b.Entry.Kind)
			}
			if !time.Now().Before(b.Cert.NotAfter) {
				return exitcode.New(exitcode.Config, fmt.Sprintf("run `devgate vpn pki renew %s` first", name), "the certificate of %s expired on %s", name, b.Cert.NotAfter.UTC().Format("2006-01-02"))
			}
			var exported []byte
			if config != "" {
				exported, err = os.ReadFile(config)
				if err != nil {
					return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot read %s", config)
				}
			} else {
				cfg, err := af.load(cmd.Context(), nil)
				if err != nil {
					return err
				}
				exported, err = cvpn.ExportProfile(cmd.Context(), cfg, endpoint)
				if err != nil {
					return err
				}
			}
			prof, err := ovpn.Parse(exported)
			if err != nil {
				return exitcode.Wrap(err, exitcode.Config, "pass the file exported from the Client VPN endpoint", "the profile is malformed")
			}
			if ca, ok := prof.Block("ca"); ok && !pemHasCert([]byte(ca), p.CACert()) {
				fmt.Fprintln(io.ErrOut, "devgate: warning: the profile's <ca> does not contain this PKI's CA: was the endpoint's server certificate imported from another CA? (devgate vpn import)")
			}
			res, err := ovpn.AddCredentials(exported, ovpn.Credentials{CA: p.CAPEM(), Cert: b.CertPEM, Key: b.KeyPEM})
			if err != nil {
				return exitcode.Wrap(err, exitcode.Config, "pass the file exported from the Client VPN endpoint", "cannot build the profile")
			}
			if out == "-" {
				_, err := io.Out.Write(res)
				return err
			}
			if out == "" {
				out = name + ".ovpn"
			}
			if err := writeSecret(out, res, force); err != nil {
				return err
			}
			fmt.Fprintf(io.ErrOut, "devgate: wrote %s (0600; it holds %s's private key: hand it over privately)\n", out, name)
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&config, "config", "", "the profile exported from the endpoint (.ovpn)")
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "export the profile from this Client VPN endpoint")
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write (default NAME.ovpn; - for stdout)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing output file")
	return cmd
}

func pemHasCert(b []byte, want *x509.Certificate) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return false
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil && c.Equal(want) {
			return true
		}
	}
}

// writeSecret writes a 0600 file through a temporary file in the same
// directory; without force an existing file is refused.
func writeSecret(path string, data []byte, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return exitcode.New(exitcode.Usage, "pass --force to overwrite it, or -o another file", "%s exists", path)
	}
	f, err := os.CreateTemp(dirOf(path), ".devgate-*.tmp")
	if err != nil {
		return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write %s", path)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write %s", path)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return exitcode.Wrap(err, exitcode.LocalIO, "check free space", "cannot write %s", path)
	}
	if err := f.Close(); err != nil {
		return exitcode.Wrap(err, exitcode.LocalIO, "check free space", "cannot write %s", path)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write %s", path)
	}
	return nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, os.PathSeparator); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}

// awsState is aws.json in the PKI directory: per region, the ARN the server
// certificate was imported as, so that re-imports keep it.
type awsState map[string]struct {
	ServerCertificateArn string    `json:"serverCertificateArn"`
	ServerSerial         string    `json:"serverSerial"`
	ImportedAt           time.Time `json:"importedAt"`
}

func newVPNImportCommand(io IO, o *vpnOptions) *cobra.Command {
	var af awsFlags
	var endpoint string
	var noCRL bool
	cmd := &cobra.Command{
		Use:   "import [--endpoint cvpn-endpoint-…]",
		Short: "Import the server certificate and chain into ACM, and the CRL into the endpoint",
		Long: `Imports the server certificate, its key and the CA chain into ACM (ImportCertificate;
a re-import keeps the ARN). The same CA signs the client certificates, so the same ARN
is the endpoint's client root certificate chain. With --endpoint, also imports the CRL
(ImportClientVpnClientCertificateRevocationList), which replaces the endpoint's CRL and
resets existing client connections.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p, err := o.open()
			if err != nil {
				return err
			}
			srv, err := p.Server()
			if err != nil {
				return pkiError(err)
			}
			if !time.Now().Before(srv.Cert.NotAfter) {
				return exitcode.New(exitcode.Config, fmt.Sprintf("run `devgate vpn pki renew %s`", srv.Entry.Name), "the server certificate expired on %s", srv.Cert.NotAfter.UTC().Format("2006-01-02"))
			}
			cfg, err := af.load(ctx, nil)
			if err != nil {
				return err
			}
			arn, reimported, err := importServer(ctx, io, p, srv, cfg)
			if err != nil {
				return err
			}
			verb := "imported"
			if reimported {
				verb = "re-imported (same ARN)"
			}
			fmt.Fprintf(io.ErrOut, "devgate: %s server certificate %s (serial %s) into ACM in %s\n", verb, srv.Entry.Name, srv.Entry.SerialHex(), cfg.Region)
			// What ACM made of it: Client VPN needs a domain name on the server certificate.
			if d, err := cvpn.DescribeCertificate(ctx, cfg, arn); err != nil {
				fmt.Fprintf(io.ErrOut, "devgate: warning: cannot check the imported certificate: %v\n", err)
			} else if d.DomainName == "" {
				fmt.Fprintln(io.ErrOut, "devgate: warning: ACM shows no domain name for the certificate; CreateClientVpnEndpoint will refuse it")
			} else {
				fmt.Fprintf(io.ErrOut, "devgate: ACM: domain %s, %s, expires %s\n", d.DomainName, d.KeyAlgorithm, d.NotAfter.UTC().Format("2006-01-02"))
			}
			fmt.Fprintf(io.Out, "server-certificate-arn\t%s\n", arn)
			fmt.Fprintf(io.Out, "client-root-certificate-chain-arn\t%s\n", arn)
			if endpoint == "" || noCRL {
				fmt.Fprintln(io.ErrOut, "devgate: CRL not imported (pass --endpoint cvpn-endpoint-… to import it)")
				return nil
			}
			crl, err := p.CRLPEM()
			if err != nil {
				return pkiError(err)
			}
			parsed, err := pki.ParseCRL(crl, p.CACert())
			if err != nil {
				return pkiError(err)
			}
			if !time.Now().Before(parsed.NextUpdate) {
				return exitcode.New(exitcode.Config, "run `devgate vpn pki crl` first", "the CRL's nextUpdate (%s) has passed", parsed.NextUpdate.UTC().Format(time.RFC3339))
			}
			if err := cvpn.ImportCRL(ctx, cfg, endpoint, crl); err != nil {
				return err
			}
			fmt.Fprintf(io.ErrOut, "devgate: imported the CRL (number %s, %d revoked) into %s; existing client connections were reset\n",
				parsed.Number, len(parsed.RevokedCertificateEntries), endpoint)
			fmt.Fprintf(io.Out, "crl-endpoint\t%s\n", endpoint)
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "Client VPN endpoint to import the CRL into")
	cmd.Flags().BoolVar(&noCRL, "no-crl", false, "only import the server certificate")
	return cmd
}

// importServer imports the server certificate with the CA as its chain,
// re-importing into the ARN recorded in aws.json for the region.
func importServer(ctx context.Context, io IO, p *pki.PKI, srv *pki.Bundle, cfg aws.Config) (arn string, reimported bool, err error) {
	state := awsState{}
	if b, err := p.ReadAux("aws.json"); err != nil {
		return "", false, exitcode.Wrap(err, exitcode.LocalIO, "", "cannot read aws.json")
	} else if b != nil {
		if err := json.Unmarshal(b, &state); err != nil {
			return "", false, exitcode.Wrap(err, exitcode.Config, "remove aws.json from the PKI directory to import as a new certificate", "aws.json is malformed")
		}
	}
	prev := state[cfg.Region].ServerCertificateArn
	imp, err := cvpn.ImportServer(ctx, cfg, prev, srv.CertPEM, srv.KeyPEM, p.CAPEM())
	if err != nil {
		return "", false, err
	}
	if imp.PreviousGone {
		fmt.Fprintf(io.ErrOut, "devgate: warning: %s no longer exists in ACM; imported as a new certificate (update the endpoint)\n", prev)
	}
	arn = imp.ARN
	st := state[cfg.Region]
	reimported = st.ServerCertificateArn == arn
	st.ServerCertificateArn, st.ServerSerial, st.ImportedAt = arn, srv.Entry.SerialHex(), time.Now().UTC()
	state[cfg.Region] = st
	b, _ := json.MarshalIndent(state, "", "  ")
	if err := p.WriteAux("aws.json", append(b, '\n')); err != nil {
		return arn, reimported, exitcode.Wrap(err, exitcode.LocalIO, "", "imported as %s, but cannot record it in aws.json", arn)
	}
	return arn, reimported, nil
}
