#!/usr/bin/env bash
# Benchmark `peer create` against mktorrent and transmission-create.
#
#   scripts/bench-create.sh            # 2 GiB file, 5 runs per tool
#   N=3 SIZE_MIB=512 scripts/bench-create.sh
#
# Environment:
#   N          runs per tool (default 5); the median wall time is reported
#   SIZE_MIB   size of the test file in MiB (default 2048)
#   PIECE_KIB  piece length in KiB, the same for every tool (default 1024)
#   BENCH_DIR  where to put the test file (default: a fresh mktemp -d)
#
# The file is created once from /dev/urandom, read once to warm the page
# cache, then every tool hashes it from memory. Tools that are not
# installed are reported as SKIP. Needs bash, cargo, awk, sort.
set -euo pipefail
# Benchmarks talk to loopback only: no DHT routers, no SSDP/NAT-PMP to the real router.
export PEER_DHT_BOOTSTRAP=none PEER_PORT_MAP=off

N=${N:-5}
SIZE_MIB=${SIZE_MIB:-2048}
PIECE_KIB=${PIECE_KIB:-1024}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
THREADS=$(nproc)

log2() { local n=$1 k=0; while (( n > 1 )); do n=$(( n / 2 )); k=$(( k + 1 )); done; echo "$k"; }
PIECE_LOG2=$(( $(log2 "$PIECE_KIB") + 10 ))

echo "== building peer (release)" >&2
cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p peer-cli
cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p bittorrent-core --example sha1_throughput
PEER="$ROOT/target/release/peer"

DIR=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$DIR"
cleanup() { rm -f "$DIR/data.bin" "$DIR"/out-*.torrent; [[ -n "${BENCH_DIR:-}" ]] || rmdir "$DIR" 2>/dev/null || true; }
trap cleanup EXIT
FILE="$DIR/data.bin"

echo "== writing ${SIZE_MIB} MiB of random data to $FILE" >&2
head -c "$(( SIZE_MIB * 1024 * 1024 ))" /dev/urandom > "$FILE"
cat "$FILE" > /dev/null # warm the page cache

# run NAME OUT CMD...: time N runs of CMD (removing OUT first), print the median.
run() {
    local name=$1 out=$2; shift 2
    local times=() i t0 t1
    for (( i = 0; i < N; i++ )); do
        rm -f "$out"
        t0=$EPOCHREALTIME
        "$@" > /dev/null 2>&1
        t1=$EPOCHREALTIME
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    printf '%s\t%s\t%s\n' "$name" "$median" "${times[*]}"
}

have() { command -v "$1" > /dev/null 2>&1; }

RESULTS=()
RESULTS+=("$(run "peer create (--threads $THREADS)" "$DIR/out-peer.torrent" \
    "$PEER" create "$FILE" -o "$DIR/out-peer.torrent" --piece-length "${PIECE_KIB}K" --threads "$THREADS")")
if have mktorrent; then
    RESULTS+=("$(run "mktorrent -t $THREADS" "$DIR/out-mktorrent.torrent" \
        mktorrent -t "$THREADS" -l "$PIECE_LOG2" -a http://127.0.0.1:1/announce -o "$DIR/out-mktorrent.torrent" "$FILE")")
else
    RESULTS+=("mktorrent	SKIP	not installed")
fi
if have transmission-create; then
    RESULTS+=("$(run "transmission-create" "$DIR/out-transmission.torrent" \
        transmission-create -s "$PIECE_KIB" -o "$DIR/out-transmission.torrent" "$FILE")")
else
    RESULTS+=("transmission-create	SKIP	not installed")
fi

echo
echo "machine: $THREADS threads, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "$(cargo --version)"
echo "file: ${SIZE_MIB} MiB (page cache warm), piece length ${PIECE_KIB} KiB, N=$N"
"$ROOT/target/release/examples/sha1_throughput" 1024
if have openssl; then
    openssl speed -seconds 2 -bytes 1048576 -evp sha1 2> /dev/null \
        | awk '/^sha1/ { v = $2; sub(/k$/, "", v); printf "openssl sha1 single core: %.0f MB/s (1 MiB blocks)\n", v * 1000 / 1e6 }'
fi
echo
PEER_T=$(printf '%s\n' "${RESULTS[0]}" | cut -f2)
printf '%-34s %10s %16s   %s\n' "tool" "median s" "peer / tool" "runs (s)"
for r in "${RESULTS[@]}"; do
    IFS=$'\t' read -r name med runs <<< "$r"
    if [[ $med == SKIP ]]; then
        printf '%-34s %10s %16s   %s\n' "$name" "SKIP" "-" "$runs"
        continue
    fi
    ratio=$(awk -v p="$PEER_T" -v t="$med" 'BEGIN { printf "%.2fx", p / t }')
    mbs=$(awk -v s="$SIZE_MIB" -v t="$med" 'BEGIN { printf "%.0f MB/s", s * 1048576 / t / 1e6 }')
    printf '%-34s %10s %16s   %s  (%s)\n' "$name" "$med" "$ratio" "$runs" "$mbs"
done
echo "(peer / tool > 1 means peer is slower)"
if have transmission-show; then
    echo
    echo "info-hashes (peer and mktorrent write the same info dict, so they should match):"
    for t in "$DIR"/out-*.torrent; do
        printf '  %-28s %s\n' "$(basename "$t")" "$(transmission-show "$t" | sed -n 's/^ *Hash: *//p' | head -1)"
    done
fi
