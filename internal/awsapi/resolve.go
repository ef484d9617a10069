package awsapi

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/devgate/devgate/internal/exitcode"
)

// CacheTTL is how long a resolved Name → id (and the state seen with it) is trusted.
const CacheTTL = 5 * time.Minute

// ResolveOptions tune Resolve.
type ResolveOptions struct {
	// Aliases maps ssh aliases to instance ids (the managed ssh config's Host blocks).
	Aliases map[string]string
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
	if id, ok := o.Aliases[target]; ok && InstanceIDRe.MatchString(id) {
		return Target{ID: id, Name: target}, nil
	}
	cache := readCache(o.CacheFile)
	if e, ok := cache[target]; ok && o.Now().Sub(e.At) < CacheTTL {
		return Target{ID: e.ID, Name: e.Name, State: e.State, Cached: true}, nil
	}
	names := []string{target}
	if o.Prefix != "" && strings.HasPrefix(target, o.Prefix+"-") {
		names = append(names, strings.TrimPrefix(target, o.Prefix+"-"))
	}
	rows, err := Describe(ctx, cfg, true, nil, o.Now())
	if err != nil {
		return Target{}, err
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
			return Target{}, exitcode.New(exitcode.NotFound, "use the instance id instead, or rename one of them",
				"%d instances are named %q: %s", len(pick), name, strings.Join(ids, ", "))
		}
		t := Target{ID: pick[0].ID, Name: name, State: pick[0].State}
		if o.CacheFile != "" {
			cache[target] = cacheEntry{ID: t.ID, Name: t.Name, State: t.State, At: o.Now()}
			writeCache(o.CacheFile, cache, o.Now())
		}
		return t, nil
	}
	return Target{}, exitcode.New(exitcode.NotFound,
		"use an instance id, a Name tag or an alias from `devgate setup`; `devgate ls` lists them", "no instance named %q", target)
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
		if now.Sub(e.At) >= CacheTTL {
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
