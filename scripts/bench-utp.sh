#!/usr/bin/env bash
# uTP against TCP on loopback, ours -> ours: one seeder, one `peer --once` leecher, the same
# file, `--transport tcp` then `--transport utp` (both sides), RUNS times each, alternating.
# Prints wall seconds and MB/s per run (the leecher's start to its exit, so start-up and the
# final hash check are included).
#
#   scripts/bench-utp.sh                 # 64 MiB, 3 runs of each
#   SIZE_MIB=256 RUNS=2 scripts/bench-utp.sh
#   PEER_BIN=target/release/peer scripts/bench-utp.sh
set -euo pipefail
SIZE_MIB=${SIZE_MIB:-64}
RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER=${PEER_BIN:-$ROOT/target/release/peer}
export PEER_DHT_BOOTSTRAP=none PEER_PORT_MAP=off
TMP=$(mktemp -d /tmp/bench-utp.XXXXXX)
trap 'kill "${SEED_PID:-0}" 2>/dev/null || true; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/seed"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$TMP/seed/data.bin"
"$PEER" create "$TMP/seed/data.bin" -o "$TMP/t.torrent" --piece-length 1M >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for run in $(seq "$RUNS"); do
  for transport in tcp utp; do
    sp=$(port)
    "$PEER" "$TMP/t.torrent" --dir "$TMP/seed" --port "$sp" --no-lsd --no-dht \
      --transport "$transport" </dev/null >"$TMP/seed.log" 2>&1 &
    SEED_PID=$!
    for _ in $(seq 200); do
      grep -q "seeding" "$TMP/seed.log" && break
      sleep 0.05
    done
    rm -rf "$TMP/down"; mkdir -p "$TMP/down"
    t0=$(date +%s.%N)
    "$PEER" "$TMP/t.torrent" --dir "$TMP/down" --port "$(port)" --no-lsd --no-dht --once \
      --transport "$transport" --peer "127.0.0.1:$sp" </dev/null >"$TMP/leech.log" 2>&1
    t1=$(date +%s.%N)
    kill "$SEED_PID"; wait "$SEED_PID" 2>/dev/null || true
    cmp -s "$TMP/seed/data.bin" "$TMP/down/data.bin" || { echo "run $run $transport: DATA DIFFERS"; exit 1; }
    python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print(f'run {sys.argv[3]} {sys.argv[4]}: {int(sys.argv[5])} MiB in {t:.2f} s = {int(sys.argv[5])*1.048576/t:.1f} MB/s')" \
      "$t0" "$t1" "$run" "$transport" "$SIZE_MIB"
  done
done
