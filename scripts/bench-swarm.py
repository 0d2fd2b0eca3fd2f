#!/usr/bin/python3
"""bench-swarm.py: a swarm of N peers on 127.0.0.1, ours against libtorrent.

One seeder and N-1 leechers started together, every peer its own process and
port on loopback. Ours are `target/release/peer` processes; libtorrent's are
this script run as a worker (`--lt-worker`, python3-libtorrent with
`high_performance_seed()` settings, TCP only, several connections per IP).
Every peer announces to a small tracker this script runs on loopback (it
lists every peer, so all populations find each other the same way) and the
leechers also dial the seeder directly. No DHT, LSD, UPnP or NAT-PMP: nothing
leaves loopback.

Modes:
  upload  upload-bound: every peer's upload capped (1 MiB/s), 16 MiB
  flash   flash crowd: no limits, 64 MiB
Populations:
  ours    every peer ours
  lt      every peer libtorrent
  mixed   our seeder, leechers alternately ours and libtorrent
  mixed-lt  libtorrent's seeder, leechers alternately ours and libtorrent

Reported per run: last completion (seconds from the leechers' start), the
seeder's upload multiple (bytes uploaded / torrent size), CPU-seconds (all
peers, the seeder, per leecher; from each process's rusage when it is reaped,
so threads that ended count too), voluntary / involuntary context switches,
peak RSS, most threads seen in one process, bans our peers logged, and
whether every leecher's data is byte-identical (the run fails otherwise).

Run with /usr/bin/python3 (Debian's libtorrent binding is importable there):
  /usr/bin/python3 scripts/bench-swarm.py --n 5 --mode upload --population ours
  /usr/bin/python3 scripts/bench-swarm.py --n 20 --mode both --population all --json out.json

Every wait is bounded (--timeout); only processes this script started are
signalled, by their pid.
"""

import argparse
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import sha1_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1 << 20
CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- libtorrent


def lt_worker(argv):
    """One libtorrent peer: seed or download, print DONE / STATS lines."""
    ap = argparse.ArgumentParser(prog="bench-swarm.py --lt-worker")
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("port", type=int)
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--upload-limit", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args(argv)
    import libtorrent as lt

    s = lt.high_performance_seed()
    s.update({
        "listen_interfaces": "127.0.0.1:%d" % a.port,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "upload_rate_limit": a.upload_limit,
        "alert_mask": 0,
    })
    ses = lt.session(s)
    if a.upload_limit:
        # libtorrent exempts local addresses from its limits by default:
        # put every address in the global class so that the cap applies.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(a.torrent)
    atp.save_path = a.save_dir
    h = ses.add_torrent(atp)
    peers = []
    for p in a.peer:
        host, _, port = p.rpartition(":")
        peers.append((host, int(port)))
    start = time.monotonic()
    last_stats = last_dial = 0.0
    done = False
    listening = False
    while time.monotonic() - start < a.timeout:
        ses.pop_alerts()
        if not listening and ses.listen_port() > 0:
            # Port 0 binds a free port: say which (the script reads it).
            listening = True
            print("LISTENING %d" % ses.listen_port(), flush=True)
        st = h.status()
        now = time.monotonic()
        if not done and st.is_seeding:
            done = True
            print("DONE %.3f" % (now - start), flush=True)
        if not done and peers and st.num_peers == 0 and now - last_dial > 1:
            for p in peers:
                h.connect_peer(p)
            last_dial = now
        if now - last_stats >= 0.5:
            print("STATS up=%d down=%d" % (st.total_payload_upload, st.total_payload_download),
                  flush=True)
            last_stats = now
        time.sleep(0.05)
    return 0


# ------------------------------------------------------------------ tracker


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, str):
        return bencode(v.encode())
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(type(v))


class Tracker:
    """An HTTP tracker on loopback that lists every peer that announced."""

    def __init__(self):
        self.peers = {}
        self.lock = threading.Lock()
        tracker = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                try:
                    port = int(q.get("port", ["0"])[0])
                except ValueError:
                    port = 0
                me = (self.client_address[0], port)
                with tracker.lock:
                    if 0 < port < 65536:
                        tracker.peers[me] = time.monotonic()
                    others = [p for p in tracker.peers if p != me]
                compact = b"".join(socket.inet_aton(ip) + port.to_bytes(2, "big")
                                   for ip, port in others)
                body = bencode({"interval": 10, "min interval": 5, "peers": compact})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -------------------------------------------------------------------- peers


# Every peer listens on port 0 and says which port it got (ours: the
# "listening on TCP 127.0.0.1:PORT" line; libtorrent's worker: "LISTENING
# PORT"). A port picked here by binding and closing a socket could be taken
# by another process (another benchmark, a build) before the peer binds it,
# and the run then failed at random.
OURS_LISTENING = re.compile(r"listening on TCP \S*:(\d+)\b")
LT_LISTENING = re.compile(r"LISTENING (\d+)")


class Peer:
    """One started process: its kind, role, log and rusage once reaped."""

    def __init__(self, kind, role, cmd, log_path, env):
        self.kind, self.role, self.log_path = kind, role, log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid
        self.done_at = None
        self.max_threads = 0
        self.rusage = None

    def text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sample(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("Threads:"):
                        self.max_threads = max(self.max_threads, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def stop(self, grace):
        """SIGINT (ours shuts down cleanly), SIGKILL after `grace`; reap with
        wait4 to get the whole process's rusage."""
        if self.rusage is not None:
            return
        # (Never Popen.poll: it would reap the child and lose its rusage.)
        try:
            os.kill(self.pid, signal.SIGINT if self.kind == "ours" else signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while True:
            try:
                pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == self.pid:
                self.rusage = ru
                self.proc.returncode = status
                break
            if time.monotonic() > deadline:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5
            time.sleep(0.05)
        self.log.close()

    def uploaded(self):
        """The last upload counter this peer printed (bytes), or None."""
        t = self.text()
        if self.kind == "lt":
            m = re.findall(r"STATS up=(\d+)", t)
            return int(m[-1]) if m else None
        m = re.findall(r" uploaded ([0-9.]+) (B|KiB|MiB|GiB)", t)
        if not m:
            return None
        v, unit = m[-1]
        return int(float(v) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit])

    def exited(self):
        """Whether the process has ended (without reaping it: see stop)."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except (OSError, IndexError):
            return True

    def finished(self):
        t = self.text()
        if self.kind == "lt":
            return "DONE" in t
        # Ours prints "download complete"; one that completes before its
        # first status line may print only its new state ("NAME: seeding").
        return "download complete" in t or ": seeding" in t

    def port(self):
        """The port this peer listens on, once it said so, else None."""
        m = (LT_LISTENING if self.kind == "lt" else OURS_LISTENING).search(self.text())
        return int(m.group(1)) if m and int(m.group(1)) > 0 else None

    def bans(self):
        return len(re.findall(r"banning ", self.text())) if self.kind == "ours" else 0




def kinds_for(population, n):
    """The seeder's kind and the leechers' kinds."""
    alt = ["ours" if i % 2 == 0 else "lt" for i in range(n - 1)]
    return {
        "ours": ("ours", ["ours"] * (n - 1)),
        "lt": ("lt", ["lt"] * (n - 1)),
        "mixed": ("ours", alt),
        "mixed-lt": ("lt", alt),
    }[population]


def run(args, mode, population):
    size = (args.size_mib or (16 if mode == "upload" else 64)) * MIB
    rate = args.rate if mode == "upload" else 0
    seed_kind, leech_kinds = kinds_for(population, args.n)
    work = tempfile.mkdtemp(prefix="bench-swarm-", dir=args.work_dir)
    seed_dir = os.path.join(work, "seed")
    os.makedirs(seed_dir)
    data = os.path.join(seed_dir, "swarm.bin")
    with open(data, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    want = sha1_file(data)
    tracker = Tracker()
    torrent = os.path.join(work, "swarm.torrent")
    subprocess.run([args.peer_bin, "create", data, "-o", torrent, "--announce",
                    "http://127.0.0.1:%d/announce" % tracker.port, "--piece-length", "256K"],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    env = dict(os.environ, PEER_DHT_BOOTSTRAP="none", PEER_PORT_MAP="off", RUST_LOG=args.rust_log)
    peers = []

    def start(kind, role, save_dir, dial):
        log = os.path.join(work, "%s.log" % role)
        port = 0  # the peer binds a free port and prints it (Peer.port)
        if kind == "ours":
            cmd = [args.peer_bin, torrent, "--dir", save_dir, "--port", str(port),
                   "--no-dht", "--no-lsd", "--state", os.path.join(work, "state-%s" % role),
                   "--max-upload-rate", str(rate)]
            if args.transport:
                cmd += ["--transport", args.transport]
            for d in dial:
                cmd += ["--peer", d]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--lt-worker", torrent, save_dir,
                   str(port), "--upload-limit", str(rate), "--timeout", str(args.timeout + 60)]
            for d in dial:
                cmd += ["--peer", d]
        p = Peer(kind, role, cmd, log, env)
        peers.append(p)
        return p

    result = {"mode": mode, "population": population, "n": args.n, "size_mib": size // MIB,
              "rate": rate}
    try:
        seeder = start(seed_kind, "seeder", seed_dir, [])
        # Ready: ours prints its seeding line, libtorrent its DONE line; and
        # its port.
        deadline = time.monotonic() + 120
        while seeder.port() is None or (not seeder.finished()
                                        and "seeding" not in seeder.text()):
            if time.monotonic() > deadline or seeder.exited():
                raise RuntimeError("the seeder did not start:\n" + seeder.text()[-2000:])
            time.sleep(0.1)
        seed_port = seeder.port()
        t0 = time.monotonic()
        leechers = []
        for i, kind in enumerate(leech_kinds):
            d = os.path.join(work, "leech%d" % i)
            os.makedirs(d)
            leechers.append((start(kind, "leech%d" % i, d, ["127.0.0.1:%d" % seed_port]), d))
        deadline = t0 + args.timeout
        while time.monotonic() < deadline:
            for p in peers:
                p.sample()
            for p, _ in leechers:
                if p.done_at is None and p.finished():
                    p.done_at = time.monotonic() - t0
            if all(p.done_at is not None for p, _ in leechers):
                break
            time.sleep(0.2)
        done = [p.done_at for p, _ in leechers if p.done_at is not None]
        # The seeder's counter after the end: libtorrent prints it twice a
        # second, ours every 5 s.
        mark = len(seeder.text())
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            if seeder.kind == "lt" or " uploaded " in seeder.text()[mark:]:
                break
            time.sleep(0.2)
        time.sleep(0.6)
        up = seeder.uploaded()
        identical = sum(1 for _, d in leechers if sha1_file(os.path.join(d, "swarm.bin")) == want)
        bans = sum(p.bans() for p in peers)
    finally:
        for p in peers:
            p.stop(grace=10)
        tracker.close()

    def cpu(ps):
        return sum(p.rusage.ru_utime + p.rusage.ru_stime for p in ps if p.rusage)

    leech_ps = [p for p, _ in leechers]
    result.update({
        "completed": len(done),
        "identical": identical,
        "last_completion_s": round(max(done), 2) if done else None,
        "seeder_upload_multiple": round(up / size, 2) if up is not None else None,
        "cpu_s_total": round(cpu(peers), 2),
        "cpu_s_seeder": round(cpu([seeder]), 2),
        "cpu_s_per_leecher": round(cpu(leech_ps) / max(1, len(leech_ps)), 2),
        "vol_ctxsw_total": sum(p.rusage.ru_nvcsw for p in peers if p.rusage),
        "invol_ctxsw_total": sum(p.rusage.ru_nivcsw for p in peers if p.rusage),
        "vol_ctxsw_seeder": seeder.rusage.ru_nvcsw if seeder.rusage else None,
        "invol_ctxsw_seeder": seeder.rusage.ru_nivcsw if seeder.rusage else None,
        "peak_rss_mib_max": round(max((p.rusage.ru_maxrss for p in peers if p.rusage),
                                      default=0) / 1024, 1),
        "peak_rss_mib_sum": round(sum(p.rusage.ru_maxrss for p in peers if p.rusage) / 1024, 1),
        "max_threads": max(p.max_threads for p in peers),
        "bans": bans,
    })
    if not args.keep:
        subprocess.run(["rm", "-rf", "--one-file-system", work], timeout=60)
    else:
        result["work_dir"] = work
    return result


COLS = [("population", "%s"), ("mode", "%s"), ("n", "%d"), ("completed", "%d"),
        ("identical", "%d"), ("last_completion_s", "%s"), ("seeder_upload_multiple", "%s"),
        ("cpu_s_total", "%s"), ("cpu_s_seeder", "%s"), ("cpu_s_per_leecher", "%s"),
        ("vol_ctxsw_seeder", "%s"), ("invol_ctxsw_seeder", "%s"), ("vol_ctxsw_total", "%s"),
        ("invol_ctxsw_total", "%s"), ("peak_rss_mib_max", "%s"), ("max_threads", "%s"),
        ("bans", "%s")]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--lt-worker":
        return lt_worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5, help="peers in the swarm, seeder included")
    ap.add_argument("--mode", choices=["upload", "flash", "both"], default="both")
    ap.add_argument("--population", choices=["ours", "lt", "mixed", "mixed-lt", "all"],
                    default="all", help="all = ours, lt and mixed")
    ap.add_argument("--rate", type=int, default=MIB, help="upload cap per peer, upload mode")
    ap.add_argument("--size-mib", type=int, default=0, help="override the torrent size")
    ap.add_argument("--peer-bin", default=os.path.join(ROOT, "target", "release", "peer"))
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    ap.add_argument("--transport", choices=["tcp", "utp", "both"],
                    help="our peers' --transport (default: theirs, `both`, uTP first;"
                         " libtorrent's workers are TCP only, so `tcp` compares like with like)")
    ap.add_argument("--work-dir", default=None, help="where the temporary files go")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the run directories (logs)")
    ap.add_argument("--rust-log", default="warn",
                    help="RUST_LOG of our peers (e.g. bittorrent_core::engine::conn::peer::handshake=debug:"
                         " each peer thread's wake-ups, reads and context switches at close)")
    args = ap.parse_args()
    if args.n < 2:
        ap.error("--n must be at least 2")
    modes = ["upload", "flash"] if args.mode == "both" else [args.mode]
    pops = ["ours", "lt", "mixed"] if args.population == "all" else [args.population]
    if any(p != "ours" for p in pops):
        try:
            import libtorrent  # noqa: F401
        except ImportError:
            sys.exit("libtorrent's python binding is not importable: run with /usr/bin/python3 "
                     "(apt-get install python3-libtorrent), or --population ours")
    results = []
    print("\t".join(c for c, _ in COLS), flush=True)
    failed = False
    for mode in modes:
        for pop in pops:
            r = run(args, mode, pop)
            results.append(r)
            print("\t".join(fmt % r[c] if r[c] is not None else "-" for c, fmt in COLS),
                  flush=True)
            failed |= r["identical"] != args.n - 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if failed:
        print("FAIL: a leecher's data is missing or differs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
