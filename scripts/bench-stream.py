#!/usr/bin/env python3
"""Time to the first 4 MiB of a file in the middle of a 1 GiB torrent
(issue 24), from our seeder limited to RATE, with a streaming reader
against the same download without one.

    scripts/bench-stream.py                 # 1 GiB, 8 MiB/s, 3 rounds
    RATE=8M ROUNDS=3 SIZE_MIB=1024 PEER_BIN=target/release/peer scripts/bench-stream.py

The torrent has three files: head.bin, middle.mkv (32 MiB, in the middle of
the torrent's bytes) and tail.bin. One seeder (`peer --max-upload-rate
RATE`) serves every round. Each round starts a fresh `peer FILE --stream`
leecher (empty directory) twice, the two modes alternating:

  * reader: as soon as `peer` prints middle.mkv's stream URL, one HTTP GET
    of `Range: bytes=0-4194303`; the time is from the leecher's start to
    the last byte of the answer (checked against the source);
  * late: the same GET, LATE_S (10) seconds into the download; the time is
    from the request to the last byte (what a reader arriving mid-download
    waits, requests already queued at the seeder included);
  * none: no HTTP request; the first 4 MiB of middle.mkv in the download
    directory are compared with the source every 20 ms (pieces are written
    only once verified); the time is from the start to the first match.

Medians are printed; expected: reader close to 4 MiB / RATE (plus the
start-up), none about as long as most of the whole download (rarest-first
reaches the middle at a random time). Data: a random MiB repeated with
each MiB's index in its first 8 bytes (no two pieces alike), written fast.
Set PEER_DHT_BOOTSTRAP=none PEER_PORT_MAP=off (done here for the children).
"""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.environ.get("PEER_BIN") or os.path.join(ROOT, "target/release/peer")
RATE = os.environ.get("RATE", "8M")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SIZE_MIB = int(os.environ.get("SIZE_MIB", "1024"))
MIDDLE_MIB = 32
WANT = 4 << 20
LIMIT = float(os.environ.get("LIMIT_S", "600"))
LATE_S = float(os.environ.get("LATE_S", "10"))
ENV = dict(os.environ, PEER_DHT_BOOTSTRAP="none", PEER_PORT_MAP="off")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_data(path, mib, index0, block):
    with open(path, "wb") as f:
        for i in range(mib):
            f.write((index0 + i).to_bytes(8, "little") + block[8:])


def make_source(top):
    block = os.urandom(1 << 20)
    side = (SIZE_MIB - MIDDLE_MIB) // 2
    os.makedirs(top)
    write_data(os.path.join(top, "head.bin"), side, 0, block)
    write_data(os.path.join(top, "middle.mkv"), MIDDLE_MIB, side, block)
    write_data(os.path.join(top, "tail.bin"), SIZE_MIB - MIDDLE_MIB - side, side + MIDDLE_MIB, block)
    with open(os.path.join(top, "middle.mkv"), "rb") as f:
        return f.read(WANT)


def one(mode, torrent, seed_port, work, want):
    dl = tempfile.mkdtemp(prefix="dl-", dir=work)
    cmd = [PEER, torrent, "--dir", dl, "--port", str(free_port()), "--no-lsd", "--no-dht",
           "--peer", f"127.0.0.1:{seed_port}", "--stream"]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if mode in ("reader", "late"):
            url = None
            for line in p.stdout:
                m = re.match(r"stream \S*middle\.mkv: (\S+)", line)
                if m:
                    url = m.group(1)
                    break
            if url is None:
                raise RuntimeError("no stream URL printed")
            t_url = time.monotonic() - t0
            if mode == "late":
                time.sleep(max(0.0, LATE_S - t_url))
                t0 = time.monotonic()
            req = urllib.request.Request(url, headers={"Range": f"bytes=0-{WANT - 1}"})
            with urllib.request.urlopen(req, timeout=LIMIT) as r:
                got = r.read()
            t = time.monotonic() - t0
            if got != want:
                raise RuntimeError("the streamed bytes differ from the source")
            return t, t_url
        target = None
        while time.monotonic() - t0 < LIMIT:
            if target is None:
                for dirpath, _, files in os.walk(dl):
                    if "middle.mkv" in files:
                        target = os.path.join(dirpath, "middle.mkv")
            if target is not None:
                try:
                    with open(target, "rb") as f:
                        if f.read(WANT) == want:
                            return time.monotonic() - t0, None
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"not there within {LIMIT} s")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(dl, ignore_errors=True)


def main():
    if not os.path.exists(PEER):
        sys.exit(f"no {PEER}: cargo build --release -p peer-cli (or set PEER_BIN)")
    work = tempfile.mkdtemp(prefix="h24-bench-stream-")
    seeder = None
    try:
        top = os.path.join(work, "seed", "media")
        print(f"writing {SIZE_MIB} MiB ...", flush=True)
        want = make_source(top)
        torrent = os.path.join(work, "media.torrent")
        subprocess.run([PEER, "create", top, "-o", torrent], env=ENV, check=True,
                       stdout=subprocess.DEVNULL)
        seed_port = free_port()
        seeder = subprocess.Popen(
            [PEER, torrent, "--dir", os.path.join(work, "seed"), "--port", str(seed_port),
             "--no-lsd", "--no-dht", "--max-upload-rate", RATE],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Seeding once its check is done ("seeding" on its status line).
        buf = ""
        while "seeding" not in buf:
            c = seeder.stderr.read(1)
            if not c:
                sys.exit("the seeder exited")
            buf = (buf + c)[-200:]
        # Drain its status lines from now on.
        import threading
        threading.Thread(target=lambda: [None for _ in iter(lambda: seeder.stderr.read(4096), "")],
                         daemon=True).start()
        print(f"seeder ready, rate {RATE}/s; {ROUNDS} rounds", flush=True)
        res = {"reader": [], "late": [], "none": []}
        for r in range(ROUNDS):
            for mode in (("reader", "late", "none") if r % 2 == 0 else ("none", "late", "reader")):
                t, t_url = one(mode, torrent, seed_port, work, want)
                res[mode].append(t)
                extra = f" (URL printed at {t_url:.2f} s)" if mode == "reader" else ""
                extra = f" after the request at {LATE_S:.0f} s" if mode == "late" else extra
                print(f"round {r + 1} {mode:6s}: first 4 MiB of middle.mkv at {t:7.2f} s{extra}",
                      flush=True)
        load = open("/proc/loadavg").read().split()[:3]
        med = {k: statistics.median(v) for k, v in res.items()}
        print(f"median reader {med['reader']:.2f} s, late {med['late']:.2f} s, "
              f"none {med['none']:.2f} s; 4 MiB / {RATE}/s; load {' '.join(load)}")
    finally:
        if seeder is not None:
            seeder.send_signal(signal.SIGTERM)
            try:
                seeder.wait(timeout=20)
            except subprocess.TimeoutExpired:
                seeder.kill()
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
