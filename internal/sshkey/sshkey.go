// Package sshkey manages devgate's own SSH key pair: an ed25519 key in
// ~/.ssh/devgate/id_ed25519 (directory 0700, private key 0600, public key
// beside it as id_ed25519.pub), created once and reused.
//
// It creates keys, loads the public half (for EC2 Instance Connect pushes) and
// checks file permissions; Offered finds the key plain ssh will offer (the
// ssh-agent's first, else ~/.ssh/id_*), reading public halves only. It never
// overwrites an existing key, never writes anything outside the key's
// directory, and never logs key material.
package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/devgate/devgate/internal/atomicfile"
	"github.com/devgate/devgate/internal/exitcode"
)

// DefaultDirName is the directory under ~/.ssh that devgate owns.
const DefaultDirName = "devgate"

// DefaultKeyName is the file name of devgate's private key.
const DefaultKeyName = "id_ed25519"

// DefaultDir returns ~/.ssh/devgate for the given home directory.
func DefaultDir(home string) string { return filepath.Join(home, ".ssh", DefaultDirName) }

// DefaultPath returns ~/.ssh/devgate/id_ed25519 for the given home directory.
func DefaultPath(home string) string { return filepath.Join(DefaultDir(home), DefaultKeyName) }

// PublicPath returns the path of the public key that belongs to the private
// key at path (path + ".pub").
func PublicPath(path string) string { return path + ".pub" }

// Public is the public half of a key pair.
type Public struct {
	Key ssh.PublicKey
	// AuthorizedKey is the one-line authorized_keys form ("ssh-ed25519 AAAA… comment"),
	// without a trailing newline: what EC2 Instance Connect's SendSSHPublicKey takes.
	AuthorizedKey string
	// Fingerprint is the SHA256 fingerprint ("SHA256:…").
	Fingerprint string
}

// Key describes a key pair on disk.
type Key struct {
	Path       string // private key
	PublicPath string // public key
	Public     Public
	Created    bool // Ensure created it just now
}

// Ensure returns the key pair at path, creating it if the private key does
// not exist: missing parent directories are created 0700, the private key is
// written 0600 (never over an existing file), the public key 0644. When the
// private key exists but its .pub does not, the .pub is derived from it.
// An existing key is checked with CheckPermissions and must parse.
func Ensure(path string) (Key, error) {
	if path == "" {
		return Key{}, exitcode.New(exitcode.Usage, "pass --key PATH or leave it empty for ~/.ssh/devgate/id_ed25519", "empty key path")
	}
	k := Key{Path: path, PublicPath: PublicPath(path)}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		if err := CheckPermissions(path); err != nil {
			return Key{}, err
		}
		pub, err := LoadPublic(path)
		if err != nil && errors.Is(err, fs.ErrNotExist) {
			pub, err = derivePublic(path)
		}
		if err != nil {
			return Key{}, err
		}
		k.Public = pub
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return Key{}, exitcode.Wrap(err, exitcode.LocalIO, "check the path and its permissions", "cannot read key %s", path)
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, exitcode.Wrap(err, exitcode.LocalIO, "check that the directory can be created", "cannot create key directory %s", dir)
	}
	if err := checkDir(dir); err != nil {
		return Key{}, err
	}
	pubKey, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment())
	if err != nil {
		return Key{}, fmt.Errorf("marshal private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pubKey)
	if err != nil {
		return Key{}, fmt.Errorf("public key: %w", err)
	}
	pub := makePublic(sshPub, comment())
	if err := atomicfile.Create(path, pemEncode(block), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another devgate (parallel ssh connections) created it first: use theirs.
			return Ensure(path)
		}
		return Key{}, err
	}
	if err := atomicfile.Write(k.PublicPath, []byte(pub.AuthorizedKey+"\n"), 0o644); err != nil {
		return Key{}, err
	}
	k.Public = pub
	k.Created = true
	return k, nil
}

// LoadPublic reads the public key belonging to the private key at path (its
// .pub file). If path itself ends in ".pub" it is read directly.
func LoadPublic(path string) (Public, error) {
	pp := path
	if !strings.HasSuffix(path, ".pub") {
		pp = PublicPath(path)
	}
	b, err := os.ReadFile(pp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Public{}, exitcode.Wrap(err, exitcode.Config, "run `devgate setup` to create devgate's key, or pass --key", "public key %s not found", pp)
		}
		return Public{}, exitcode.Wrap(err, exitcode.LocalIO, "check the file's permissions", "cannot read public key %s", pp)
	}
	key, cmt, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return Public{}, exitcode.Wrap(err, exitcode.Config, "the .pub file is damaged: delete it and run `devgate setup` to derive it again", "public key %s does not parse", pp)
	}
	return makePublic(key, cmt), nil
}

// CheckPermissions reports, as an *exitcode.Error with the chmod that fixes
// it, a private key readable or writable by group or others, or a key
// directory writable by group or others. On Windows, where POSIX mode bits do
// not describe access, it only checks that the file exists.
func CheckPermissions(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return exitcode.Wrap(err, exitcode.Config, "run `devgate setup` to create devgate's key, or pass --key", "key %s not found", path)
		}
		return exitcode.Wrap(err, exitcode.LocalIO, "check the path and its permissions", "cannot read key %s", path)
	}
	if !fi.Mode().IsRegular() {
		return exitcode.New(exitcode.Config, "point --key at a private key file", "key %s is not a regular file", path)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return exitcode.New(exitcode.Config, fmt.Sprintf("chmod 600 %s", path),
			"key %s has mode %04o: it must not be accessible by group or others (ssh refuses it)", path, m)
	}
	return checkDir(filepath.Dir(path))
}

func checkDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return exitcode.Wrap(err, exitcode.LocalIO, "check the directory", "cannot read key directory %s", dir)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return exitcode.New(exitcode.Config, fmt.Sprintf("chmod 700 %s", dir),
			"key directory %s has mode %04o: it must not be writable by group or others", dir, m)
	}
	return nil
}

// LoadSigner reads the unencrypted private key at path, for in-process SSH.
func LoadSigner(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, exitcode.Wrap(err, exitcode.LocalIO, "check the file's permissions", "cannot read key %s", path)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, exitcode.Wrap(err, exitcode.Config, "devgate needs an unencrypted key (its own is): pass another --key", "key %s is encrypted", path)
		}
		return nil, exitcode.Wrap(err, exitcode.Config, "point --key at an OpenSSH private key", "key %s does not parse", path)
	}
	return signer, nil
}

// derivePublic recreates the .pub of an unencrypted private key.
func derivePublic(path string) (Public, error) {
	signer, err := LoadSigner(path)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return Public{}, exitcode.Wrap(err, exitcode.Config, fmt.Sprintf("write its public key with: ssh-keygen -y -f %s > %s.pub", path, path), "key %s is encrypted and has no .pub beside it", path)
		}
		return Public{}, err
	}
	pub := makePublic(signer.PublicKey(), comment())
	if err := atomicfile.Write(PublicPath(path), []byte(pub.AuthorizedKey+"\n"), 0o644); err != nil {
		return Public{}, err
	}
	return pub, nil
}

func makePublic(k ssh.PublicKey, cmt string) Public {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if cmt != "" {
		line += " " + cmt
	}
	return Public{Key: k, AuthorizedKey: line, Fingerprint: ssh.FingerprintSHA256(k)}
}

func comment() string {
	h, _ := os.Hostname()
	if h == "" {
		return "devgate"
	}
	return "devgate@" + h
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
