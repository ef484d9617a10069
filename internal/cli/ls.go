package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/creds"
	"github.com/devgate/devgate/internal/tunnel"
)

func init() { register(newLsCommand) }

// awsFlags are the AWS selection flags of ls, start, stop and doctor.
type awsFlags struct{ profile, region string }

// load loads the AWS configuration the flags name, with devgate's
// application id on every call; sdkLog receives what the SDK logs (nil: nothing,
// so that SDK warnings never reach the terminal without --verbose).
func (f *awsFlags) load(ctx context.Context, sdkLog *slog.Logger) (aws.Config, error) {
	return loadAWS(ctx, f.profile, f.region, sdkLog)
}

// loadAWS loads the AWS configuration for profile and region with devgate's
// application id; sdkLog receives what the SDK logs (nil: nothing).
func loadAWS(ctx context.Context, profile, region string, sdkLog *slog.Logger) (aws.Config, error) {
	opts := []awsapi.Option{awsapi.WithAppID(moduleVersion())}
	if home, _, err := homeDir(); err == nil {
		opts = append(opts, creds.MFAOptions(ctx, profile, home, "/dev/tty", time.Now())...)
	}
	if sdkLog != nil {
		opts = append(opts, awsapi.WithLogger(sdkLog))
	}
	return awsapi.Load(ctx, profile, region, opts...)
}

func (f *awsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.profile, "profile", "", "AWS profile (default: the host's from devgate's config, else $AWS_PROFILE, else the config's defaults)")
	cmd.Flags().StringVar(&f.region, "region", "", "AWS region (default: the host's from devgate's config, else $AWS_REGION, else the profile's)")
}

// settings are the flags as config.Settings ("" = not given).
func (f awsFlags) settings() config.Settings {
	return config.Settings{Profile: f.profile, Region: f.region}
}

// addPrefixFlag adds --prefix (default: $DEVGATE_PREFIX, else the config's, else devbox).
func addPrefixFlag(cmd *cobra.Command, prefix *string) {
	cmd.Flags().StringVar(prefix, "prefix", "", "alias prefix: <prefix>-<name> names the instance tagged Name=<name> (default $DEVGATE_PREFIX, else devgate's config, else "+config.DefaultPrefix+")")
}

func newLsCommand(io IO) *cobra.Command {
	var af awsFlags
	var asJSON, all, noProbe bool
	var probeTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List instances with their state and SSM agent status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := resolveTarget("", af.settings(), "")
			if err != nil {
				return err
			}
			cfg, err := t.aws(cmd.Context(), nil)
			if err != nil {
				return err
			}
			inst, err := awsapi.Describe(cmd.Context(), cfg, all, nil, time.Now())
			if err != nil {
				return err
			}
			awsapi.RememberInstances(t.Resolve.CacheFile, inst, time.Now())
			rows := make([]lsRow, len(inst))
			var wg sync.WaitGroup
			for i, r := range inst {
				rows[i].Instance = r
				if r.State == "running" && r.PrivateIP != "" && !noProbe {
					wg.Go(func() {
						p := tunnel.ProbeAddr(cmd.Context(), r.PrivateIP, 22, probeTimeout)
						rows[i].Direct = &p
					})
				}
			}
			wg.Wait()
			if asJSON {
				enc := json.NewEncoder(io.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return writeTable(io, rows)
		},
	}
	af.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (for scripts)")
	cmd.Flags().BoolVar(&all, "all", false, "include terminated instances")
	cmd.Flags().BoolVar(&noProbe, "no-probe", false, "do not check whether running instances answer on their private address")
	cmd.Flags().DurationVar(&probeTimeout, "probe-timeout", tunnel.DefaultDirectBudget, "how long the direct-path check waits for port 22 of each instance")
	return cmd
}

// lsRow is one instance and whether its private address answers on port 22
// (the direct path, over the Client VPN); Direct is nil when not checked.
type lsRow struct {
	awsapi.Instance
	Direct *tunnel.Probe `json:"direct,omitempty"`
}

// directCell is the DIRECT column: "yes (12 ms)", the kind of failure, or "-".
func directCell(p *tunnel.Probe) string {
	switch {
	case p == nil:
		return "-"
	case p.OK:
		return fmt.Sprintf("yes (%d ms)", p.Took.Milliseconds())
	}
	return p.Result
}

func writeTable(io IO, rows []lsRow) error {
	if len(rows) == 0 {
		fmt.Fprintln(io.ErrOut, "devgate: no instances")
		return nil
	}
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSTATE\tTYPE\tAGENT\tPRIVATE IP\tDIRECT\tUPTIME")
	for _, r := range rows {
		up := "-"
		if r.State == "running" && r.LaunchTime != nil {
			up = humanUptime(r.UptimeSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(printable(r.Name)), r.ID, r.State, dash(r.Type), dash(r.Agent), dash(r.PrivateIP), directCell(r.Direct), up)
	}
	return tw.Flush()
}

// printable escapes control characters (a Name tag is anyone's text: a
// newline or an escape sequence must not reach the terminal or break the
// table) as Go escapes them: \n, \x1b, \u0085.
func printable(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanUptime(sec int64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
