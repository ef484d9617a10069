// Package sshconfig generates devgate's managed OpenSSH client config
// (~/.ssh/devgate/config) and the one Include line that hooks it into the
// user's ~/.ssh/config, and computes the file changes (with unified diffs and
// backups) that `devgate setup` applies.
//
// Generation is a pure function of (OS, home, binary path, options,
// inventory): no clock, no environment, no AWS. The package never edits a
// line of the user's own config other than adding the Include at the top, and
// it never writes StrictHostKeyChecking no.
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
	// ControlDir holds the ControlMaster sockets; default ~/.ssh/devgate/cm.
	ControlDir string
}

// Instance is one known devbox: its alias (without the prefix) and its id.
type Instance struct {
	Name string // from the Name tag; the alias is Prefix + "-" + the sanitized name
	ID   string // i-…
}

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
// ("<ControlDir>/<40 hex>") and the longest length ssh accepts on goos
// (sun_path - 1 for the NUL - the mux master's 17-byte temporary suffix).
// ok is false when the ControlPath is too long. On Windows there is no
// ControlPath and ok is always true.
func ControlPathLen(o Options) (length, max int, ok bool) {
	o = o.withDefaults()
	if o.GOOS == "windows" {
		return 0, 0, true
	}
	length = len(strings.TrimSuffix(o.ControlDir, "/")) + 1 + HashLen
	sun := SunPathLinux
	if o.GOOS == "darwin" || strings.HasSuffix(o.GOOS, "bsd") {
		sun = SunPathDarwin
	}
	max = sun - 1 - MuxTempSuffix
	return length, max, length <= max
}

// Generate renders the managed config.
func Generate(o Options, inv []Instance) ([]byte, error) {
	o = o.withDefaults()
	if o.Home == "" || o.Binary == "" {
		return nil, fmt.Errorf("sshconfig: Home and Binary are required")
	}
	if o.GOOS != "linux" && o.GOOS != "darwin" && o.GOOS != "windows" && !strings.HasSuffix(o.GOOS, "bsd") {
		return nil, fmt.Errorf("sshconfig: unsupported GOOS %q", o.GOOS)
	}
	if strings.ContainsAny(o.Prefix, " \t*?!,") {
		return nil, fmt.Errorf("sshconfig: prefix %q must not contain spaces or ssh pattern characters", o.Prefix)
	}
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Managed by `devgate setup`. Edits here are overwritten the next time it runs;")
	w("# put your own settings in ~/.ssh/config (this file is included from its top).")
	w("")
	for _, in := range Aliases(o.Prefix, inv) {
		w("Host %s", in.Name)
		w("    HostName %s", in.ID)
		w("")
	}
	w("Host %s-*", o.Prefix)
	w("    ProxyCommand %s", ProxyCommand(o))
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
	b.WriteString("# Added by `devgate setup`: devgate's managed hosts (keep this before any Host/Match).\n")
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

// ManagedAliases returns the concrete (non-pattern) Host aliases in a managed
// config that Generate wrote, in file order.
func ManagedAliases(managed []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(managed))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.EqualFold(f[0], "host") {
			continue
		}
		for _, a := range f[1:] {
			if !strings.ContainsAny(a, "*?!") {
				out = append(out, a)
			}
		}
	}
	return out
}

// ManagedHosts returns alias → HostName (instance id) for the concrete Host
// blocks of a managed config.
func ManagedHosts(managed []byte) map[string]string {
	out := map[string]string{}
	var cur []string
	sc := bufio.NewScanner(bytes.NewReader(managed))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch strings.ToLower(f[0]) {
		case "host", "match":
			cur = nil
			if strings.EqualFold(f[0], "host") {
				for _, a := range f[1:] {
					if !strings.ContainsAny(a, "*?!") {
						cur = append(cur, a)
					}
				}
			}
		case "hostname":
			for _, a := range cur {
				out[a] = f[1]
			}
		}
	}
	return out
}
