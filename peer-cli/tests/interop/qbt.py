"""Drive qbittorrent-nox for the interop tests, through its Web API.

    qbt.py PROFILE_DIR WEBUI_PORT LISTEN_PORT (--seed TORRENT DATA_DIR |
           --leech TORRENT_OR_MAGNET SAVE_DIR) [--timeout S] [--stay] [--utp]
           [--rate-limit BYTES_PER_S]

Starts qbittorrent-nox with its own profile directory (legal notice
accepted, Web UI on 127.0.0.1:WEBUI_PORT with no login for localhost),
turns off DHT, LSD, UPnP and uTP (loopback: TCP only, several connections
per IP), adds the torrent and reports on stdout:

    READY                 the torrent is added (seeding: checked and seeding)
    DONE                  (leech) every piece is there
    STATS up=N down=M     the torrent's payload counters, once a second
    MBPS x.y              (leech) download speed from the first byte to DONE
    HASHES v1=H v2=H      the info-hashes qBittorrent computed (`infohash_v1`, `infohash_v2`
                          of `torrents/info`; empty for a v2-only or v1-only torrent), at READY
    PEER ADDR CONNECTION  each peer the first time it is seen (`sync/torrentPeers`), with
                          qBittorrent's name of its transport ("BT" is TCP, "μTP" is uTP)

--utp sets qBittorrent's "uTP only" mode (`bittorrent_protocol` 2, `Session\BTProtocol=UTP`:
libtorrent's outgoing and incoming TCP off) instead of TCP only. --rate-limit caps the
torrent's download and upload (`dlLimit`/`upLimit`, bytes/s), so that a transfer lasts long
enough for its peers to be seen.

A leecher exits 0 after DONE unless --stay (then it keeps seeding until the
timeout or until killed). Exit 1 on timeout. qbittorrent-nox is always shut
down (SIGTERM, then SIGKILL; it also dies with this script).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request


def die_with_parent():
    """In the child: get SIGKILL when this script dies (the test harness kills
    the script by its pid; qbittorrent-nox must not outlive it)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def write_config(profile, webui_port, listen_port, protocol):
    conf_dir = os.path.join(profile, "qBittorrent", "config")
    os.makedirs(conf_dir, exist_ok=True)
    with open(os.path.join(conf_dir, "qBittorrent.conf"), "w") as f:
        f.write(
            "[LegalNotice]\n"
            "Accepted=true\n\n"
            "[BitTorrent]\n"
            "Session\\Port=%d\n"
            "Session\\DHTEnabled=false\n"
            "Session\\LSDEnabled=false\n"
            "Session\\BTProtocol=%s\n"
            "Session\\MultiConnectionsPerIp=true\n"
            "Session\\QueueingSystemEnabled=false\n\n"
            "[Preferences]\n"
            "Connection\\PortRangeMin=%d\n"
            "Connection\\UPnP=false\n"
            "WebUI\\Address=127.0.0.1\n"
            "WebUI\\Port=%d\n"
            "WebUI\\LocalHostAuth=false\n"
            "WebUI\\CSRFProtection=false\n"
            "WebUI\\HostHeaderValidation=false\n"
            % (listen_port, protocol, listen_port, webui_port)
        )


class Api:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d/api/v2/" % port

    def get(self, path, **params):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read()

    def post(self, path, fields=None, files=None):
        boundary = "----peerinterop%d" % os.getpid()
        body = b""
        for k, v in (fields or {}).items():
            body += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                     % (boundary, k, v)).encode()
        for k, (name, data) in (files or {}).items():
            body += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                     "Content-Type: application/x-bittorrent\r\n\r\n"
                     % (boundary, k, name)).encode() + data + b"\r\n"
        body += ("--%s--\r\n" % boundary).encode()
        req = urllib.request.Request(self.base + path, data=body, method="POST")
        req.add_header("Content-Type", "multipart/form-data; boundary=%s" % boundary)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()


def log_tail(profile):
    """Copy the end of qbittorrent-nox's own output to stderr, so that a test
    failure says why it exited (a port in use, a profile it refused, ...)."""
    try:
        with open(os.path.join(profile, "qbittorrent-nox.log"), "rb") as f:
            tail = f.read()[-2000:]
        sys.stderr.write("--- qbittorrent-nox output (end) ---\n")
        sys.stderr.write(tail.decode("utf-8", "replace") + "\n")
    except OSError as e:
        sys.stderr.write("(no qbittorrent-nox output: %s)\n" % e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("webui_port", type=int)
    ap.add_argument("listen_port", type=int)
    ap.add_argument("--seed", nargs=2, metavar=("TORRENT", "DATA_DIR"))
    ap.add_argument("--leech", nargs=2, metavar=("TORRENT_OR_MAGNET", "SAVE_DIR"))
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--stay", action="store_true")
    ap.add_argument("--utp", action="store_true", help="uTP only (default: TCP only)")
    ap.add_argument("--rate-limit", type=int, default=0, help="bytes/s, each way")
    a = ap.parse_args()
    if bool(a.seed) == bool(a.leech):
        ap.error("give exactly one of --seed and --leech")
    write_config(a.profile, a.webui_port, a.listen_port, "UTP" if a.utp else "TCP")
    log = open(os.path.join(a.profile, "qbittorrent-nox.log"), "wb")
    proc = subprocess.Popen(
        ["qbittorrent-nox", "--profile=" + a.profile,
         "--webui-port=%d" % a.webui_port],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent)
    deadline = time.time() + a.timeout
    api = Api(a.webui_port)
    code = 1
    try:
        while True:
            if proc.poll() is not None:
                sys.stderr.write("qbittorrent-nox exited with %s\n" % proc.returncode)
                log_tail(a.profile)
                return 1
            try:
                api.get("app/version")
                break
            except Exception:
                if time.time() > deadline:
                    sys.stderr.write("qBittorrent Web API never came up\n")
                    return 1
                time.sleep(0.2)
        prefs = {
            "listen_port": a.listen_port,
            "random_port": False,
            "upnp": False,
            "dht": False,
            "lsd": False,
            "pex": True,
            # 0 TCP and uTP, 1 TCP only (uTP crawls on loopback), 2 uTP only.
            "bittorrent_protocol": 2 if a.utp else 1,
            "enable_multi_connections_from_same_ip": True,
            "queueing_enabled": False,
            "max_ratio_enabled": False,
            "announce_to_all_trackers": True,
        }
        api.post("app/setPreferences", fields={"json": json.dumps(prefs)})
        source, save = (a.seed or a.leech)
        fields = {"savepath": os.path.abspath(save), "paused": "false",
                  "root_folder": "true", "contentLayout": "Original"}
        if a.rate_limit > 0:
            fields["dlLimit"] = str(a.rate_limit)
            fields["upLimit"] = str(a.rate_limit)
        if source.startswith("magnet:"):
            fields["urls"] = source
            api.post("torrents/add", fields=fields)
        else:
            with open(source, "rb") as f:
                data = f.read()
            api.post("torrents/add", fields=fields,
                     files={"torrents": (os.path.basename(source), data)})
        seen_peers = set()
        ready = done = False
        first_byte = None
        last_stats = 0.0
        while time.time() < deadline:
            if proc.poll() is not None:
                sys.stderr.write("qbittorrent-nox exited with %s\n" % proc.returncode)
                log_tail(a.profile)
                return 1
            try:
                infos = json.loads(api.get("torrents/info"))
            except Exception as e:
                sys.stderr.write("torrents/info: %s\n" % e)
                infos = []
            if infos:
                t = infos[0]
                if first_byte is None and t.get("downloaded", 0) > 0:
                    first_byte = time.time()
                if not ready and (a.leech or (t["progress"] >= 1.0
                                              and t["state"] in ("uploading", "stalledUP",
                                                                 "forcedUP", "queuedUP"))):
                    ready = True
                    print("HASHES v1=%s v2=%s" % (t.get("infohash_v1", "?"),
                                                  t.get("infohash_v2", "?")), flush=True)
                    print("READY", flush=True)
                now = time.time()
                # Every round: a short transfer is over within a second.
                try:
                    peers = json.loads(api.get("sync/torrentPeers", hash=t["hash"],
                                               rid=0)).get("peers", {})
                except Exception as e:
                    sys.stderr.write("sync/torrentPeers: %s\n" % e)
                    peers = {}
                for addr, p in peers.items():
                    if addr not in seen_peers:
                        seen_peers.add(addr)
                        print("PEER %s %s" % (addr, p.get("connection", "?")), flush=True)
                if now - last_stats >= 1.0:
                    last_stats = now
                    print("STATS up=%d down=%d state=%s progress=%.3f peers=%d"
                          % (t.get("uploaded", 0), t.get("downloaded", 0), t["state"],
                             t["progress"], t.get("num_leechs", 0) + t.get("num_seeds", 0)),
                          flush=True)
                if a.leech and not done and t["progress"] >= 1.0 and t["state"] not in (
                        "checkingUP", "checkingDL", "metaDL", "checkingResumeData"):
                    done = True
                    took = time.time() - (first_byte or time.time())
                    size = t.get("total_size", t.get("size", 0))
                    if took > 0:
                        print("MBPS %.1f" % (size / took / 1e6), flush=True)
                    print("DONE", flush=True)
                    if not a.stay:
                        code = 0
                        break
            time.sleep(0.2)
        else:
            if a.seed or (a.stay and done):
                code = 0
            else:
                sys.stderr.write("timed out\n")
        return code
    finally:
        # SIGTERM is qbittorrent-nox's clean shutdown; SIGKILL after 5 s.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
