// Package hostpin follows ssh aliases across instance replacements. ssh pins
// an alias's host key in devgate's known_hosts under the alias (the name it
// connects to); when the alias's Name tag now belongs to another instance (the
// old one was terminated and a new one launched under the same name), the old
// key must go or ssh refuses the new one. Follow records which instance each
// alias reached last (a small JSON file in devgate's state directory) and,
// when that changes, removes the alias's lines from known_hosts (plain and
// hashed entries) so that ssh's StrictHostKeyChecking accept-new pins the new
// instance's key. The trust is the same as for any new instance: AWS says
// which instance carries the name, and the tunnel reaches that instance id.
//
// It does not talk to AWS or ssh, and it never touches lines of other hosts.
package hostpin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devgate/devgate/internal/atomicfile"
	"github.com/devgate/devgate/internal/filelock"
)

// Follow records that alias now reaches instance id. When the alias reached
// another instance before, it removes the alias's known_hosts lines and
// returns that instance's id (previous); else previous is "". The first
// record of an alias removes nothing.
func Follow(ctx context.Context, stateFile, knownHosts, alias, id string) (previous string, err error) {
	if err := os.MkdirAll(filepath.Dir(stateFile), 0o700); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	unlock, err := filelock.Lock(ctx, stateFile+".lock", true)
	if err != nil {
		return "", err
	}
	defer unlock()
	m := map[string]string{}
	if b, err := os.ReadFile(stateFile); err == nil {
		_ = json.Unmarshal(b, &m) // a corrupt record is only a record: start over
	}
	prev := m[alias]
	if prev == id {
		return "", nil
	}
	m[alias] = id
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := atomicfile.Write(stateFile, b, 0o600); err != nil {
		return "", err
	}
	if prev == "" {
		return "", nil
	}
	if _, err := Unpin(knownHosts, alias); err != nil {
		return prev, err
	}
	return prev, nil
}

// Unpin removes the lines of host (port 22) from a known_hosts file, plain
// ("host", "host,other") or hashed ("|1|salt|hash"), keeping every other
// byte. It returns how many lines it removed; a missing file is no error.
func Unpin(path, host string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var out bytes.Buffer
	removed := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if lineNames(line, host) {
			removed++
			continue
		}
		out.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if removed == 0 {
		return 0, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return removed, atomicfile.Write(path, out.Bytes(), fi.Mode().Perm())
}

// lineNames reports whether a known_hosts line pins a key for host.
func lineNames(line, host string) bool {
	f := strings.Fields(line)
	if len(f) < 3 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], "@") {
		return false // comments, @cert-authority and @revoked lines stay
	}
	for _, pat := range strings.Split(f[0], ",") {
		if strings.HasPrefix(pat, "|1|") {
			parts := strings.Split(pat[3:], "|")
			if len(parts) != 2 {
				continue
			}
			salt, err1 := base64.StdEncoding.DecodeString(parts[0])
			want, err2 := base64.StdEncoding.DecodeString(parts[1])
			if err1 != nil || err2 != nil {
				continue
			}
			mac := hmac.New(sha1.New, salt)
			mac.Write([]byte(host))
			if hmac.Equal(mac.Sum(nil), want) {
				return true
			}
		} else if pat == host {
			return true
		}
	}
	return false
}
