#!/usr/bin/env bash
# Benchmark devgate connect against direct ssh (the floor) and, when
# session-manager-plugin is on PATH, the official client — side by side on one
# devgate-lab run with API latency 50 ms, data-channel delay 20 ms each way
# and the real agent's pacing (1024-byte reads, 1 ms sleep per message).
#
#   bash bench/connect.sh            # SIZE_MB=64 RUNS=10 RTT=200 by default
#   SIZE_MB=256 bash bench/connect.sh
#   BASELINE=f476a8e bash bench/connect.sh   # also that commit's devgate, on the same labs, right after
#                                            # (round trip: interleaved with this tree's, sample by sample)
#   PARTS=cd bash bench/connect.sh           # only some of connectbench's parts (a b c d)
#   PARTS=d PARTS0=bcd bash bench/connect.sh # other parts on the lab without modeled latency (default: PARTS)
#   OFFICIAL=1 bash bench/connect.sh         # also the official client, its plugin built by bench/official-plugin.sh
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
if [ -n "${OFFICIAL:-}" ]; then
  plugin=$(bash bench/official-plugin.sh)
  export PATH="$(dirname "$plugin"):$PATH"
fi
SIZE_MB=${SIZE_MB:-64}
RUNS=${RUNS:-10}
RTT=${RTT:-200}
PARTS=${PARTS:-abcd}
PARTS0=${PARTS0:-$PARTS}
DATA_DELAY=${DATA_DELAY:-20ms}
API_LATENCY=${API_LATENCY:-50ms}

bin=$(mktemp -d)
lab=$(mktemp -d)
lab0=$(mktemp -d)
src=$(mktemp -d)
trap '"$bin/devgate-lab" down --dir "$lab" >/dev/null 2>&1 || true; "$bin/devgate-lab" down --dir "$lab0" >/dev/null 2>&1 || true; rm -rf "$bin" "$lab" "$lab0" "$src"' EXIT
# devgate is measured as it ships (.goreleaser.yaml: static, -trimpath, stripped) and as
# it is installed: copied into place (go install copies too). A dev build maps libc and
# ld.so too, and a binary fresh from the linker can map more of itself per page fault:
# 0-2 MiB more peak RSS for the same code (BENCHMARKS.md, "Peak RSS of devgate connect").
release() { CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$1/devgate.new" ./cmd/devgate && cp "$1/devgate.new" "$1/devgate" && rm "$1/devgate.new"; }
go build -o "$bin/" ./cmd/devgate-lab ./bench/connectbench
release "$bin"
if [ -n "${BASELINE:-}" ]; then
  # The baseline's devgate client only: the lab and connectbench are this tree's, so both run the same cases.
  git archive "$BASELINE" | tar -x -C "$src"
  mkdir -p "$bin/base"
  (cd "$src" && release "$bin/base")
fi
# bench LAB PARTS: connectbench's parts for this tree's devgate, then the baseline's. The round trip (c)
# runs once, with the baseline's devgate as one more client interleaved sample by sample.
bench() {
  local parts=$2 base=() bparts=${2//c/}
  [ -n "${BASELINE:-}" ] && base=(-base "$bin/base")
  echo "== devgate client: $(label "$bin")"
  "$bin/connectbench" -lab "$1" -bin "$bin" "${base[@]}" -runs "$RUNS" -size "$SIZE_MB" -rtt "$RTT" -parts "$parts"
  if [ -n "${BASELINE:-}" ] && [ -n "$bparts" ]; then
    echo "== devgate client: $(label "$bin/base")"
    "$bin/connectbench" -lab "$1" -bin "$bin/base" -runs "$RUNS" -size "$SIZE_MB" -rtt "$RTT" -parts "$bparts"
  fi
}
label() { if [ "$1" = "$bin" ]; then echo "this tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes'))"; else echo "baseline $BASELINE"; fi; }

"$bin/devgate-lab" up --dir "$lab" --devgate "$bin/devgate" \
  --api-latency "$API_LATENCY" --data-delay "$DATA_DELAY" --pacing=true --key-ttl 1h >"$lab/up.out" 2>&1 &
for _ in $(seq 100); do [ -f "$lab/lab.pid" ] && break; sleep 0.1; done
[ -f "$lab/lab.pid" ] || { cat "$lab/up.out"; exit 1; }
echo "$DATA_DELAY" >"$lab/bench-data-delay"

echo "devgate connect benchmark — $(date -u +%FT%TZ), $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "lab: api-latency $API_LATENCY, data-delay $DATA_DELAY each way, agent pacing on"
bench "$lab" "$PARTS"

# The same client on a lab with no modeled latency: what devgate itself adds.
"$bin/devgate-lab" down --dir "$lab" >/dev/null
"$bin/devgate-lab" up --dir "$lab0" --devgate "$bin/devgate" --pacing=false --key-ttl 1h >"$lab0/up.out" 2>&1 &
for _ in $(seq 100); do [ -f "$lab0/lab.pid" ] && break; sleep 0.1; done
echo 0s >"$lab0/bench-data-delay"
echo
echo "lab without modeled latency (api-latency 0, data-delay 0, no pacing): devgate's own overhead; load average $(cut -d' ' -f1-3 /proc/loadavg)"
bench "$lab0" "$PARTS0"
