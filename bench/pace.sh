#!/usr/bin/env bash
# bench/pace.sh — downloads at the agent's pace: how fast the lab's agent sends (its pump's mean time per
# message, from lab.log) and what devgate connect's process spends per MiB, for this tree and BASELINE
# alternated on one paced lab per data-channel delay (api-latency 50 ms, pacing on). The agent's pump
# sleeps with Go's time.Sleep, whose overshoot depends on when the process is woken (bench/sleepwake): how
# and when a client acks moves the agent's pace, and the delay moves when the acks arrive.
#
#   BASELINE=191c55a bash bench/pace.sh          # ROUNDS=3 SIZE_MB=8 DELAYS="0ms 7ms 20ms 33ms"
#
# Both clients are release builds (.goreleaser.yaml's flags), run by ssh as ProxyCommand under
# connectbench's -rusage wrapper (wait4: user+sys CPU, peak RSS). Run it alone (flock /work/bench.lock).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASELINE:?set BASELINE to the commit to compare with}"
ROUNDS=${ROUNDS:-3}
SIZE_MB=${SIZE_MB:-8}
DELAYS=${DELAYS:-0ms 7ms 20ms 33ms}
bin=$(mktemp -d) lab=$(mktemp -d) src=$(mktemp -d)
trap '"$bin/devgate-lab" down --dir "$lab" >/dev/null 2>&1 || true; rm -rf "$bin" "$lab" "$src"' EXIT
release() { CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$1/devgate.new" ./cmd/devgate && cp "$1/devgate.new" "$1/devgate" && rm "$1/devgate.new"; }
go build -o "$bin/" ./cmd/devgate-lab ./bench/connectbench
release "$bin"
mkdir -p "$bin/base"
git archive "$BASELINE" | tar -x -C "$src"
(cd "$src" && release "$bin/base")
here="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes')"

echo "devgate pace benchmark — $(date -u +%FT%TZ), $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "this tree $here against baseline $BASELINE; $SIZE_MB MiB down per run, $ROUNDS rounds per delay, clients alternated"
rows=$(mktemp)
for delay in $DELAYS; do
  "$bin/devgate-lab" down --dir "$lab" >/dev/null 2>&1 || true
  rm -rf "$lab" && mkdir -m 0700 "$lab"
  "$bin/devgate-lab" up --dir "$lab" --devgate "$bin/devgate" --api-latency 50ms --data-delay "$delay" \
    --pacing=true --key-ttl 1h >"$lab/up.out" 2>&1 &
  for _ in $(seq 100); do [ -s "$lab/lab.pid" ] && break; sleep 0.1; done
  [ -s "$lab/lab.pid" ] || { cat "$lab/up.out"; exit 1; }
  # shellcheck disable=SC1091
  . "$lab/env"
  for _ in $(seq "$ROUNDS"); do
    for who in this base; do
      client="$bin/devgate"; [ "$who" = base ] && client="$bin/base/devgate"
      before=$(grep -c 'agent pump ended' "$lab/lab.log" || true)
      rm -f "$bin/rusage"
      start=$(date +%s.%N)
      got=$(ssh -F "$lab/ssh_config" -o ProxyCommand="$bin/connectbench -rusage $bin/rusage $client connect %h %p --user %r --quiet" \
        gpu1 "head -c $((SIZE_MB << 20)) /dev/zero" 2>/dev/null | wc -c)
      end=$(date +%s.%N)
      [ "$got" -eq $((SIZE_MB << 20)) ] || { echo "$who: $got bytes, want $((SIZE_MB << 20))"; exit 1; }
      # ssh does not wait for its ProxyCommand: the wrapper writes its figures when devgate has exited.
      for _ in $(seq 100); do [ -s "$bin/rusage" ] && [ "$(grep -c 'agent pump ended' "$lab/lab.log" || true)" -gt "$before" ] && break; sleep 0.1; done
      pace=$(grep 'agent pump ended' "$lab/lab.log" | tail -1 | sed -n 's/.*ms_per_message=\([0-9.]*\).*/\1/p')
      read -r user sys rss <"$bin/rusage"
      awk -v who="$who" -v d="$delay" -v wall="$(echo "$end - $start" | bc)" -v cpu="$(echo "($user + $sys) * 1000 / $SIZE_MB" | bc -l)" \
        -v rss="$rss" -v pace="$pace" 'BEGIN { printf "%-5s %-5s %6.2f s  connect %5.1f CPU ms/MiB  peak RSS %4.1f MiB  agent %s ms/message\n", d, who, wall, cpu, rss / 1024, pace }' | tee -a "$rows"
    done
  done
done
echo
echo "medians: delay, client, wall s, connect CPU ms/MiB, agent ms/message (this tree / baseline ratio)"
for delay in $DELAYS; do
  python3 - "$rows" "$delay" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
d = sys.argv[2]
def med(who, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == d and r[1] == who)
t = [med("this", i) for i in (2, 5, 13)]
b = [med("base", i) for i in (2, 5, 13)]
print(f"{d:>5}  this {t[0]:6.2f} s {t[1]:5.1f} ms/MiB {t[2]:.3f} ms/msg   base {b[0]:6.2f} s {b[1]:5.1f} ms/MiB {b[2]:.3f} ms/msg"
      f"   ratio {t[0]/b[0]:.2f} / {t[1]/b[1]:.2f} / {t[2]/b[2]:.2f}")
PY
done
rm -f "$rows"
