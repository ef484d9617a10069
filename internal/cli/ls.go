package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
)

func init() { register(newLsCommand) }

// awsFlags are the AWS selection flags of ls, start, stop and doctor.
type awsFlags struct{ profile, region string }

func (f *awsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.profile, "profile", "", "AWS profile (default: the SDK's default chain)")
	cmd.Flags().StringVar(&f.region, "region", "", "AWS region (default: from the profile/environment)")
}

func newLsCommand(io IO) *cobra.Command {
	var af awsFlags
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List instances with their state and SSM agent status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := awsapi.Load(cmd.Context(), af.profile, af.region)
			if err != nil {
				return err
			}
			rows, err := awsapi.Describe(cmd.Context(), cfg, all, nil, time.Now())
			if err != nil {
				return err
			}
			awsapi.RememberInstances(resolveOptions(defaultPrefix).CacheFile, rows, time.Now())
			if asJSON {
				if rows == nil {
					rows = []awsapi.Instance{}
				}
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
	return cmd
}

func writeTable(io IO, rows []awsapi.Instance) error {
	if len(rows) == 0 {
		fmt.Fprintln(io.ErrOut, "devgate: no instances")
		return nil
	}
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSTATE\tTYPE\tAGENT\tPRIVATE IP\tUPTIME")
	for _, r := range rows {
		up := "-"
		if r.State == "running" && r.LaunchTime != nil {
			up = humanUptime(r.UptimeSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(r.Name), r.ID, r.State, dash(r.Type), dash(r.Agent), dash(r.PrivateIP), up)
	}
	return tw.Flush()
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
