#!/usr/bin/python3
"""lt_seed.py TORRENT DATA_DIR PORT [--timeout S] [--encrypt] [--utp] [--listen-host ::1]

Seed TORRENT from DATA_DIR (the directory that contains the torrent's file or
top-level folder) on 127.0.0.1:PORT. Prints "READY" (and flushes) once the
data has been checked and the torrent is seeding. Exits when stdin reaches
EOF or after --timeout seconds (default 300). Exit 1 if the data never
checks out as complete.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lt_common import lt, enable_dht, force_encryption, force_utp, make_session, drain_alerts, state_name  # noqa: E402


CHECKING = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)


def now_s():
    return time.monotonic()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torrent")
    ap.add_argument("data_dir")
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--listen-host", default="127.0.0.1",
                    help="address to listen on (::1 for IPv6 loopback)")
    ap.add_argument("--dht-node", action="append", default=[],
                    help="IP:PORT of a DHT node to bootstrap from (turns libtorrent's DHT on)")
    ap.add_argument("--encrypt", action="store_true",
                    help="require encryption (MSE with RC4) both ways")
    ap.add_argument("--utp", action="store_true",
                    help="uTP only (TCP neither dialled nor accepted)")
    ap.add_argument("--upload-limit", type=int, default=0,
                    help="bytes per second (0 = unlimited)")
    args = ap.parse_args()

    stop = threading.Event()

    fd = sys.stdin.fileno()

    def watch_stdin():
        # os.read, not sys.stdin: a daemon thread blocked in a buffered
        # read would abort the interpreter at exit.
        try:
            while os.read(fd, 65536):
                pass
        except Exception:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    ses = make_session(args.port, args.listen_host)
    enable_dht(ses, args.dht_node)
    if args.encrypt:
        force_encryption(ses)
    if args.utp:
        force_utp(ses)
    if args.upload_limit > 0:
        ses.apply_settings({"upload_rate_limit": args.upload_limit})
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = os.path.abspath(args.data_dir)
    h = ses.add_torrent(atp)

    deadline = time.monotonic() + args.timeout
    ready = False
    last = 0.0
    while not stop.is_set() and time.monotonic() < deadline:
        drain_alerts(ses)
        st = h.status()
        if not ready and st.is_seeding:
            print("READY", flush=True)
            sys.stderr.write("lt_seed: seeding on %s:%d\n" % (args.listen_host, ses.listen_port()))
            ready = True
        elif not ready and st.state not in CHECKING and now_s() - last > 2:
            # Checked and found incomplete: most likely the wrong data dir.
            sys.stderr.write("lt_seed: not a seed yet (%.1f%%), state %s\n"
                             % (st.progress * 100, state_name(st)))
            last = now_s()
        now = time.monotonic()
        if ready and now - last > 5:
            sys.stderr.write("lt_seed: peers=%d uploaded=%d\n" % (st.num_peers, st.total_upload))
            last = now
        time.sleep(0.1)
    if not ready:
        sys.stderr.write("lt_seed: never became a seed\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
