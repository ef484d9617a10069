// Command devgate makes a private EC2 devbox feel local over AWS Session Manager.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/devgate/devgate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.StdIO())
	stop()
	os.Exit(code)
}
