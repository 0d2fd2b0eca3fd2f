#!/usr/bin/python3
"""lt_create.py PATH OUT [--announce URL] [--piece-length BYTES]

Create a v1-only torrent of PATH (file or directory) with libtorrent and
write it to OUT. Exit 0 on success.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lt_common import lt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("out")
    ap.add_argument("--announce", action="append", default=[])
    ap.add_argument("--piece-length", type=int, default=0)
    args = ap.parse_args()

    path = os.path.abspath(args.path)
    fs = lt.file_storage()
    lt.add_files(fs, path)
    if fs.num_files() == 0:
        sys.stderr.write("no files under %s\n" % path)
        return 1
    flags = 0
    if hasattr(lt.create_torrent, "v1_only"):
        flags |= lt.create_torrent.v1_only
    ct = lt.create_torrent(fs, args.piece_length, flags=flags)
    for tier, url in enumerate(args.announce):
        ct.add_tracker(url, tier)
    ct.set_creator("lt_create.py (libtorrent %s)" % lt.__version__)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    with open(args.out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
