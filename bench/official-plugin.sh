#!/usr/bin/env bash
# Build AWS's session-manager-plugin (the official client's data-channel
# process) from its source on the Go module proxy, for benchmarks beside
# devgate (bench/connect.sh OFFICIAL=1). Prints the binary's path.
#
# The plugin's repository has no go.mod and vendors its dependencies (a module
# zip leaves vendor/ out), so this writes a go.mod and lets the go command pick
# the dependencies from the proxy. One of them, github.com/twinj/uuid, is
# served here only at v1.0.0, whose API differs from the pre-1.0 one the plugin
# was written against; a small package with the six names the plugin uses
# (UUID as an interface with Bytes and String, New, NewV4, Parse,
# SwitchFormat, CleanHyphen) stands in for it. Nothing of the plugin is
# changed or committed here. Its VERSION file says what it is (1.3.0.0 at the
# pinned commit).
#
#   bash bench/official-plugin.sh                 # → ~/.cache/devgate-bench/session-manager-plugin
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
REV=${PLUGIN_REV:-v0.0.0-20260401221635-b79d06c1d3a2}
out=${XDG_CACHE_HOME:-$HOME/.cache}/devgate-bench
bin=$out/session-manager-plugin
stamp=$out/session-manager-plugin.rev
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$REV" ]; then echo "$bin"; exit 0; fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/aws/session-manager-plugin@$REV" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "official-plugin.sh: could not download github.com/aws/session-manager-plugin@$REV" >&2; exit 1; }
cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
cd "$work/src"
mkdir uuidcompat
cat > uuidcompat/uuid.go <<'GO'
// Package uuid: the pre-1.0 github.com/twinj/uuid names the plugin uses.
package uuid

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
)

type Format string

const CleanHyphen Format = "hyphen"

func SwitchFormat(Format) {}

type UUID interface {
	Bytes() []byte
	String() string
}

type u [16]byte

func (x *u) Bytes() []byte { return x[:] }
func (x *u) String() string {
	b := hex.EncodeToString(x[:])
	return b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:]
}

func New(b []byte) UUID { x := new(u); copy(x[:], b); return x }

func NewV4() UUID {
	x := new(u)
	_, _ = rand.Read(x[:])
	x[6] = x[6]&0x0f | 0x40
	x[8] = x[8]&0x3f | 0x80
	return x
}

func Parse(s string) (UUID, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return nil, errors.New("uuid: bad format")
	}
	return New(b), nil
}
GO
printf 'module github.com/twinj/uuid\n\ngo 1.22\n' > uuidcompat/go.mod
printf 'module github.com/aws/session-manager-plugin\n\ngo 1.22\n\nreplace github.com/twinj/uuid => ./uuidcompat\n' > go.mod
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
# As its makefile builds a release: go build -ldflags "-s -w".
GOFLAGS=-mod=mod go build -ldflags="-s -w" -o "$bin" ./src/sessionmanagerplugin-main
echo "$REV" > "$stamp"
echo "$bin"
