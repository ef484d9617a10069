//go:build !unix

package datachannel

import "net"

// tryWrite is not attempted here: the blocking writer writes everything.
func tryWrite(c net.Conn, b []byte) (n int, attempted bool, err error) { return 0, false, nil }
