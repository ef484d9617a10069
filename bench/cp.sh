#!/usr/bin/env bash
# Benchmark of devgate cp against one devgate-lab run with the agent's real
# pacing (1024-byte reads, 1 ms sleep per message) and 20 ms one-way delay on
# the data channel: a SIZE_MB download, each case once, side by side.
#
# Cases (CASES, space-separated; the default depends on the size):
#   scp-connect  scp through the official session-manager-plugin when it is on
#                PATH, else through devgate connect as ProxyCommand (one session)
#   j1 j8 j16    devgate cp --path ssm --via tunnel -j N (Session Manager)
#   s3           devgate cp --via s3 -j 16 (curl on the instance, the lab's S3)
#   direct       devgate cp --path direct -j 16 (the lab's VPN up)
#   scp-direct   plain scp straight to the instance's sshd at its private
#                address (the floor of the direct path)
#
#   SIZE_MB=1024 bench/cp.sh     default 1024: scp-connect j1 j8 j16 s3 (the
#                                single-session runs then take ~20 min each)
#   SIZE_MB=10240 bench/cp.sh    10 GiB: scp-direct direct s3 j16 by default
#                                (j16 alone takes ~11-15 min at the agent's
#                                pace: run it as its own case, CASES=j16)
#
# From 2048 MiB up (or SPARSE=1) the source is a sparse file (zeros: no disk
# read; no link on the path compresses) and the lab's S3 keeps multipart
# uploads in files (DEVGATE_LAB_S3_DIR) instead of memory; the copies are
# real files on disk, removed after each case. Disk needed: about twice the
# size (the S3 object and the copy). The lab runs with its VPN up when a
# direct case is selected; Session Manager cases pass --path ssm.
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
if [ "$SIZE_MB" -ge 2048 ]; then
	SPARSE=${SPARSE:-1}
	CASES=${CASES:-scp-direct direct s3 j16}
else
	SPARSE=${SPARSE:-0}
	CASES=${CASES:-scp-connect j1 j8 j16 s3}
fi
W=$(mktemp -d /tmp/devgate-bench-cp.XXXXXX)
trap 'devgate-lab down --dir "$W/lab" >/dev/null 2>&1 || true; kill $LABPID 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/lab" "$W/home"
go build -o "$W/bin/devgate" ./cmd/devgate
go build -o "$W/bin/devgate-lab" ./cmd/devgate-lab
PATH="$W/bin:$PATH"
VPN=()
case " $CASES " in *" direct "* | *" scp-direct "*) VPN=(--vpn up) ;; esac
LABENV=()
if [ "$SPARSE" = 1 ]; then LABENV=(DEVGATE_LAB_S3_DIR="$W/s3"); fi
env "${LABENV[@]}" devgate-lab up --dir "$W/lab" --data-delay 20ms --pacing=true --key-ttl 2h "${VPN[@]}" \
	--devgate "$W/bin/devgate" >"$W/lab.out" 2>&1 &
LABPID=$!
for _ in $(seq 300); do [ -s "$W/lab/instances.json" ] && break; sleep 0.1; done
. "$W/lab/env"
export HOME="$W/home" XDG_CACHE_HOME="$W/home/.cache" XDG_CONFIG_HOME="$W/home/.config"
read -r GPU1_ID USER_ON IP < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(r["id"], r["user"], r["privateIp"])' "$W/lab/instances.json")
KEY="$HOME/.ssh/devgate/id_ed25519"
SRC="$W/src.bin"
if [ "$SPARSE" = 1 ]; then
	truncate -s $((SIZE_MB << 20)) "$SRC"
else
	head -c $((SIZE_MB << 20)) /dev/urandom >"$SRC"
fi
SUM=$(sha256sum "$SRC" | cut -c1-64)
devgate cp -q --user "$USER_ON" --path ssm -j 1 --chunk-size 65536 gpu1:/etc/hostname "$W/warm" # creates and pushes the key, pins the host key
check() { [ "$(sha256sum "$1" | cut -c1-64)" = "$SUM" ] || { echo "checksum mismatch: $1" >&2; exit 1; }; }
echo "== $SIZE_MB MiB download, $( [ "$SPARSE" = 1 ] && echo sparse || echo random ) source; $(nproc) cores; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A SECS
NAMES=()
run() { # name, command...
	local name=$1; shift
	rm -f "$W/out.bin"
	local t0=$(date +%s.%N)
	"$@" >/dev/null
	local t1=$(date +%s.%N)
	check "$W/out.bin"
	rm -f "$W/out.bin"
	SECS[$name]=$(echo "$t1 - $t0" | bc)
	NAMES+=("$name")
	printf '%-34s %8.1f s  %8.2f MB/s   (load after: %s)\n' "$name" "${SECS[$name]}" "$(echo "$SIZE_MB * 1.048576 / ${SECS[$name]}" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}
PLAIN=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$W/lab/known_hosts"
	-o StrictHostKeyChecking=accept-new -o HostKeyAlias="$GPU1_ID")
for c in $CASES; do
	case $c in
	scp-connect)
		if command -v session-manager-plugin >/dev/null; then
			PROXY="aws ssm start-session --target %h --document-name AWS-StartSSHSession --parameters portNumber=%p"
			run "scp (official plugin)" scp -q -F /dev/null -o "ProxyCommand=$PROXY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
				-i "$KEY" "$USER_ON@$GPU1_ID:$SRC" "$W/out.bin"
		else
			run "scp (devgate connect)" scp -q -F "$W/lab/ssh_config" -i "$KEY" "gpu1:$SRC" "$W/out.bin"
		fi ;;
	j1 | j8 | j16)
		run "devgate cp -j ${c#j}" devgate cp -q --user "$USER_ON" --path ssm --via tunnel -j "${c#j}" "gpu1:$SRC" "$W/out.bin" ;;
	s3)
		run "devgate cp --via s3 -j 16" devgate cp -q --user "$USER_ON" --path ssm --via s3 -j 16 --bucket devgate-lab-relay "gpu1:$SRC" "$W/out.bin" ;;
	direct)
		run "devgate cp --path direct -j 16" devgate cp -q --user "$USER_ON" --path direct -j 16 "gpu1:$SRC" "$W/out.bin" ;;
	scp-direct)
		run "scp straight to sshd (floor)" scp -q "${PLAIN[@]}" "$USER_ON@$IP:$SRC" "$W/out.bin" ;;
	*)
		echo "unknown case $c" >&2
		exit 2 ;;
	esac
done
echo
base=${NAMES[0]}
for k in "${NAMES[@]:1}"; do
	printf '%-34s %6.2fx the time of %s\n' "$k" "$(echo "${SECS[$k]} / ${SECS[$base]}" | bc -l)" "$base"
done
