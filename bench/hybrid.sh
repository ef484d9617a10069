#!/usr/bin/env bash
# Benchmark of the hybrid path (--path auto|direct|ssm) on one devgate-lab run
# with 50 ms API latency, 20 ms one-way data-channel delay and the agent's
# pacing, the lab's VPN model connected (the direct path itself unmodelled:
# loopback speed):
#
#  1. a SIZE_MB download: devgate cp --path direct -j 16, plain scp straight to
#     the instance's sshd at its private address (the floor), devgate cp
#     --path ssm -j 16, devgate cp --via s3;
#  2. warm connect (ssh through the lab's ssh config, `true`): auto with the
#     VPN up vs plain ssh straight to the sshd; --path ssm; auto with the VPN
#     down by refusal and by silence, first connect (nothing remembered) and
#     the ones after.
#
#   SIZE_MB=1024 RUNS=5 bench/hybrid.sh      (defaults 256 and 5)
#   BASELINE=4c9e99c SIZE_MB=1024 bench/hybrid.sh   # also that commit's devgate cp --path direct, interleaved
#   COPY_RUNS=6 ...                                   # runs of each fast copy (default 3; 6 with BASELINE, 2 without, runs every order)
#   COPY_ONLY=1 ...                                   # stop after the fast copies (scp, direct, baseline)
#
# Each fast copy's line also gives the CPU seconds it took: the client
# (devgate, or scp with its ssh), the instance's sshd and everything it ran
# (sftp, the sha256, the shells of commands: its listener's reaped
# children), and the lab's VPN relay.
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-256}
RUNS=${RUNS:-5}
W=$(mktemp -d /tmp/devgate-bench-hybrid.XXXXXX)
trap 'devgate-lab down --dir "$W/lab" >/dev/null 2>&1 || true; kill $LABPID 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/lab" "$W/home"
go build -o "$W/bin/devgate" ./cmd/devgate
go build -o "$W/bin/devgate-lab" ./cmd/devgate-lab
if [ -n "${BASELINE:-}" ]; then
	mkdir -p "$W/base/src" "$W/base/bin"
	git archive "$BASELINE" | tar -x -C "$W/base/src"
	(cd "$W/base/src" && go build -o "$W/base/bin/devgate" ./cmd/devgate)
fi
PATH="$W/bin:$PATH"
devgate-lab up --dir "$W/lab" --api-latency 50ms --data-delay 20ms --pacing=true --key-ttl 1h --vpn up \
	--devgate "$W/bin/devgate" >"$W/lab.out" 2>&1 &
LABPID=$!
for _ in $(seq 300); do [ -s "$W/lab/instances.json" ] && break; sleep 0.1; done
. "$W/lab/env"
export HOME="$W/home" XDG_CACHE_HOME="$W/home/.cache" XDG_CONFIG_HOME="$W/home/.config"
read -r ID USER_ON IP < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(r["id"], r["user"], r["privateIp"])' "$W/lab/instances.json")
KEY="$HOME/.ssh/devgate/id_ed25519"
SRC="$W/src.bin"
head -c $((SIZE_MB << 20)) /dev/urandom >"$SRC"
SUM=$(sha256sum "$SRC" | cut -c1-64)
devgate cp -q --user "$USER_ON" --path ssm gpu1:/etc/hostname "$W/warm" # creates and pushes the key (valid 1 h here), pins the host key
PLAIN=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$W/lab/known_hosts"
	-o StrictHostKeyChecking=accept-new -o HostKeyAlias="$ID")
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
check() { [ "$(sha256sum "$1" | cut -c1-64)" = "$SUM" ] || { echo "checksum mismatch: $1" >&2; exit 1; }; }

COPY_RUNS=${COPY_RUNS:-3}
echo "== $SIZE_MB MiB download (median of $COPY_RUNS for the fast ones, interleaved; 1 run for Session Manager)"
declare -A SECS TS CPU
SSHD_PID=$(pgrep -f "sshd -D -e -f $W/lab/instances/$ID/sshd_config" | head -1)
LAB_PID=$LABPID
TCK=$(getconf CLK_TCK)
reaped() { awk '{print $16+$17}' "/proc/$SSHD_PID/stat"; } # the sshd listener's reaped children, in ticks
own() { awk '{print $14+$15}' "/proc/$LAB_PID/stat"; }     # the lab process itself (its VPN relay), in ticks
cpone() { # name, command...: one run, its time and CPU seconds added to the name's lists
	local name=$1; shift
	rm -f "$W/out.bin"
	sync    # the last run's 1 GiB written back now, not during this run
	sleep 1 # the last run's sshd children reaped
	local s0 l0 t0 t1
	s0=$(reaped) l0=$(own)
	t0=$(now)
	/usr/bin/time -f "%U %S" -o "$W/cpu.txt" "$@" >/dev/null
	t1=$(now)
	sleep 1
	check "$W/out.bin"
	TS[$name]+="$(printf %.3f "$(echo "$t1 - $t0" | bc)") "
	CPU[$name]+="$(awk '{printf "%.2f", $1+$2}' "$W/cpu.txt")/$(echo "scale=2; ($(reaped) - $s0) / $TCK" | bc)/$(echo "scale=2; ($(own) - $l0) / $TCK" | bc) "
}
cpreport() { # name
	local name=$1
	SECS[$name]=$(printf '%s\n' ${TS[$name]} | median)
	printf '%-40s %8.2f s  %8.1f MB/s   (runs: %s)\n' "$name" "${SECS[$name]}" "$(echo "$SIZE_MB * 1.048576 / ${SECS[$name]}" | bc -l)" "${TS[$name]% }"
	printf '%-40s CPU s client/instance sshd/lab relay: %s\n' "" "${CPU[$name]% }"
}
FAST=("scp straight to sshd (floor)" "devgate cp --path direct -j 16")
if [ -n "${BASELINE:-}" ]; then FAST+=("baseline $BASELINE: cp --path direct -j 16"); fi
fast() { # index into FAST: one run of that copy
	case $1 in
	0) cpone "${FAST[0]}" scp -q "${PLAIN[@]}" "$USER_ON@$IP:$SRC" "$W/out.bin" ;;
	1) cpone "${FAST[1]}" devgate cp -q --user "$USER_ON" --path direct -j 16 "gpu1:$SRC" "$W/out.bin" ;;
	2) cpone "${FAST[2]}" "$W/base/bin/devgate" cp -q --user "$USER_ON" --path direct -j 16 "gpu1:$SRC" "$W/out.bin" ;;
	esac
}
# Each round runs the copies in the next of all their orders, so that each copy follows each
# other one equally often: on this 2-core VM the devgate copy that runs right after scp is the
# slow one (an A/A run, the same commit in both devgate slots: 1.30x scp right after scp, 1.05x
# after the other devgate; swapped, 1.34x and 1.00x; BENCHMARKS.md). A rotation would keep who
# follows whom. COPY_RUNS: a multiple of 2 (6 with BASELINE) gives every order equally often.
if [ ${#FAST[@]} -eq 3 ]; then ORDERS=("0 1 2" "0 2 1" "1 0 2" "1 2 0" "2 0 1" "2 1 0"); else ORDERS=("0 1" "1 0"); fi
for r in $(seq 0 $((COPY_RUNS - 1))); do
	for k in ${ORDERS[$((r % ${#ORDERS[@]}))]}; do
		fast "$k"
	done
done
for name in "${FAST[@]}"; do cpreport "$name"; done
floor=${SECS["scp straight to sshd (floor)"]}
printf 'direct / floor: %.3f (target ≤ 1.10)\n' "$(echo "${SECS["devgate cp --path direct -j 16"]} / $floor" | bc -l)"
if [ -n "${BASELINE:-}" ]; then printf 'baseline direct / floor: %.3f\n' "$(echo "${SECS["${FAST[2]}"]} / $floor" | bc -l)"; fi
if [ -n "${COPY_ONLY:-}" ]; then exit 0; fi # the fast copies alone, for an A/B
cpone "devgate cp --path ssm -j 16" devgate cp -q --user "$USER_ON" --path ssm --via tunnel -j 16 "gpu1:$SRC" "$W/out.bin"
cpreport "devgate cp --path ssm -j 16"
cpone "devgate cp --via s3" devgate cp -q --user "$USER_ON" --path ssm --via s3 --bucket devgate-lab-relay "gpu1:$SRC" "$W/out.bin"
cpreport "devgate cp --via s3"
echo

echo "== warm connect: ssh … true (median of $RUNS)"
declare -A CONN
conn() { # name, env, ssh args...
	local name=$1 env=$2; shift 2
	local ts=()
	for _ in $(seq "$RUNS"); do
		local t0=$(now)
		env $env ssh "$@" true >/dev/null 2>"$W/ssh.err" || { cat "$W/ssh.err" >&2; exit 1; }
		local t1=$(now)
		ts+=("$(echo "$t1 - $t0" | bc)")
	done
	CONN[$name]=$(printf '%s\n' "${ts[@]}" | median)
	printf '%-40s %7.3f s   (runs: %s)\n' "$name" "${CONN[$name]}" "${ts[*]}"
}
once() { # name, env, ssh args...: one connect, its time
	local name=$1 env=$2; shift 2
	local t0=$(now)
	env $env ssh "$@" true >/dev/null 2>"$W/ssh.err" || { cat "$W/ssh.err" >&2; exit 1; }
	local t1=$(now)
	CONN[$name]=$(echo "$t1 - $t0" | bc)
	printf '%-40s %7.3f s   (%s)\n' "$name" "${CONN[$name]}" "$(grep -E '; Session Manager$|direct [0-9.]+:[0-9]+ in [0-9]+ ms$' "$W/ssh.err" | head -1 | sed 's/^devgate: \[[^]]*\] //')"
}
SSHC=(-F "$W/lab/ssh_config" -i "$KEY" -o BatchMode=yes gpu1) # -i: ssh expands the config's ~ to the passwd home, not $HOME
conn "plain ssh straight to sshd" "" "${PLAIN[@]}" "$USER_ON@$IP"
ss0=$(grep -c "msg=StartSession" "$W/lab/lab.log" || true)
conn "auto, VPN up" "" "${SSHC[@]}"
echo "StartSession calls during those $RUNS connects: $(( $(grep -c "msg=StartSession" "$W/lab/lab.log" || true) - ss0 )) (a direct path that answered recently gets a head start)"
conn "--path ssm" "DEVGATE_PATH=ssm" "${SSHC[@]}"
printf 'auto (VPN up) / plain ssh: %.3f (target ≤ 1.10)\n' "$(echo "${CONN["auto, VPN up"]} / ${CONN["plain ssh straight to sshd"]}" | bc -l)"
for mode in refuse silence; do
	if [ $mode = refuse ]; then devgate-lab vpn disconnect --dir "$W/lab" >/dev/null; else devgate-lab vpn disconnect --silence --dir "$W/lab" >/dev/null; fi
	rm -rf "$XDG_CACHE_HOME/devgate/direct" # nothing remembered: the first connect tries direct for the budget
	once "auto, VPN down ($mode), first" "" "${SSHC[@]}"
	conn "auto, VPN down ($mode), later" "" "${SSHC[@]}"
	printf 'first - ssm: %+.3f s (budget 0.300 s); later / ssm: %.3f\n' \
		"$(echo "${CONN["auto, VPN down ($mode), first"]} - ${CONN["--path ssm"]}" | bc -l)" \
		"$(echo "${CONN["auto, VPN down ($mode), later"]} / ${CONN["--path ssm"]}" | bc -l)"
	# The VPN drops right after direct answered: auto gives direct its head start first.
	devgate-lab vpn connect --dir "$W/lab" >/dev/null
	ssh -o ProxyCommand="devgate connect %h %p --user %r --path direct" "${SSHC[@]}" true 2>/dev/null
	if [ $mode = refuse ]; then devgate-lab vpn disconnect --dir "$W/lab" >/dev/null; else devgate-lab vpn disconnect --silence --dir "$W/lab" >/dev/null; fi
	once "auto, VPN down ($mode), just after direct" "" "${SSHC[@]}"
	printf 'just after direct - ssm: %+.3f s (budget 0.300 s)\n' "$(echo "${CONN["auto, VPN down ($mode), just after direct"]} - ${CONN["--path ssm"]}" | bc -l)"
done
devgate-lab vpn connect --dir "$W/lab" >/dev/null
echo
echo "== devgate bench gpu1 --path all --json --size ${BENCH_SIZE:-64MiB} --runs 3 -j 8 --bucket devgate-lab-relay"
devgate bench gpu1 --user "$USER_ON" --path all --json --size "${BENCH_SIZE:-64MiB}" --runs 3 -j 8 --bucket devgate-lab-relay >"$W/bench.json" 2>"$W/bench.err" ||
	{ cat "$W/bench.err" >&2; exit 1; }
cat "$W/bench.json"
if [ -n "${BENCH_JSON_OUT:-}" ]; then cp "$W/bench.json" "$BENCH_JSON_OUT"; fi
