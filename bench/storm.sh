#!/usr/bin/env bash
# Retransmissions after reconnects on a slow link (issue 18 item 5): one
# `ssh gpu1 head -c SIZE /dev/zero` through `devgate connect` on a lab capped
# at BW bytes/s each way, without drops and with the WebSocket dropped every
# DROP, RUNS times each. Prints the median time, the ratio, and the lab
# agent's reliability counters (stream messages sent, retransmitted) from
# D/lab.log.
#
#   bash bench/storm.sh            # SIZE_MB=64 BW=4000000 DROP=3s RUNS=3
#   BASELINE=e31b1c8 bash bench/storm.sh   # also the same cases with that commit's devgate and lab
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-64}
BW=${BW:-4000000}
DROP=${DROP:-3s}
RUNS=${RUNS:-3}

bin=$(mktemp -d)
labs=()
cleanup() {
  for l in "${labs[@]}"; do "$bin/devgate-lab" down --dir "$l" >/dev/null 2>&1 || true; rm -rf "$l"; done
  rm -rf "$bin"
}
trap cleanup EXIT
go build -o "$bin/" ./cmd/devgate ./cmd/devgate-lab
if [ -n "${BASELINE:-}" ]; then
  src=$(mktemp -d)
  git archive "$BASELINE" | tar -x -C "$src"
  mkdir "$bin/base"
  (cd "$src" && go build -o "$bin/base/" ./cmd/devgate ./cmd/devgate-lab)
  rm -rf "$src"
fi

echo "devgate retransmission benchmark — $(date -u +%FT%TZ), $(nproc) cores, $(uname -sr), commit $(git rev-parse --short HEAD)"
echo "lab: --pacing=false --bandwidth $BW; ${SIZE_MB} MiB down per run (ssh gpu1 head -c … /dev/zero), $RUNS runs each"

declare -A med
run_case() { # binary dir, name, extra lab flags...
  local dir=$1 name=$2; shift 2
  local PATH="$dir:$PATH"
  local lab; lab=$(mktemp -d); labs+=("$lab")
  devgate-lab up --dir "$lab" --devgate "$dir/devgate" --pacing=false --bandwidth "$BW" --key-ttl 1h "$@" >"$lab/up.out" 2>&1 &
  for _ in $(seq 100); do [ -f "$lab/lab.pid" ] && break; sleep 0.1; done
  [ -f "$lab/lab.pid" ] || { cat "$lab/up.out"; exit 1; }
  # shellcheck disable=SC1091
  . "$lab/env"
  local ssh=(ssh -F "$lab/ssh_config" -o BatchMode=yes -o ControlMaster=no -o ControlPath=none gpu1)
  "${ssh[@]}" true 2>"$lab/ssh.err" # warm-up: key push, name cache
  local times=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "${ssh[@]}" "head -c $((SIZE_MB << 20)) /dev/zero" 2>>"$lab/ssh.err" | wc -c | grep -qx $((SIZE_MB << 20)) || { echo "short read"; exit 1; }
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  for _ in $(seq 300); do # the lab logs each session's counters when it ends
    [ "$(grep -c 'mgs: session ended.* sent=[0-9]\{4,\}' "$lab/lab.log" || true)" -ge "$RUNS" ] && break
    sleep 0.1
  done
  local m; m=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  med[$name]=$m
  printf '  %-28s median %6.1f s (runs: %s)\n' "$name" "$m" "$(printf '%.1f ' "${times[@]}")"
  # Sessions with a bulk download: sent > 1000 messages. Their counters, one line each.
  { grep "mgs: session ended" "$lab/lab.log" || true; } | sed -n 's/.* sent=\([0-9]*\) retransmitted=\([0-9]*\).*/\1 \2/p' |
    awk -v n="$name" '$1 > 1000 { k++; printf "  %-28s agent sent %d stream messages, retransmitted %d (%.2f%%)\n", n, $1, $2, 100*$2/$1 }
      END { if (!k) printf "  %-28s (no session counters in the lab log)\n", n }'
  devgate-lab down --dir "$lab" >/dev/null 2>&1 || true
}
if [ -n "${BASELINE:-}" ]; then
  echo "baseline $BASELINE (its lab does not log the agent's counters):"
  run_case "$bin/base" "base: no drops"
  run_case "$bin/base" "base: drop every $DROP" --drop-every "$DROP"
  printf '  ratio drops / no drops: %.2f×\n' "$(echo "${med[base: drop every $DROP]} / ${med[base: no drops]}" | bc -l)"
  echo "this tree:"
fi
run_case "$bin" "no drops"
run_case "$bin" "drop every $DROP" --drop-every "$DROP"
printf '  ratio drops / no drops: %.2f×\n' "$(echo "${med[drop every $DROP]} / ${med[no drops]}" | bc -l)"
