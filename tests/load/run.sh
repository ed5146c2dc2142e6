#!/usr/bin/env bash
# Relay load run: ROOMS rooms of PER_ROOM native clients (hush-load), each publishing VP8 at
# 30 fps and Opus-sized audio at 50/s, encrypted with hush-frame under keys from a real
# hush-keys exchange, for SECONDS seconds against a release relay on 127.0.0.1:8090.
# Prints packets forwarded and frames decrypted per second, then the relay's CPU time, RSS and
# counters. Bounded: hush-load stops after SECONDS, then the relay is stopped.
#   bash tests/load/run.sh 4 8 10
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOMS=${1:-2}; PER_ROOM=${2:-5}; SECONDS_RUN=${3:-10}
cargo build --release -p hush-relay --bin hush-relay -p hush-client --bin hush-load
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
head -c 32 /dev/urandom > "$WORK/hs256.key"
cat > "$WORK/relay.toml" <<TOML
bind = "127.0.0.1:8090"
[limits]
ip_connect_burst = 500
ip_connect_rate = 100
ip_max_connections = 500
[[keys]]
kid = "load"
alg = "HS256"
secret_file = "$WORK/hs256.key"
TOML
for r in $(seq 1 "$ROOMS"); do
  for n in $(seq 1 "$PER_ROOM"); do
    "$BIN/hush-relay" token --room "load-$r" --sub "c-$r-$n" --publish --subscribe \
      --key-file "$WORK/hs256.key" --kid load --ttl 600 >> "$WORK/tokens.txt"
  done
done
"$BIN/hush-relay" serve --config "$WORK/relay.toml" > "$WORK/audit.log" 2> "$WORK/relay.log" &
RELAY=$!
trap 'kill $RELAY 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 1
"$BIN/hush-load" --url ws://127.0.0.1:8090/v1/rtc --tokens "$WORK/tokens.txt" --seconds "$SECONDS_RUN"
echo "relay: rss KiB, cpu time: $(ps -o rss=,cputime= -p "$RELAY")"
curl -s http://127.0.0.1:8090/metrics | grep -E '^hush_(joins_total|forwarded_packets_total|dropped_packets_total)' || true
