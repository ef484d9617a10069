package cli

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/tunnel"
)

// pathFlags are --path and --direct-budget of connect, forward and cp.
type pathFlags struct {
	path   string
	budget time.Duration
}

func (p *pathFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.path, "path", "", "auto (direct when the private address answers within --direct-budget, else Session Manager), direct or ssm (default $DEVGATE_PATH, else devgate's config, else auto)")
	f.DurationVar(&p.budget, "direct-budget", 0, "how long auto waits for the direct path (default $DEVGATE_DIRECT_BUDGET, else 300ms)")
}

// resolve checks the path devgate's config resolved for the target
// (config.Resolved.Path: --path, else $DEVGATE_PATH, else the host's, the
// prefix's or the defaults' "path", else auto; pass p.path in the flags) and
// returns it with the budget: --direct-budget, else $DEVGATE_DIRECT_BUDGET,
// else tunnel.DefaultDirectBudget.
func (p *pathFlags) resolve(resolved string) (string, time.Duration, error) {
	path, err := tunnel.ParsePath(resolved)
	if err != nil {
		return "", 0, err
	}
	budget := p.budget
	if budget == 0 {
		if v := os.Getenv("DEVGATE_DIRECT_BUDGET"); v != "" {
			if budget, err = time.ParseDuration(v); err != nil || budget <= 0 {
				return "", 0, exitcode.New(exitcode.Usage, "e.g. DEVGATE_DIRECT_BUDGET=300ms", "DEVGATE_DIRECT_BUDGET=%q is not a positive duration", v)
			}
		}
	}
	if budget < 0 {
		return "", 0, exitcode.New(exitcode.Usage, "e.g. --direct-budget 300ms", "--direct-budget must be positive")
	}
	if budget == 0 {
		budget = tunnel.DefaultDirectBudget
	}
	return path, budget, nil
}
