package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/devgate/devgate/internal/doctor"
	"github.com/devgate/devgate/internal/eventlog"
	"github.com/devgate/devgate/internal/sshconfig"
)

// recentFailureWindow is how far back doctor looks in the event log.
const recentFailureWindow = 7 * 24 * time.Hour

// recentFailureName is the name of doctor's history entries in --json.
const recentFailureName = "recent failure"

// recentFailures is the last three failures recorded in the event log in
// the past week (of target's, when given), as doctor results: Name
// "recent failure", Info (history, not a check: they never make doctor
// fail), Detail "last connect to devbox-gpu1 (i-…) failed 3 min ago (exit
// 10): …", Fix the hint recorded with it.
func recentFailures(log *eventlog.Log, target string, now time.Time) ([]doctor.Result, error) {
	if log == nil || log.Path() == "" {
		return nil, nil
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
		return nil, err
	}
	var rs []doctor.Result
	for _, e := range evs {
		if now.Sub(e.Time) > recentFailureWindow || target != "" && e.Target != target && alias[e.Target] != target {
			continue
		}
		what := e.Command
		if a := alias[e.Target]; a != "" {
			what += " to " + a + " (" + e.Target + ")"
		} else if e.Target != "" {
			what += " to " + e.Target
		}
		rs = append(rs, doctor.Result{Name: recentFailureName, Info: true, Fix: e.Hint,
			Detail: fmt.Sprintf("last %s failed %s (exit %d): %s", what, eventlog.Ago(now, e.Time), e.Code, e.Message)})
		if len(rs) == 3 {
			break
		}
	}
	return rs, nil
}

// printRecentFailures prints recentFailures after doctor's checks:
// "  last connect to devbox-gpu1 failed 3 min ago (exit 10): … — fix: …".
func printRecentFailures(w io.Writer, log *eventlog.Log, target string, now time.Time) {
	if log == nil || log.Path() == "" {
		return
	}
	rs, err := recentFailures(log, target, now)
	if err != nil {
		fmt.Fprintf(w, "– recent failures: cannot read %s: %v\n", log.Path(), err)
		return
	}
	if len(rs) == 0 {
		fmt.Fprintf(w, "– recent failures: none recorded in %s\n", log.Path())
		return
	}
	fmt.Fprintf(w, "Recent failures (from %s):\n", log.Path())
	for _, r := range rs {
		line := "  " + r.Detail
		if r.Fix != "" {
			line += " — fix: " + r.Fix
		}
		fmt.Fprintln(w, line)
	}
}
