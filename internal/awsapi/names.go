package awsapi

import (
	"sort"
	"time"
)

// RememberInstances records the Name → id of every named instance that is not
// terminated (what `devgate ls` saw), so that the next command resolves those
// names without a DescribeInstances call and shell completion can offer them.
func RememberInstances(cacheFile string, rows []Instance, now time.Time) {
	if cacheFile == "" {
		return
	}
	c := readCache(cacheFile)
	for _, r := range rows {
		if r.Name == "" || r.State == "terminated" || r.State == "shutting-down" {
			continue
		}
		if old, ok := c[r.Name]; ok && old.ID != r.ID && now.Sub(old.At) < CacheTTL {
			continue // two instances share the name: leave it to Resolve
		}
		c[r.Name] = cacheEntry{ID: r.ID, Name: r.Name, State: r.State, At: now}
	}
	writeCache(cacheFile, c, now)
}

// CachedTargets lists the names and ids in the cache, sorted, whatever their
// age: for shell completion, which must not call AWS.
func CachedTargets(cacheFile string) []string {
	seen := map[string]bool{}
	for k, e := range readCache(cacheFile) {
		seen[k] = true
		if e.ID != "" {
			seen[e.ID] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
