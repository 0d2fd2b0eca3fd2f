#!/usr/bin/python3
"""lt_leech.py TORRENT SAVE_DIR --peer IP:PORT [--timeout S] [--listen-port N] [--encrypt] [--utp] [--listen-host ::1]

Download TORRENT into SAVE_DIR from the given peer(s) (connect_peer, no
tracker needed). Prints progress lines; exits 0 once the download is complete
and verified, 1 on timeout.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lt_common import lt, enable_dht, force_encryption, force_utp, make_session, drain_alerts, state_name  # noqa: E402


def parse_peer(s):
    host, _, port = s.rpartition(":")
    return (host.strip("[]"), int(port))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torrent", help="a .torrent file or a magnet link")
    ap.add_argument("save_dir")
    ap.add_argument("--peer", action="append", default=[], type=parse_peer)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--listen-host", default="127.0.0.1",
                    help="address to listen on (::1 for IPv6 loopback)")
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--dht-node", action="append", default=[],
                    help="IP:PORT of a DHT node to bootstrap from (turns libtorrent's DHT on)")
    ap.add_argument("--stay", action="store_true",
                    help="after DONE keep seeding (printing STATS up=N down=M) until "
                         "the timeout (or until killed)")
    ap.add_argument("--encrypt", action="store_true",
                    help="require encryption (MSE with RC4) both ways")
    ap.add_argument("--utp", action="store_true",
                    help="uTP only (TCP neither dialled nor accepted)")
    args = ap.parse_args()

    ses = make_session(args.listen_port, args.listen_host)
    enable_dht(ses, args.dht_node)
    if args.encrypt:
        force_encryption(ses)
    if args.utp:
        force_utp(ses)
    if args.torrent.startswith("magnet:"):
        atp = lt.parse_magnet_uri(args.torrent)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = os.path.abspath(args.save_dir)
    h = ses.add_torrent(atp)

    start = time.monotonic()
    deadline = start + args.timeout
    last_connect = 0.0
    last_print = 0.0
    done = False
    while time.monotonic() < deadline:
        drain_alerts(ses)
        st = h.status()
        now = time.monotonic()
        if (st.is_seeding or st.is_finished) and not done:
            done = True
            print("DONE %d bytes in %.1fs" % (st.total_wanted_done, now - start), flush=True)
            if not args.stay:
                return 0
        if done:
            if now - last_print > 1:
                print("STATS up=%d down=%d" % (st.total_payload_upload, st.total_payload_download),
                      flush=True)
                last_print = now
            time.sleep(0.1)
            continue
        # (Re)dial while we have no connected peer: the seeder may still be starting.
        if st.num_peers == 0 and now - last_connect > 2 \
                and st.state != lt.torrent_status.checking_files:
            for p in args.peer:
                h.connect_peer(p)
            last_connect = now
        if now - last_print > 1:
            print("progress %.1f%% state=%s peers=%d down=%d"
                  % (st.progress * 100, state_name(st), st.num_peers, st.total_download),
                  flush=True)
            last_print = now
        time.sleep(0.1)
    st = h.status()
    if done:
        return 0
    print("TIMEOUT at %.1f%% state=%s peers=%d" % (st.progress * 100, state_name(st), st.num_peers),
          flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
