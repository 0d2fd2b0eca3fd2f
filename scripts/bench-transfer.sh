#!/usr/bin/env bash
# Benchmark a transfer over loopback: `peer` -> `peer` against
# libtorrent -> libtorrent, one seeder to one leecher (256 KiB and 1 MiB
# pieces), then one seeder to four leechers (each leecher also uploading to
# the other three). The two implementations alternate run by run; the
# summary prints medians and the ratios libtorrent / peer.
#
#   scripts/bench-transfer.sh              # 1 GiB file, 3 runs of each
#   SIZE_MIB=512 RUNS=5 scripts/bench-transfer.sh
#   scripts/bench-transfer.sh 512 5        # same, positional
#
# Environment (or positional arguments, in this order):
#   SIZE_MIB   size of the test file in MiB (default 1024)
#   RUNS       runs of each case (default 3); medians are reported
#   PIECES     piece lengths of the one-to-one runs (default "256K 1M")
#   PIECE4     piece length of the one-to-four runs (default 1M)
#   SWARM      1 = also run 1 seeder -> 4 leechers (default 1)
#   LT         1 = also run libtorrent (default 1; SKIP if not importable)
#   KEEP       1 = keep the temporary directory
#   PEER_BIN   a peer binary to measure instead of building this tree's
#              (e.g. an older build, for a before/after comparison)
#   FORMAT     v1 (default), v2 or hybrid: the torrents are made by `peer
#              create` (v1), `peer create --v2` or `peer create --hybrid`
#              (BEP 52, issue 22)
#   CROSS      1 = also run the mixed pairs peer -> libtorrent and
#              libtorrent -> peer, one to one (default 1 for FORMAT v2 and
#              hybrid, 0 for v1)
#   LT_HP      1 = libtorrent with `lt.high_performance_seed()` under its
#              loopback settings (default 1 for FORMAT v2 and hybrid, 0 for
#              v1, whose published numbers used the defaults)
#   TRANSPORT  tcp (default) or utp: both clients over uTP only (peer
#              `--transport utp` on both sides, libtorrent with TCP off), and
#              peer over TCP beside them as a third case ("peer -> peer
#              (TCP)"), for the ratio uTP / TCP of issue 25
#
# What is measured, per run, with a fresh seeder and an empty leecher dir:
#   * leecher: run under `/usr/bin/time -f "%e %U %S %M"`: wall seconds from
#     start to exit (it exits when the download is complete and verified),
#     user + sys CPU seconds, peak RSS.
#   * seeder: started first and left to check its data; once it reports
#     that it is seeding, its utime + stime are read from /proc/PID/stat
#     just before the leecher starts and again when the leecher exits (so
#     the seeder's own start-up hash check is not counted); its peak RSS is
#     VmHWM from /proc/PID/status (this one does include the check).
#   * the download is compared with the source using cmp.
# Nothing is dropped from the page cache: the source file is written once and
# read once, so every seeder reads it from memory, and the leecher writes
# into the page cache (no fsync). This measures the peers, not the disk.
#
# libtorrent is driven by peer-cli/tests/interop/lt_seed.py and lt_leech.py
# (Debian python3-libtorrent, /usr/bin/python3, uTP off, TCP on loopback).
# Their RSS includes the Python interpreter (~10 MB) and their CPU includes
# the interpreter start-up and libtorrent import (~0.1 s); lt_leech polls
# for completion every 0.1 s.
#
# Only processes started by this script are stopped, by their pid.
set -euo pipefail
# Benchmarks talk to loopback only: no DHT routers, no SSDP/NAT-PMP to the real router.
export PEER_DHT_BOOTSTRAP=none PEER_PORT_MAP=off

SIZE_MIB=${1:-${SIZE_MIB:-1024}}
RUNS=${2:-${RUNS:-3}}
PIECES=${PIECES:-256K 1M}
PIECE4=${PIECE4:-1M}
SWARM=${SWARM:-1}
LT=${LT:-1}
KEEP=${KEEP:-0}
TRANSPORT=${TRANSPORT:-tcp}
FORMAT=${FORMAT:-v1}
case $FORMAT in
    v1) CREATE_FLAG=(); CROSS=${CROSS:-0}; LT_HP=${LT_HP:-0} ;;
    v2) CREATE_FLAG=(--v2); CROSS=${CROSS:-1}; LT_HP=${LT_HP:-1} ;;
    hybrid) CREATE_FLAG=(--hybrid); CROSS=${CROSS:-1}; LT_HP=${LT_HP:-1} ;;
    *) echo "FORMAT must be v1, v2 or hybrid" >&2; exit 2 ;;
esac
if [[ $LT_HP == 1 ]]; then export LT_HIGH_PERFORMANCE=1; fi
case $TRANSPORT in tcp|utp) ;; *) echo "TRANSPORT must be tcp or utp" >&2; exit 2;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INTEROP="$ROOT/peer-cli/tests/interop"
PY=/usr/bin/python3
TICK=$(getconf CLK_TCK)
BASE_PORT=$(( 20000 + ($$ % 20000) ))

if [ -n "${PEER_BIN:-}" ]; then
    PEER="$PEER_BIN"
else
    echo "== building peer (release)" >&2
    cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p peer-cli
    PEER="$ROOT/target/release/peer"
fi

DIR=$(mktemp -d /tmp/bench-transfer.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2> /dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2> /dev/null || true
    done
    if [[ $KEEP == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR/src"
SRC="$DIR/src/data.bin"
echo "== writing ${SIZE_MIB} MiB of random data to $SRC" >&2
head -c "$(( SIZE_MIB * 1024 * 1024 ))" /dev/urandom > "$SRC"
cat "$SRC" > /dev/null # into the page cache; it stays there (nothing is dropped)
for p in $PIECES $PIECE4; do
    [[ -f $DIR/t-$p.torrent ]] || "$PEER" create "$SRC" -o "$DIR/t-$p.torrent" --piece-length "$p" ${CREATE_FLAG[@]+"${CREATE_FLAG[@]}"} > /dev/null 2>&1
done
BYTES=$(( SIZE_MIB * 1024 * 1024 ))

HAVE_LT=0
if [[ $LT == 1 ]] && "$PY" -c 'import libtorrent' 2> /dev/null; then HAVE_LT=1; fi

port_seq=0
PORT=
next_port() { port_seq=$(( port_seq + 1 )); PORT=$(( BASE_PORT + port_seq )); } # sets PORT

forget_pid() { # remove $1 from PIDS
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# cpu_ticks PID: utime + stime of the whole process (all threads), in ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# wait_for FILE PATTERN SECONDS PID: until FILE contains PATTERN.
wait_for() {
    local f=$1 pat=$2 t=$(( $3 * 10 )) pid=$4
    while (( t-- > 0 )); do
        if grep -q "$pat" "$f" 2> /dev/null; then return 0; fi
        if ! kill -0 "$pid" 2> /dev/null; then echo "seeder $pid died" >&2; cat "$f" >&2; return 1; fi
        sleep 0.1
    done
    echo "timeout waiting for '$pat' in $f" >&2
    return 1
}

# The transport flags: `peertcp` is peer over TCP beside the uTP runs.
peer_transport() { if [[ $1 == peertcp ]]; then echo "--transport tcp"; else echo "--transport $TRANSPORT"; fi; }
lt_transport() { if [[ $TRANSPORT == utp ]]; then echo "--utp"; fi; }

# A kind names the seeder and the leecher: peer, lt, peertcp (both the same),
# peerlt (peer seeds, libtorrent leeches), ltpeer (libtorrent seeds, peer
# leeches). start_seeder tests `peer*`, so it needs only the kind.
leecher_of() { case $1 in peerlt) echo lt ;; ltpeer) echo peer ;; *) echo "$1" ;; esac; }

# Seeder control. start_seeder KIND PORT LOG -> sets SEED_PID (and SEED_FD
# for libtorrent, whose seeder exits when its stdin closes).
SEED_PID=
SEED_FD=
start_seeder() {
    local kind=$1 port=$2 log=$3 t=$4
    if [[ $kind == peer* ]]; then
        "$PEER" "$t" --no-lsd --no-dht --dir "$DIR/src" --port "$port" $(peer_transport "$kind") 2> "$log" > /dev/null &
        SEED_PID=$!
        PIDS+=("$SEED_PID")
        # Progress lines come every 5 s when stderr is not a terminal.
        wait_for "$log" "seeding" 120 "$SEED_PID"
    else
        local fifo="$DIR/seed.fifo"
        rm -f "$fifo"
        mkfifo "$fifo"
        "$PY" "$INTEROP/lt_seed.py" "$t" "$DIR/src" "$port" --timeout 3600 $(lt_transport) \
            < "$fifo" > "$log.out" 2> "$log" &
        SEED_PID=$!
        PIDS+=("$SEED_PID")
        exec {SEED_FD}> "$fifo"
        wait_for "$log.out" "READY" 120 "$SEED_PID"
    fi
}
stop_seeder() {
    if [[ -n $SEED_FD ]]; then
        exec {SEED_FD}>&-
        SEED_FD=
    else
        kill -TERM "$SEED_PID" 2> /dev/null || true
    fi
    wait "$SEED_PID" 2> /dev/null || true
    forget_pid "$SEED_PID"
}

LCMD=()
leech_cmd() { # KIND TORRENT DIR PORT PEER... -> sets LCMD
    local kind=$1 t=$2 d=$3 port=$4; shift 4
    local p args=()
    for p in "$@"; do args+=(--peer "$p"); done
    if [[ $kind == peer* ]]; then
        # shellcheck disable=SC2046
        LCMD=("$PEER" "$t" --no-lsd --no-dht --dir "$d" --port "$port" "${args[@]}" --once $(peer_transport "$kind"))
    else
        # shellcheck disable=SC2046
        LCMD=("$PY" "$INTEROP/lt_leech.py" "$t" "$d" --listen-port "$port" --timeout 3600 "${args[@]}" $(lt_transport))
    fi
}

# Both cases set RESULT (no subshell, so the EXIT trap sees every pid).
RESULT=
# one_to_one KIND RUN PIECE: RESULT="wall leech_cpu leech_user leech_sys leech_rss_kib seed_cpu seed_rss_kib"
one_to_one() {
    local kind=$1 run=$2 t="$DIR/t-$3.torrent"
    local sport lport ldir slog t0 t1 c0 c1
    next_port; sport=$PORT; next_port; lport=$PORT
    ldir="$DIR/leech-$kind-$run"; slog="$DIR/seed-$kind-$run.log"
    rm -rf "$ldir"; mkdir -p "$ldir"
    start_seeder "$kind" "$sport" "$slog" "$t"
    c0=$(cpu_ticks "$SEED_PID")
    leech_cmd "$(leecher_of "$kind")" "$t" "$ldir" "$lport" "127.0.0.1:$sport"
    /usr/bin/time -f "%e %U %S %M" -o "$DIR/time" "${LCMD[@]}" \
        > "$DIR/leech-$kind-$run.out" 2> "$DIR/leech-$kind-$run.log" \
        || { echo "leecher failed" >&2; tail -5 "$DIR/leech-$kind-$run.log" >&2; return 1; }
    c1=$(cpu_ticks "$SEED_PID")
    local hwm
    hwm=$(hwm_kib "$SEED_PID")
    stop_seeder
    cmp "$SRC" "$ldir/data.bin" || { echo "MISMATCH ($kind run $run)" >&2; return 1; }
    rm -rf "$ldir"
    read -r e u s m < "$DIR/time"
    RESULT=$(awk -v e="$e" -v u="$u" -v s="$s" -v m="$m" -v c0="$c0" -v c1="$c1" -v tk="$TICK" -v h="$hwm" \
        'BEGIN { printf "%.2f %.2f %.2f %.2f %d %.2f %d\n", e, u + s, u, s, m, (c1 - c0) / tk, h }')
}

# one_to_four KIND RUN: RESULT="wall leechers_cpu seed_cpu max_leech_rss_kib seed_rss_kib"
one_to_four() {
    local kind=$1 run=$2 t="$DIR/t-$PIECE4.torrent"
    local sport ports=() i j peers pids=() slog c0 c1 t0 t1
    next_port; sport=$PORT
    for i in 0 1 2 3; do next_port; ports+=("$PORT"); done
    slog="$DIR/seed4-$kind-$run.log"
    start_seeder "$kind" "$sport" "$slog" "$t"
    c0=$(cpu_ticks "$SEED_PID")
    t0=$EPOCHREALTIME
    for i in 0 1 2 3; do
        peers=("127.0.0.1:$sport")
        for j in 0 1 2 3; do [[ $j == "$i" ]] || peers+=("127.0.0.1:${ports[$j]}"); done
        rm -rf "$DIR/l4-$i"; mkdir -p "$DIR/l4-$i"
        leech_cmd "$kind" "$t" "$DIR/l4-$i" "${ports[$i]}" "${peers[@]}"
        /usr/bin/time -f "%e %U %S %M" -o "$DIR/time4-$i" "${LCMD[@]}" \
            > "$DIR/l4-$kind-$run-$i.out" 2> "$DIR/l4-$kind-$run-$i.log" &
        pids+=($!)
        PIDS+=($!)
    done
    local fail=0
    for i in 0 1 2 3; do
        wait "${pids[$i]}" || { echo "leecher $i failed ($kind run $run)" >&2; fail=1; }
        forget_pid "${pids[$i]}"
    done
    t1=$EPOCHREALTIME
    c1=$(cpu_ticks "$SEED_PID")
    local hwm
    hwm=$(hwm_kib "$SEED_PID")
    stop_seeder
    (( fail == 0 )) || return 1
    for i in 0 1 2 3; do
        cmp "$SRC" "$DIR/l4-$i/data.bin" || { echo "MISMATCH ($kind 1->4 run $run leecher $i)" >&2; return 1; }
        rm -rf "$DIR/l4-$i"
    done
    RESULT=$(cat "$DIR"/time4-[0-3] | awk -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v tk="$TICK" -v h="$hwm" \
        '{ cpu += $2 + $3; if ($4 > m) m = $4 }
         END { printf "%.2f %.2f %.2f %d %d\n", t1 - t0, cpu, (c1 - c0) / tk, m, h }')
}

# median of column N of FILE
median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

KINDS=(peer)
if (( HAVE_LT )); then KINDS+=(lt); else echo "== libtorrent not importable by $PY: SKIP" >&2; fi
if [[ $TRANSPORT == utp ]]; then KINDS+=(peertcp); fi
if (( HAVE_LT )) && [[ $CROSS == 1 ]]; then KINDS+=(peerlt ltpeer); fi
label() {
    case $1 in
        peer) if [[ $TRANSPORT == utp ]]; then echo "peer -> peer (uTP)"; else echo "peer -> peer"; fi ;;
        peertcp) echo "peer -> peer (TCP)" ;;
        peerlt) echo "peer -> libtorrent" ;;
        ltpeer) echo "libtorrent -> peer" ;;
        *) if [[ $TRANSPORT == utp ]]; then echo "libtorrent -> libtorrent (uTP)"; else echo "libtorrent -> libtorrent"; fi ;;
    esac
}

# Interleave the kinds run by run, so that both see the same machine load,
# and swap which goes first every other run: on this virtual machine the
# cost of the page cache a leecher writes depends on how the run before
# freed its memory (a 1 MiB-piece download right after a 256 KiB one paid
# 1 to 2 s of extra system time, whichever client it was).
order() { # order RUN: the kinds, reversed on even runs
    local i out=()
    if (( $1 % 2 == 0 )); then
        for (( i = ${#KINDS[@]} - 1; i >= 0; i-- )); do out+=("${KINDS[$i]}"); done
    else
        out=("${KINDS[@]}")
    fi
    echo "${out[@]}"
}
for (( r = 1; r <= RUNS; r++ )); do
    for p in $PIECES; do
        for k in $(order "$r"); do
            one_to_one "$k" "$r" "$p"; line=$RESULT
            echo "$line" >> "$DIR/res1-$p-$k"
            echo "1->1 $p $(label "$k") run $r: wall cpu_leech user sys rss_leech_kib cpu_seed rss_seed_kib = $line (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        done
    done
done
if [[ $SWARM == 1 ]]; then
    for (( r = 1; r <= RUNS; r++ )); do
        for k in $(order "$r"); do
            [[ $k == peer || $k == lt || $k == peertcp ]] || continue
            one_to_four "$k" "$r"; line=$RESULT
            echo "$line" >> "$DIR/res4-$k"
            echo "1->4 $(label "$k") run $r: wall cpu_leechers cpu_seed max_rss_leech_kib rss_seed_kib = $line (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        done
    done
fi

for p in $PIECES; do
    echo
    echo "### ${SIZE_MIB} MiB, ${FORMAT} torrent, piece length ${p}, one seeder -> one leecher, median of ${RUNS} runs"
    echo
    echo "| | wall (s) | MB/s | leecher CPU (s) | leecher user / sys (s) | seeder CPU (s) | leecher CPU per GiB (s) | CPU per GiB, both sides (s) | leecher peak RSS | seeder peak RSS |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for k in "${KINDS[@]}"; do
        f="$DIR/res1-$p-$k"
        w=$(median "$f" 1); lc=$(median "$f" 2); lu=$(median "$f" 3); ls=$(median "$f" 4)
        lm=$(median "$f" 5); sc=$(median "$f" 6); sm=$(median "$f" 7)
        echo "$w $lc $sc" > "$DIR/med1-$p-$k"
        awk -v k="$(label "$k")" -v w="$w" -v lc="$lc" -v lu="$lu" -v ls="$ls" -v lm="$lm" -v sc="$sc" -v sm="$sm" \
            -v b="$BYTES" -v mib="$SIZE_MIB" \
            'BEGIN { printf "| %s | %.2f | %.0f | %.2f | %.2f / %.2f | %.2f | %.2f | %.2f | %.1f MiB | %.1f MiB |\n",
                     k, w, b / 1e6 / w, lc, lu, ls, sc, lc * 1024 / mib, (lc + sc) * 1024 / mib, lm / 1024, sm / 1024 }'
    done
    if (( HAVE_LT )); then
        read -r pw plc psc < "$DIR/med1-$p-peer"
        read -r lw llc lsc < "$DIR/med1-$p-lt"
        awk -v pw="$pw" -v lw="$lw" -v plc="$plc" -v llc="$llc" -v psc="$psc" -v lsc="$lsc" \
            'BEGIN { printf "\nRatios libtorrent / peer: wall %.2fx (above 1: peer is faster), leecher CPU %.2fx, both sides CPU %.2fx\n",
                     lw / pw, llc / plc, (llc + lsc) / (plc + psc) }'
    fi
    if [[ $TRANSPORT == utp ]]; then
        read -r pw plc psc < "$DIR/med1-$p-peer"
        read -r tw tlc tsc < "$DIR/med1-$p-peertcp"
        awk -v pw="$pw" -v tw="$tw" -v plc="$plc" -v tlc="$tlc" -v psc="$psc" -v tsc="$tsc" \
            'BEGIN { printf "peer uTP throughput / peer TCP throughput: %.0f %% (TCP wall / uTP wall); CPU both sides uTP / TCP: %.2fx\n",
                     100 * tw / pw, (plc + psc) / (tlc + tsc) }'
    fi
done
if [[ $SWARM == 1 ]]; then
    echo
    echo "### ${SIZE_MIB} MiB, ${FORMAT} torrent, piece length ${PIECE4}, one seeder -> four leechers (each told of the seeder and the other three), median of ${RUNS} runs"
    echo
    echo "| | time until all 4 complete (s) | CPU, 4 leechers together (s) | seeder CPU (s) | CPU per GiB delivered (s) | max leecher peak RSS | seeder peak RSS |"
    echo "|---|---|---|---|---|---|---|"
    for k in "${KINDS[@]}"; do
        f="$DIR/res4-$k"
        [[ -f $f ]] || continue
        w=$(median "$f" 1); lc=$(median "$f" 2); sc=$(median "$f" 3)
        echo "$w $lc $sc" > "$DIR/med4-$k"
        awk -v k="$(label "$k")" -v w="$w" -v lc="$lc" -v sc="$sc" \
            -v lm="$(median "$f" 4)" -v sm="$(median "$f" 5)" -v mib="$SIZE_MIB" \
            'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.2f | %.1f MiB | %.1f MiB |\n",
                     k, w, lc, sc, (lc + sc) * 1024 / (4 * mib), lm / 1024, sm / 1024 }'
    done
    if (( HAVE_LT )); then
        read -r pw plc psc < "$DIR/med4-peer"
        read -r lw llc lsc < "$DIR/med4-lt"
        awk -v pw="$pw" -v lw="$lw" -v plc="$plc" -v llc="$llc" -v psc="$psc" -v lsc="$lsc" \
            'BEGIN { printf "\nRatios libtorrent / peer: wall %.2fx (above 1: peer is faster), leechers CPU %.2fx, all CPU %.2fx\n",
                     lw / pw, llc / plc, (llc + lsc) / (plc + psc) }'
    fi
fi
echo
echo "Columns are medians taken one by one over the runs (not one run's row)."
if [[ $LT_HP == 1 ]]; then echo "libtorrent: high_performance_seed() under the loopback settings (uTP off)."; fi
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs."
