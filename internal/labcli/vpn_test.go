package labcli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestVPNUsage: the vpn command's usage mistakes a new user makes are usage
// errors (exit 2) with a hint naming the right form: a forgotten --dir (was
// exit 1 without a hint) and a mistyped subcommand (was "unknown flag: --dir").
func TestVPNUsage(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		err, hint string
	}{
		{[]string{"vpn", "status"}, "devgate-lab: error: --dir is required", "devgate-lab: hint: devgate-lab vpn status --dir /tmp/devgate-lab"},
		{[]string{"vpn", "disconnect", "--silence"}, "devgate-lab: error: --dir is required", "devgate-lab: hint: devgate-lab vpn disconnect --dir"},
		{[]string{"vpn", "conect", "--dir", t.TempDir()}, `devgate-lab: error: unknown vpn command "conect"`, "devgate-lab: hint: devgate-lab vpn connect|disconnect [--silence]|status --dir D"},
		{[]string{"vpn"}, "devgate-lab: error: name a vpn command", "devgate-lab: hint: devgate-lab vpn connect|disconnect"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), tc.args, &out, &errb, nil)
		if code != 2 || !strings.Contains(errb.String(), tc.err) || !strings.Contains(errb.String(), tc.hint) {
			t.Errorf("devgate-lab %s: exit %d, stderr:\n%s", strings.Join(tc.args, " "), code, errb.String())
		}
	}
	// A lab that is not running is still said as such (exit 1), with --dir given after the subcommand.
	var out, errb bytes.Buffer
	dir := t.TempDir()
	if code := Main(context.Background(), []string{"vpn", "connect", "--dir", dir}, &out, &errb, nil); code != 1 || !strings.Contains(errb.String(), "no lab running in "+dir) {
		t.Errorf("no lab: exit %d, stderr:\n%s", code, errb.String())
	}
}
