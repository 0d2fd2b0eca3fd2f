#!/usr/bin/env bash
# Transfer rate of `peer` -> `peer` over loopback for each encryption policy
# pair (plaintext, MSE with a plaintext payload, MSE with RC4).
#
#   scripts/bench-encryption.sh [SIZE_MIB]     (default 256)
#
# Uses target/release/peer (PEER_BIN overrides). Each row: one seeder with
# policy S, one leecher with policy L (`--once`), a fresh leecher directory;
# the time is the leecher's wall time from start to exit (download complete
# and verified), so it includes start-up and the final hash checks.
# Only processes started here are stopped, by their pid.
set -euo pipefail
# Benchmarks talk to loopback only: no DHT routers, no SSDP/NAT-PMP to the real router.
export PEER_DHT_BOOTSTRAP=none PEER_PORT_MAP=off
SIZE_MIB=${1:-256}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER=${PEER_BIN:-$ROOT/target/release/peer}
[ -x "$PEER" ] || { echo "build first: cargo build --release -p peer-cli" >&2; exit 2; }
TMP=$(mktemp -d)
SEED_PID=
cleanup() { [ -n "$SEED_PID" ] && kill "$SEED_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
mkdir -p "$TMP/seed"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$TMP/seed/data.bin"
"$PEER" create "$TMP/seed/data.bin" -o "$TMP/data.torrent" --piece-length 1M >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
printf '%-10s %-10s %-22s %8s %8s\n' seeder leecher payload seconds MB/s
for pair in "off off" "prefer prefer" "require prefer" "require require"; do
    set -- $pair
    P=$(port)
    "$PEER" "$TMP/data.torrent" --dir "$TMP/seed" --port "$P" --encryption "$1" \
        --no-lsd --no-dht >/dev/null 2>&1 &
    SEED_PID=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null && break; sleep 0.1; done
    sleep 1 # let it finish checking its data
    rm -rf "$TMP/leech"; mkdir -p "$TMP/leech"
    start=$(date +%s.%N)
    timeout 600 "$PEER" "$TMP/data.torrent" --dir "$TMP/leech" --port "$(port)" \
        --peer "127.0.0.1:$P" --encryption "$2" --once --no-lsd --no-dht >/dev/null 2>&1
    end=$(date +%s.%N)
    cmp -s "$TMP/seed/data.bin" "$TMP/leech/data.bin" || { echo "MISMATCH for $pair" >&2; exit 1; }
    kill "$SEED_PID"; wait "$SEED_PID" 2>/dev/null || true; SEED_PID=
    case "$pair" in
        "off off") payload="plaintext (no MSE)";;
        "prefer prefer") payload="MSE, plaintext payload";;
        *) payload="MSE, RC4";;
    esac
    python3 - "$start" "$end" "$SIZE_MIB" "$1" "$2" "$payload" <<'PY'
import sys
s, e, mib = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
t = e - s
print("%-10s %-10s %-22s %8.2f %8.1f" % (sys.argv[4], sys.argv[5], sys.argv[6], t, mib * 1048576 / 1e6 / t))
PY
done
