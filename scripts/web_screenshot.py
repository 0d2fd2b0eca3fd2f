#!/usr/bin/env python3
"""Make docs/web.png (and docs/web-detail.png): the web interface of a `peer daemon` with one torrent
downloading through a throttled relay (so progress, rates and ETA show) and
one seeding. Loopback only; needs /usr/bin/chromium, chromedriver, selenium.

  cargo build -p peer-cli && /usr/bin/python3 scripts/web_screenshot.py target/debug/peer docs/web.png
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

# Loopback only: no DHT routers, no SSDP/NAT-PMP to the real router (inherited by
# every peer process this script starts).
os.environ.setdefault("PEER_DHT_BOOTSTRAP", "none")
os.environ["PEER_PORT_MAP"] = "off"

PEER, OUT = os.path.abspath(sys.argv[1]), sys.argv[2]
RATE = 700 * 1024  # bytes/s through the relay


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def relay(listen_port, target_port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(8)

    def pump(a, b, limit):
        try:
            while True:
                d = a.recv(16384)
                if not d:
                    break
                b.sendall(d)
                if limit:
                    time.sleep(len(d) / limit)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve():
        while True:
            c, _ = srv.accept()
            u = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pump, args=(c, u, 0), daemon=True).start()
            threading.Thread(target=pump, args=(u, c, RATE), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


tmp = tempfile.mkdtemp(prefix="peer-shot-")
seed = os.path.join(tmp, "seed")
os.makedirs(seed)
with open(os.path.join(seed, "debian-12.8.0-amd64-netinst.iso"), "wb") as f:
    f.write(os.urandom(96 * 1024 * 1024))
os.makedirs(os.path.join(seed, "holiday photos"))
for i in range(6):
    with open(os.path.join(seed, "holiday photos", f"IMG_{4810 + i}.jpg"), "wb") as f:
        f.write(os.urandom(700_000 + i * 50_000))
seed_port, relay_port = free_port(), free_port()
procs = []
hashes = {}
for name in ("debian-12.8.0-amd64-netinst.iso", "holiday photos"):
    t = os.path.join(tmp, name + ".torrent")
    out = subprocess.run([PEER, "create", os.path.join(seed, name), "-o", t,
                          "--announce", f"127.0.0.1:{seed_port}"], capture_output=True, text=True, check=True)
    hashes[name] = re.search(r"\b[0-9a-f]{40}\b", out.stdout).group(0)
procs.append(subprocess.Popen([PEER] + [os.path.join(tmp, n + ".torrent") for n in hashes] +
                              ["--dir", seed, "--port", str(seed_port), "--no-lsd", "--no-dht"],
                              stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
relay(relay_port, seed_port)
state, down = os.path.join(tmp, "state"), os.path.join(tmp, "Downloads")
d = subprocess.Popen([PEER, "daemon", "--state", state, "--port", str(free_port()), "--no-lsd", "--no-dht"],
                     stderr=subprocess.PIPE, text=True, cwd=tmp)
procs.append(d)
login = None
while login is None:
    line = d.stderr.readline()
    m = re.search(r"web interface: (\S+)", line)
    login = m.group(1) if m else None
threading.Thread(target=lambda: d.stderr.read(), daemon=True).start()
try:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1280,800", "--hide-scrollbars", f"--user-data-dir={tmp}/chromium"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    drv.get(login)
    box = drv.find_element(By.ID, "add-dir")
    while not box.get_attribute("value"):
        time.sleep(0.2)
    box.clear()
    box.send_keys(down)
    drv.find_element(By.ID, "add-file").send_keys(os.path.join(tmp, "holiday photos.torrent"))
    drv.find_element(By.CSS_SELECTOR, "#form-file button").click()
    time.sleep(4)
    iso = hashes["debian-12.8.0-amd64-netinst.iso"]
    m = drv.find_element(By.ID, "add-magnet")
    m.send_keys(f"magnet:?xt=urn:btih:{iso}&dn=debian-12.8.0-amd64-netinst.iso&x.pe=127.0.0.1:{relay_port}")
    drv.find_element(By.CSS_SELECTOR, "#form-magnet button").click()
    time.sleep(40)
    drv.save_screenshot(OUT)
    print("saved", OUT)
    # The detail view of the download, beside it.
    drv.find_element(By.CSS_SELECTOR, f'#rows tr[data-id="{iso}"] .link').click()
    time.sleep(2.5)
    detail = OUT.replace(".png", "-detail.png")
    drv.save_screenshot(detail)
    print("saved", detail)
    drv.quit()
finally:
    for p in procs:
        p.terminate()
