// Package sshconfig generates devgate's managed OpenSSH client config
// (~/.ssh/devgate/config) and the Include that hooks it into the user's
// ~/.ssh/config, and computes the file changes (with unified diffs and
// backups) that `devgate setup` applies.
//
// The managed file holds one Host block per known host (its alias and
// instance id, its OS user, a ProxyCommand with its account's profile and
// region), a block per alias prefix for hosts not known yet, `Host i-* mi-*`
// for instance ids, and the shared options. Every block is a `Match final
// host …`: OpenSSH takes the first value it finds, and `final` blocks are
// read in a second pass after the whole configuration (ssh_config(5),
// "Match ... final"), so whatever the user's own blocks set, above or below
// the Include, wins, and devgate's options fill in what they leave unset. The
// Include itself sits at the top of ~/.ssh/config (unconditional). An ssh
// without `Match final` (OpenSSH before 8.2) gets plain Host blocks
// (Options.PlainHost): there devgate's options come first.
//
// Generation is a pure function of (OS, home, binary path, options,
// inventory): no clock, no environment, no AWS. The package never edits a
// line of the user's own config other than the Include it adds (and moves),
// and it never writes StrictHostKeyChecking no.
package sshconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/devgate/devgate/internal/shquote"
)

// Socket path limits (sun_path) and the 17 bytes ssh's mux master adds for
// its temporary "<ControlPath>.<16 random chars>" socket (mux.c).
const (
	SunPathDarwin = 104
	SunPathLinux  = 108
	MuxTempSuffix = 17
	// HashLen is the length of %C (hex SHA-1).
	HashLen = 40
)

// Options are the inputs of Generate besides the inventory.
type Options struct {
	GOOS    string // "linux", "darwin", "windows"
	Home    string // the user's home directory, absolute
	Binary  string // absolute path of the devgate binary ProxyCommand runs
	Profile string // AWS profile; empty: none on the command line
	Region  string // AWS region; empty: none on the command line
	User    string // default remote user (ssh User); default "ec2-user"
	Prefix  string // alias prefix; default "devbox"
	KeyPath string // IdentityFile; default ~/.ssh/devgate/id_ed25519
	// Tilde writes paths under Home as "~/…". Only correct when Home is the
	// home directory ssh itself expands "~" to (the passwd entry), so tests
	// with a temporary HOME leave it false and get absolute paths.
	Tilde               bool
	ServerAliveInterval int    // default 15
	ServerAliveCountMax int    // default 3
	ControlPersist      string // default "10m"
	// ControlDir holds the ControlMaster sockets; default ~/.ssh/devgate/cm,
	// or ShortControlDir when that would not fit the socket-path limit.
	ControlDir string
	// PlainHost writes `Host` blocks instead of `Match final host` (ssh
	// without Match final; see SupportsMatchFinal).
	PlainHost bool
	// Sets are the (prefix, profile, region) sets of hosts the file covers;
	// empty: the one set {Prefix, Profile, Region}.
	Sets []Set
}

// Set is one `devgate setup` scope: an alias prefix in one account and region.
type Set struct{ Prefix, Profile, Region string }

// Instance is one known devbox.
type Instance struct {
	Name string // from the Name tag; the alias is Prefix + "-" + the sanitized name
	ID   string // i-…
	// Alias overrides the alias derived from Name ("" = derived).
	Alias string
	// User: this host's, "" = Options.User. Profile, Region: this host's
	// account; both "" = the prefix's set's (Profile "" with a Region is the
	// SDK's own chain, not the prefix's profile).
	User, Profile, Region string
	// Prefix is the set's prefix ("" = Options.Prefix).
	Prefix string
}

// ShortControlDir is the ControlMaster directory used when the one under the
// home directory would make socket paths too long: ssh expands %i to the
// local uid. It must be a 0700 directory owned by the user (EnsureControlDir).
const ShortControlDir = "/tmp/devgate-%i"

func (o Options) withDefaults() Options {
	if o.User == "" {
		o.User = "ec2-user"
	}
	if o.Prefix == "" {
		o.Prefix = "devbox"
	}
	if o.KeyPath == "" {
		o.KeyPath = o.join(".ssh", "devgate", "id_ed25519")
	}
	if o.ControlDir == "" {
		o.ControlDir = o.join(".ssh", "devgate", "cm")
		if n, max := controlPathLen(o.GOOS, o.ControlDir); n > max {
			o.ControlDir = ShortControlDir
		}
	}
	if len(o.Sets) == 0 {
		o.Sets = []Set{{Prefix: o.Prefix, Profile: o.Profile, Region: o.Region}}
	}
	for i := range o.Sets {
		if o.Sets[i].Prefix == "" {
			o.Sets[i].Prefix = o.Prefix
		}
	}
	if o.ServerAliveInterval == 0 {
		o.ServerAliveInterval = 15
	}
	if o.ServerAliveCountMax == 0 {
		o.ServerAliveCountMax = 3
	}
	if o.ControlPersist == "" {
		o.ControlPersist = "10m"
	}
	return o
}

// join builds a path under Home in the target OS's form (forward slashes on
// every OS: ssh and Windows both accept them).
func (o Options) join(elem ...string) string {
	h := strings.ReplaceAll(o.Home, `\`, "/")
	return path.Join(append([]string{h}, elem...)...)
}

// ManagedPath returns the managed config's path on the local file system.
func ManagedPath(home string) string { return filepath.Join(home, ".ssh", "devgate", "config") }

// KnownHostsPath returns devgate's known_hosts path on the local file system.
func KnownHostsPath(home string) string { return filepath.Join(home, ".ssh", "devgate", "known_hosts") }

// UserConfigPath returns ~/.ssh/config on the local file system.
func UserConfigPath(home string) string { return filepath.Join(home, ".ssh", "config") }

// sshPath renders a path under Home for ssh_config: "~/…" with Tilde, else
// absolute; quoted when it contains a space.
func (o Options) sshPath(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	h := strings.TrimSuffix(strings.ReplaceAll(o.Home, `\`, "/"), "/")
	if o.Tilde && strings.HasPrefix(p, h+"/") {
		p = "~" + p[len(h):]
	}
	return quote(p)
}

func quote(s string) string {
	if strings.ContainsAny(s, " \t") {
		return `"` + s + `"`
	}
	return s
}

var aliasUnsafe = regexp.MustCompile(`[^a-z0-9._-]+`)

// Alias returns the ssh alias for an instance name: prefix + "-" + the name
// lowercased with runs of other characters replaced by "-". Empty names get
// the instance id.
func Alias(prefix, name, id string) string {
	n := strings.Trim(aliasUnsafe.ReplaceAllString(strings.ToLower(name), "-"), "-.")
	if n == "" {
		n = id
	}
	if strings.HasPrefix(n, prefix+"-") {
		return n
	}
	return prefix + "-" + n
}

// Aliases returns alias → instance id for the inventory, sorted by alias. When
// two instances share a name, both get the id appended so neither is ambiguous.
func Aliases(prefix string, inv []Instance) []Instance {
	count := map[string]int{}
	for _, in := range inv {
		count[Alias(prefix, in.Name, in.ID)]++
	}
	var out []Instance
	for _, in := range inv {
		a := Alias(prefix, in.Name, in.ID)
		if count[a] > 1 {
			a = a + "-" + in.ID
		}
		out = append(out, Instance{Name: a, ID: in.ID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ProxyCommand returns the ProxyCommand value for the options.
func ProxyCommand(o Options) string {
	o = o.withDefaults()
	bin := strings.ReplaceAll(o.Binary, `\`, "/")
	var b strings.Builder
	if o.GOOS == "windows" {
		// Windows OpenSSH runs ProxyCommand without a shell (CreateProcess):
		// no "exec", the executable path quoted when needed.
		b.WriteString(quote(bin))
	} else {
		// ssh runs it as `$SHELL -c "exec <ProxyCommand>"`.
		b.WriteString(shquote.Quote(bin))
	}
	b.WriteString(" connect %h %p --user %r")
	q := shquote.Quote
	if o.GOOS == "windows" {
		q = quote // no shell: double quotes for CreateProcess's argument parsing
	}
	if o.Profile != "" {
		b.WriteString(" --profile " + q(o.Profile))
	}
	if o.Region != "" {
		b.WriteString(" --region " + q(o.Region))
	}
	return b.String()
}

// ControlPathLen returns the length of the expanded ControlPath socket
// ("<ControlDir>/<40 hex>", %i counted as 10 digits) and the longest length
// ssh accepts on goos (sun_path - 1 for the NUL - the mux master's 17-byte
// temporary suffix). ok is false when the ControlPath is too long; with the
// default ControlDir it is always true (ShortControlDir is chosen). On
// Windows there is no ControlPath and ok is always true.
func ControlPathLen(o Options) (length, max int, ok bool) {
	o = o.withDefaults()
	if o.GOOS == "windows" {
		return 0, 0, true
	}
	length, max = controlPathLen(o.GOOS, o.ControlDir)
	return length, max, length <= max
}

func controlPathLen(goos, dir string) (length, max int) {
	dir = strings.ReplaceAll(dir, "%i", "4294967295")
	length = len(strings.TrimSuffix(dir, "/")) + 1 + HashLen
	sun := SunPathLinux
	if goos == "darwin" || strings.HasSuffix(goos, "bsd") {
		sun = SunPathDarwin
	}
	return length, sun - 1 - MuxTempSuffix
}

// ControlDir returns the ControlMaster directory Generate writes for o, in
// ssh's form (may contain %i).
func ControlDir(o Options) string { return o.withDefaults().ControlDir }

// Generate renders the managed config: per-host blocks, then one block per
// set's prefix (longest prefix first, so "devbox-b-*" is matched before
// "devbox-*"), then `Host i-* mi-*`, then the options shared by all of them.
func Generate(o Options, inv []Instance) ([]byte, error) {
	o = o.withDefaults()
	if o.Home == "" || o.Binary == "" {
		return nil, fmt.Errorf("sshconfig: Home and Binary are required")
	}
	if o.GOOS != "linux" && o.GOOS != "darwin" && o.GOOS != "windows" && !strings.HasSuffix(o.GOOS, "bsd") {
		return nil, fmt.Errorf("sshconfig: unsupported GOOS %q", o.GOOS)
	}
	sets := append([]Set(nil), o.Sets...)
	for _, st := range sets {
		if st.Prefix == "" || strings.ContainsAny(st.Prefix, " \t*?!,") {
			return nil, fmt.Errorf("sshconfig: prefix %q must be non-empty, without spaces or ssh pattern characters", st.Prefix)
		}
	}
	sort.SliceStable(sets, func(i, j int) bool { return len(sets[i].Prefix) > len(sets[j].Prefix) })
	setOf := func(prefix string) Set {
		for _, st := range sets {
			if st.Prefix == prefix {
				return st
			}
		}
		return Set{Prefix: prefix}
	}
	pc := func(profile, region string) string {
		p := o
		p.Profile, p.Region = profile, region
		return ProxyCommand(p)
	}
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	// block opens a block for the patterns (ssh's pattern syntax, no spaces).
	block := func(patterns ...string) {
		if o.PlainHost {
			w("Host %s", strings.Join(patterns, " "))
		} else {
			w("Match final host %s", strings.Join(patterns, ","))
		}
	}
	w("# Managed by `devgate setup` from devgate's config; edits here are overwritten the next time it runs.")
	if o.PlainHost {
		w("# This ssh has no `Match final`: these settings come before your own for devgate's hosts.")
	} else {
		w("# Your own settings win: these are `Match final` blocks, which ssh reads after the rest of its")
		w("# configuration, and ssh keeps the first value it finds. So a `Host <alias>` block with `User …` (or")
		w("# any option) anywhere in ~/.ssh/config overrides devgate's, which fill in only what you leave unset.")
	}
	w("")
	for _, in := range hostsOf(o, inv) {
		st := setOf(in.Prefix)
		names := []string{in.Alias}
		if in.ID != "" {
			names = append(names, in.ID)
		}
		block(names...)
		w("    User %s", firstNonEmpty(in.User, o.User))
		profile, region := st.Profile, st.Region
		if in.Profile != "" || in.Region != "" {
			// The host's own set (config.Host.OwnsAccount): a set without a
			// profile stays without one when another set holds the prefix's entry.
			profile, region = in.Profile, in.Region
		}
		w("    ProxyCommand %s", pc(profile, region))
		w("")
	}
	var patterns []string
	seen := map[string]bool{}
	for _, st := range sets {
		if seen[st.Prefix] {
			continue // the first set of a prefix wins, as in ssh
		}
		seen[st.Prefix] = true
		patterns = append(patterns, st.Prefix+"-*")
		block(st.Prefix + "-*")
		w("    ProxyCommand %s", pc(st.Profile, st.Region))
		w("")
	}
	w("# Instance ids (AWS's runbooks: ssh i-…); the account and region come from devgate's config.")
	block("i-*", "mi-*")
	w("    ProxyCommand %s", pc("", ""))
	w("")
	block(append(patterns, "i-*", "mi-*")...)
	w("    User %s", o.User)
	w("    IdentityFile %s", o.sshPath(o.KeyPath))
	w("    IdentitiesOnly yes")
	w("    ServerAliveInterval %d", o.ServerAliveInterval)
	w("    ServerAliveCountMax %d", o.ServerAliveCountMax)
	if o.GOOS == "windows" {
		w("    # Windows OpenSSH has no connection sharing (Win32-OpenSSH#405).")
		w("    ControlMaster no")
		w("    ControlPath none")
	} else {
		w("    ControlMaster auto")
		w("    ControlPath %s", o.sshPath(strings.TrimSuffix(o.ControlDir, "/")+"/%C"))
		w("    ControlPersist %s", o.ControlPersist)
	}
	w("    # Host keys are pinned on first use; a changed key is refused.")
	w("    StrictHostKeyChecking accept-new")
	w("    UserKnownHostsFile %s", o.sshPath(o.join(".ssh", "devgate", "known_hosts")))
	return b.Bytes(), nil
}

// hostsOf returns the inventory with prefixes and aliases filled in, sorted
// by alias; a name shared by two instances of one prefix gets the id appended.
func hostsOf(o Options, inv []Instance) []Instance {
	count := map[string]int{}
	out := make([]Instance, 0, len(inv))
	for _, in := range inv {
		if in.Prefix == "" {
			in.Prefix = o.Prefix
		}
		if in.Alias == "" {
			in.Alias = Alias(in.Prefix, in.Name, in.ID)
		}
		count[in.Alias]++
		out = append(out, in)
	}
	for i := range out {
		if count[out[i].Alias] > 1 && out[i].ID != "" {
			out[i].Alias += "-" + out[i].ID
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Alias < out[j].Alias })
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// SupportsMatchFinal reports whether the ssh that printed version (`ssh -V`'s
// output, e.g. "OpenSSH_9.2p1 Debian-2, OpenSSL 3.0") knows `Match final`
// (OpenSSH 8.2 and later). Unknown formats are assumed modern.
func SupportsMatchFinal(version string) bool {
	m := sshVersionRe.FindStringSubmatch(version)
	if m == nil {
		return true
	}
	major, minor := atoi(m[1]), atoi(m[2])
	return major > 8 || (major == 8 && minor >= 2)
}

var sshVersionRe = regexp.MustCompile(`OpenSSH_(?:for_Windows_)?([0-9]+)\.([0-9]+)`)

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// IncludeLine returns the Include line for the managed file.
func IncludeLine(o Options) string {
	return "Include " + o.sshPath(o.join(".ssh", "devgate", "config"))
}

// AddInclude returns the user's config with include at its top (before the
// first Host or Match, so that it applies unconditionally). If an equal
// Include already sits before the first Host/Match, the config is returned
// unchanged. Every other byte of the user's file is kept.
func AddInclude(userConfig []byte, include string) (out []byte, changed bool) {
	want := strings.Fields(include)
	sc := bufio.NewScanner(bytes.NewReader(userConfig))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(strings.ReplaceAll(sc.Text(), "=", " "))
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		kw := strings.ToLower(f[0])
		if kw == "host" || kw == "match" {
			break
		}
		if kw == "include" && len(f) == 2 && len(want) == 2 && strings.Trim(f[1], `"`) == strings.Trim(want[1], `"`) {
			return userConfig, false
		}
	}
	var b bytes.Buffer
	b.WriteString("# Added by `devgate setup`: devgate's hosts (keep this before any Host/Match; your own settings still win).\n")
	b.WriteString(include + "\n")
	if len(userConfig) > 0 {
		b.WriteString("\n")
		b.Write(userConfig)
	}
	return b.Bytes(), true
}

// Plan computes the changes setup makes under o.Home: the managed file
// (0600 in a 0700 directory) and the Include at the top of ~/.ssh/config
// (created 0600 if missing). Files are only read.
func Plan(o Options, inv []Instance) ([]Change, error) {
	managed, err := Generate(o, inv)
	if err != nil {
		return nil, err
	}
	mc, err := ReadChange(ManagedPath(o.Home), managed, 0o600, 0o700)
	if err != nil {
		return nil, err
	}
	uc, err := ReadChange(UserConfigPath(o.Home), nil, 0o600, 0o700)
	if err != nil {
		return nil, err
	}
	uc.New, _ = AddInclude(uc.Old, IncludeLine(o))
	return []Change{mc, uc}, nil
}

// managedPatterns returns the patterns of a Host or `Match final host` line
// ("" ok=false for other lines).
func managedPatterns(line string) (pats []string, ok bool) {
	f := strings.Fields(line)
	switch {
	case len(f) >= 2 && strings.EqualFold(f[0], "host"):
		return f[1:], true
	case len(f) == 4 && strings.EqualFold(f[0], "match") && strings.EqualFold(f[1], "final") && strings.EqualFold(f[2], "host"):
		return strings.Split(f[3], ","), true
	case len(f) >= 1 && strings.EqualFold(f[0], "match"):
		return nil, true
	}
	return nil, false
}

var instanceIDRe = regexp.MustCompile(`^(i|mi)-[0-9a-f]{8,17}$`)

// ManagedAliases returns the concrete aliases (not patterns, not instance
// ids) in a managed config that Generate wrote, in file order.
func ManagedAliases(managed []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(managed))
	for sc.Scan() {
		pats, _ := managedPatterns(sc.Text())
		for _, a := range pats {
			if !strings.ContainsAny(a, "*?!") && !instanceIDRe.MatchString(a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// ManagedHosts returns alias → instance id for the concrete host blocks of a
// managed config: from `HostName i-…` (files of earlier devgate versions) or
// from the id beside the alias on its block line.
func ManagedHosts(managed []byte) map[string]string {
	out := map[string]string{}
	var cur []string
	sc := bufio.NewScanner(bytes.NewReader(managed))
	for sc.Scan() {
		if pats, ok := managedPatterns(sc.Text()); ok {
			cur = nil
			id := ""
			for _, a := range pats {
				if instanceIDRe.MatchString(a) {
					id = a
				} else if !strings.ContainsAny(a, "*?!") {
					cur = append(cur, a)
				}
			}
			if id != "" {
				for _, a := range cur {
					out[a] = id
				}
			}
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && strings.EqualFold(f[0], "hostname") {
			for _, a := range cur {
				out[a] = f[1]
			}
		}
	}
	return out
}
