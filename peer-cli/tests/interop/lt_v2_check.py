#!/usr/bin/python3
"""lt_v2_check.py TORRENT SRC v2|hybrid: how libtorrent sees a v2/hybrid torrent.

Loads TORRENT, makes libtorrent's own torrent of SRC (same piece length,
v2-only or hybrid), and checks SRC's bytes against TORRENT in a session
(save path: SRC's parent directory), which verifies every v2 merkle root and,
for a hybrid, every v1 SHA-1 piece. Prints one JSON object:
  {"v1": hex or null, "v2": hex or null, "lt_v1": ..., "lt_v2": ...,
   "num_pieces": int, "pieces_have": int, "is_seed": bool,
   "files": [{"path": str, "length": int}, ...] (pad files left out)}
Exit 0 on success, 1 when libtorrent refuses TORRENT.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lt_common import lt, loopback_settings  # noqa: E402


def hashes(ti):
    ih = ti.info_hashes()
    v1 = str(ih.v1) if ih.has_v1() else None
    v2 = str(ih.v2) if ih.has_v2() else None
    return v1, v2


def lt_own(src, piece_length, fmt):
    fs = lt.file_storage()
    lt.add_files(fs, src)
    flags = lt.create_torrent.v2_only if fmt == "v2" else 0
    ct = lt.create_torrent(fs, piece_length, flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(src)))
    return hashes(lt.torrent_info(ct.generate()))


def recheck(ti, save_path):
    settings = loopback_settings(0)
    ses = lt.session(settings)
    h = ses.add_torrent({"ti": ti, "save_path": save_path})
    deadline = time.time() + 40
    st = h.status()
    while time.time() < deadline:
        st = h.status()
        if st.state in (lt.torrent_status.seeding, lt.torrent_status.finished,
                        lt.torrent_status.downloading):
            break
        time.sleep(0.1)
    return st.num_pieces, st.is_seeding


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("v2", "hybrid"):
        sys.stderr.write("usage: lt_v2_check.py TORRENT SRC v2|hybrid\n")
        return 2
    torrent, src, fmt = sys.argv[1:]
    try:
        ti = lt.torrent_info(torrent)
    except Exception as e:  # libtorrent raises RuntimeError on bad torrents
        sys.stderr.write("libtorrent refused %s: %s\n" % (torrent, e))
        return 1
    v1, v2 = hashes(ti)
    lt_v1, lt_v2 = lt_own(src, ti.piece_length(), fmt)
    fs = ti.files()
    files = []
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        files.append({"path": fs.file_path(i).replace(os.sep, "/"),
                      "length": fs.file_size(i)})
    have, seed = recheck(ti, os.path.dirname(os.path.abspath(src)))
    print(json.dumps({
        "v1": v1, "v2": v2, "lt_v1": lt_v1, "lt_v2": lt_v2,
        "num_pieces": ti.num_pieces(), "pieces_have": have,
        "is_seed": bool(seed), "files": files,
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
