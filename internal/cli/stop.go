package cli

import "github.com/spf13/cobra"

func init() { register(newStopCommand) }

func newStopCommand(io IO) *cobra.Command { return newPowerCommand(io, false) }
