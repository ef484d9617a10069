package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/devgate/devgate/internal/eventlog"
	"github.com/devgate/devgate/internal/sshconfig"
)

// recentFailureWindow is how far back doctor looks in the event log.
const recentFailureWindow = 7 * 24 * time.Hour

// printRecentFailures prints the last failures recorded in the event log
// (of target's, when given): "last connect to devbox-gpu1 failed 3 min ago
// (exit 10): … — fix: …". They are history, not checks: they do not make
// doctor fail.
func printRecentFailures(w io.Writer, log *eventlog.Log, target string, now time.Time) {
	if log == nil || log.Path() == "" {
		return
	}
	// ssh gives connect the HostName (%h: the instance id); say the alias too.
	alias := map[string]string{}
	if home, _, err := homeDir(); err == nil {
		managed, _ := os.ReadFile(sshconfig.ManagedPath(home))
		for a, id := range sshconfig.ManagedHosts(managed) {
			if prev, ok := alias[id]; !ok || a < prev {
				alias[id] = a
			}
		}
	}
	evs, err := log.Last(eventlog.KindFailure, 50)
	if err != nil {
		fmt.Fprintf(w, "– recent failures: cannot read %s: %v\n", log.Path(), err)
		return
	}
	n := 0
	for _, e := range evs {
		if now.Sub(e.Time) > recentFailureWindow || target != "" && e.Target != target && alias[e.Target] != target {
			continue
		}
		if n == 0 {
			fmt.Fprintf(w, "Recent failures (from %s):\n", log.Path())
		}
		what := e.Command
		if a := alias[e.Target]; a != "" {
			what += " to " + a + " (" + e.Target + ")"
		} else if e.Target != "" {
			what += " to " + e.Target
		}
		line := fmt.Sprintf("  last %s failed %s (exit %d): %s", what, eventlog.Ago(now, e.Time), e.Code, e.Message)
		if e.Hint != "" {
			line += " — fix: " + e.Hint
		}
		fmt.Fprintln(w, line)
		if n++; n == 3 {
			break
		}
	}
	if n == 0 {
		fmt.Fprintf(w, "– recent failures: none recorded in %s\n", log.Path())
	}
}
