#!/usr/bin/env bash
# Benchmark devgate forward: a notebook-like page load (200 requests of 200 KB
# over 6 parallel connections) through devgate forward, the official client's
# port forwarding when session-manager-plugin is on PATH, and directly — on one
# in-process devgate-lab run with the real agent's pacing and 20 ms each way.
#
#   bash bench/forward.sh             # RUNS=3 by default
#   RUNS=5 DATA_DELAY=50ms bash bench/forward.sh
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DATA_DELAY=${DATA_DELAY:-20ms}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" ./cmd/devgate ./bench/forwardbench
"$bin/forwardbench" -devgate "$bin/devgate" -runs "$RUNS" -data-delay "$DATA_DELAY" -pacing=true -sessions "${SESSIONS:-1,6}"
