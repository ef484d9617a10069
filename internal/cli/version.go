package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { register(newVersionCommand) }

// Version overrides the version read from the build information when a
// packager sets it (-ldflags "-X github.com/devgate/devgate/internal/cli.Version=v1.2.3").
// Release builds and `go install …@v1.2.3` need not: the go command records
// the module version in the binary.
var Version = ""

// moduleVersion is devgate's version alone: the -X override, else the main
// module's version from the build information, else "dev".
func moduleVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// versionString is "devgate <version> (<os>/<arch>, <go version>)". The version
// is the main module's (a tag, or a pseudo-version the go command derives from
// the commit), else "dev" with the commit and its time when the build recorded them.
func versionString() string {
	v := Version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
		if ok {
			var rev, at, dirty string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.time":
					at = s.Value
				case "vcs.modified":
					if s.Value == "true" {
						dirty = "+dirty"
					}
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" {
				v += fmt.Sprintf(" (commit %s%s, %s)", rev, dirty, at)
			}
		}
	}
	return fmt.Sprintf("devgate %s %s/%s %s", v, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func newVersionCommand(io IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print devgate's version (also devgate --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(io.Out, versionString())
			return err
		},
	}
}
