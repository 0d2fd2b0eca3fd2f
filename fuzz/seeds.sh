#!/usr/bin/env bash
# Regenerate the seed corpora fuzz/corpus/<target>/ from fixtures/.
#
#   fuzz/seeds.sh            # from the repository root or anywhere
#
# The seeds are committed (small files only: .torrent files over 64 KiB are
# skipped, the whole corpus stays well under 2 MB). Fuzzer runs write the
# inputs they discover to fuzz/corpus-work/<target>/ (not committed), so
# this directory only ever holds what this script puts there.
# Each seed is named by the SHA-1 of its content, as libFuzzer does.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fx="$root/fixtures"
out="$root/fuzz/corpus"
V="$fx/vectors"

targets=(bencode metainfo magnet wire extension tracker_response tracker_request resume lsd krpc mse metainfo_v2 utp holepunch)
for t in "${targets[@]}"; do rm -rf "${out:?}/$t"; mkdir -p "$out/$t"; done

# put TARGET < bytes
put() {
    local tmp; tmp="$(mktemp)"
    cat >"$tmp"
    local h; h="$(sha1sum "$tmp" | cut -c1-40)"
    mv "$tmp" "$out/$1/$h"
}
# put_all TARGET < hex lines: one seed per line
put_all() { while read -r h; do printf '%s' "$h" | xxd -r -p | put "$1"; done; }
# unhex: hex text on stdin -> bytes on stdout
unhex() { xxd -r -p; }
# column N of a .tsv (header skipped)
col() { awk -F'\t' -v c="$2" 'NR > 1 && $c != "" { print $c }' "$1"; }
is_hex() { [[ "$1" =~ ^([0-9a-fA-F]{2})+$ ]]; }

# --- .torrent files: metainfo (all small ones), bencode (the very small ones)
while IFS= read -r -d '' f; do
    size=$(stat -c %s "$f")
    if (( size <= 65536 )); then put metainfo <"$f"; fi
    if (( size <= 2048 )); then put bencode <"$f"; fi
done < <(find "$fx/corpus" -name '*.torrent' -print0 | sort -z)

# --- metainfo_v2: the raw `file tree` value of every v2/hybrid torrent
#     (the target wraps it in a fixed v2 info dictionary)
while IFS= read -r -d '' f; do
    python3 - "$f" <<'PY' | put_all metainfo_v2
import sys
def end(b, i):
    c = b[i:i+1]
    if c == b"i":
        return b.index(b"e", i) + 1
    if c in (b"l", b"d"):
        i += 1
        while b[i:i+1] != b"e":
            i = end(b, i)
        return i + 1
    colon = b.index(b":", i)
    return colon + 1 + int(b[i:colon])
b = open(sys.argv[1], "rb").read()
key = b"9:file tree"
i = b.find(key)
if i >= 0:
    j = i + len(key)
    try:
        sys.stdout.buffer.write(b[j:end(b, j)].hex().encode() + b"\n")
    except (ValueError, IndexError, RecursionError):
        pass
PY
done < <(find "$fx/corpus" \( -name 'v2*.torrent' -o -name 'empty-files-*.torrent' \) -size -64k -print0 | sort -z)

# --- BEP 52 hash messages (bare id + payload) for the wire target: a hash
#     request (leaf layer, 4 hashes, 2 proof layers), its hashes (4 + 1
#     uncle), a hash reject
root=$(printf '%064x' 7)
hdr="${root}00000000000000000000000400000002"
printf '15%s' "$hdr" | unhex | put wire
printf '16%s%s' "$hdr" "$(printf '%0320x' 1)" | unhex | put wire
printf '17%s' "$hdr" | unhex | put wire

# --- KRPC: the BEP 5 examples
col "$V/krpc_bep5.tsv" 2 | while IFS= read -r b; do printf '%s' "$b" | put krpc; done

# --- LSD: an announce in BEP 14's form
printf 'BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: c0fda1edafdbdbb96443424e0b3899af7159d10e\r\ncookie: abc\r\n\r\n\r\n' | put lsd

# --- resume data: the committed samples
for f in "$fx"/resume/*.resume; do put resume <"$f"; done

# --- bencode.tsv: input_hex (every row, valid or not)
while read -r h; do printf '%s' "$h" | unhex | put bencode; done < <(col "$V/bencode.tsv" 2)

# --- magnet.tsv: the uri column
while IFS= read -r u; do printf '%s' "$u" | put magnet; done < <(col "$V/magnet.tsv" 1)

# --- peer_wire.tsv: each frame (handshakes too) behind a chunk-size byte;
#     the whole stream of frames; the bare payloads (for Message::decode);
#     the extended payloads (for the extension target).
stream=""
while IFS=$'\t' read -r name hex _; do
    [[ "$name" == message ]] && continue
    printf '%s' "$hex" | unhex | put wire
    printf '00%s' "$hex" | unhex | put wire
    if [[ "$name" != handshake* ]]; then
        stream+="$hex"
        printf '%s' "${hex:8}" | unhex | put wire
        # id 20 = extended: payload after the 4-byte length, id and ext id
        if [[ "${hex:8:2}" == 14 ]]; then printf '%s' "${hex:12}" | unhex | put extension; fi
    fi
done <"$V/peer_wire.tsv"
printf '03%s' "$stream" | unhex | put wire
printf '3f%s' "$stream" | unhex | put wire
# a few extension payloads written by hand
printf 'd8:msg_typei1e5:piecei0e10:total_sizei3eeabc' | put extension
printf 'd5:added12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\xc8\xd57:added.f2:\x02\x10e' | put extension
printf 'd1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei425e1:pi6881e1:v7:peer/1.06:yourip4:\x7f\x00\x00\x01e' | put extension

# --- http_tracker.tsv: bodies (hex or text) for the response target; the
#     announce query as an HTTP request for the request target.
while IFS=$'\t' read -r name value _; do
    [[ "$name" == case ]] && continue
    if is_hex "$value"; then body="$(printf '%s' "$value" | unhex | xxd -p | tr -d '\n')"
    else body="$(printf '%s' "$value" | xxd -p | tr -d '\n')"; fi
    printf '%s' "$body" | unhex | put tracker_response
    { printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n' \
        "$(( ${#body} / 2 ))"; printf '%s' "$body" | unhex; } | put tracker_response
    if [[ "$value" == /announce\?* ]]; then
        printf 'GET %s HTTP/1.1\r\nHost: tracker\r\n\r\n' "$value" | put tracker_request
        printf 'GET %s HTTP/1.1\r\nHost: tracker\r\n\r\n' \
            "$(printf '%s' "$value" | sed 's|^/announce|/scrape|; s|&peer_id.*||')" | put tracker_request
    fi
done <"$V/http_tracker.tsv"
printf 'HTTP/1.1 301 Moved\r\nLocation: http://a.example/announce\r\n\r\n' | put tracker_response
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nd4:ab\r\n0\r\n\r\n' | put tracker_response

# --- udp_tracker_bep15.tsv: responses (action in bytes 0..4) for the
#     response target, requests for the request target.
while IFS=$'\t' read -r name hex _; do
    [[ "$name" == packet ]] && continue
    case "$name" in
        *response*) printf '%s' "$hex" | unhex | put tracker_response ;;
        *request*) printf '%s' "$hex" | unhex | put tracker_request ;;
    esac
done <"$V/udp_tracker_bep15.tsv"


# --- MSE: first byte = side and chunk size (see check_mse in targets_common.rs)
printf '\x00' | put mse
head -c 700 /dev/zero | tr '\0' 'B' | { printf '\x00'; cat; } | put mse
{ printf '\x01'; head -c 14 /dev/zero; } | put mse
{ printf '\x05'; head -c 600 /dev/zero | tr '\0' '\377'; } | put mse
{ printf '\x02'; head -c 96 /dev/zero | tr '\0' '\377'; } | put mse
{ printf '\x03'; head -c 640 /dev/zero; } | put mse
{ printf '\xff'; head -c 200 /dev/zero | tr '\0' 'x'; } | put mse

# --- uTP (BEP 29) and the shared UDP port's demultiplexer: the packets of
# the unit tests in proto/utp.rs, a BEP 15 connect and a KRPC ping
for h in \
    '41001234010203040a0b0c0d00100000fffe0001' \
    '0100123500000001000000020000ffff0007000368656c6c6f' \
    '2101123400000000000000000001000000050064000481010080' \
    '0107000100000000000000000000000000010000' \
    '0107000100000000000000000000000000010000 0103aabbcc00040100000078' \
    '110000010000000000000000000000000001000000' \
    '31000001000000000000000000000000000100' \
    '000004172710198000000000deadbeef' \
    '1801020304050607000000010000000700000000000000000000000000000000'; do
    echo "$h" | tr -d ' ' | unhex | put utp
done
printf 'd1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe' | put utp

# --- BEP 55 ut_holepunch: the payloads of the unit tests in proto/holepunch.rs
for h in \
    '00000a0102031ae100000000' \
    '010120010db8000000000000000000000001c8d500000000' \
    '0200c000020700010000000300000000' \
    '0200c0000207000100000004' \
    '0300010203040005000000000' \
    '00020102030400050000000000'; do
    echo "$h" | unhex | put holepunch
done

for t in "${targets[@]}"; do
    printf '%-17s %4d seeds %6s\n' "$t" "$(find "$out/$t" -type f | wc -l)" "$(du -sh "$out/$t" | cut -f1)"
done
