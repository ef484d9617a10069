package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
)

func init() { register(newStartCommand) }

func newStartCommand(io IO) *cobra.Command {
	return newPowerCommand(io, true)
}

// newPowerCommand builds start (on) or stop (!on): resolve the target, call
// StartInstances/StopInstances, and with --wait poll until the instance is
// running/stopped, reporting each state change on stderr. start on a stopping
// instance waits (up to --timeout) for stopped, then starts it.
func newPowerCommand(io IO, on bool) *cobra.Command {
	var af awsFlags
	var prefix string
	var wait bool
	var timeout time.Duration
	verb, want := "stop", "stopped"
	if on {
		verb, want = "start", "running"
	}
	cmd := &cobra.Command{
		Use:   verb + " <target>",
		Short: fmt.Sprintf("%s an instance (id, Name tag or alias)", map[bool]string{true: "Start", false: "Stop"}[on]),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := resolveTarget(args[0], af.settings(), prefix)
			if err != nil {
				return err
			}
			cfg, err := t.aws(ctx, nil)
			if err != nil {
				return err
			}
			row, err := t.describe(ctx, cfg, args[0])
			if err != nil {
				return err
			}
			label := row.ID
			if row.Name != "" {
				label = row.Name + " (" + row.ID + ")"
			}
			if row.State == "terminated" || row.State == "shutting-down" {
				return exitcode.New(exitcode.Terminated, "launch a new instance", "%s is %s", label, row.State)
			}
			client := ec2.NewFromConfig(cfg)
			if row.State == want {
				fmt.Fprintf(io.ErrOut, "devgate: %s is already %s\n", label, want)
				return nil
			}
			if on && row.State == "stopping" {
				// EC2 refuses to start a stopping instance (IncorrectInstanceState):
				// wait for stopped first, as connect does.
				fmt.Fprintf(io.ErrOut, "devgate: %s is stopping; it starts once stopped\n", label)
				if err := waitState(ctx, io, client, row.ID, label, "stopped", timeout); err != nil {
					return err
				}
				row.State = "stopped"
			}
			if on {
				_, err = client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{row.ID}})
			} else {
				_, err = client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{row.ID}})
			}
			if err != nil {
				return awsapi.Classify(err, "ec2:"+map[bool]string{true: "StartInstances", false: "StopInstances"}[on])
			}
			fmt.Fprintf(io.ErrOut, "devgate: %s: %s requested (was %s)\n", label, verb, row.State)
			if !wait {
				return nil
			}
			return waitState(ctx, io, client, row.ID, label, want, timeout)
		},
	}
	af.add(cmd)
	addPrefixFlag(cmd, &prefix)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the instance is "+want)
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits (and start waits for a stopping instance to stop)")
	return cmd
}

func waitState(ctx context.Context, io IO, client *ec2.Client, id, label, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	last := ""
	delay := time.Second
	for {
		out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return awsapi.Classify(err, "ec2:DescribeInstances")
		}
		state := ""
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				if i.State != nil {
					state = string(i.State.Name)
				}
			}
		}
		if state != last {
			fmt.Fprintf(io.ErrOut, "devgate: %s: %s (%s)\n", label, state, time.Since(start).Round(time.Second))
			last = state
		}
		if state == want {
			return nil
		}
		if state == "terminated" || state == "shutting-down" {
			return exitcode.New(exitcode.Terminated, "launch a new instance", "%s is %s", label, state)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
			delay = min(delay*2, 5*time.Second)
			continue
		}
		break
	}
	if err := ctx.Err(); err != nil && ctx.Err() == context.DeadlineExceeded {
		return exitcode.New(exitcode.StartTimeout, "check the instance in the EC2 console; raise --timeout", "%s did not reach %s within %s (last state %s)", label, want, timeout, aws.ToString(&last))
	}
	return ctx.Err()
}
