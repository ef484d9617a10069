package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/progress"
	"github.com/devgate/devgate/internal/s3relay"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshconn"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/transfer"
	"github.com/devgate/devgate/internal/tunnel"
)

func init() { register(newCpCommand) }

// defaultSessions is -j's default: the agent paces one session near 1 MB/s
// (1024-byte reads, 1 ms sleep; protocol doc §8), so eight sessions give
// about 8 MB/s without opening more sessions than a small copy needs.
const defaultSessions = 8

type cpOptions struct {
	af        awsFlags
	recursive bool
	follow    bool
	sessions  int
	via       string
	bucket    string
	keep      bool
	asJSON    bool
	quiet     bool
	user      string
	key       string
	prefix    string
	chunk     int64
	timeout   time.Duration
	path      pathFlags
	resume    time.Duration
	reason    string
}

func newCpCommand(io IO) *cobra.Command {
	var o cpOptions
	cmd := &cobra.Command{
		Use:   "cp [-r] [-j N] SRC DST",
		Short: "Copy files and folders to or from an instance: parallel, resumable, verified",
		Long: `cp copies between this machine and an instance; one side is <target>:<path>
(or <user>@<target>:<path>). It opens -j sessions and moves fixed-size chunks over SFTP on
each, keeping a journal beside a partial file: the same command again moves only what is
missing. The sha256 of every file is compared with the source's before the file is renamed
into place. -r copies folders (modes and mtimes kept).

  devgate cp gpu1:/models/m.pt .
  devgate cp -r ./data gpu1:/scratch/
  devgate cp -j 16 gpu1:/results/run.tar /tmp/`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCp(cmd.Context(), io, o, args[0], args[1])
		},
	}
	o.af.add(cmd)
	o.path.add(cmd)
	f := cmd.Flags()
	f.BoolVarP(&o.recursive, "recursive", "r", false, "copy directories (symbolic links as links, modes and mtimes kept)")
	f.BoolVarP(&o.follow, "copy-links", "L", false, "with -r, copy what symbolic links point to instead of the links (rsync -L)")
	f.IntVarP(&o.sessions, "jobs", "j", defaultSessions, "parallel sessions (on the direct path at most: one per 64 MiB of a file, two per CPU)")
	f.StringVar(&o.via, "via", "auto", "tunnel, s3, or auto (s3 when --bucket or DEVGATE_BUCKET is set and a file is large)")
	f.StringVar(&o.bucket, "bucket", "", "S3 bucket for --via s3 (default $DEVGATE_BUCKET, else devgate's config)")
	f.BoolVar(&o.keep, "keep", false, "keep the S3 object after an S3-relayed copy")
	f.BoolVar(&o.asJSON, "json", false, "print a JSON summary on stdout")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	f.StringVar(&o.user, "user", "", "OS user on the instance (default: user@ in the target, else $DEVGATE_USER, else devgate's config, else "+config.DefaultUser+")")
	f.StringVar(&o.key, "key", "", "private key (default ~/.ssh/devgate/id_ed25519, created if missing)")
	f.StringVar(&o.reason, "reason", "", "why the session is opened, recorded by Session Manager and CloudTrail (default: devgate <command> by <local user>)")
	addPrefixFlag(cmd, &o.prefix)
	f.Int64Var(&o.chunk, "chunk-size", 0, "bytes per chunk, the unit of parallelism and of resumption after a kill -9 (Ctrl-C and a lost session keep what arrived of a chunk too) (default: about 1/64 of each file, 256 KiB to 4 MiB; with --via s3 the part size, at least 5 MiB, default 16 MiB)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on waiting for the instance, its agent and the sessions")
	f.DurationVar(&o.resume, "resume-timeout", 2*time.Minute, "give up on a dropped data channel after this (the same command again resumes the copy)")
	return cmd
}

// remoteSpec is <[user@]target>:<path>.
type remoteSpec struct{ user, target, path string }

// parseRemote splits a remote argument; ok is false for a local path. As in
// scp, a colon before the first slash makes a path remote.
func parseRemote(arg string) (remoteSpec, bool) {
	i := strings.Index(arg, ":")
	if i <= 0 || strings.Contains(arg[:i], "/") || (len(arg) > 1 && filepath.VolumeName(arg) != "") {
		return remoteSpec{}, false
	}
	r := remoteSpec{target: arg[:i], path: arg[i+1:]}
	if u, t, ok := strings.Cut(r.target, "@"); ok {
		r.user, r.target = u, t
	}
	if r.path == "" {
		r.path = "."
	}
	return r, true
}

func runCp(ctx context.Context, io IO, o cpOptions, srcArg, dstArg string) error {
	src, srcRemote := parseRemote(srcArg)
	dst, dstRemote := parseRemote(dstArg)
	if srcRemote == dstRemote {
		return exitcode.New(exitcode.Usage, "devgate cp gpu1:/path/file . (or the other way round)", "exactly one of SRC and DST must be <target>:<path>")
	}
	if o.sessions < 1 || o.sessions > 64 {
		return exitcode.New(exitcode.Usage, "use -j between 1 and 64", "-j %d is out of range", o.sessions)
	}
	if o.chunk != 0 && o.chunk < 4096 {
		return exitcode.New(exitcode.Usage, "", "--chunk-size %d is too small", o.chunk)
	}
	if o.via == "s3" && o.chunk != 0 && o.chunk < minPartSize {
		return exitcode.New(exitcode.Usage, "use --chunk-size 5242880 or more, or leave it out (16 MiB)", "--chunk-size %d is smaller than S3's minimum part size (5 MiB) for --via s3", o.chunk)
	}
	switch o.via {
	case "auto", "tunnel", "s3":
	default:
		return exitcode.New(exitcode.Usage, "use --via auto, tunnel or s3", "unknown --via %q", o.via)
	}
	rs := src
	dir := transfer.Download
	localPath := dstArg
	if dstRemote {
		rs, dir, localPath = dst, transfer.Upload, srcArg
	}
	t, err := resolveTarget(rs.target, config.Settings{User: firstNonEmpty(rs.user, o.user), Profile: o.af.profile, Region: o.af.region, Bucket: o.bucket, Path: o.path.path}, o.prefix)
	if err != nil {
		return err
	}
	// Everything that can be checked here is checked before the first AWS call:
	// a session may start (and bill) a stopped instance.
	if o.via == "s3" && t.Bucket == "" {
		return exitcode.New(exitcode.Usage, "pass --bucket, set DEVGATE_BUCKET or a bucket in devgate's config", "--via s3 needs a bucket")
	}
	if err := transfer.CheckLocal(transfer.Options{Direction: dir, Src: srcArg, Dst: dstArg, Recursive: o.recursive}); err != nil {
		return err
	}
	user := t.User
	home, _, err := homeDir()
	if err != nil {
		return err
	}
	keyPath := o.key
	if keyPath == "" {
		keyPath = sshkey.DefaultPath(home)
	}
	pub, err := connectKey(o.key)
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
	tty := false
	if f, ok := io.ErrOut.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	say := func(format string, a ...any) {
		if !o.quiet {
			fmt.Fprintf(io.ErrOut, "devgate: "+format+"\n", a...)
		}
	}
	topts := tunnel.Options{Target: rs.target, Port: 22, User: user, PublicKey: pub, Timeout: o.timeout, ResumeTimeout: o.resume,
		Resolve: t.Resolve, Progress: say, StateDir: stateDir(), Reason: sessionReason(o.reason, "cp")}
	if topts.Path, topts.DirectBudget, err = o.path.resolve(t.Path); err != nil {
		return err
	}
	sc := sshconn.Config{User: user, Signer: signer, KnownHosts: sshconfig.KnownHostsPath(home), Lock: &sync.Mutex{}, AskLimits: true}
	dstPath, lockDir := localPath, ""
	if dir == transfer.Upload {
		dstPath = rs.path
	}
	if state := stateDir(); state != "" {
		lockDir = filepath.Join(state, "cp", "locks")
	}
	unlock, err := transfer.LockDestination(ctx, dir, rs.target, dstPath, lockDir, func(format string, a ...any) {
		fmt.Fprintf(io.ErrOut, "devgate: "+format+"\n", a...) // also with --quiet: it explains the wait
	})
	if err != nil {
		return err
	}
	defer unlock()
	clients, _, err := sshconn.DialN(ctx, cfg, topts, sc, 1)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	bucket := t.Bucket
	via := o.via
	if via == "auto" {
		via = "tunnel"
		if bucket != "" && !o.recursive && cpSize(clients[0], dir, rs.path, localPath) >= s3Threshold {
			via = "s3"
		}
	}
	newProgress := func(sessions int) (transfer.Progress, func()) {
		if o.quiet {
			return nil, func() {}
		}
		p := progress.NewCopy(io.ErrOut, tty, sessions)
		return p, p.Close
	}
	if via == "s3" {
		if bucket == "" {
			return exitcode.New(exitcode.Usage, "pass --bucket or set DEVGATE_BUCKET", "--via s3 needs a bucket")
		}
		rep, done := newProgress(len(clients))
		ro := s3relay.Options{Bucket: bucket, Keep: o.keep, Parallel: o.sessions, Progress: rep}
		if o.chunk >= minPartSize {
			ro.PartSize = o.chunk
		}
		if state := stateDir(); state != "" {
			ro.JournalDir = filepath.Join(state, "cp")
		}
		var st transfer.Stats
		switch {
		case o.recursive && dir == transfer.Download:
			st, err = s3relay.CopyTree(ctx, cfg, clients[0], dir, rs.path, localPath, o.follow, ro)
		case o.recursive:
			st, err = s3relay.CopyTree(ctx, cfg, clients[0], dir, localPath, rs.path, o.follow, ro)
		case dir == transfer.Download:
			st, err = s3relay.Download(ctx, cfg, clients[0], rs.path, localPath, ro)
		default:
			st, err = s3relay.Upload(ctx, cfg, clients[0], localPath, rs.path, ro)
		}
		done()
		if err != nil {
			return err
		}
		return cpDone(io, o, st, "s3", say)
	}
	sessions := o.sessions
	if clients[0].Path == tunnel.PathDirect && !o.recursive {
		sessions = directSessions(o.sessions, cpSize(clients[0], dir, rs.path, localPath), runtime.NumCPU())
	}
	topt := transfer.Options{Direction: dir, Recursive: o.recursive, FollowLinks: o.follow, ChunkSize: o.chunk, Target: clients[0].InstanceID}
	var joined *joining
	if sessions > 1 {
		// The other sessions take the path the first one took, and join
		// the copy as they connect: the first one starts at once.
		topts.Target, topts.Progress, topts.Path = clients[0].InstanceID, nil, clients[0].Path
		sc.Packet = clients[0].Packet // the server's limits, asked once
		joined = dialJoining(ctx, cfg, topts, sc, sessions-1)
		topt.More = joined.more
		defer joined.closeAll()
	}
	if dir == transfer.Download {
		topt.Src, topt.Dst = rs.path, localPath
	} else {
		topt.Src, topt.Dst = localPath, rs.path
		state := stateDir()
		if state == "" {
			return exitcode.New(exitcode.LocalIO, "set XDG_CACHE_HOME or HOME", "no cache directory for the upload journal")
		}
		topt.JournalDir = filepath.Join(state, "cp")
	}
	rep, done := newProgress(sessions)
	topt.Progress = rep
	copyGC()
	st, err := transfer.Copy(ctx, clients, topt)
	done()
	if joined != nil {
		if n, first := joined.stop(); n > 0 && err == nil {
			say("%d of %d sessions could not be opened (first: %v); copied over %d", n, sessions, first, sessions-n)
		}
	}
	if err != nil {
		return err
	}
	if clients[0].Path == tunnel.PathDirect {
		return cpDone(io, o, st, "direct", say)
	}
	return cpDone(io, o, st, "tunnel", say)
}

// joining dials sessions in parallel and hands each to the copy as it connects.
type joining struct {
	more   chan *sshconn.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	opened []*sshconn.Client
	errs   []error
}

// dialJoining starts n dials of topts (its Target the instance id).
func dialJoining(ctx context.Context, cfg aws.Config, topts tunnel.Options, sc sshconn.Config, n int) *joining {
	ctx, cancel := context.WithCancel(ctx)
	j := &joining{more: make(chan *sshconn.Client, n), cancel: cancel}
	for range n {
		j.wg.Add(1)
		go func() {
			defer j.wg.Done()
			cs, _, err := sshconn.DialN(ctx, cfg, topts, sc, 1)
			j.mu.Lock()
			defer j.mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					j.errs = append(j.errs, err)
				}
				return
			}
			j.opened = append(j.opened, cs[0])
			j.more <- cs[0] // buffered for all n
		}()
	}
	go func() {
		j.wg.Wait()
		close(j.more)
	}()
	return j
}

// stop cancels the dials still running (the copy is over), waits for them
// and returns how many failed before that, and the first failure.
func (j *joining) stop() (int, error) {
	j.cancel()
	j.wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.errs) == 0 {
		return 0, nil
	}
	return len(j.errs), j.errs[0]
}

// closeAll closes the sessions that were opened.
func (j *joining) closeAll() {
	j.stop()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range j.opened {
		c.Close()
	}
}

// copyGCPercent is the garbage collector's target during a copy over SSH
// sessions (GOGC; Go's default is 100). x/crypto/ssh allocates a buffer for
// each SSH packet it reads and pkg/sftp one for each answer: about 2.2 GB of
// short-lived garbage per GiB moved, against a live heap of some tens of MB
// (chunk buffers, channel windows, reads in flight), so at 100 the collector
// runs every few MB. At 200 it runs half as often: 1 GiB direct on 2 cores,
// client CPU 3.2–4.2 → 3.2 s, wall 3.6–4.7 → 3.6–3.7 s, peak RSS 100 → 135
// MB, three interleaved pairs (BENCHMARKS.md, "The hybrid path", h24).
const copyGCPercent = 200

// copyGC sets copyGCPercent, unless the GOGC environment variable says otherwise.
func copyGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(copyGCPercent)
	}
}

// minPartSize is S3's smallest part of a multipart upload but the last
// (Amazon S3 User Guide, "Amazon S3 multipart upload limits": 5 MiB).
const minPartSize = 5 << 20

// directPerSession is how many bytes of a file one direct session carries
// before another one pays for its SSH handshake: a direct connection is not
// paced (one SSH stream runs at line rate or at its CPU's crypto speed), so
// -j is a maximum there and a file gets one session per directPerSession.
const directPerSession = 64 << 20

// directPerCPU bounds a single file's direct sessions by this machine's
// CPUs: each session's stream is decrypted by one goroutine, so sessions
// beyond two per CPU add no crypto throughput, only handshakes, buffers and
// writers waiting on the partial file (1 GiB on 2 cores, bench/hybrid.sh:
// 16 sessions took 4.5 s and 4 took 3.7–3.9 s, scp's time).
const directPerCPU = 2

// directSessions is the number of direct sessions for a file of size bytes
// (0: unknown, then jobs) with at most jobs (-j), on a machine with cpus CPUs.
func directSessions(jobs int, size int64, cpus int) int {
	if size <= 0 {
		return jobs
	}
	n := min(int64(jobs), (size+directPerSession-1)/directPerSession, int64(max(1, directPerCPU*cpus)))
	return int(max(1, n))
}

// s3Threshold is the size from which --via auto relays through S3.
const s3Threshold = 32 << 20

// cpSize is the size of the source, or 0 when it cannot be seen yet.
func cpSize(c *sshconn.Client, dir transfer.Direction, remote, local string) int64 {
	if dir == transfer.Download {
		if fi, err := c.SFTP.Stat(remote); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
		return 0
	}
	if fi, err := os.Stat(local); err == nil && fi.Mode().IsRegular() {
		return fi.Size()
	}
	return 0
}

func cpDone(io IO, o cpOptions, st transfer.Stats, via string, say func(string, ...any)) error {
	if o.asJSON {
		return printCpJSON(io, st, via)
	}
	say("%s", cpReport(st, via))
	return nil
}

// cpReport is the human summary of a copy: what moved, over how many
// sessions, what an earlier run had already done, and what was skipped.
func cpReport(st transfer.Stats, via string) string {
	copied := st.Files - st.Skipped
	skipped := ""
	if st.Skipped > 0 {
		skipped = fmt.Sprintf("%s already in place (same size and mtime)", plural(st.Skipped, "file"))
	}
	if copied == 0 && st.Skipped > 0 {
		return "nothing to copy: " + skipped
	}
	var b strings.Builder
	fmt.Fprintf(&b, "copied %s, %s in %.1f s (%.1f MB/s", plural(copied, "file"), progress.Bytes(st.Moved), st.Seconds, mbps(st.Moved, st.Seconds))
	if st.Sessions > 1 || via != "s3" {
		fmt.Fprintf(&b, ", %s", plural(st.Sessions, "session"))
	}
	if st.Resumed > 0 {
		fmt.Fprintf(&b, ", %s resumed from an earlier run", progress.Bytes(st.Resumed))
	}
	fmt.Fprintf(&b, ", via %s)", via)
	if skipped != "" {
		b.WriteString("; " + skipped)
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// cpSummary is the --json output.
type cpSummary struct {
	transfer.Stats
	Via  string  `json:"via"`
	MBps float64 `json:"mb_per_s"`
}

func printCpJSON(io IO, st transfer.Stats, via string) error {
	b, err := json.MarshalIndent(cpSummary{Stats: st, Via: via, MBps: mbps(st.Moved, st.Seconds)}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(io.Out, "%s\n", b)
	return err
}

func mbps(b int64, s float64) float64 {
	if s <= 0 {
		return 0
	}
	return float64(b) / 1e6 / s
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
