#!/usr/bin/env bash
# A/B of two devgate builds' cp on one devgate-lab run (the agent's real
# pacing, 20 ms one-way delay on the data channel, the VPN up), interleaved
# (A B A B …), RUNS times each, medians and the ratio B/A.
#
#   A=/path/to/devgate-old B=/path/to/devgate-new bench/cp-ab.sh
#   SIZE_MB=1024 RUNS=5 CASES="direct j8" ...        (defaults: 1024, 5, direct)
#
# Cases: direct  cp --path direct -j 16 (the VPN)
#        j8      cp --path ssm --via tunnel -j 8 (Session Manager; ~1 MB/s per session:
#                use SIZE_MB=64 or so)
# The lab and its devgate ProxyCommand are built from this tree. The source
# is random; each copy is checked (sha256) and removed.
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
: "${A:?A=path of build A}" "${B:?B=path of build B}"
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-5}
CASES=${CASES:-direct}
W=$(mktemp -d /tmp/devgate-bench-ab.XXXXXX)
trap 'devgate-lab down --dir "$W/lab" >/dev/null 2>&1 || true; kill $LABPID 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/lab" "$W/home"
go build -o "$W/bin/devgate" ./cmd/devgate
go build -o "$W/bin/devgate-lab" ./cmd/devgate-lab
PATH="$W/bin:$PATH"
devgate-lab up --dir "$W/lab" --data-delay 20ms --pacing=true --key-ttl 2h --vpn up --devgate "$W/bin/devgate" >"$W/lab.out" 2>&1 &
LABPID=$!
for _ in $(seq 300); do [ -s "$W/lab/instances.json" ] && break; sleep 0.1; done
. "$W/lab/env"
export HOME="$W/home" XDG_CACHE_HOME="$W/home/.cache" XDG_CONFIG_HOME="$W/home/.config"
read -r USER_ON < <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["user"])' "$W/lab/instances.json")
SRC="$W/src.bin"
head -c $((SIZE_MB << 20)) /dev/urandom >"$SRC"
SUM=$(sha256sum "$SRC" | cut -c1-64)
"$A" cp -q --user "$USER_ON" --path ssm -j 1 gpu1:/etc/hostname "$W/warm" # the key, the host key pinned
echo "== $SIZE_MB MiB download, A=$A B=$B, $RUNS runs each interleaved; $(nproc) cores; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for c in $CASES; do
	case $c in
	direct) args=(--path direct -j 16) ;;
	j8) args=(--path ssm --via tunnel -j 8) ;;
	*) echo "unknown case $c" >&2; exit 2 ;;
	esac
	: >"$W/A.$c"; : >"$W/B.$c"; : >"$W/A.$c.cpu"; : >"$W/B.$c.cpu"
	for r in $(seq "$RUNS"); do
		for v in A B; do
			bin=${!v}
			rm -f "$W/out.bin"
			t0=$(date +%s.%N)
			# CPU of the client alone (user+sys of the cp process, from bash's times of its children)
			cpu0=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
			"$bin" cp -q --user "$USER_ON" "${args[@]}" "gpu1:$SRC" "$W/out.bin"
			cpu1=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
			t1=$(date +%s.%N)
			[ "$(sha256sum "$W/out.bin" | cut -c1-64)" = "$SUM" ] || { echo "checksum mismatch ($v)" >&2; exit 1; }
			echo "$t1 - $t0" | bc >>"$W/$v.$c"
			echo "($cpu1 - $cpu0) / $(getconf CLK_TCK)" | bc -l >>"$W/$v.$c.cpu"
			printf '%-7s run %d %s %6.2f s, client CPU %5.2f s (load %s)\n' "$c" "$r" "$v" "$(tail -1 "$W/$v.$c")" "$(tail -1 "$W/$v.$c.cpu")" "$(cut -d' ' -f1 /proc/loadavg)"
		done
	done
	ma=$(median <"$W/A.$c"); mb=$(median <"$W/B.$c")
	ca=$(median <"$W/A.$c.cpu"); cb=$(median <"$W/B.$c.cpu")
	printf '%-7s median A %.2f s (%.1f MB/s, CPU %.2f s)  B %.2f s (%.1f MB/s, CPU %.2f s)  B/A time %.3f, CPU %.3f\n' "$c" \
		"$ma" "$(echo "$SIZE_MB*1.048576/$ma" | bc -l)" "$ca" "$mb" "$(echo "$SIZE_MB*1.048576/$mb" | bc -l)" "$cb" \
		"$(echo "$mb/$ma" | bc -l)" "$(echo "$cb/$ca" | bc -l)"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
