package sshkey

import (
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// DefaultIdentities are the key files ssh tries by default, in its order
// (ssh_config(5), IdentityFile), without the FIDO (-sk) and DSA ones that EC2
// Instance Connect does not accept.
var DefaultIdentities = []string{"id_rsa", "id_ecdsa", "id_ed25519"}

// Offered returns the public key ssh will offer first when nothing in its
// configuration names one: the first key of the ssh-agent at agentSock
// ($SSH_AUTH_SOCK; "" skips the agent), else the first of ~/.ssh/id_rsa,
// id_ecdsa, id_ed25519 whose .pub exists. source says which ("ssh-agent", or
// the file's path). ok is false when there is none. Keys EC2 Instance
// Connect refuses (DSA, FIDO, RSA under 2048 bits) are skipped.
func Offered(home, agentSock string) (pub Public, source string, ok bool) {
	if agentSock != "" {
		if c, err := net.DialTimeout("unix", agentSock, 2*time.Second); err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			keys, err := agent.NewClient(c).List()
			c.Close()
			if err == nil {
				for _, k := range keys {
					pk, err := ssh.ParsePublicKey(k.Marshal())
					if err == nil && pushable(pk) {
						return makePublic(pk, k.Comment), "ssh-agent", true
					}
				}
			}
		}
	}
	for _, name := range DefaultIdentities {
		p := filepath.Join(home, ".ssh", name)
		pub, err := LoadPublic(p)
		if err == nil && pushable(pub.Key) {
			return pub, p, true
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue // a damaged .pub: try the next one, as ssh would
		}
	}
	return Public{}, "", false
}

// pushable reports whether EC2 Instance Connect accepts the key type
// (ed25519, ECDSA, RSA of at least 2048 bits).
func pushable(pk ssh.PublicKey) bool {
	switch pk.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return true
	case ssh.KeyAlgoRSA:
		if ck, ok := pk.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(interface{ Size() int }); ok {
				return rk.Size()*8 >= 2048
			}
		}
	}
	return false
}
