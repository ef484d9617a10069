package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/bench"
	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/s3relay"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshconn"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/tunnel"
)

func init() { register(newBenchCommand) }

func newBenchCommand(io IO) *cobra.Command {
	var af awsFlags
	var path, user, key, prefix, size, bucket string
	var runs, sessions int
	var asJSON bool
	var budget, maxTime time.Duration
	cmd := &cobra.Command{
		Use:   "bench <target>",
		Short: "Measure connect time, round trip, throughput and stability per path against the targets",
		Long: `bench measures, on the instance, per path (direct over the Client VPN, Session Manager):
warm connect time (median, p90), the interactive round trip (1-byte echo through an SSH
session, p50, p99), bulk throughput down and up through one session and through parallel
sessions (cp's way), and session stability (short sessions, how many completed), each
beside the users' target (round trip < 100 ms, transfers > 20 MB/s, > 99 % of sessions),
and says in one line which path to use for what. Data comes from /dev/zero and goes to
/dev/null on the instance: nothing is written to disk there or here. When a bucket is
configured (--bucket, $DEVGATE_BUCKET or devgate's config: the one cp --via s3 uses), an
S3 relay row downloads --size through it from a sparse file of zeros on the instance (no
disk blocks); that file, the copy here and the object are removed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var paths []string
			switch path {
			case "all":
				paths = []string{tunnel.PathDirect, tunnel.PathSSM}
			case tunnel.PathAuto, tunnel.PathDirect, tunnel.PathSSM:
				paths = []string{path}
			default:
				return exitcode.New(exitcode.Usage, "use --path auto, direct, ssm or all", "unknown --path %q", path)
			}
			n, err := parseSize(size)
			if err != nil {
				return err
			}
			if runs < 1 || sessions < 1 || sessions > 64 {
				return exitcode.New(exitcode.Usage, "--runs ≥ 1, --sessions between 1 and 64", "--runs %d / --sessions %d out of range", runs, sessions)
			}
			t, err := resolveTarget(args[0], config.Settings{User: user, Profile: af.profile, Region: af.region, Bucket: bucket}, prefix)
			if err != nil {
				return err
			}
			home, _, err := homeDir()
			if err != nil {
				return err
			}
			keyPath := key
			if keyPath == "" {
				keyPath = sshkey.DefaultPath(home)
			}
			pub, err := connectKey(key)
			if err != nil {
				return err
			}
			signer, err := sshkey.LoadSigner(keyPath)
			if err != nil {
				return err
			}
			cfg, err := t.aws(ctx, nil)
			if err != nil {
				return err
			}
			if budget <= 0 {
				budget = tunnel.DefaultDirectBudget
			}
			topts := tunnel.Options{Target: args[0], Port: 22, User: t.User, PublicKey: pub, Resolve: t.Resolve,
				StateDir: stateDir(), DirectBudget: budget, Timeout: 5 * time.Minute}
			sc := sshconn.Config{User: t.User, Signer: signer, KnownHosts: sshconfig.KnownHostsPath(home), Lock: &sync.Mutex{}}
			var lineMu sync.Mutex
			o := bench.Options{Paths: paths, Size: n, Runs: runs, Sessions: sessions, MaxTime: maxTime,
				Dial: func(ctx context.Context, p string, k int) ([]*sshconn.Client, error) {
					to := topts
					to.Path = p
					cs, errs, err := sshconn.DialN(ctx, cfg, to, sc, k)
					if err != nil {
						return nil, err
					}
					if len(errs) > 0 {
						closeClients(cs)
						return nil, fmt.Errorf("%d of %d sessions failed: %w", len(errs), k, errs[0])
					}
					return cs, nil
				},
				Progress: func(format string, a ...any) {
					lineMu.Lock()
					defer lineMu.Unlock()
					fmt.Fprintf(io.ErrOut, "devgate: "+format+"\n", a...)
				}}
			if t.Bucket != "" { // the bucket cp --via s3 would use
				o.RelayBucket = t.Bucket
				o.Relay = func(ctx context.Context, c *sshconn.Client, src string, size int64) error {
					dir, err := os.MkdirTemp("", "devgate-bench-")
					if err != nil {
						return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot create a temporary directory")
					}
					defer os.RemoveAll(dir) // the relayed copy here
					_, err = s3relay.Download(ctx, cfg, c, src, filepath.Join(dir, "relay.bin"), s3relay.Options{Bucket: t.Bucket, Parallel: sessions})
					return err
				}
			}
			rep, err := bench.Run(ctx, args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(io.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				writeBench(io, rep)
			}
			return benchDirectErr(path, rep)
		},
	}
	af.add(cmd)
	f := cmd.Flags()
	f.StringVar(&path, "path", "all", "auto, direct, ssm or all (direct and ssm)")
	f.StringVar(&size, "size", "64MiB", "bytes per bulk transfer (suffixes KiB, MiB, GiB)")
	f.IntVar(&runs, "runs", 5, "warm connects (and 20 echoes, 4 short sessions per run)")
	f.IntVarP(&sessions, "sessions", "j", 8, "parallel sessions of the parallel rows (cp's -j)")
	f.DurationVar(&maxTime, "max-time", 20*time.Second, "bound on each bulk transfer (throughput is what moved in that time)")
	f.DurationVar(&budget, "direct-budget", 0, "how long auto waits for the direct path (default 300ms)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&bucket, "bucket", "", "S3 bucket of the S3 relay row, as cp --via s3 (default $DEVGATE_BUCKET, else devgate's config; none: no relay row)")
	f.StringVar(&user, "user", "", "OS user (default $DEVGATE_USER, else devgate's config, else "+config.DefaultUser+")")
	f.StringVar(&key, "key", "", "private key (default ~/.ssh/devgate/id_ed25519)")
	addPrefixFlag(cmd, &prefix)
	return cmd
}

// benchDirectErr is bench's error after the report: --path direct that
// could not be used exits as connect --path direct does (26, its hint).
func benchDirectErr(path string, rep *bench.Report) error {
	if path != tunnel.PathDirect || len(rep.Paths) != 1 {
		return nil
	}
	err := rep.Paths[0].Unusable()
	if err == nil {
		return nil
	}
	if exitcode.Code(err) == int(exitcode.Generic) {
		return exitcode.Wrap(err, exitcode.DirectUnreachable, "connect the Client VPN (devgate vpn), or bench --path ssm", "the direct path is not available")
	}
	return err
}

func closeClients(cs []*sshconn.Client) {
	for _, c := range cs {
		c.Close()
	}
}

// parseSize reads "64MiB", "1GiB", "512KiB" or a number of bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.m, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || v <= 0 || v > (1<<40)/mult {
		return 0, exitcode.New(exitcode.Usage, "e.g. --size 64MiB", "--size %q is not a size", s)
	}
	return v * mult, nil
}

// writeBench prints the report: per path a table of figures with ✓/✗ beside the targets, then the verdict.
func writeBench(io IO, r *bench.Report) {
	for _, p := range r.Paths {
		title := p.Path
		if p.Took != p.Path {
			title += " (took " + p.Took + ")"
		}
		fmt.Fprintf(io.Out, "%s\n", title)
		if p.Err != "" {
			fmt.Fprintf(io.Out, "  not available: %s\n", p.Err)
			if h := exitcode.HintOf(p.Unusable()); h != "" {
				fmt.Fprintf(io.Out, "  hint: %s\n", h)
			}
			fmt.Fprintln(io.Out)
			continue
		}
		tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  warm connect\tmedian %.0f ms, p90 %.0f ms\t\t\n", p.ConnectMedian, p.ConnectP90)
		if p.RTTSamples > 0 {
			fmt.Fprintf(tw, "  round trip\tp50 %.1f ms, p99 %.1f ms\n", p.RTTp50, p.RTTp99)
		}
		if p.StartOne > 0 && p.DownParallel != nil && p.StartParallel > 0 {
			fmt.Fprintf(tw, "  session start\tone %.0f ms, %d at once %.0f ms\n", p.StartOne, p.DownParallel.Sessions, p.StartParallel)
		}
		for _, c := range p.Checks {
			mark := "✓"
			switch {
			case c.Undecided:
				mark = c.Why
			case !c.OK:
				mark = "✗"
			}
			fmt.Fprintf(tw, "  %s\t%s\ttarget %s\t%s\n", c.Name, c.Value, c.Target, mark)
		}
		tw.Flush()
		for _, e := range p.Errors {
			fmt.Fprintf(io.Out, "  error: %s\n", e)
		}
		fmt.Fprintln(io.Out)
	}
	if rr := r.Relay; rr != nil {
		fmt.Fprintf(io.Out, "s3 relay (bucket %s, over %s)\n", rr.Bucket, rr.Path)
		if rr.Err != "" {
			fmt.Fprintf(io.Out, "  error: %s\n", rr.Err)
		}
		if c := rr.Check; c != nil {
			mark := "✓"
			if !c.OK {
				mark = "✗"
			}
			tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "  %s\t%s\ttarget %s\t%s\n", c.Name, c.Value, c.Target, mark)
			tw.Flush()
		}
		if rr.Note != "" {
			fmt.Fprintf(io.Out, "  %s\n", rr.Note)
		}
		fmt.Fprintln(io.Out)
	}
	fmt.Fprintf(io.Out, "verdict: %s\n", r.Verdict)
}
