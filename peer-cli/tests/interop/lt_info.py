#!/usr/bin/python3
"""lt_info.py TORRENT: print the torrent as libtorrent sees it, as JSON.

Output: {"info_hash": hex v1 SHA-1, "name": str, "num_files": int,
         "total_size": int, "files": [{"path": str, "length": int}, ...],
         "num_pad_files": int}
Paths are '/'-separated and, as libtorrent reports them, start with the
torrent name for multi-file torrents. Pad files are left out of "files" and
"num_files" (and their bytes out of "total_size").
Exit 0 on success, 1 when libtorrent refuses the torrent.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lt_common import lt, load_torrent, v1_hash_hex  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: lt_info.py TORRENT\n")
        return 2
    try:
        ti = load_torrent(sys.argv[1])
    except Exception as e:  # libtorrent raises RuntimeError on bad torrents
        sys.stderr.write("libtorrent refused %s: %s\n" % (sys.argv[1], e))
        return 1
    fs = ti.files()
    files = []
    pads = 0
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            pads += 1
            continue
        files.append({
            "path": fs.file_path(i).replace(os.sep, "/"),
            "length": fs.file_size(i),
        })
    out = {
        "info_hash": v1_hash_hex(ti),
        "name": ti.name(),
        "num_files": len(files),
        "total_size": sum(f["length"] for f in files),
        "files": files,
        "num_pad_files": pads,
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "private": bool(ti.priv()),
    }
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
