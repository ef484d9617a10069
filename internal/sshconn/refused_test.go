package sshconn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/devgate/devgate/internal/exitcode"
)

// TestRefusedLogin: a server that answers "no" to the key is an
// *AuthRefusedError (exit 17, the users named); a server that drops the
// connection during authentication is not (it did not refuse anyone).
func TestRefusedLogin(t *testing.T) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	userSigner, _ := ssh.NewSignerFromKey(userPriv)
	for _, tc := range []struct {
		name    string
		onKey   func(net.Conn) error // the server's answer to the offered key
		refused bool
	}{
		{"refused", func(net.Conn) error { return errors.New("no") }, true},
		{"dropped", func(c net.Conn) error { c.Close(); return errors.New("gone") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cli, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			srv, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			scfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
				return nil, tc.onKey(srv)
			}}
			scfg.AddHostKey(hostSigner)
			go func() {
				conn, chans, reqs, err := ssh.NewServerConn(srv, scfg)
				if err == nil {
					go ssh.DiscardRequests(reqs)
					for range chans {
					}
					conn.Close()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = NewClient(ctx, cli, "i-0123", Config{User: "nobody", Signer: userSigner, KnownHosts: filepath.Join(t.TempDir(), "known_hosts")})
			var ae *AuthRefusedError
			if errors.As(err, &ae) != tc.refused {
				t.Fatalf("NewClient = %v, refused %v", err, tc.refused)
			}
			if tc.refused && (exitcode.Code(err) != int(exitcode.SessionRefused) || ae.User != "nobody" ||
				err.Error() != "ssh login to i-0123: the key was pushed for nobody; the instance refused nobody" ||
				!strings.Contains(exitcode.HintOf(err), "check the user name")) {
				t.Fatalf("refused login: %v (code %d, hint %q)", err, exitcode.Code(err), exitcode.HintOf(err))
			}
		})
	}
	for _, tc := range []struct {
		e    AuthRefusedError
		hint string
	}{
		{AuthRefusedError{User: "root", ImageUser: "ubuntu", ImageWhy: "image: Ubuntu"}, "check the user name (image default: ubuntu, from image: Ubuntu): --user ubuntu, or ubuntu@<target>"},
		{AuthRefusedError{User: "ubuntu", ImageUser: "ubuntu", ImageWhy: "image: Ubuntu"}, "ubuntu is the instance's default (image: Ubuntu), so its sshd refuses it"},
		{AuthRefusedError{User: "root"}, "the image's default: ec2-user on Amazon Linux"},
	} {
		if h := exitcode.HintOf(RefusedError(&tc.e)); !strings.Contains(h, tc.hint) {
			t.Errorf("%+v: hint %q, want %q", tc.e, h, tc.hint)
		}
	}
}
