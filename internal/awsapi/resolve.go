package awsapi

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/devgate/devgate/internal/exitcode"
)

// CacheTTL is how long a resolved Name → id (and the state seen with it) is trusted.
const CacheTTL = 5 * time.Minute

// ResolveOptions tune Resolve.
type ResolveOptions struct {
	// Aliases maps ssh aliases to instance ids (managed ssh configs written before
	// devgate's config existed pinned an alias to an id with HostName).
	Aliases map[string]string
	// Names maps ssh aliases to the Name tag they follow (devgate's config): the
	// alias reaches whichever instance carries that name now.
	Names map[string]string
	// Prefix is the alias prefix of `devgate setup` ("devbox"): "devbox-gpu1" names the Name tag "gpu1".
	Prefix string
	// CacheFile remembers resolutions for CacheTTL ("" disables the cache).
	CacheFile string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Target is a resolved target.
type Target struct {
	ID    string
	Name  string
	State string // as last seen; "" when unknown (an id given directly)
	// Cached is true when ID and State come from the cache, not from AWS just now.
	Cached bool
}

type cacheEntry struct {
	ID    string    `json:"id"`
	Name  string    `json:"name,omitempty"`
	State string    `json:"state,omitempty"`
	At    time.Time `json:"at"`
}

// Resolve maps a target — an instance id, an alias of the managed ssh config,
// "<prefix>-<name>" or a Name tag — to one instance. An id is returned
// without an API call (its state unknown). Two running instances with one
// name are an error that lists both ids.
func Resolve(ctx context.Context, cfg aws.Config, target string, o ResolveOptions) (Target, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if InstanceIDRe.MatchString(target) {
		return Target{ID: target}, nil
	}
	_, named := o.Names[target]
	if id, ok := o.Aliases[target]; ok && InstanceIDRe.MatchString(id) && !named {
		return Target{ID: id, Name: target}, nil
	}
	cache := readCache(o.CacheFile)
	if e, ok := cache[target]; ok && fresh(o.Now().Sub(e.At)) {
		return Target{ID: e.ID, Name: e.Name, State: e.State, Cached: true}, nil
	}
	var names []string
	var filter *ec2types.Filter
	switch {
	case named:
		names = []string{o.Names[target]}
	case isIPv4(target):
		names, filter = []string{""}, &ec2types.Filter{Name: aws.String("private-ip-address"), Values: []string{target}}
	case privateDNSRe.MatchString(target):
		names, filter = []string{""}, &ec2types.Filter{Name: aws.String("private-dns-name"), Values: []string{target}}
	default:
		names = []string{target}
		if o.Prefix != "" && strings.HasPrefix(target, o.Prefix+"-") {
			names = append(names, strings.TrimPrefix(target, o.Prefix+"-"))
		}
	}
	rows, err := describeFiltered(ctx, cfg, filter, o.Now())
	if err != nil {
		return Target{}, err
	}
	if filter != nil { // every row matched the address
		for i := range rows {
			rows[i].Name = ""
		}
	}
	for _, name := range names {
		// Prefer running (or pending) instances, then other live ones, then terminated ones,
		// so that a terminated namesake never shadows a live instance.
		var tiers [3][]Instance
		for _, r := range rows {
			if r.Name != name {
				continue
			}
			switch r.State {
			case "running", "pending":
				tiers[0] = append(tiers[0], r)
			case "terminated", "shutting-down":
				tiers[2] = append(tiers[2], r)
			default:
				tiers[1] = append(tiers[1], r)
			}
		}
		var pick []Instance
		for _, tier := range tiers {
			if len(tier) > 0 {
				pick = tier
				break
			}
		}
		switch {
		case len(pick) == 0:
			continue
		case len(pick) > 1:
			var ids []string
			for _, m := range pick {
				ids = append(ids, m.ID+" ("+m.State+")")
			}
			if name == "" {
				return Target{}, exitcode.New(exitcode.NotFound, "use the instance id instead",
					"%d instances have the address %q: %s", len(pick), target, strings.Join(ids, ", "))
			}
			return Target{}, exitcode.New(exitcode.NotFound, "use the instance id instead, or rename one of them",
				"%d instances are named %q: %s", len(pick), name, strings.Join(ids, ", "))
		}
		if name == "" {
			name = target
		}
		t := Target{ID: pick[0].ID, Name: name, State: pick[0].State}
		if o.CacheFile != "" {
			cache[target] = cacheEntry{ID: t.ID, Name: t.Name, State: t.State, At: o.Now()}
			writeCache(o.CacheFile, cache, o.Now())
		}
		return t, nil
	}
	return Target{}, exitcode.New(exitcode.NotFound,
		"use an instance id, a Name tag or an alias from `devgate setup`; `devgate ls` lists them (another account or region: --profile, --region)",
		"no instance named %q in %s", target, searched(cfg))
}

// Forget drops target from the cache (its cached instance is gone).
func Forget(cacheFile, target string, now time.Time) {
	if cacheFile == "" {
		return
	}
	c := readCache(cacheFile)
	if _, ok := c[target]; ok {
		delete(c, target)
		writeCache(cacheFile, c, now)
	}
}

// privateDNSRe matches EC2 private DNS names: ip-10-0-1-10.ec2.internal
// (us-east-1), ip-10-0-1-10.eu-west-1.compute.internal, and the
// resource-based i-0123….region.compute.internal.
var privateDNSRe = regexp.MustCompile(`^(ip-[0-9]+-[0-9]+-[0-9]+-[0-9]+|i-[0-9a-f]{8,17})\.([a-z0-9-]+\.compute|ec2)\.internal$`)

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// describeFiltered is Describe over every state, with one extra filter.
func describeFiltered(ctx context.Context, cfg aws.Config, f *ec2types.Filter, now time.Time) ([]Instance, error) {
	if f == nil {
		return Describe(ctx, cfg, true, nil, now)
	}
	return describe(ctx, cfg, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{*f}}, now)
}

// Remember updates the cached state of a target after devgate saw it change.
func Remember(cacheFile, target string, t Target, now time.Time) {
	if cacheFile == "" || InstanceIDRe.MatchString(target) {
		return
	}
	c := readCache(cacheFile)
	c[target] = cacheEntry{ID: t.ID, Name: t.Name, State: t.State, At: now}
	writeCache(cacheFile, c, now)
}

// fresh reports whether a cache entry of this age may answer: younger than
// CacheTTL and not dated in the future (a clock set back, or a cache file
// written elsewhere, would otherwise be trusted forever).
func fresh(age time.Duration) bool { return age >= 0 && age < CacheTTL }

func readCache(path string) map[string]cacheEntry {
	c := map[string]cacheEntry{}
	if path == "" {
		return c
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c
	}
	if json.Unmarshal(b, &c) != nil {
		return map[string]cacheEntry{} // a corrupt cache is only a cache
	}
	return c
}

// writeCache replaces the cache file atomically, dropping stale entries.
func writeCache(path string, c map[string]cacheEntry, now time.Time) {
	for k, e := range c {
		if !fresh(now.Sub(e.At)) {
			delete(c, k)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".targets-*")
	if err != nil {
		return
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return
	}
	tmp.Close()
	if os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}

// searched names where a lookup looked, for a not-found message: the
// region, and the account's profile when the config came from a named one
// ("region us-east-1, profile A"; aws.Config.ConfigSources holds the
// awsconfig.SharedConfig the SDK loaded).
func searched(cfg aws.Config) string {
	w := "region " + cfg.Region
	if cfg.Region == "" {
		w = "the default region"
	}
	for _, src := range cfg.ConfigSources {
		if sc, ok := src.(awsconfig.SharedConfig); ok && sc.Profile != "" && sc.Profile != "default" {
			return w + ", profile " + sc.Profile
		}
	}
	return w
}
