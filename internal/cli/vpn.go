package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/pki"
)

func init() { register(newVPNCommand) }

// passphraseEnv is where scripts put the CA passphrase; there is no flag.
const passphraseEnv = "DEVGATE_CA_PASSPHRASE"

// vpnOptions are the flags every vpn subcommand shares.
type vpnOptions struct {
	dir        string
	workFactor int // scrypt log2 cost; hidden, for tests (0: age's default)
}

func (o *vpnOptions) pkiDir() (string, error) {
	if o.dir != "" {
		return o.dir, nil
	}
	if d := os.Getenv("DEVGATE_PKI_DIR"); d != "" {
		return d, nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", exitcode.Wrap(err, exitcode.Usage, "pass --dir", "cannot find a default PKI directory")
	}
	return filepath.Join(cfg, "devgate", "vpn-pki"), nil
}

func (o *vpnOptions) pkiOptions() pki.Options { return pki.Options{ScryptWorkFactor: o.workFactor} }

func (o *vpnOptions) open() (*pki.PKI, error) {
	dir, err := o.pkiDir()
	if err != nil {
		return nil, err
	}
	p, err := pki.Open(dir, o.pkiOptions())
	return p, pkiError(err)
}

// openUnlocked opens the PKI and decrypts the CA key, before anything changes.
func (o *vpnOptions) openUnlocked(io IO) (*pki.PKI, error) {
	p, err := o.open()
	if err != nil {
		return nil, err
	}
	pass, err := readPassphrase(io, false)
	if err != nil {
		return nil, err
	}
	if err := p.Unlock(pass); err != nil {
		return nil, pkiError(err)
	}
	return p, nil
}

// readPassphrase takes the CA passphrase from DEVGATE_CA_PASSPHRASE or,
// when stdin is a terminal, a prompt without echo (twice when confirm).
func readPassphrase(io IO, confirm bool) (string, error) {
	if p, ok := os.LookupEnv(passphraseEnv); ok {
		return p, nil
	}
	f, ok := io.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", exitcode.New(exitcode.Usage, "set "+passphraseEnv+" or run devgate in a terminal",
			"the CA passphrase is needed and stdin is not a terminal")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(io.ErrOut, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(io.ErrOut)
		if err != nil {
			return "", exitcode.Wrap(err, exitcode.LocalIO, "", "cannot read the passphrase")
		}
		return string(b), nil
	}
	p, err := ask("CA passphrase: ")
	if err != nil || !confirm {
		return p, err
	}
	again, err := ask("CA passphrase (again): ")
	if err != nil {
		return "", err
	}
	if again != p {
		return "", exitcode.New(exitcode.Usage, "run the command again", "the passphrases do not match")
	}
	return p, nil
}

// pkiError classifies the pki package's errors for the user.
func pkiError(err error) error {
	var ie *pki.IndexError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pki.ErrWrongPassphrase):
		return exitcode.Wrap(err, exitcode.Passphrase, "check "+passphraseEnv+" or retype the passphrase; nothing was changed", "cannot unlock the CA key")
	case errors.As(err, &ie), errors.Is(err, pki.ErrCorruptIndex):
		return exitcode.Wrap(err, exitcode.Config, "restore the PKI directory from a backup; devgate does not repair it (it never edits index.txt in place, so this is outside damage or a hand edit)", "the PKI index is damaged; nothing was changed")
	case errors.Is(err, pki.ErrCorruptKey):
		return exitcode.Wrap(err, exitcode.Config, "restore ca.key.age from a backup; nothing was changed", "the CA key file is damaged")
	case errors.Is(err, pki.ErrNotInitialized):
		return exitcode.Wrap(err, exitcode.Config, "run `devgate vpn pki init --server-name vpn.<your domain>` or pass --dir", "no PKI here")
	case errors.Is(err, pki.ErrExists):
		return plain(err, exitcode.Usage, "")
	case errors.Is(err, pki.ErrNotFound):
		return plain(err, exitcode.NotFound, "`devgate vpn pki list` shows the certificates")
	case errors.Is(err, pki.ErrBadName):
		return plain(err, exitcode.Usage, "")
	}
	return exitcode.Wrap(err, exitcode.Generic, "", "pki")
}

// plain classifies an error whose own text already says what went wrong.
func plain(err error, c exitcode.Class, hint string) error {
	return &exitcode.Error{Class: c, Msg: err.Error(), Hint: hint}
}

func newVPNCommand(io IO) *cobra.Command {
	o := &vpnOptions{}
	cmd := &cobra.Command{
		Use:   "vpn",
		Short: "AWS Client VPN: certificate authority, profiles, imports into AWS",
		Long: `The certificate authority behind AWS Client VPN mutual authentication.

The CA key is encrypted with a passphrase (from ` + passphraseEnv + ` or a prompt).
Default directory: $DEVGATE_PKI_DIR, else <user config dir>/devgate/vpn-pki.`,
	}
	cmd.PersistentFlags().StringVar(&o.dir, "dir", "", "PKI directory")
	cmd.PersistentFlags().IntVar(&o.workFactor, "scrypt-work-factor", 0, "scrypt cost (log2) for a new CA key encryption (tests)")
	cmd.PersistentFlags().MarkHidden("scrypt-work-factor")
	p := &cobra.Command{Use: "pki", Short: "Manage the CA, the server and the client certificates"}
	p.AddCommand(newPKIInitCommand(io, o), newPKIIssueCommand(io, o), newPKIRevokeCommand(io, o),
		newPKICRLCommand(io, o), newPKIListCommand(io, o), newPKIRenewCommand(io, o))
	cmd.AddCommand(p, newVPNProfileCommand(io, o), newVPNImportCommand(io, o))
	return cmd
}

func newPKIInitCommand(io IO, o *vpnOptions) *cobra.Command {
	var server string
	var days, caDays, crlDays int
	cmd := &cobra.Command{
		Use:   "init --server-name vpn.<domain>",
		Short: "Create the CA (key encrypted) and the endpoint's server certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" {
				return exitcode.New(exitcode.Usage, "e.g. --server-name vpn.example.com (a domain name is required by Client VPN)", "--server-name is required")
			}
			if err := pki.CheckServerName(server); err != nil {
				return pkiError(err)
			}
			dir, err := o.pkiDir()
			if err != nil {
				return err
			}
			pass, err := readPassphrase(io, true)
			if err != nil {
				return err
			}
			if len(pass) < pki.MinPassphraseLen {
				return exitcode.New(exitcode.Usage, "use a longer passphrase", "the CA passphrase must have at least %d characters", pki.MinPassphraseLen)
			}
			p, err := pki.Init(dir, pki.InitParams{ServerName: server, ServerDays: days, CADays: caDays, CRLDays: crlDays}, pass, o.pkiOptions())
			if err != nil {
				if errors.Is(err, pki.ErrExists) {
					return exitcode.Wrap(err, exitcode.Usage, "use another --dir; devgate never overwrites a CA", "refused")
				}
				return pkiError(err)
			}
			srv, err := p.Server()
			if err != nil {
				return pkiError(err)
			}
			fmt.Fprintf(io.ErrOut, "devgate: created the CA in %s (key encrypted: ca.key.age)\n", dir)
			fmt.Fprintf(io.ErrOut, "devgate: server certificate %s, serial %s, expires %s\n", server, srv.Entry.SerialHex(), srv.Cert.NotAfter.UTC().Format("2006-01-02"))
			fmt.Fprintln(io.ErrOut, "devgate: next: devgate vpn import (server certificate into ACM), devgate vpn pki issue <developer>")
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server-name", "", "DNS name of the server certificate, e.g. vpn.example.com")
	cmd.Flags().IntVar(&days, "days", pki.DefaultCertDays, "validity of the server certificate, in days")
	cmd.Flags().IntVar(&caDays, "ca-days", pki.DefaultCADays, "validity of the CA, in days")
	cmd.Flags().IntVar(&crlDays, "crl-days", pki.DefaultCRLDays, "validity (nextUpdate) of the CRL, in days")
	return cmd
}

func newPKIIssueCommand(io IO, o *vpnOptions) *cobra.Command {
	var days int
	var force bool
	cmd := &cobra.Command{
		Use:   "issue NAME",
		Short: "Issue a client certificate (clientAuth) for one developer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pki.CheckName(args[0]); err != nil {
				return pkiError(err)
			}
			p, err := o.openUnlocked(io)
			if err != nil {
				return err
			}
			b, err := p.Issue(args[0], pki.KindClient, days, force)
			if errors.Is(err, pki.ErrExists) {
				return plain(err, exitcode.Usage, fmt.Sprintf("`devgate vpn pki renew %s` replaces it; --force supersedes it", args[0]))
			}
			if err != nil {
				return pkiError(err)
			}
			fmt.Fprintf(io.ErrOut, "devgate: issued %s, serial %s, expires %s\n", args[0], b.Entry.SerialHex(), b.Cert.NotAfter.UTC().Format("2006-01-02"))
			if force {
				fmt.Fprintln(io.ErrOut, "devgate: the previous certificate was revoked (superseded); run `devgate vpn import --endpoint …` to push the CRL")
			}
			fmt.Fprintf(io.ErrOut, "devgate: next: devgate vpn profile %s --endpoint cvpn-endpoint-… (or --config exported.ovpn)\n", args[0])
			return nil
		},
	}
	cmd.Flags().IntVar(&days, "days", pki.DefaultCertDays, "validity, in days")
	cmd.Flags().BoolVar(&force, "force", false, "issue even if NAME has a certificate (the old one is revoked as superseded)")
	return cmd
}

func newPKIRenewCommand(io IO, o *vpnOptions) *cobra.Command {
	var days int
	cmd := &cobra.Command{
		Use:   "renew NAME",
		Short: "Replace NAME's certificate and key (the old one is revoked as superseded)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := o.openUnlocked(io)
			if err != nil {
				return err
			}
			b, err := p.Renew(args[0], days)
			if err != nil {
				return pkiError(err)
			}
			fmt.Fprintf(io.ErrOut, "devgate: renewed %s: serial %s, expires %s; the old certificate is revoked (superseded)\n",
				args[0], b.Entry.SerialHex(), b.Cert.NotAfter.UTC().Format("2006-01-02"))
			if b.Entry.Kind == pki.KindServer {
				fmt.Fprintln(io.ErrOut, "devgate: next: devgate vpn import (re-imports into the same ACM ARN)")
			} else {
				fmt.Fprintf(io.ErrOut, "devgate: next: devgate vpn profile %s …, and devgate vpn import --endpoint … for the CRL\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&days, "days", pki.DefaultCertDays, "validity, in days")
	return cmd
}

func newPKIRevokeCommand(io IO, o *vpnOptions) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke NAME's certificate and re-sign the CRL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := pki.ParseReason(reason)
			if err != nil {
				return exitcode.Wrap(err, exitcode.Usage, "", "bad --reason")
			}
			p, err := o.openUnlocked(io)
			if err != nil {
				return err
			}
			e, err := p.Revoke(args[0], r)
			if err != nil {
				return pkiError(err)
			}
			fmt.Fprintf(io.ErrOut, "devgate: revoked %s (serial %s, %s); the CRL is re-signed: %s\n", e.Name, e.SerialHex(), r, p.CRLPath())
			fmt.Fprintln(io.ErrOut, "devgate: next: devgate vpn import --endpoint cvpn-endpoint-… (until then the endpoint still accepts it)")
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "unspecified", "revocation reason: "+strings.Join(pki.ReasonNames(), ", "))
	return cmd
}

func newPKICRLCommand(io IO, o *vpnOptions) *cobra.Command {
	var days int
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Sign a new CRL (next CRL number, nextUpdate in --days)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := o.openUnlocked(io)
			if err != nil {
				return err
			}
			info, err := p.CRL(days)
			if err != nil {
				return pkiError(err)
			}
			fmt.Fprintf(io.ErrOut, "devgate: wrote %s: CRL number %s, %d revoked, next update %s\n", info.Path, info.Number, info.Revoked, info.NextUpdate.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().IntVar(&days, "days", pki.DefaultCRLDays, "days until nextUpdate")
	return cmd
}

type certRow struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Serial   string    `json:"serial"`
	Status   string    `json:"status"`
	Expires  time.Time `json:"expires"`
	DaysLeft int       `json:"daysLeft"`
	Revoked  string    `json:"revoked,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

func newPKIListCommand(io IO, o *vpnOptions) *cobra.Command {
	var asJSON bool
	var warnDays int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List certificates: name, serial, expiry, status, days left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := o.open()
			if err != nil {
				return err
			}
			l, err := p.List()
			if err != nil {
				return pkiError(err)
			}
			now := time.Now()
			rows := []certRow{}
			for _, e := range l.Entries {
				st := e.Status(now)
				r := certRow{Name: e.Name, Kind: string(e.Kind), Serial: e.SerialHex(), Status: string(st),
					Expires: e.Expiry.UTC(), DaysLeft: daysLeft(now, e.Expiry)}
				if e.Revoked {
					r.Revoked, r.Reason = e.RevokedAt.UTC().Format(time.RFC3339), e.Reason.String()
				}
				rows = append(rows, r)
				if st == pki.StatusValid && r.DaysLeft <= warnDays {
					fmt.Fprintf(io.ErrOut, "devgate: warning: %s expires in %d days (%s); run `devgate vpn pki renew %s`\n", e.Name, r.DaysLeft, r.Expires.Format("2006-01-02"), e.Name)
				}
				if st == pki.StatusExpired {
					fmt.Fprintf(io.ErrOut, "devgate: warning: %s expired on %s; run `devgate vpn pki renew %s`\n", e.Name, r.Expires.Format("2006-01-02"), e.Name)
				}
			}
			if l.CRLNumber != nil {
				if d := daysLeft(now, l.CRLNextUpdate); d <= warnDays {
					fmt.Fprintf(io.ErrOut, "devgate: warning: the CRL's nextUpdate is in %d days (%s); run `devgate vpn pki crl` and `devgate vpn import --endpoint …`\n", d, l.CRLNextUpdate.UTC().Format("2006-01-02"))
				}
			}
			if asJSON {
				enc := json.NewEncoder(io.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tSERIAL\tSTATUS\tEXPIRES\tDAYS LEFT")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, r.Kind, r.Serial, r.Status, r.Expires.Format("2006-01-02"), r.DaysLeft)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&warnDays, "warn-days", 30, "warn about certificates expiring within this many days")
	return cmd
}

// daysLeft rounds down; negative when past.
func daysLeft(now, t time.Time) int {
	d := t.Sub(now)
	if d < 0 {
		return -int((-d).Hours()/24) - 1
	}
	return int(d.Hours() / 24)
}
