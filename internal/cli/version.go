package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func init() { register(newVersionCommand) }

func newVersionCommand(io IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print devgate's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(io.Out, "devgate %s %s/%s %s\n", Version, runtime.GOOS, runtime.GOARCH, runtime.Version())
			return err
		},
	}
}
