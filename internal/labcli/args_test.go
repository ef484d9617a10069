package labcli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestArgErrors: an argument too many says which and shows the usage line,
// as in devgate (cmdargs), not cobra's `unknown command "x" for "devgate-lab up"`
// with a hint to list the commands.
func TestArgErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "x"}, "devgate-lab: error: unexpected argument \"x\" (devgate-lab up takes no arguments)\ndevgate-lab: hint: usage: devgate-lab up --dir D\n"},
		{[]string{"down", "/tmp/lab"}, "devgate-lab: error: unexpected argument \"/tmp/lab\" (devgate-lab down takes no arguments)\ndevgate-lab: hint: usage: devgate-lab down --dir D\n"},
		{[]string{"vpn", "status", "x"}, "devgate-lab: error: unexpected argument \"x\" (devgate-lab vpn status takes no arguments)\ndevgate-lab: hint: usage: devgate-lab vpn status --dir D\n"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), tc.args, &out, &errb, nil)
		if code != 2 || errb.String() != tc.want || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"upp"}, &out, &errb, nil); code != 2 || !strings.Contains(errb.String(), `unknown command "upp"`) {
		t.Errorf("an unknown command: exit %d %q", code, errb.String())
	}
}
