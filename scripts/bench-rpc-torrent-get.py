#!/usr/bin/env python3
"""torrent-get of N torrents through the Transmission RPC, with the fields a dashboard asks
for (Transmission's web client's torrent list), against `peer daemon` and, when installed,
`transmission-daemon` in the same run.

  PEER_DHT_BOOTSTRAP=none /usr/bin/python3 scripts/bench-rpc-torrent-get.py PEER_BINARY [N] [CALLS]

Both daemons get the same N one-piece torrents (no tracker, no data on disk, DHT/LSD/PEX
off: nothing moves), written into their state directories before they start (adding 10,000
through the RPC would measure something else). Reported per daemon: time to load them all,
then the daemon's CPU per second with no request (its own timers: included in the per-call
CPU below), then per torrent-get call (objects format, and table format) the median and max
wall time, the daemon's CPU time (utime+stime from /proc), its context switches (all
threads), the response bytes; and the daemon's RSS and thread count.
Also per daemon: the start-up time (process start to the first torrent-get that lists all N),
p95 as well as the median of the calls, a partial field list (the 14 fields of
`transmission-remote -l`-like dashboards), and for `peer` its own `GET /torrents`.
The daemon is watched while it loads: if it exits, the script says so at once (with the
last lines of its log) instead of waiting for an answer that cannot come (issue 23's
"hang" at N = 10,000 was the daemon aborting when the system refused it more threads).
Scratch data lives under /tmp and is deleted at the end.
"""
import base64, hashlib, http.client, json, os, shutil, socket, statistics, subprocess, sys
import tempfile, time

PEER = os.path.abspath(sys.argv[1])
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
CALLS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
FIELDS = ["addedDate", "downloadDir", "error", "errorString", "eta", "id", "isFinished",
          "isStalled", "labels", "leftUntilDone", "metadataPercentComplete", "name",
          "peersConnected", "peersGettingFromUs", "peersSendingToUs", "percentDone",
          "queuePosition", "rateDownload", "rateUpload", "recheckProgress", "seedRatioLimit",
          "seedRatioMode", "sizeWhenDone", "status", "trackers", "uploadedEver", "uploadRatio",
          "webseedsSendingToUs", "hashString", "totalSize"]
# What a small dashboard / `transmission-remote -l` asks for.
PARTIAL = ["id", "name", "status", "percentDone", "rateDownload", "rateUpload", "eta",
           "sizeWhenDone", "uploadRatio", "error", "errorString", "peersConnected", "labels",
           "queuePosition"]
TICK = os.sysconf("SC_CLK_TCK")


def ben(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, dict):
        return b"d" + b"".join(ben(k) + ben(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


def torrents(n):
    for i in range(n):
        info = {"length": 16384, "name": f"bench-{i:05}.bin", "piece length": 16384,
                "pieces": hashlib.sha1(b"%d" % i).digest()}
        ih = hashlib.sha1(ben(info)).hexdigest()
        yield ih, ben({"info": info})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Rpc:
    def __init__(self, port):
        self.port, self.sid = port, ""

    def call(self, method, args):
        body = json.dumps({"method": method, "arguments": args}).encode()
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            c.request("POST", "/transmission/rpc", body,
                      {"X-Transmission-Session-Id": self.sid, "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
            if r.status == 409:
                self.sid = r.getheader("X-Transmission-Session-Id")
                continue
            assert r.status == 200, (r.status, data[:200])
            return data
        raise RuntimeError("409 loop")


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / TICK
    ctx = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        ctx += int(line.split()[1])
        except OSError:
            pass
    # CPU of the threads that serve requests (peer: its control workers),
    # without the daemon's own timers.
    served = 0.0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                comm, rest = f.read().split("(", 1)[1].rsplit(")", 1)
            if comm == "control worker":
                x = rest.split()
                served += (int(x[11]) + int(x[12])) / TICK
        except OSError:
            pass
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                rss = int(line.split()[1]) // 1024
            if line.startswith("Threads"):
                threads = int(line.split()[1])
    return cpu, ctx, rss, threads, served


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def timed(name, proc, label, fn):
    walls, size = [], 0
    cpu0, ctx0, _, _, served0 = proc_stats(proc.pid)
    for _ in range(CALLS):
        t = time.perf_counter()
        data = fn()
        walls.append((time.perf_counter() - t) * 1000)
        size = len(data)
    cpu1, ctx1, rss, threads, served1 = proc_stats(proc.pid)
    served = f", control workers {(served1 - served0) / CALLS * 1000:.1f} ms/call" if served1 else ""
    print(f"{name:12} {label:16} N={N}: median {statistics.median(walls):8.1f} ms, "
          f"p95 {p95(walls):8.1f} ms, daemon CPU {(cpu1 - cpu0) / CALLS * 1000:7.1f} ms/call{served}, "
          f"ctx switches {(ctx1 - ctx0) / CALLS:8.1f}/call, {size:,} bytes; "
          f"RSS {rss} MiB, {threads} threads", flush=True)


def measure(name, proc, rpc, table, log=None, own=None):
    t0 = time.perf_counter()
    while True:
        if proc.poll() is not None:
            tail = ""
            if log and os.path.exists(log):
                with open(log, "rb") as f:
                    tail = f.read()[-1500:].decode(errors="replace")
            raise RuntimeError(f"{name}: the daemon exited (status {proc.returncode}) "
                               f"while loading {N} torrents; its log ends with:\n{tail}")
        try:
            got = len(json.loads(rpc.call("torrent-get", {"fields": ["id"]}))["arguments"]["torrents"])
        except (OSError, RuntimeError, AssertionError, ValueError):
            got = -1
        if got >= N:
            break
        if time.perf_counter() - t0 > 600:
            raise RuntimeError(f"{name}: only {got} of {N} torrents after 600 s")
        time.sleep(0.2)
    load = time.perf_counter() - t0
    _, _, rss, threads, _ = proc_stats(proc.pid)
    print(f"{name:12} start   N={N}: all {N} listed {load:.1f} s after the process started; "
          f"RSS {rss} MiB, {threads} threads", flush=True)
    time.sleep(6)
    # What the daemon burns with no request (its own timers), to tell apart.
    cpu0 = proc_stats(proc.pid)[0]
    time.sleep(5)
    cpu1 = proc_stats(proc.pid)[0]
    idle = (cpu1 - cpu0) / 5 * 1000
    print(f"{name:12} idle    N={N}: daemon CPU {idle:.0f} ms per second with no request", flush=True)
    for fields, fl in ((FIELDS, "30 fields"), (PARTIAL, "14 fields")):
        for fmt in (["objects", "table"] if table else ["objects"]):
            args = {"fields": fields}
            if fmt == "table":
                args["format"] = "table"
            timed(name, proc, f"{fl} {fmt}", lambda a=args: rpc.call("torrent-get", a))
    if own:
        timed(name, proc, "GET /torrents", own)


def own_api(state):
    """`GET /torrents` of our control API (port and token from control.json)."""
    with open(os.path.join(state, "control.json")) as f:
        info = json.load(f)

    def get():
        c = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=300)
        c.request("GET", "/torrents", headers={"Authorization": "Bearer " + info["token"]})
        r = c.getresponse()
        data = r.read()
        c.close()
        assert r.status == 200, (r.status, data[:200])
        return data
    return get


def run_peer(tmp):
    state = os.path.join(tmp, "peer-state")
    data = os.path.join(tmp, "peer-data")
    tdir = os.path.join(state, "torrents")
    os.makedirs(tdir)
    os.makedirs(data)
    for ih, t in torrents(N):
        with open(os.path.join(tdir, ih + ".torrent"), "wb") as f:
            f.write(t)
        with open(os.path.join(tdir, ih + ".add"), "wb") as f:
            f.write(ben({"paused": 0, "save path": data}))
    port = free_port()
    env = dict(os.environ, PEER_DHT_BOOTSTRAP="none", PEER_PORT_MAP="off")
    log = os.path.join(tmp, "peer.log")
    with open(log, "wb") as out:
        p = subprocess.Popen([PEER, "daemon", "--state", state, "--port", str(free_port()),
                              "--no-lsd", "--no-dht", "--rpc-port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=out, env=env)
    try:
        measure("peer", p, Rpc(port), True, log, lambda: own_api(state)())
    finally:
        p.terminate()
        p.wait(timeout=120)


def run_transmission(tmp):
    if not shutil.which("transmission-daemon"):
        print("transmission-daemon not installed: not compared")
        return
    conf = os.path.join(tmp, "tr-conf")
    data = os.path.join(tmp, "tr-data")
    tdir = os.path.join(conf, "torrents")
    os.makedirs(tdir)
    os.makedirs(data)
    for ih, t in torrents(N):
        with open(os.path.join(tdir, ih + ".torrent"), "wb") as f:
            f.write(t)
    port = free_port()
    json.dump({"dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
               "port-forwarding-enabled": False, "utp-enabled": False,
               "rpc-port": port, "rpc-whitelist-enabled": False, "rpc-authentication-required": False,
               "rpc-bind-address": "127.0.0.1", "peer-port": free_port(), "download-dir": data,
               "message-level": 0}, open(os.path.join(conf, "settings.json"), "w"))
    p = subprocess.Popen(["transmission-daemon", "-f", "-g", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        v = Rpc(port)
        for _ in range(100):
            try:
                v.call("session-get", {})
                break
            except OSError:
                time.sleep(0.2)
        ver = json.loads(v.call("session-get", {}))["arguments"].get("version", "?")
        measure(f"transmission {ver.split()[0]}", p, v, True)
    finally:
        p.terminate()
        p.wait(timeout=120)


if __name__ == "__main__":
    tmp = tempfile.mkdtemp(prefix="p23-bench-")
    try:
        print(f"{N} torrents, {len(FIELDS)} fields, {CALLS} calls each; {os.cpu_count()} cores "
              f"(shared machine: other builds ran meanwhile)", flush=True)
        run_peer(tmp)
        run_transmission(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
