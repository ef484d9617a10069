#!/usr/bin/env bash
# What the peak RSS of `devgate connect` is made of (issue 17 item 1), on one devgate-lab run:
#  - the same commit built three ways: a dev build fresh from the linker (`go build`, cgo, what
#    bench/connect.sh measured before), the release build fresh from the linker, and the release build
#    copied into place (installed, as `go install` and a release archive leave it);
#  - for each: the peak of `devgate version` (the binary's own floor: runtime start and package inits),
#    and of `devgate connect` as ssh's ProxyCommand for a paced and an unpaced download (wait4 ru_maxrss
#    through connectbench's -rusage wrapper, with its CPU ms per MiB), RUNS times, median;
#  - one paced session of the installed release build, looked into mid-download (bench/rssmap: resident
#    part of each ELF section of the executable, anonymous mappings).
#
#   bash bench/rss.sh                     # PACED_MB=8 UNPACED_MB=64 RUNS=3
#   GC_AB=50 bash bench/rss.sh            # also the installed build with GOGC=50, interleaved
#
# Needs root for /proc/PID/pagemap (rssmap). The lab: api-latency 50ms, data-delay 20ms, agent pacing
# (bench/connect.sh's), and one without modeled latency or pacing.
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
PACED_MB=${PACED_MB:-8}
UNPACED_MB=${UNPACED_MB:-64}
RUNS=${RUNS:-3}

bin=$(mktemp -d)
lab=$(mktemp -d)
lab0=$(mktemp -d)
trap '"$bin/devgate-lab" down --dir "$lab" >/dev/null 2>&1 || true; "$bin/devgate-lab" down --dir "$lab0" >/dev/null 2>&1 || true; rm -rf "$bin" "$lab" "$lab0"' EXIT
go build -o "$bin/" ./cmd/devgate-lab ./bench/connectbench ./bench/rssmap
mkdir -p "$bin/dev" "$bin/release" "$bin/installed"
go build -o "$bin/dev/" ./cmd/devgate
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin/release/" ./cmd/devgate
cp "$bin/release/devgate" "$bin/installed/devgate"

up() { # dir args...
  local d=$1; shift
  "$bin/devgate-lab" up --dir "$d" --devgate "$bin/installed/devgate" --key-ttl 1h "$@" >"$d/up.out" 2>&1 &
  for _ in $(seq 100); do [ -f "$d/lab.pid" ] && break; sleep 0.1; done
  [ -f "$d/lab.pid" ] || { cat "$d/up.out"; exit 1; }
}
up "$lab" --api-latency 50ms --data-delay 20ms --pacing=true
up "$lab0" --pacing=false

out=$(mktemp)
# peak LAB BIN MiB [ENV...]: one download through `devgate connect` (BIN's, with ENV) as ProxyCommand;
# prints its peak RSS in MiB and its CPU ms per MiB downloaded.
peak() {
  local l=$1 b=$2 mib=$3; shift 3
  rm -f "$out"
  (. "$l/env" && ssh -F "$l/ssh_config" -o BatchMode=yes -o ControlMaster=no -o ControlPath=none \
    -o "ProxyCommand=$bin/connectbench -rusage $out env $* $b/devgate connect %h %p --user %r --quiet" \
    gpu1 "head -c $((mib << 20)) /dev/zero" >/dev/null)
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
  awk -v m="$mib" '{printf "%.1f %.1f\n", $3/1024, ($1+$2)*1000/m}' "$out"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "peak RSS of devgate — $(date -u +%FT%TZ), $(nproc) cores, $(uname -sr), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm-up: the first connect on each lab creates devgate's key and pushes it; later ones within 40 s skip the push.
peak "$lab" "$bin/installed" 1 >/dev/null
peak "$lab0" "$bin/installed" 1 >/dev/null
builds=(dev release installed)
# GC_AB=50: also the installed build with GOGC=50 (a GC target for connect: RSS against CPU), interleaved.
[ -n "${GC_AB:-}" ] && builds+=(gc)
declare -A v p u pc uc
for _ in $(seq "$RUNS"); do
  for b in "${builds[@]}"; do # interleaved, so that the machine's load falls on all alike
    dir=$bin/$b; envs=()
    [ "$b" = gc ] && dir=$bin/installed && envs=(GOGC="$GC_AB")
    rm -f "$out"; "$bin/connectbench" -rusage "$out" env "${envs[@]}" "$dir/devgate" version >/dev/null
    v[$b]+=" $(awk '{printf "%.1f", $3/1024}' "$out")"
    read -r r c < <(peak "$lab" "$dir" "$PACED_MB" "${envs[@]}"); p[$b]+=" $r"; pc[$b]+=" $c"
    read -r r c < <(peak "$lab0" "$dir" "$UNPACED_MB" "${envs[@]}"); u[$b]+=" $r"; uc[$b]+=" $c"
  done
done
printf '%-48s %16s %28s %28s\n' "peak RSS MiB (CPU ms/MiB), median of $RUNS" "devgate version" "connect, paced ${PACED_MB} MiB" "connect, unpaced ${UNPACED_MB} MiB"
for b in "${builds[@]}"; do
  case $b in
    dev) name="dev: go build (cgo), fresh from the linker" ;;
    release) name="release flags, fresh from the linker" ;;
    installed) name="release flags, copied into place" ;;
    gc) name="release flags, copied into place, GOGC=$GC_AB" ;;
  esac
  printf '%-48s %16s %28s %28s\n' "$name" "$(echo ${v[$b]} | median)" "$(echo ${p[$b]} | median) ($(echo ${pc[$b]} | median))" "$(echo ${u[$b]} | median) ($(echo ${uc[$b]} | median))"
  printf '%-48s %16s %28s %28s\n' "  runs" "${v[$b]# }" "${p[$b]# }" "${u[$b]# }"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "inside one paced session of the installed release build, 2 s into a ${PACED_MB} MiB download:"
(. "$lab/env" && ssh -F "$lab/ssh_config" -o BatchMode=yes -o ControlMaster=no -o ControlPath=none \
  -o "ProxyCommand=$bin/installed/devgate connect %h %p --user %r --quiet" gpu1 "head -c $((PACED_MB << 20)) /dev/zero" >/dev/null) &
sshpid=$!
sleep 2
pid=$(pgrep -f "^$bin/installed/devgate connect" | head -1)
"$bin/rssmap" "$pid"
wait "$sshpid"
echo "the floor, devgate version at its exit (paused there by strace):"
strace -f -qq -e trace=exit_group -e inject=exit_group:delay_enter=2000000 -o /dev/null "$bin/installed/devgate" version >/dev/null &
stracepid=$!
sleep 1
"$bin/rssmap" "$(pgrep -f "^$bin/installed/devgate version" | head -1)"
wait "$stracepid"
