#!/usr/bin/python3
"""lt_leech_blocks.py TORRENT SAVE_DIR --peer IP:PORT... [--timeout S]

Download TORRENT with libtorrent (plaintext only, every alert on) from the
given peers and report what BEP 52 block-hash traffic it had: a line
`HASHES_FROM IP:PORT base B idx I cnt C proofs P` for each `hashes`
message libtorrent received, `FAILS n` (hash_failed alerts), and `DONE`
once complete; exits 1 on timeout.
"""

import argparse
import re
import sys
import time

import libtorrent as lt


def parse_peer(s):
    host, _, port = s.rpartition(":")
    return (host, int(port))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("--peer", action="append", default=[], type=parse_peer)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    s = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.all_categories,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": 2, "in_enc_policy": 2,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_dir
    h = s.add_torrent(atp)
    for p in args.peer:
        h.connect_peer(p)
    pat = re.compile(r"\[([0-9.]+:\d+)\] <== HASHES \[ file: \d+ base: (\d+) idx: (\d+) cnt: (\d+) proofs: (\d+) \]")
    end = time.time() + args.timeout
    fails = 0
    while time.time() < end:
        s.wait_for_alert(500)
        for a in s.pop_alerts():
            if isinstance(a, lt.hash_failed_alert):
                fails += 1
            if isinstance(a, (lt.peer_disconnected_alert, lt.peer_ban_alert)):
                print("PEER_GONE", a.message(), flush=True)
            m = pat.search(a.message())
            if m:
                print("HASHES_FROM %s base %s idx %s cnt %s proofs %s" % m.groups(), flush=True)
        if h.status().is_seeding:
            print("FAILS", fails, flush=True)
            print("DONE", flush=True)
            return 0
    print("FAILS", fails, flush=True)
    print("TIMEOUT", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
