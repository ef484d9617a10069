// Command devgate-lab runs a simulated AWS region with real sshd devboxes:
// how users try devgate without AWS, and how devgate is tested and benchmarked.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
	"github.com/devgate/devgate/internal/lab/labvpn"
	"github.com/devgate/devgate/internal/lab/sftpfault"
	"github.com/devgate/devgate/internal/labcli"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == sftpfault.Command {
		// The lab's sshd runs this as the sftp subsystem under --corrupt-chunk.
		os.Exit(sftpfault.Main(os.Args[2:]))
	}
	services := func() []lab.Service {
		s3 := labs3.New(labs3.DefaultBucket) // S3, path-style, for `devgate cp --via s3 --bucket devgate-lab-relay`
		if dir := os.Getenv("DEVGATE_LAB_S3_DIR"); dir != "" {
			// Multipart uploads and their objects in files there (bench/cp.sh's 10 GiB run), not in memory.
			d, err := labs3.NewOnDisk(dir, labs3.DefaultBucket)
			if err != nil {
				fmt.Fprintf(os.Stderr, "devgate-lab: DEVGATE_LAB_S3_DIR: %v\n", err)
				os.Exit(1)
			}
			s3 = d
		}
		return []lab.Service{
			labvpn.New(), // ACM, Client VPN and SSM documents
			s3,
		}
	}
	os.Exit(labcli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, services))
}
