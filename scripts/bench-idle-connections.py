#!/usr/bin/env python3
"""CPU of a seeding `peer` that holds idle connections.

    scripts/bench-idle-connections.py [N] [SECONDS]

Builds `peer` (release; or runs the binary in $PEER), seeds a 4 MiB file on 127.0.0.1, opens N plain
BitTorrent connections to it (default 45, under the default 50 peers per
torrent; at most 8 per source address, 127.0.0.2, .3, ...), each of which
sends the handshake and then nothing (not interested), waits 2 s, and reads
the seeder's utime + stime from /proc over SECONDS (default 10). Prints the
seeder's CPU as a share of one core, and the same with one connection.

Only the seeder started here is stopped, by its pid.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

# Loopback only: no DHT routers, no SSDP/NAT-PMP to the real router (inherited by
# every peer process this script starts).
os.environ.setdefault("PEER_DHT_BOOTSTRAP", "none")
os.environ["PEER_PORT_MAP"] = "off"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def measure(peer, torrent, data_dir, n, seconds, port):
    log_path = os.path.join(data_dir, f"seed-{n}.log")
    with open(log_path, "w") as log:
        seed = subprocess.Popen(
            [peer, torrent, "--no-lsd", "--no-dht", "--dir", data_dir, "--port", str(port)],
            stderr=log,
            stdout=subprocess.DEVNULL,
        )
    socks = []
    try:
        for _ in range(300):
            with open(log_path) as f:
                if "seeding" in f.read():
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("the seeder did not start")
        info = json.loads(
            subprocess.run([peer, "info", torrent, "--json"], capture_output=True, text=True, check=True).stdout
        )
        info_hash = bytes.fromhex(info["info_hash"])
        for i in range(n):
            s = socket.create_connection((f"127.0.0.{2 + i // 8}", port), timeout=5)
            s.sendall(b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-XX0001-" + os.urandom(12))
            got = b""
            while len(got) < 68:
                chunk = s.recv(68 - len(got))
                if not chunk:
                    raise SystemExit(f"connection {i} closed during the handshake")
                got += chunk
            socks.append(s)
            time.sleep(0.02)
        time.sleep(2)
        t0 = ticks(seed.pid)
        time.sleep(seconds)
        t1 = ticks(seed.pid)
        threads = len(os.listdir(f"/proc/{seed.pid}/task"))
        cpu = (t1 - t0) / TICK
        print(
            f"{n} idle connections: seeder CPU {cpu:.2f} s in {seconds} s "
            f"= {100 * cpu / seconds:.2f} % of one core ({threads} threads)"
        )
    finally:
        for s in socks:
            s.close()
        seed.terminate()
        seed.wait()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 45
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    peer = os.environ.get("PEER")
    if not peer:
        subprocess.run(
            ["cargo", "build", "--quiet", "--release", "--manifest-path", f"{ROOT}/Cargo.toml", "-p", "peer-cli"],
            check=True,
        )
        peer = f"{ROOT}/target/release/peer"
    with tempfile.TemporaryDirectory(prefix="bench-idle.") as d:
        data = os.path.join(d, "data.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(4 << 20))
        torrent = os.path.join(d, "data.torrent")
        subprocess.run([peer, "create", data, "-o", torrent], check=True, capture_output=True)
        port = 20000 + os.getpid() % 20000
        measure(peer, torrent, d, 1, seconds, port)
        measure(peer, torrent, d, n, seconds, port + 1)


if __name__ == "__main__":
    main()
