#!/usr/bin/python3
"""bench-leecher.py: one leecher downloading from K seeders on 127.0.0.1, ours against libtorrent.

What it measures is the cost of the *leecher* per byte as its connections
grow: CPU-seconds and context switches (voluntary + involuntary) per GiB,
from the leecher process's own rusage (`wait4`), with wall time beside them
(wall time is the noisy part on a shared machine).

The seeders are the same for every leecher of one K, started once per K:
  --seeders ours (default)  K `peer` processes (--seeder-bin), each on its
        own loopback port, encryption off; one of them checks the data once,
        the others start from copies of its resume data
  --seeders lt  one process (this script run as `--seed-worker`) holding K
        libtorrent 2.0.8 sessions, `lt.high_performance_seed()`, uTP off,
        encryption off, several connections per IP allowed
The leechers download one after the other from them (the order turns with
every run), each into a fresh directory with a fresh state directory:
  NAME=PATH  (--leecher, repeatable; default ours=target/release/peer)
        `PATH FILE.torrent --once --peer ... (K times) --encryption off
        --no-dht --no-lsd --port 0 --state DIR`
  lt    this script run as `--lt-leech`: one libtorrent session, the same
        settings as above, `connect_peer` to each seeder, exits once the
        torrent is complete (leave it out with --no-lt)
Every download is checked byte for byte (SHA-1 of the file).

For ours, `--threads` also samples `/proc/PID/task/*/{stat,status}` every
0.02 s and prints context switches per thread kind (peer, torrent, hasher,
disk, ...; per-thread CPU from /proc is tick-sampled and unreliable for
threads that run in short bursts). `--rust-log` and `--keep-logs DIR` keep
our leechers' logs (e.g. `--rust-log
bittorrent_core::engine::conn::peer::handshake=debug`: each peer thread's
wake-ups and reads at close).

Run with /usr/bin/python3 (Debian's libtorrent binding is importable there):
  cargo build --release -p peer-cli
  /usr/bin/python3 scripts/bench-leecher.py --size-mib 256 --k 1,8,32 --runs 3
  /usr/bin/python3 scripts/bench-leecher.py --k 32 --no-lt --threads \
      --leecher before=/tmp/peer-main --leecher after=target/release/peer

Every wait is bounded (--timeout per run, 300 s for the seeders to start);
only processes this script started are signalled, by their pid. Nothing
leaves loopback.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import sha1_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1 << 20
GIB = 1 << 30
CLK = os.sysconf("SC_CLK_TCK")


def lt_settings(port):
    import libtorrent as lt

    s = lt.high_performance_seed()
    s.update({
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "out_enc_policy": 2,  # disabled: both leechers speak plaintext
        "in_enc_policy": 2,
        "alert_mask": 0,
    })
    return s


def seed_worker(argv):
    """K libtorrent sessions seeding one file; prints READY port,port,..."""
    ap = argparse.ArgumentParser(prog="bench-leecher.py --seed-worker")
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("k", type=int)
    ap.add_argument("--timeout", type=float, default=900.0)
    a = ap.parse_args(argv)
    import libtorrent as lt

    sessions = []
    for _ in range(a.k):
        s = lt_settings(0)
        s["aio_threads"] = 2  # K sessions in one process: keep the threads down
        ses = lt.session(s)
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(a.torrent)
        atp.save_path = a.save_dir
        atp.flags |= lt.torrent_flags.seed_mode
        h = ses.add_torrent(atp)
        sessions.append((ses, h))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ports = [ses.listen_port() for ses, _ in sessions]
        if all(ports) and all(h.status().is_seeding for _, h in sessions):
            break
        time.sleep(0.05)
    print("READY " + ",".join(str(p) for p in ports), flush=True)
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        for ses, _ in sessions:
            ses.pop_alerts()
        time.sleep(0.5)
    return 0


def lt_leech(argv):
    """One libtorrent leecher: download from the given peers, print DONE, exit."""
    ap = argparse.ArgumentParser(prog="bench-leecher.py --lt-leech")
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("peers")
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args(argv)
    import libtorrent as lt

    ses = lt.session(lt_settings(0))
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(a.torrent)
    atp.save_path = a.save_dir
    h = ses.add_torrent(atp)
    peers = [("127.0.0.1", int(p)) for p in a.peers.split(",")]
    for p in peers:
        h.connect_peer(p)
    start = time.monotonic()
    while time.monotonic() - start < a.timeout:
        ses.pop_alerts()
        st = h.status()
        if st.is_seeding:
            print("DONE %.3f" % (time.monotonic() - start), flush=True)
            return 0
        time.sleep(0.05)
    print("TIMEOUT", flush=True)
    return 1


# ------------------------------------------------------------------ sampling


def thread_kind(name):
    """`peer 127.0.0.1:6881` -> `peer`, `hasher-0` -> `hasher`, ..."""
    name = name.strip()
    for sep in (" ", "-"):
        if sep in name:
            name = name.split(sep)[0]
    return name


class ThreadSampler:
    """Last seen CPU and context switches of every thread of one process."""

    def __init__(self, pid):
        self.pid = pid
        self.seen = {}  # tid -> (name, cpu_s, vol, invol)
        self.max_threads = 0

    def sample(self):
        base = "/proc/%d/task" % self.pid
        try:
            tids = os.listdir(base)
        except OSError:
            return
        self.max_threads = max(self.max_threads, len(tids))
        for tid in tids:
            try:
                with open("%s/%s/stat" % (base, tid)) as f:
                    stat = f.read()
                with open("%s/%s/status" % (base, tid)) as f:
                    status = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            cpu = (int(fields[11]) + int(fields[12])) / CLK
            vol = invol = 0
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol = int(line.split()[1])
            self.seen[tid] = (name, cpu, vol, invol)

    def by_kind(self):
        out = {}
        for name, cpu, vol, invol in self.seen.values():
            k = thread_kind(name)
            n, c, v, i = out.get(k, (0, 0.0, 0, 0))
            out[k] = (n + 1, c + cpu, v + vol, i + invol)
        return out


# ---------------------------------------------------------------------- runs


def read_io(pid, into):
    """The last seen `/proc/PID/io` counters of `pid` (bytes read and
    written through system calls, page cache included: `rchar`, `wchar`)."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                into[k.strip()] = int(v)
    except (OSError, ValueError):
        pass


def wait_reaped(pid, deadline, sampler=None, io=None):
    """Wait for `pid` to exit by itself until `deadline`; its rusage, or None.
    `io` (a dict) gets its last `/proc/PID/io` counters."""
    while time.monotonic() < deadline:
        if sampler:
            sampler.sample()
        if io is not None:
            read_io(pid, io)
        p, status, ru = os.wait4(pid, os.WNOHANG)
        if p == pid:
            return status, ru
        time.sleep(0.02 if sampler or io is not None else 0.1)
    return None


def kill_reap(pid, sig=signal.SIGTERM, grace=10):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    r = wait_reaped(pid, time.monotonic() + grace)
    if r is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        r = wait_reaped(pid, time.monotonic() + 10)
    return r


def start_lt_seeders(args, work, torrent, seed_dir, k, tag):
    """K libtorrent sessions in one worker process: (processes, ports)."""
    slog = open(os.path.join(work, "seeders-%s-%d.log" % (tag, k)), "wb")
    seeders = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--seed-worker",
                                torrent, seed_dir, str(k), "--timeout",
                                str(args.timeout * 4 + 300)],
                               stdout=subprocess.PIPE, stderr=slog, stdin=subprocess.DEVNULL)
    slog.close()
    line = b""
    deadline = time.monotonic() + 120
    # READY arrives within the deadline or the worker died (EOF).
    while time.monotonic() < deadline:
        line = seeders.stdout.readline()
        if not line or line.startswith(b"READY"):
            break
    seeders.stdout.close()
    if not line.startswith(b"READY"):
        stop_all([seeders])
        raise RuntimeError("the libtorrent seeders did not start")
    return [seeders], line.split()[1].decode().split(",")


def start_our_seeders(args, work, torrent, seed_dir, k, tag):
    """K `peer` processes seeding the file, each on its own port: (processes, ports)."""
    env = dict(os.environ, PEER_DHT_BOOTSTRAP="none", PEER_PORT_MAP="off", RUST_LOG="warn")
    state0 = os.path.join(work, "seed-state-0")
    if k > 1:
        # One seeder checks the data once; the others start from copies of
        # its resume data instead of K checks of the same file.
        if not os.path.isdir(state0):
            stop_all(start_our_seeders(args, work, torrent, seed_dir, 1, tag + "-check")[0])
        for i in range(1, k):
            state = os.path.join(work, "seed-state-%d" % i)
            if not os.path.isdir(state):
                shutil.copytree(state0, state)
    procs, logs = [], []
    try:
        for i in range(k):
            log = os.path.join(work, "seeder-%s-%d-%d.log" % (tag, k, i))
            logs.append(log)
            with open(log, "wb") as f:
                procs.append(subprocess.Popen(
                    [args.seeder_bin, torrent, "--dir", seed_dir, "--port", "0",
                     "--no-dht", "--no-lsd", "--encryption", "off",
                     "--state", os.path.join(work, "seed-state-%d" % i)],
                    stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env))
        ports = [None] * k
        deadline = time.monotonic() + 300  # K checks of the data on 2 cores
        while time.monotonic() < deadline:
            done = 0
            for i, log in enumerate(logs):
                with open(log, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                if ports[i] is None and "listening on TCP " in text:
                    addr = text.split("listening on TCP ", 1)[1].split()[0]
                    ports[i] = addr.rsplit(":", 1)[1]
                # After a check ("checking done: complete, seeding"), or at
                # once from trusted resume data ("NAME: seeding").
                if ports[i] is not None and ("complete, seeding" in text
                                             or ": seeding\n" in text):
                    done += 1
                if procs[i].poll() is not None:
                    raise RuntimeError("seeder %d exited: see %s" % (i, log))
            if done == k:
                return procs, ports
            time.sleep(0.2)
        raise RuntimeError("our seeders did not all start seeding")
    except BaseException:
        stop_all(procs)
        raise


def stop_all(procs):
    for p in procs:
        try:
            os.kill(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def run_leecher(args, work, torrent, want, name, path, k, ports):
    """One leecher run against running seeders; its rusage as a result row."""
    env = dict(os.environ, PEER_DHT_BOOTSTRAP="none", PEER_PORT_MAP="off", RUST_LOG=args.rust_log)
    save = os.path.join(work, "leech-%s-%d" % (name, k))
    os.makedirs(save)
    if path is not None:
        state = os.path.join(work, "state-%s-%d" % (name, k))
        cmd = [path, torrent, "--dir", save, "--once", "--port", "0",
               "--no-dht", "--no-lsd", "--encryption", "off", "--state", state]
        for p in ports:
            cmd += ["--peer", "127.0.0.1:" + p]
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--lt-leech", torrent, save,
               ",".join(ports), "--timeout", str(args.timeout)]
    with open(os.path.join(work, "leech-%s-%d.log" % (name, k)), "wb") as llog:
        t0 = time.monotonic()
        leech = subprocess.Popen(cmd, stdout=llog, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
        sampler = ThreadSampler(leech.pid) if (args.threads and path is not None) else None
        io = {}
        r = wait_reaped(leech.pid, t0 + args.timeout, sampler, io)
        wall = time.monotonic() - t0
    if r is None:
        kill_reap(leech.pid, signal.SIGINT)
        raise RuntimeError("%s leecher from %d seeders timed out" % (name, k))
    status, ru = r
    ok = os.waitstatus_to_exitcode(status) == 0
    got = sha1_file(os.path.join(save, "data.bin"))
    subprocess.run(["rm", "-rf", "--one-file-system", save], timeout=60)
    gib = args.size_mib * MIB / GIB
    cpu = ru.ru_utime + ru.ru_stime
    res = {
        "leecher": name, "seeders": args.seeders, "k": k, "size_mib": args.size_mib,
        "ok": ok and got == want,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2), "user_s": round(ru.ru_utime, 2), "sys_s": round(ru.ru_stime, 2),
        "cpu_s_per_gib": round(cpu / gib, 2),
        "vol_ctxsw": ru.ru_nvcsw, "invol_ctxsw": ru.ru_nivcsw,
        "ctxsw_per_gib": int((ru.ru_nvcsw + ru.ru_nivcsw) / gib),
        "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
        # Bytes the leecher read and wrote through system calls (the last
        # `/proc/PID/io` sample, at most 20 ms before it exited): a spilled
        # piece is read back to be hashed, so it shows in `read_mib`.
        "read_mib": round(io.get("rchar", 0) / MIB, 1),
        "write_mib": round(io.get("wchar", 0) / MIB, 1),
    }
    # Ours, with `--rust-log ...,bittorrent_core::engine::torrent::pieces=debug`:
    # the pieces it spilled to disk (its "N pieces spilled" line).
    try:
        with open(os.path.join(work, "leech-%s-%d.log" % (name, k)), "rb") as f:
            m = re.search(rb"(\d+) pieces spilled to disk", f.read())
        res["spilled"] = int(m.group(1)) if m else ""
    except OSError:
        res["spilled"] = ""
    if sampler:
        res["threads_max"] = sampler.max_threads
        res["by_thread"] = {k2: {"n": n, "cpu_s": round(c, 2), "vol": v, "invol": i}
                            for k2, (n, c, v, i) in sorted(sampler.by_kind().items())}
    return res




COLS = ["leecher", "seeders", "k", "ok", "wall_s", "cpu_s", "user_s", "sys_s",
        "cpu_s_per_gib", "vol_ctxsw", "invol_ctxsw", "ctxsw_per_gib", "peak_rss_mib",
        "read_mib", "write_mib", "spilled"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--seed-worker":
        return seed_worker(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--lt-leech":
        return lt_leech(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", default="1,8,32", help="seeder counts, comma-separated")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--piece-length", default="1M", help="as `peer create --piece-length`")
    ap.add_argument("--seeders", choices=["ours", "lt"], default="ours",
                    help="who seeds: K `peer` processes, or K libtorrent sessions")
    ap.add_argument("--seeder-bin", default=os.path.join(ROOT, "target", "release", "peer"),
                    help="the `peer` binary of the seeders (--seeders ours)")
    ap.add_argument("--leecher", action="append", default=[], metavar="NAME=PATH",
                    help="a `peer` binary to measure as a leecher (repeatable); "
                         "default ours=target/release/peer")
    ap.add_argument("--no-lt", action="store_true", help="leave out the libtorrent leecher")
    ap.add_argument("--runs", type=int, default=1, help="repetitions of each (leecher, K)")
    ap.add_argument("--threads", action="store_true",
                    help="ours: CPU and context switches per thread kind")
    ap.add_argument("--timeout", type=float, default=300.0, help="per leecher run, seconds")
    ap.add_argument("--work-dir", default=None, help="where the temporary files go")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--rust-log", default="warn", help="RUST_LOG of our leechers")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy the leechers' logs here")
    args = ap.parse_args()
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        sys.exit("libtorrent's python binding is not importable: run with /usr/bin/python3")
    ks = [int(x) for x in args.k.split(",")]
    leechers = []
    for spec in args.leecher or ["ours=" + os.path.join(ROOT, "target", "release", "peer")]:
        name, _, path = spec.partition("=")
        leechers.append((name, os.path.abspath(path)))
    if not args.no_lt:
        leechers.append(("lt", None))
    work = tempfile.mkdtemp(prefix="bench-leecher-", dir=args.work_dir)
    results = []
    failed = False
    try:
        seed_dir = os.path.join(work, "seed")
        os.makedirs(seed_dir)
        data = os.path.join(seed_dir, "data.bin")
        with open(data, "wb") as f:
            for _ in range(args.size_mib // 4):
                f.write(os.urandom(4 * MIB))
        want = sha1_file(data)
        torrent = os.path.join(work, "data.torrent")
        subprocess.run([args.seeder_bin, "create", data, "-o", torrent,
                        "--piece-length", args.piece_length],
                       check=True, stdout=subprocess.DEVNULL, timeout=300)
        print("\t".join(COLS), flush=True)
        for run in range(args.runs):
            for k in ks:
                start = start_our_seeders if args.seeders == "ours" else start_lt_seeders
                procs, ports = start(args, work, torrent, seed_dir, k, "r%d" % run)
                try:
                    # The same seeders serve every leecher of this K, one
                    # leecher at a time; the order turns with every run.
                    order = leechers[run % len(leechers):] + leechers[:run % len(leechers)]
                    for name, path in order:
                        r = run_leecher(args, work, torrent, want, name, path, k, ports)
                        results.append(r)
                        print("\t".join(str(r[c]) for c in COLS), flush=True)
                        for tk, t in r.get("by_thread", {}).items():
                            print("    %-12s n=%-3d cpu_s=%-6s vol=%-7d invol=%d"
                                  % (tk, t["n"], t["cpu_s"], t["vol"], t["invol"]), flush=True)
                        failed |= not r["ok"]
                finally:
                    stop_all(procs)
    finally:
        if args.keep_logs:
            os.makedirs(args.keep_logs, exist_ok=True)
            for f in os.listdir(work):
                if f.startswith("leech-") and f.endswith(".log"):
                    shutil.copy(os.path.join(work, f), args.keep_logs)
        subprocess.run(["rm", "-rf", "--one-file-system", work], timeout=120)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if failed:
        print("FAIL: a download is missing or differs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
