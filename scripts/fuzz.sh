#!/usr/bin/env bash
# Run every fuzz target for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60, all targets)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`, about a minute) and
# works on the STABLE toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z flags to the stable compiler (libfuzzer-sys builds libFuzzer with the
# system C++ compiler). The default sanitizer is `none` (bittorrent-core
# forbids unsafe code, so AddressSanitizer adds little but halves the speed);
# FUZZ_SANITIZER=address also works. Debug assertions and overflow checks
# are on (-a), so an arithmetic overflow is a crash.
#
# Corpora: the committed seeds are fuzz/corpus/<target>/ (made by
# fuzz/seeds.sh from fixtures/); new inputs go to fuzz/corpus-work/<target>/
# (not committed), so runs never dirty the tree.
#
# WHEN A TARGET CRASHES (panic, failed property, overflow, timeout, OOM):
#   1. this script copies the crashing input from fuzz/artifacts/<target>/
#      to fixtures/regressions/<target>/<crash-...> and exits non-zero at
#      the end;
#   2. minimise it:  cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O -a -s none \
#                      <target> ../fixtures/regressions/<target>/<file>
#      and replace the copied file with the minimised one (fuzz/artifacts/
#      <target>/minimized-from-*);
#   3. reproduce without a fuzzer:
#        cargo test -p bittorrent-core --test regressions
#      which replays every file under fixtures/regressions/<target>/ (and
#      the seeds) through the same checks (fuzz/targets_common.rs);
#   4. commit the input with the fix: it is now a regression test.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(bencode metainfo magnet wire extension tracker_response tracker_request resume lsd krpc mse metainfo_v2 utp holepunch)
fi
san="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
cd "$root/fuzz" || exit 2
[ -d corpus/bencode ] || ./seeds.sh
cargo fuzz build -O -a -s "$san" || exit 2

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus-work/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    echo "=== $t: ${secs}s"
    cargo fuzz run -O -a -s "$san" "$t" "corpus-work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        failed+=("$t")
        tail -60 "$log"
        mkdir -p "$root/fixtures/regressions/$t"
        for a in artifacts/"$t"/crash-* artifacts/"$t"/timeout-* artifacts/"$t"/oom-* \
                 artifacts/"$t"/leak-*; do
            [ -f "$a" ] && cp -v "$a" "$root/fixtures/regressions/$t/"
        done
        summary+=("$(printf '%-17s CRASH (exit %d) runs=%s exec/s=%s %s' "$t" "$rc" "${runs:-?}" "${rate:-?}" "$cov")")
    else
        summary+=("$(printf '%-17s ok runs=%s exec/s=%s %s' "$t" "${runs:-?}" "${rate:-?}" "$cov")")
    fi
done
echo
echo "=== summary (${secs}s per target, sanitizer $san)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "crashed: ${failed[*]} (inputs copied to fixtures/regressions/<target>/)" >&2
    exit 1
fi
