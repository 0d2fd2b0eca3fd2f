#!/usr/bin/env python3
"""LEDBAT on a shaped link (issue 25): our uTP upload against a bulk TCP flow.

Three network namespaces: A (10.99.1.1, the uploader), R (the router) and B (10.99.2.2).
R shapes what it forwards to B with `tbf` (RATE_MBIT, default 20 Mbit/s) with a deep queue
(QUEUE_S seconds of it, default 1.5 s), like the modem of an uplink (a qdisc on A itself
would hold A's TCP back by TCP small queues and its UDP by the socket buffer, and show no
queue). A UDP probe in A sends a datagram to an echo in B every 100 ms through the same
queue; its round trip is the queueing delay (the way back is not shaped). B counts what
arrives per protocol (nft counters: TCP, UDP).

Phases (seconds each, PHASE_S, default 15):
  idle        the probe alone: the base round trip;
  tcp         a bulk TCP flow A -> B alone (python socket sender, TCP_CC or --tcp-cc,
              default cubic, loss-based): what a flow without delay-based control does
              to the queue;
  (a pause of 3 s for the queue to drain)
  utp         `peer` seeds in A and `peer --transport utp --once` in B downloads over uTP:
              LEDBAT alone (the first 5 s are its ramp and are not counted);
  utp+tcp     the same TCP sender started beside the uTP upload: how fast TCP takes the link.

Prints one line per second (`SAMPLE phase t tcp_mbit udp_mbit probe_ms`), one per phase
(`PHASE name tcp_mbit udp_mbit delay_ms_median delay_ms_p90 lost`), the time TCP took to get
more than half of the link beside uTP (`TCP_HALF_AFTER s`), and with --json a last line
`RESULT {...}`. Needs root (namespaces), iproute2 with tc, nft. Namespaces are named
`NS_PREFIX` + a/r/b (default `h25ila`/`h25ilr`/`h25ilb`) and removed at the end, even on
failure. Also PEER_BIN, RATE_MBIT, QUEUE_S, PHASE_S from the environment.

    sudo scripts/ledbat-lab.py [--peer target/release/peer] [--mib 96] [--json]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

A_IP, B_IP = "10.99.1.1", "10.99.2.2"
ECHO_PORT, SINK_PORT, PEER_PORT = 7001, 7002, 6881


# ----- helpers run inside a namespace (this script re-executed with a sub-command) -----

def run_echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", ECHO_PORT))
    while True:
        data, addr = s.recvfrom(64)
        s.sendto(data, addr)


def run_probe():
    """Sends seq + send time every 100 ms; prints `PROBE t_send rtt_ms` per echo."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.02)
    seq = 0
    next_send = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_send:
            s.sendto(struct.pack("!Id", seq, now), (B_IP, ECHO_PORT))
            seq += 1
            next_send += 0.1
        try:
            data, _ = s.recvfrom(64)
            _, sent = struct.unpack("!Id", data[:12])
            print("PROBE %.3f %.1f" % (time.time() - (time.monotonic() - sent),
                                       (time.monotonic() - sent) * 1000), flush=True)
        except socket.timeout:
            pass


def run_sink():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", SINK_PORT))
    ls.listen(4)

    def drain(c):
        try:
            while c.recv(1 << 16):
                pass
        except OSError:
            pass
    while True:
        c, _ = ls.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()


def run_send(cc):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    s.settimeout(10)
    s.connect((B_IP, SINK_PORT))
    buf = b"x" * (1 << 16)
    try:
        while True:
            s.sendall(buf)
    except OSError:
        pass


# ----- the lab -----

def die_with_parent():
    """In a child: SIGKILL when this script dies, however it dies (kept across exec)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Lab:
    """Namespaces A (uploader), R (the router: forwards, and shapes what goes to B) and B.
    The shaping is on R, not on A: a qdisc on the sender's own interface would hold back
    A's TCP by TCP small queues and its UDP by the socket's send buffer, which a modem's
    queue further down the path does not."""

    def __init__(self, prefix, rate_mbit, queue_s):
        self.a, self.r, self.b = prefix + "a", prefix + "r", prefix + "b"
        self.rate = rate_mbit
        self.procs = []
        for ns in (self.a, self.r, self.b):
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # A (10.99.1.1) -- (10.99.1.2) R (10.99.2.1) -- B (10.99.2.2)
        for (ns, dev, ip, rdev, rip) in ((self.a, prefix + "a0", A_IP, prefix + "ra",
                                          "10.99.1.2"),
                                         (self.b, prefix + "b0", B_IP, prefix + "rb",
                                          "10.99.2.1")):
            sh("ip", "link", "add", dev, "type", "veth", "peer", "name", rdev)
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "link", "set", rdev, "netns", self.r)
            sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", self.r, "addr", "add", rip + "/24", "dev", rdev)
            sh("ip", "-n", self.r, "link", "set", rdev, "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", rip)
        sh("ip", "netns", "exec", self.r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        limit = int(rate_mbit * 1e6 / 8 * queue_s)
        sh("ip", "netns", "exec", self.r, "tc", "qdisc", "add", "dev", prefix + "rb", "root",
           "tbf", "rate", "%dmbit" % rate_mbit, "burst", "32kb", "limit", str(limit))
        rules = (
            "table inet h25ilab {\n"
            " counter tcp_in {}\n counter udp_in {}\n"
            " chain input { type filter hook input priority 0; policy accept;\n"
            "  meta l4proto tcp counter name tcp_in\n"
            "  meta l4proto udp counter name udp_in\n }\n}\n")
        p = subprocess.run(["ip", "netns", "exec", self.b, "nft", "-f", "-"], input=rules,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("nft: " + p.stderr.strip())

    def spawn(self, ns, args, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + args, start_new_session=True,
                             preexec_fn=die_with_parent, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def counters(self):
        out = sh("ip", "netns", "exec", self.b, "nft", "-j", "list", "counters")
        got = {}
        for item in json.loads(out).get("nftables", []):
            c = item.get("counter")
            if c:
                got[c["name"]] = c["bytes"]
        return got.get("tcp_in", 0), got.get("udp_in", 0)

    def close(self):
        for p in self.procs:
            self.stop(p)
        for ns in (self.a, self.r, self.b):
            sh("ip", "netns", "del", ns, check=False)


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default=os.environ.get("PEER_BIN", "target/release/peer"))
    ap.add_argument("--mib", type=int, default=96, help="size of the uTP upload")
    ap.add_argument("--rate-mbit", type=int, default=int(os.environ.get("RATE_MBIT", 20)))
    ap.add_argument("--queue-s", type=float, default=float(os.environ.get("QUEUE_S", 1.5)))
    ap.add_argument("--phase-s", type=float, default=float(os.environ.get("PHASE_S", 15)))
    ap.add_argument("--prefix", default=os.environ.get("NS_PREFIX", "h25il"))
    ap.add_argument("--tcp-cc", default=os.environ.get("TCP_CC", "cubic"),
                    help="the bulk TCP flow's congestion control (cubic: loss-based, fills "
                         "the queue; this machine's default is bbr)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    # SIGTERM (a timeout, Ctrl-C's cousin) still runs the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    peer = os.path.abspath(a.peer)
    me = os.path.abspath(__file__)
    py = sys.executable
    env = dict(os.environ, PEER_DHT_BOOTSTRAP="none", PEER_PORT_MAP="off", RUST_LOG="warn")

    tmp = tempfile.mkdtemp(prefix="ledbat-lab.")
    lab = None
    try:
        seed, down = os.path.join(tmp, "seed"), os.path.join(tmp, "down")
        os.makedirs(seed)
        os.makedirs(down)
        with open(os.path.join(seed, "ledbat.bin"), "wb") as f:
            f.write(os.urandom(a.mib << 20))
        torrent = os.path.join(tmp, "ledbat.torrent")
        sh(peer, "create", os.path.join(seed, "ledbat.bin"), "-o", torrent,
           "--piece-length", "1M")
        lab = Lab(a.prefix, a.rate_mbit, a.queue_s)
        lab.spawn(lab.b, [py, me, "echo"])
        lab.spawn(lab.b, [py, me, "sink"])
        time.sleep(0.5)
        probes = []  # (wall time, rtt ms)
        probe = lab.spawn(lab.a, [py, me, "probe"], stdout=subprocess.PIPE, text=True)

        def read_probe():
            for line in probe.stdout:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "PROBE":
                    probes.append((float(parts[1]), float(parts[2])))
        threading.Thread(target=read_probe, daemon=True).start()

        samples = []  # (phase, wall, tcp_mbit, udp_mbit)
        phases = {}   # name -> (start, end) of the counted part
        last = [time.time(), *lab.counters()]

        def run_for(name, secs, counted_from=0.0):
            start = time.time()
            while time.time() - start < secs:
                time.sleep(1.0)
                now = time.time()
                tcp, udp = lab.counters()
                dt = now - last[0]
                s = (name, now, (tcp - last[1]) * 8 / dt / 1e6, (udp - last[2]) * 8 / dt / 1e6)
                last[:] = [now, tcp, udp]
                samples.append(s)
                recent = [r for (t, r) in probes if t > now - 1.0]
                print("SAMPLE %-8s %5.1f tcp %5.1f udp %5.1f probe_ms %s" % (
                    name, now - start, s[2], s[3],
                    "%.0f" % max(recent) if recent else "-"), flush=True)
            phases[name] = (start + counted_from, time.time())

        run_for("idle", 3)
        sender = lab.spawn(lab.a, [py, me, "send", a.tcp_cc])
        run_for("tcp", a.phase_s, 3)
        lab.stop(sender)
        run_for("drain", 3)
        seeder = lab.spawn(lab.a, [peer, torrent, "--dir", seed, "--port", str(PEER_PORT),
                                   "--transport", "utp", "--no-lsd", "--no-dht"],
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        leech = lab.spawn(lab.b, [peer, torrent, "--dir", down, "--port", str(PEER_PORT),
                                  "--transport", "utp", "--peer", "%s:%d" % (A_IP, PEER_PORT),
                                  "--once", "--no-lsd", "--no-dht"],
                          env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        run_for("utp", a.phase_s, 5)
        sender = lab.spawn(lab.a, [py, me, "send", a.tcp_cc])
        tcp_start = time.time()
        run_for("utp+tcp", a.phase_s, 3)
        utp_finished_early = leech.poll() is not None
        lab.stop(sender)
        lab.stop(leech)
        lab.stop(seeder)

        base = percentile([r for (t, r) in probes if phases["idle"][0] <= t <= phases["idle"][1]],
                          0.5)
        result = {"rate_mbit": a.rate_mbit, "queue_s": a.queue_s, "base_rtt_ms": base,
                  "utp_finished_early": utp_finished_early}
        for name in ("idle", "tcp", "utp", "utp+tcp"):
            t0, t1 = phases[name]
            ss = [s for s in samples if s[0] == name and t0 < s[1] <= t1]
            ds = [r - base for (t, r) in probes if t0 <= t <= t1]
            sent = 10 * (t1 - t0)
            row = {
                "tcp_mbit": statistics.mean([s[2] for s in ss]) if ss else 0.0,
                "udp_mbit": statistics.mean([s[3] for s in ss]) if ss else 0.0,
                "delay_ms_median": percentile(ds, 0.5),
                "delay_ms_p90": percentile(ds, 0.9),
                "probes_lost": max(0, int(round(sent - len(ds)))),
            }
            result[name] = row
            print("PHASE %-8s tcp %5.1f Mbit/s  udp %5.1f Mbit/s  delay median %6.1f ms  "
                  "p90 %6.1f ms  probes lost %d" % (name, row["tcp_mbit"], row["udp_mbit"],
                                                     row["delay_ms_median"], row["delay_ms_p90"],
                                                     row["probes_lost"]), flush=True)
        half = next((s[1] - tcp_start for s in samples
                     if s[0] == "utp+tcp" and s[2] > a.rate_mbit / 2), None)
        result["tcp_half_after_s"] = half
        print("TCP_HALF_AFTER %s" % ("%.1f" % half if half is not None else "never"))
        if utp_finished_early:
            print("WARNING: the uTP download finished before the last phase ended; "
                  "use a larger --mib", flush=True)
        if a.json:
            print("RESULT " + json.dumps(result), flush=True)
        return 0
    finally:
        if lab:
            lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] in ("echo", "probe", "sink", "send"):
        try:
            if sys.argv[1] == "send":
                run_send(sys.argv[2] if len(sys.argv) > 2 else "cubic")
            else:
                {"echo": run_echo, "probe": run_probe, "sink": run_sink}[sys.argv[1]]()
        except KeyboardInterrupt:
            pass
        sys.exit(0)
    sys.exit(main())
