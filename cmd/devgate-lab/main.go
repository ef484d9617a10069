// Command devgate-lab runs a simulated AWS region with real sshd devboxes:
// how users try devgate without AWS, and how devgate is tested and benchmarked.
package main

import (
	"context"
	"os"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labvpn"
	"github.com/devgate/devgate/internal/labcli"
)

func main() {
	os.Exit(labcli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, func() []lab.Service {
		return []lab.Service{labvpn.New()} // ACM, Client VPN and SSM documents
	}))
}
