//go:build unix

package datachannel

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// Over a TCP socket batchConn reads through rawio: a read deadline still
// fires (a net.Error that is a timeout), and the data and EOF come through.
func TestBatchConnRawReadDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-acc
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	bc := newBatchConn(c)
	defer bc.Close()
	if bc.raw == nil {
		t.Fatal("batchConn over TCP does not use rawio")
	}
	buf := make([]byte, 16)
	bc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = bc.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want a timeout", err)
	}
	bc.SetReadDeadline(time.Time{})
	peer.Write([]byte("ok"))
	peer.Close()
	got, err := io.ReadAll(bc)
	if err != nil || string(got) != "ok" {
		t.Fatalf("read %q, %v; want ok then EOF", got, err)
	}
}
