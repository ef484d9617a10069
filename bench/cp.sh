#!/usr/bin/env bash
# Benchmark of devgate cp against one devgate-lab run with the agent's real
# pacing (1024-byte reads, 1 ms sleep per message) and 20 ms one-way delay on
# the data channel: a SIZE_MB download by scp (through the official
# session-manager-plugin when it is on PATH, else through devgate connect as
# ProxyCommand; one session), devgate cp -j 1, -j 8, -j 16, and --via s3.
#
#   SIZE_MB=1024 bench/cp.sh        (default 1024; each single-session run then takes ~20 min)
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
W=$(mktemp -d /tmp/devgate-bench-cp.XXXXXX)
trap 'devgate-lab down --dir "$W/lab" >/dev/null 2>&1 || true; kill $LABPID 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/lab" "$W/home"
go build -o "$W/bin/devgate" ./cmd/devgate
go build -o "$W/bin/devgate-lab" ./cmd/devgate-lab
PATH="$W/bin:$PATH"
devgate-lab up --dir "$W/lab" --data-delay 20ms --pacing=true --devgate "$W/bin/devgate" >"$W/lab.out" 2>&1 &
LABPID=$!
for _ in $(seq 100); do [ -s "$W/lab/ssh_config" ] && break; sleep 0.1; done
. "$W/lab/env"
export HOME="$W/home" XDG_CACHE_HOME="$W/home/.cache"
USER_ON=$(awk '/gpu1/ {print $NF; exit}' "$W/lab.out")
GPU1_ID=$(awk '/gpu1/ {print $2; exit}' "$W/lab.out") # random per lab directory
SRC="$W/src.bin"
head -c $((SIZE_MB << 20)) /dev/urandom >"$SRC"
SUM=$(sha256sum "$SRC" | cut -c1-64)
devgate cp -q --user "$USER_ON" -j 1 --chunk-size 65536 gpu1:/etc/hostname "$W/warm" # creates and pushes the key
check() { [ "$(sha256sum "$1" | cut -c1-64)" = "$SUM" ] || { echo "checksum mismatch: $1" >&2; exit 1; }; }
declare -A SECS
run() { # name, command...
	local name=$1; shift
	rm -f "$W/out.bin"
	local t0=$(date +%s.%N)
	"$@" >/dev/null
	local t1=$(date +%s.%N)
	check "$W/out.bin"
	SECS[$name]=$(echo "$t1 - $t0" | bc)
	printf '%-22s %8.1f s  %8.2f MB/s\n' "$name" "${SECS[$name]}" "$(echo "$SIZE_MB * 1.048576 / ${SECS[$name]}" | bc -l)"
}
if command -v session-manager-plugin >/dev/null; then
	SCPNAME="scp (official plugin)"
	PROXY="aws ssm start-session --target %h --document-name AWS-StartSSHSession --parameters portNumber=%p"
	run "$SCPNAME" scp -q -F /dev/null -o "ProxyCommand=$PROXY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-i "$HOME/.ssh/devgate/id_ed25519" "$USER_ON@$GPU1_ID:$SRC" "$W/out.bin"
else
	SCPNAME="scp (devgate connect)"
	run "$SCPNAME" scp -q -F "$W/lab/ssh_config" -i "$HOME/.ssh/devgate/id_ed25519" "gpu1:$SRC" "$W/out.bin"
fi
run "devgate cp -j 1" devgate cp -q --user "$USER_ON" --via tunnel -j 1 "gpu1:$SRC" "$W/out.bin"
run "devgate cp -j 8" devgate cp -q --user "$USER_ON" --via tunnel -j 8 "gpu1:$SRC" "$W/out.bin"
run "devgate cp -j 16" devgate cp -q --user "$USER_ON" --via tunnel -j 16 "gpu1:$SRC" "$W/out.bin"
run "devgate cp --via s3" devgate cp -q --user "$USER_ON" --via s3 --bucket devgate-lab-relay "gpu1:$SRC" "$W/out.bin"
echo
base=${SECS[$SCPNAME]}
for k in "devgate cp -j 1" "devgate cp -j 8" "devgate cp -j 16" "devgate cp --via s3"; do
	printf '%-22s %6.1fx %s\n' "$k" "$(echo "$base / ${SECS[$k]}" | bc -l)" "$SCPNAME"
done
