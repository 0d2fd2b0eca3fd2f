#!/usr/bin/env python3
"""Peak RSS of `peer info` (and libtorrent's torrent_info, if its Python
binding is installed) on torrents with many files or deep paths.

Usage: scripts/bench-info-memory.py PATH/TO/peer [WORKDIR]
Prints one line per (torrent, command): peak RSS in MiB, exit status.
See docs/BENCHMARKS.md ("Metainfo memory").
"""
import os
import subprocess
import sys
import tempfile


def benc(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(benc(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(benc(k) + benc(x) for k, x in items) + b"e"
    raise TypeError(type(v))


def many_files(n):
    # One-byte files, 16 KiB pieces, written piecewise to keep this script small.
    files = b"".join(
        b"d6:lengthi1e4:pathl" + benc("f%07d" % i) + b"ee" for i in range(n)
    )
    pieces = b"\x07" * (20 * ((n + 16383) // 16384))
    info = (b"d5:filesl" + files + b"e4:name4:many12:piece lengthi16384e6:pieces"
            + benc(pieces) + b"e")
    return b"d4:info" + info + b"e"


def deep_path(levels, element=None):
    path = [element or "d%d" % (i % 1000) for i in range(levels)]
    info = {"name": "deep", "piece length": 16384, "pieces": b"\x07" * 20,
            "files": [{"length": 1, "path": path}]}
    return benc({"info": info})


def peak(cmd):
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    kb = [l for l in r.stderr.splitlines() if "Maximum resident set size" in l]
    return int(kb[0].split(":")[1]) / 1024 if kb else float("nan"), r.returncode


LT = """
import sys, libtorrent as lt
lt.torrent_info(sys.argv[1], {'max_buffer_size': 1 << 30, 'max_decode_tokens': 100000000,
                              'max_pieces': 1 << 24, 'max_decode_depth': 100})
"""


def main():
    peer = sys.argv[1]
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp()
    have_lt = subprocess.run(["/usr/bin/python3", "-c", "import libtorrent"],
                             capture_output=True).returncode == 0
    cases = [("100,000 files", lambda: many_files(100_000)),
             ("1,000,000 files", lambda: many_files(1_000_000)),
             ("1,000-level path", lambda: deep_path(1000)),
             ("10,000-level path", lambda: deep_path(10_000)),
             ("2,046-level path of 1-byte names", lambda: deep_path(2046, "d"))]
    for label, make in cases:
        path = os.path.join(work, label.replace(",", "").replace(" ", "-") + ".torrent")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(make())
        size = os.path.getsize(path) / 1e6
        cmds = [("peer info", [peer, "info", path]),
                ("peer info --json", [peer, "info", "--json", path])]
        if have_lt:
            cmds.append(("libtorrent", ["/usr/bin/python3", "-c", LT, path]))
        for name, cmd in cmds:
            mib, rc = peak(cmd)
            print(f"{label} ({size:.2f} MB)\t{name}\t{mib:.1f} MiB\texit {rc}", flush=True)


if __name__ == "__main__":
    main()
