#!/usr/bin/python3
"""bench-wan.py: one seeder, one leecher across the WAN lab (issue 21).

The lab (scripts/wan-lab/lab.sh) puts the seeder in namespace PREFIX-a and
the leecher in PREFIX-b, joined through a router namespace whose packet-level
delay line (scripts/wan-lab/delay.c) adds the round trip, each host's egress
paced by `tbf` at the link rate. For each link this script builds the lab,
writes a random file, makes a torrent (256 KiB pieces) and runs every pair
asked for, one after the other, in the same lab:

  tcp        one TCP stream, memory to memory (python sendall/recv): what
             TCP itself reaches on this link from a cold start (slow start
             at 300 ms takes seconds), the ceiling for any client
  ours       target/release/peer (this tree)
  before     an older build of ours (--before-bin, e.g. main at 29d94ba)
  lt-hp      libtorrent 2.0 (python3-libtorrent) with high_performance_seed()
  lt-def     libtorrent 2.0 with its default settings
(libtorrent: TCP only, no uTP; no DHT, LSD, UPnP, NAT-PMP anywhere.)
A kind may name a TCP congestion control: `ours/bbr` runs ours with
`--tcp-congestion bbr`, `tcp/cubic` sets TCP_CONGESTION on the stream's
sockets. Without it, the hosts' default applies: the kernel's built-in one,
or --cc NAME (net.ipv4.tcp_congestion_control in both hosts' namespaces, so
libtorrent, which has no such setting, runs with it too; the kernel allows a
namespace only a default from net.ipv4.tcp_allowed_congestion_control). Only
the sender's algorithm shapes the data; the receiver's sends ACKs.

A run starts the seeder, waits until it seeds, starts the leecher and times
it from its start to its completion; the leecher's file must be
byte-identical (the run fails otherwise). Reported per run: seconds, the
link's floor (size / rate) as a share of it ("% of link"), the TCP stream's
time as a share of it ("% of TCP"), CPU-seconds of the seeder and of the
leecher (rusage of the reaped process), and the machine's load average (the
machine may be shared: CPU-seconds are less sensitive to that than wall time).

Needs root (namespaces). Run with /usr/bin/python3 (libtorrent imports there):
  sudo /usr/bin/python3 scripts/bench-wan.py --links 100:200:128,300:400:256 \\
      --pairs ours:ours,lt-hp:lt-hp,lt-hp:ours,ours:lt-hp --json out.json
Every wait is bounded; only processes this script started are signalled, by
pid; the lab is removed at the end.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import sha1_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAB = os.path.join(HERE, "wan-lab", "lab.sh")
MIB = 1 << 20
PREFIX = os.environ.get("WAN_LAB_PREFIX", "p21b-wan")
SEED_IP = "10.210.0.1"
LEECH_IP = "10.210.0.2"
# Over IPv6 (a pair or `tcp` written with `@6`): every lab host is dual stack.
SEED_IP6 = "fd21:b::1"
LEECH_IP6 = "fd21:b::2"
PORT = 6881


def lt_worker(argv):
    """One libtorrent peer in the lab: seed or download; print SEEDING/DONE."""
    ap = argparse.ArgumentParser(prog="bench-wan.py --lt-worker")
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("listen")
    ap.add_argument("--peer")
    ap.add_argument("--defaults", action="store_true")
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args(argv)
    import libtorrent as lt

    s = lt.default_settings() if a.defaults else lt.high_performance_seed()
    s.update({
        "listen_interfaces": a.listen,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": 0,
    })
    ses = lt.session(s)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(a.torrent)
    atp.save_path = a.save_dir
    h = ses.add_torrent(atp)
    peer = None
    if a.peer:
        host, _, port = a.peer.rpartition(":")
        peer = (host, int(port))
    start = time.monotonic()
    last_dial = 0.0
    said = False
    while time.monotonic() - start < a.timeout:
        ses.pop_alerts()
        st = h.status()
        now = time.monotonic()
        if not said and st.is_seeding:
            said = True
            print("SEEDING" if not peer else "DONE %.3f" % (now - start), flush=True)
        if peer and not said and st.num_peers == 0 and now - last_dial > 1:
            h.connect_peer(peer)
            last_dial = now
        time.sleep(0.02)
    return 0


class Proc:
    """A started process; reaped with wait4 for its whole rusage."""

    def __init__(self, cmd, log_path, env):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid
        self.rusage = None

    def text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        try:
            pid, _, ru = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == self.pid:
            self.rusage = ru
            return False
        return True

    def stop(self, grace=10):
        if self.rusage is not None:
            return
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while True:
            try:
                pid, _, ru = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == self.pid:
                self.rusage = ru
                break
            if time.monotonic() > deadline:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5
            time.sleep(0.05)
        self.log.close()

    def cpu(self):
        return None if self.rusage is None else self.rusage.ru_utime + self.rusage.ru_stime




CLK = os.sysconf("SC_CLK_TCK")


def delay_cpu():
    """CPU-seconds the lab's delay line has used so far (None if unknown)."""
    try:
        with open(os.path.join(os.environ.get("WAN_LAB_DIR", "/tmp/" + PREFIX), "delay.pid")) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, ValueError, IndexError):
        return None


LAB_ENV = dict(os.environ)


def lab(*args):
    subprocess.run([LAB] + list(args), check=True, timeout=120, env=LAB_ENV)


def host_cc():
    """The hosts' default TCP congestion control."""
    out = subprocess.run(netns("a") + ["cat", "/proc/sys/net/ipv4/tcp_congestion_control"],
                         capture_output=True, timeout=30)
    return out.stdout.decode().strip()


def netns(host):
    return ["ip", "netns", "exec", "%s-%s" % (PREFIX, host)]


def peer_cmd(kind, args, torrent, save_dir, state, ip, dial):
    kind, _, cc = kind.partition("/")
    if kind in ("ours", "before"):
        binary = args.peer_bin if kind == "ours" else args.before_bin
        cmd = [binary, torrent, "--dir", save_dir, "--port", str(PORT), "--no-dht",
               "--no-lsd", "--state", state]
        if cc:
            cmd += ["--tcp-congestion", cc]
        if dial:
            cmd += ["--peer", dial]
        return cmd
    if cc:
        raise RuntimeError("libtorrent has no congestion-control setting: use --cc")
    cmd = [sys.executable, os.path.abspath(__file__), "--lt-worker", torrent, save_dir,
           "%s:%d" % (ip, PORT), "--timeout", str(args.timeout + 60)]
    if kind == "lt-def":
        cmd.append("--defaults")
    if dial:
        cmd += ["--peer", dial]
    return cmd


def seeding(kind, text):
    kind = kind.partition("/")[0]
    if kind.startswith("lt"):
        return "SEEDING" in text
    # Our plain status line: "<name> seeding 100.0% ..." (or the first one
    # once the check is done).
    return re.search(r" seeding 100\.0%", text) is not None


def finished(kind, text):
    kind = kind.partition("/")[0]
    if kind.startswith("lt"):
        return "DONE" in text
    return "download complete" in text


def run_tcp(args, size, work, cc="", v6=False):
    """One TCP stream of `size` bytes from a to b (congestion control `cc`,
    or the host's default; over IPv6 with `v6`); seconds."""
    fam = "socket.AF_INET6" if v6 else "socket.AF_INET"
    leech_ip = LEECH_IP6 if v6 else LEECH_IP
    recv = ("import socket,sys,time\n"
            "s=socket.socket(" + fam + ");s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('%s',5201));s.listen(1);s.settimeout(30)\n"
            "c,_=s.accept();n=0\n"
            "while n<%d:\n"
            "  b=c.recv(1<<20)\n"
            "  if not b: break\n"
            "  n+=len(b)\n"
            "print('GOT',n,flush=True)\n") % (leech_ip, size)
    send = ("import socket,time\n"
            "time.sleep(0.5)\n"
            "c=socket.socket(" + fam + ")\n"
            "if %r: c.setsockopt(socket.IPPROTO_TCP,socket.TCP_CONGESTION,%r.encode())\n"
            "c.settimeout(10);c.connect(('%s',5201));c.settimeout(None)\n"
            "b=b'x'*(1<<20);n=0\n"
            "while n<%d:\n"
            "  c.sendall(b);n+=len(b)\n"
            "c.close()\n") % (cc, cc, leech_ip, size)
    t0 = time.monotonic()
    r = subprocess.Popen(netns("b") + ["/usr/bin/python3", "-c", recv], stdout=subprocess.PIPE)
    s = subprocess.Popen(netns("a") + ["/usr/bin/python3", "-c", send])
    out, _ = r.communicate(timeout=args.timeout)
    s.wait(timeout=30)
    took = time.monotonic() - t0 - 0.5
    ok = ("GOT %d" % size) in out.decode()
    name = ("tcp/" + cc if cc else "tcp") + (" (IPv6)" if v6 else "")
    return {"pair": name, "seconds": round(took, 2), "ok": ok,
            "load": round(os.getloadavg()[0], 1)}


def run_pair(args, link, seed_kind, leech_kind, torrent, data, want, work, n, v6=False):
    seed_ip, leech_ip = (SEED_IP6, LEECH_IP6) if v6 else (SEED_IP, LEECH_IP)
    dial = "[%s]:%d" % (seed_ip, PORT) if v6 else "%s:%d" % (seed_ip, PORT)
    env = dict(os.environ, PEER_DHT_BOOTSTRAP="none", PEER_PORT_MAP="off", RUST_LOG="warn")
    tag = ("%s-%s-%d" % (seed_kind, leech_kind, n)).replace("/", "_") + ("-6" if v6 else "")
    seed_dir = os.path.dirname(data)
    leech_dir = os.path.join(work, "leech-" + tag)
    os.makedirs(leech_dir)
    seeder = Proc(netns("a") + peer_cmd(seed_kind, args, torrent, seed_dir,
                                        os.path.join(work, "state-s-" + tag), seed_ip, None),
                  os.path.join(work, "seed-%s.log" % tag), env)
    leecher = None
    result = {"pair": "%s -> %s%s" % (seed_kind, leech_kind, " (IPv6)" if v6 else ""),
              "ok": False}
    try:
        deadline = time.monotonic() + 120
        while not seeding(seed_kind, seeder.text()):
            if time.monotonic() > deadline or not seeder.alive():
                raise RuntimeError("seeder never seeded: " + seeder.text()[-500:])
            time.sleep(0.1)
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        leecher = Proc(netns("b") + peer_cmd(leech_kind, args, torrent, leech_dir,
                                             os.path.join(work, "state-l-" + tag), leech_ip,
                                             dial),
                       os.path.join(work, "leech-%s.log" % tag), env)
        deadline = t0 + args.timeout
        while not finished(leech_kind, leecher.text()):
            if time.monotonic() > deadline:
                raise RuntimeError("leecher did not finish in %ds" % args.timeout)
            if not leecher.alive():
                raise RuntimeError("leecher exited: " + leecher.text()[-500:])
            time.sleep(0.05)
        took = time.monotonic() - t0
        leecher.stop()
        seeder.stop()
        got = sha1_file(os.path.join(leech_dir, os.path.basename(data)))
        result.update({
            "seconds": round(took, 2),
            "ok": got == want,
            "seeder_cpu_s": round(seeder.cpu() or 0, 2),
            "leecher_cpu_s": round(leecher.cpu() or 0, 2),
            "load": round(load, 1),
        })
    except RuntimeError as e:
        result["error"] = str(e)
    finally:
        if leecher:
            leecher.stop()
        seeder.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", leech_dir], timeout=60)
    return result


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--lt-worker":
        return lt_worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--links", default="100:200:128,300:400:256",
                    help="RTT_MS:RATE_MBIT:SIZE_MIB,... (default the issue's two links)")
    ap.add_argument("--pairs", default="tcp,ours:ours,lt-hp:lt-hp,lt-def:lt-def,lt-hp:ours,"
                    "lt-def:ours,ours:lt-hp,ours:lt-def",
                    help="SEEDER:LEECHER,... of ours, before, lt-hp, lt-def; or tcp; "
                    "a suffix @6 runs it over IPv6 (ours:ours@6, tcp@6)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cc", help="the hosts' default TCP congestion control (WAN_LAB_CC; "
                    "default: the kernel's)")
    ap.add_argument("--peer-bin", default=os.path.join(ROOT, "target", "release", "peer"))
    ap.add_argument("--before-bin", help="an older peer binary, for the `before` kind")
    ap.add_argument("--timeout", type=int, default=180)
    ap.add_argument("--work-dir", default="/tmp")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench-wan.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.cc:
        LAB_ENV["WAN_LAB_CC"] = args.cc
    results = []
    try:
        for spec in args.links.split(","):
            rtt, rate, size_mib = (int(x) for x in spec.split(":"))
            size = size_mib * MIB
            floor = size * 8 / (rate * 1e6)
            lab("up", str(rtt), str(rate))
            work = tempfile.mkdtemp(prefix=PREFIX + "-bench-", dir=args.work_dir)
            os.chmod(work, 0o755)
            try:
                seed_dir = os.path.join(work, "seed")
                os.makedirs(seed_dir)
                data = os.path.join(seed_dir, "wan.bin")
                with open(data, "wb") as f:
                    left = size
                    while left:
                        k = min(left, 4 * MIB)
                        f.write(os.urandom(k))
                        left -= k
                want = sha1_file(data)
                torrent = os.path.join(work, "wan.torrent")
                subprocess.run([args.peer_bin, "create", data, "-o", torrent,
                                "--piece-length", "256K"], check=True,
                               stdout=subprocess.DEVNULL, timeout=300)
                link = {"rtt_ms": rtt, "rate_mbit": rate, "size_mib": size_mib,
                        "floor_s": round(floor, 2), "host_cc": host_cc()}
                tcp_s = None
                n = 0
                for _ in range(args.repeat):
                    for pair in args.pairs.split(","):
                        n += 1
                        d0 = delay_cpu()
                        pair, _, fam = pair.partition("@")
                        v6 = fam == "6"
                        if pair.partition("/")[0] == "tcp":
                            r = run_tcp(args, size, work, pair.partition("/")[2], v6)
                            if pair == "tcp" and not v6:
                                tcp_s = r["seconds"]
                        else:
                            s, l = pair.split(":")
                            r = run_pair(args, link, s, l, torrent, data, want, work, n, v6)
                        r.update(link)
                        d1 = delay_cpu()
                        if d0 is not None and d1 is not None:
                            r["delay_cpu_s"] = round(d1 - d0, 2)
                        if r.get("seconds"):
                            r["pct_link"] = round(100 * floor / r["seconds"])
                            if tcp_s:
                                r["pct_tcp"] = round(100 * tcp_s / r["seconds"])
                        results.append(r)
                        print(json.dumps(r), flush=True)
            finally:
                subprocess.run(["rm", "-rf", "--one-file-system", work], timeout=60)
    finally:
        lab("down")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print()
    print("| link | hosts' cc | pair | seconds | % of link | % of TCP | seeder CPU s "
          "| leecher CPU s | delay line CPU s | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print("| RTT %d ms, %d Mbit/s, %d MiB | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["rtt_ms"], r["rate_mbit"], r["size_mib"], r["host_cc"], r["pair"],
            r.get("seconds", "FAIL" + (" (%s)" % r.get("error", "")[:60] if r.get("error") else "")),
            r.get("pct_link", ""), r.get("pct_tcp", ""), r.get("seeder_cpu_s", ""),
            r.get("leecher_cpu_s", ""), r.get("delay_cpu_s", ""), r.get("load", "")))
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
