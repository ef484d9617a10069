package cmdargs

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/spf13/cobra"
)

func TestPositional(t *testing.T) {
	for _, tc := range []struct {
		use  string
		want []Arg
	}{
		{"exec <target> -- CMD [ARGS...]", []Arg{{"<target>", false, false}, {"CMD", false, false}, {"ARGS", true, true}}},
		{"cp [-r] [-j N] SRC DST", []Arg{{"SRC", false, false}, {"DST", false, false}}},
		{"forward <target> SPEC...", []Arg{{"<target>", false, false}, {"SPEC", false, true}}},
		{"doctor [target]", []Arg{{"target", true, false}}},
		{"set KEY=VALUE...", []Arg{{"KEY=VALUE", false, true}}},
		{"profile NAME (--config exported.ovpn | --endpoint cvpn-endpoint-…)", []Arg{{"NAME", false, false}}},
		{"init --server-name vpn.<domain>", nil},
		{"up --dir D", nil},
		{"login [--profile P]", nil},
		{"import [--endpoint cvpn-endpoint-…]", nil},
		{"ls", nil},
	} {
		if got := Positional(tc.use); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Positional(%q) = %+v, want %+v", tc.use, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	root := &cobra.Command{Use: "devgate"}
	cmd := func(use string, args cobra.PositionalArgs) *cobra.Command {
		c := &cobra.Command{Use: use, Args: args, RunE: func(*cobra.Command, []string) error { return nil }}
		root.AddCommand(c)
		return c
	}
	exec := cmd("exec <target> -- CMD [ARGS...]", cobra.MinimumNArgs(2))
	start := cmd("start <target>", cobra.ExactArgs(1))
	ls := cmd("ls", cobra.NoArgs)
	doctor := cmd("doctor [target]", cobra.MaximumNArgs(1))
	odd := cmd("odd <a>", cobra.ExactArgs(3)) // a usage line that disagrees: the check's words
	for _, tc := range []struct {
		c    *cobra.Command
		args []string
		want string
	}{
		{exec, nil, "missing <target> and CMD"},
		{exec, []string{"gpu1"}, "missing CMD after <target>"},
		{exec, []string{"gpu1", "ls", "-l"}, ""},
		{start, nil, "missing <target>"},
		{start, []string{"a", "b"}, `unexpected argument "b" (devgate start takes <target> only)`},
		{ls, []string{"x"}, `unexpected argument "x" (devgate ls takes no arguments)`},
		{doctor, []string{"a", "b"}, `unexpected argument "b" (devgate doctor takes [target] only)`},
		{doctor, nil, ""},
		{odd, []string{"a"}, "accepts 3 arg(s), received 1"},
	} {
		err := Check(tc.c, tc.c.Args, tc.args)
		got := fmt.Sprint(err)
		if err == nil {
			got = ""
		}
		if got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.c.Name(), tc.args, got, tc.want)
			continue
		}
		var ae *Error
		if err != nil && (!errors.As(err, &ae) || ae.Usage != "devgate "+tc.c.Use || ae.Err == nil) {
			t.Errorf("%s %q: %#v, want an *Error with the usage line and the check's error", tc.c.Name(), tc.args, err)
		}
	}
}
