// Command devgate makes a private EC2 devbox feel local over AWS Session Manager.
package main

import (
	"context"
	"os"

	"github.com/devgate/devgate/internal/cli"
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := cli.Main(ctx, os.Args[1:], cli.StdIO())
	stop()
	os.Exit(code)
}
