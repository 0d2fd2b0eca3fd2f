#!/usr/bin/env python3
"""Latency of the control API: start `peer daemon` on a scratch state dir and time 200
sequential `GET /status` calls (a new connection each, as the CLI does).

  /usr/bin/python3 scripts/bench_control_api.py target/release/peer [LABEL]
"""
import json, socket, subprocess, sys, tempfile, time, os, statistics

# Loopback only: no DHT routers, no SSDP/NAT-PMP to the real router (inherited by
# every peer process this script starts).
os.environ.setdefault("PEER_DHT_BOOTSTRAP", "none")
os.environ["PEER_PORT_MAP"] = "off"
peer = os.path.abspath(sys.argv[1])
label = sys.argv[2] if len(sys.argv) > 2 else peer
st = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
d = subprocess.Popen([peer, "daemon", "--state", st, "--port", str(port), "--no-lsd", "--no-dht"], stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        if os.path.exists(os.path.join(st, "control.json")): break
        time.sleep(0.1)
    time.sleep(0.5)
    info = json.load(open(os.path.join(st, "control.json")))
    req = f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{info['port']}\r\nAuthorization: Bearer {info['token']}\r\n\r\n".encode()
    def call():
        t = time.perf_counter()
        c = socket.create_connection(("127.0.0.1", info["port"]))
        c.sendall(req)
        b = b""
        while True:
            x = c.recv(65536)
            if not x: break
            b += x
        c.close()
        assert b.startswith(b"HTTP/1.1 200"), b[:100]
        return (time.perf_counter() - t) * 1000
    xs = [call() for _ in range(200)]
    print(f"{label}: 200 calls: median {statistics.median(xs):.2f} ms, p90 {sorted(xs)[180]:.2f} ms, max {max(xs):.2f} ms")
finally:
    d.terminate(); d.wait()
