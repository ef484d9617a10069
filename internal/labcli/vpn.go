package labcli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/lab"
)

// vpnCmd drives the VPN model of a running lab through its /_lab/vpn endpoint.
func vpnCmd(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "vpn connect|disconnect|status --dir D",
		Short: "Connect or drop the lab's Client VPN model (the direct path to the instances' private addresses)",
		Long: `The instances' private addresses (127.10.x.y, standing in for the VPC's 10.x.y.z) answer only while
the VPN is connected. disconnect drops it: by default nothing answers (connection refused); with
--silence connection attempts get no answer at all. Either way the connections that went through
the VPN are closed, as when a VPN drops in the middle of a session.`,
	}
	var dir string
	var silence bool
	// --dir on vpn itself too, so that a typo in the subcommand (`vpn conect --dir D`) is said as
	// such, not as an unknown --dir.
	c.PersistentFlags().StringVar(&dir, "dir", "", "the lab's state directory")
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErr(fmt.Sprintf("unknown vpn command %q", args[0]), "devgate-lab vpn connect|disconnect [--silence]|status --dir D")
		}
		return usageErr("name a vpn command", "devgate-lab vpn connect|disconnect [--silence]|status --dir D")
	}
	run := func(state string) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErr("--dir is required", cmd.CommandPath()+" --dir /tmp/devgate-lab")
			}
			if state == lab.VPNRefuse && silence {
				state = lab.VPNSilence
			}
			st, err := adminVPN(dir, state)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "VPN %s: %s\n", st.State, strings.Join(st.Addresses, " "))
			if state == "" {
				fmt.Fprintf(stdout, "relayed %d connections, %d open\n", st.Relayed, st.Open)
			}
			return nil
		}
	}
	for _, sub := range []struct{ name, short, state string }{
		{"connect", "Connect the VPN: the private addresses relay to the instances", lab.VPNUp},
		{"disconnect", "Drop the VPN: refuse (or --silence) and close the relayed connections", lab.VPNRefuse},
		{"status", "Print the VPN state", ""},
	} {
		sc := &cobra.Command{Use: sub.name + " --dir D", Short: sub.short, Args: cobra.NoArgs, RunE: run(sub.state)}
		if sub.name == "disconnect" {
			sc.Flags().BoolVar(&silence, "silence", false, "drop SYNs instead of refusing (a connection attempt sees no answer)")
		}
		c.AddCommand(sc)
	}
	return c
}

// adminVPN calls the lab in dir: GET /_lab/vpn when state is "", else POST.
func adminVPN(dir, state string) (lab.VPNStatus, error) {
	var st lab.VPNStatus
	if dir == "" {
		return st, errors.New("--dir is required")
	}
	if _, alive := running(dir); !alive {
		return st, fmt.Errorf("no lab running in %s; start one with `devgate-lab up --dir %s`", dir, dir)
	}
	endpoint, err := envValue(filepath.Join(dir, EnvFile), "AWS_ENDPOINT_URL")
	if err != nil {
		return st, err
	}
	tok, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		return st, err
	}
	method, u := http.MethodGet, endpoint+"/_lab/vpn"
	if state != "" {
		method, u = http.MethodPost, u+"?state="+url.QueryEscape(state)
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return st, err
	}
	req.Header.Set(lab.AdminHeader, strings.TrimSpace(string(tok)))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		if !strings.HasPrefix(msg, "lab: ") { // the lab's own errors say "lab: " already
			msg = "lab: " + msg
		}
		return st, errors.New(msg)
	}
	return st, json.Unmarshal(b, &st)
}

// envValue reads `export K=V` from a D/env file.
func envValue(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return strings.Trim(v, "'"), nil
		}
	}
	return "", fmt.Errorf("%s: no %s", path, key)
}
