#!/usr/bin/env bash
# Benchmark `peer create` for v1, v2 and hybrid torrents (BEP 52) against
# mktorrent (v1) and libtorrent 2.0's creator (v2, hybrid) in one run.
#
#   scripts/bench-create-v2.sh             # 1 GiB file, 3 runs per tool
#   N=5 SIZE_MIB=2048 scripts/bench-create-v2.sh
#
# Environment: N (runs per tool, default 3), SIZE_MIB (default 1024),
# PIECE_KIB (default 1024), BENCH_DIR (default: a fresh mktemp -d).
#
# The file comes from /dev/urandom and is read once to warm the page cache.
# For each tool: the median wall time, and the median CPU seconds
# (user + sys) and context switches (voluntary + involuntary) from
# /usr/bin/time, which a loaded machine disturbs less than wall time.
# libtorrent runs through /usr/bin/python3 (Debian's python3-libtorrent).
set -euo pipefail
# Benchmarks talk to loopback only: no DHT routers, no SSDP/NAT-PMP to the real router.
export PEER_DHT_BOOTSTRAP=none PEER_PORT_MAP=off

N=${N:-3}
SIZE_MIB=${SIZE_MIB:-1024}
PIECE_KIB=${PIECE_KIB:-1024}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
THREADS=$(nproc)
log2() { local n=$1 k=0; while (( n > 1 )); do n=$(( n / 2 )); k=$(( k + 1 )); done; echo "$k"; }
PIECE_LOG2=$(( $(log2 "$PIECE_KIB") + 10 ))

echo "== building peer (release)" >&2
cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p peer-cli
PEER="$ROOT/target/release/peer"

DIR=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$DIR"
cleanup() { rm -f "$DIR/data.bin" "$DIR"/out-*.torrent "$DIR/lt_create.py" "$DIR/time.txt"; [[ -n "${BENCH_DIR:-}" ]] || rmdir "$DIR" 2>/dev/null || true; }
trap cleanup EXIT
FILE="$DIR/data.bin"
echo "== writing ${SIZE_MIB} MiB of random data to $FILE" >&2
head -c "$(( SIZE_MIB * 1024 * 1024 ))" /dev/urandom > "$FILE"
cat "$FILE" > /dev/null

cat > "$DIR/lt_create.py" <<'PY'
import os, sys
import libtorrent as lt
path, out, fmt, piece = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fs = lt.file_storage()
lt.add_files(fs, path)
flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[fmt]
ct = lt.create_torrent(fs, piece, flags=flags)
lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
open(out, "wb").write(lt.bencode(ct.generate()))
PY

med() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# run NAME OUT CMD...: N runs; median wall s, CPU s, context switches.
run() {
    local name=$1 out=$2; shift 2
    local walls=() cpus=() css=() i
    for (( i = 0; i < N; i++ )); do
        rm -f "$out"
        /usr/bin/time -f '%e %U %S %w %c' -o "$DIR/time.txt" "$@" > /dev/null 2>&1
        read -r e u s w c < "$DIR/time.txt"
        walls+=("$e"); cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')"); css+=("$(( w + c ))")
    done
    printf '%-34s wall %6.2f s  cpu %6.2f s  ctxsw %6d  (walls: %s)\n' "$name" \
        "$(printf '%s\n' "${walls[@]}" | med)" "$(printf '%s\n' "${cpus[@]}" | med)" \
        "$(printf '%s\n' "${css[@]}" | med)" "${walls[*]}"
}

echo "machine: $THREADS threads, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: ${SIZE_MIB} MiB (page cache warm), piece length ${PIECE_KIB} KiB, N=$N"
run "peer create (v1)" "$DIR/out-p1.torrent" "$PEER" create "$FILE" -o "$DIR/out-p1.torrent" --piece-length "${PIECE_KIB}K"
run "peer create --v2" "$DIR/out-p2.torrent" "$PEER" create "$FILE" -o "$DIR/out-p2.torrent" --piece-length "${PIECE_KIB}K" --v2
run "peer create --hybrid" "$DIR/out-ph.torrent" "$PEER" create "$FILE" -o "$DIR/out-ph.torrent" --piece-length "${PIECE_KIB}K" --hybrid
if command -v mktorrent > /dev/null; then
    run "mktorrent -t $THREADS (v1)" "$DIR/out-mk.torrent" mktorrent -t "$THREADS" -l "$PIECE_LOG2" -a http://127.0.0.1:1/announce -o "$DIR/out-mk.torrent" "$FILE"
fi
if /usr/bin/python3 -c 'import libtorrent' 2> /dev/null; then
    for f in v2 hybrid; do
        run "libtorrent 2.0 create_torrent ($f)" "$DIR/out-lt$f.torrent" /usr/bin/python3 "$DIR/lt_create.py" "$FILE" "$DIR/out-lt$f.torrent" "$f" "$(( PIECE_KIB * 1024 ))"
    done
    /usr/bin/python3 - "$DIR" <<'PY'
import sys, libtorrent as lt
d = sys.argv[1]
for ours, theirs in (("out-p2", "out-ltv2"), ("out-ph", "out-lthybrid")):
    a = lt.torrent_info(f"{d}/{ours}.torrent").info_hashes()
    b = lt.torrent_info(f"{d}/{theirs}.torrent").info_hashes()
    print(f"info-hashes {ours} vs {theirs}: {'identical' if str(a.v1) == str(b.v1) and str(a.v2) == str(b.v2) else 'DIFFERENT'}")
PY
fi
