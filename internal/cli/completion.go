package cli

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/config"
)

// completesTarget names the commands whose first argument is a target; shell
// completion offers the names, aliases and ids devgate already knows (the
// managed ssh config and the name cache `devgate ls` fills), without calling AWS.
var completesTarget = map[string]bool{
	"connect": true, "forward": true, "start": true, "stop": true, "doctor": true,
	"bench": true, "shell": true, "exec": true,
}

// knownTargets lists aliases, cached names and ids, sorted and unique.
func knownTargets() []string {
	t, err := resolveTarget("", config.Settings{}, "")
	if err != nil {
		return nil
	}
	o := t.Resolve
	seen := map[string]bool{}
	for alias, id := range o.Aliases {
		if !strings.ContainsAny(alias, "*?") {
			seen[alias] = true
		}
		seen[id] = true
	}
	for alias := range o.Names {
		seen[alias] = true
	}
	for _, t := range awsapi.CachedTargets(o.CacheFile) {
		seen[t] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// completeTarget completes the first argument with known targets.
func completeTarget(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	var out []string
	for _, t := range knownTargets() {
		if strings.HasPrefix(t, toComplete) {
			out = append(out, t)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeCp completes "<target>:" while the word has no colon and is not a
// local path, and local files otherwise (remote paths would need a session).
func completeCp(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) >= 2 || strings.Contains(toComplete, ":") || strings.ContainsAny(toComplete, `/\.~`) {
		return nil, cobra.ShellCompDirectiveDefault
	}
	user, host, ok := strings.Cut(toComplete, "@")
	if !ok {
		user, host = "", toComplete
	} else {
		user += "@"
	}
	var out []string
	for _, t := range knownTargets() {
		if strings.HasPrefix(t, host) {
			out = append(out, user+t+":")
		}
	}
	if len(out) == 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	return out, cobra.ShellCompDirectiveNoSpace
}
