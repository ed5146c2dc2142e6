#!/usr/bin/env bash
# The relay under load, against its references in the same run: builds the release relay and
# hush-load, then `hush-load run` (ROOMS rooms of PER_ROOM native E2EE clients for SECONDS
# seconds, then the SRTP-only and bare UDP forwarders with the same packet stream), writing
# target/load/report.json. `SWEEP=1` runs `hush-load sweep` instead (growing room counts until
# p99 latency or loss passes its bound). Bounded: every run ends by itself.
#   bash tests/load/run.sh 2 4 10
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOMS=${1:-2}; PER_ROOM=${2:-4}; SECONDS_RUN=${3:-10}
cargo build --release -p hush-relay --bin hush-relay -p hush-load
BIN=${CARGO_TARGET_DIR:-target}/release
mkdir -p target/load
if [ "${SWEEP:-0}" = 1 ]; then
  "$BIN/hush-load" sweep --per-room "$PER_ROOM" --seconds "$SECONDS_RUN" --json target/load/sweep.json
else
  "$BIN/hush-load" run --rooms "$ROOMS" --per-room "$PER_ROOM" --seconds "$SECONDS_RUN" \
    --json target/load/report.json
fi
