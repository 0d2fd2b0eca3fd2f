#!/usr/bin/env python3
"""Drive the web interface of a running `peer daemon` in headless Chromium.

Run by peer-cli/tests/web_browser.rs with one JSON argument:
  {"login": URL, "torrent": PATH, "torrent_name": NAME, "magnet": URI,
   "magnet_name": NAME, "dir": DIR, "screenshot": PATH or null}
Exit status 0 when every check passed, 1 with a `FAIL: ...` line otherwise,
77 when selenium or chromium is missing.
"""
import http.server
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError as e:  # the Rust side turns this into SKIP or FAIL
    print(f"MISSING: selenium ({e})")
    sys.exit(77)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 90  # seconds, for any one state to show


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(driver, msg):
    print(f"FAIL: {msg}", flush=True)
    if driver is not None:
        try:
            shot = tempfile.mktemp(prefix="peer-web-fail-", suffix=".png")
            driver.save_screenshot(shot)
            print(f"screenshot of the failure: {shot}")
            print("page text:", driver.find_element(By.TAG_NAME, "body").text[:2000])
        except WebDriverException:
            pass
        driver.quit()
    sys.exit(1)


def wait_for(driver, what, cond, limit=WAIT):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        try:
            last = cond()
            if last:
                return last
        except WebDriverException as e:  # stale elements while the page updates
            last = e
        time.sleep(0.2)
    fail(driver, f"timed out after {limit}s waiting for {what} (last: {last!r})")


def row(driver, name):
    for tr in driver.find_elements(By.CSS_SELECTOR, "#rows tr"):
        if tr.find_element(By.CSS_SELECTOR, "td.name .link").text == name:
            return tr
    return None


def row_state(driver, name):
    tr = row(driver, name)
    return tr.get_attribute("data-state") if tr else None


def call(method, url, headers=None, body=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class EvilPage(http.server.BaseHTTPRequestHandler):
    """Another origin: a page that posts a form to the daemon."""
    target = ""

    def do_GET(self):
        page = (
            "<!doctype html><title>evil</title><body>"
            f"<form id=f method=post action='{self.target}'></form>"
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args):
        pass


class TorrentFile(http.server.BaseHTTPRequestHandler):
    """Serves one .torrent file (for adding by URL)."""
    data = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/x-bittorrent")
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data)

    def log_message(self, *args):
        pass


def main():
    cfg = json.loads(sys.argv[1])
    login = cfg["login"]
    base = login.split("/login")[0]
    port = base.rsplit(":", 1)[1]
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,860"):
        opts.add_argument(a)
    profile = tempfile.mkdtemp(prefix="peer-web-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    step("starting chromium")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        run(driver, cfg, login, base, port)
    finally:
        try:
            driver.quit()
        except Exception:  # already gone after a failure
            pass
    step("PASS")


def run(driver, cfg, login, base, port):
    by_css = lambda sel: driver.find_element(By.CSS_SELECTOR, sel)

    step("without a session the page asks to log in")
    driver.get(base + "/")
    wait_for(driver, "the login notice", lambda: by_css("#login").is_displayed())
    if by_css("#app").is_displayed():
        fail(driver, "the app shows without a session")

    step("log in with the printed one-time URL")
    driver.get(login)
    wait_for(driver, "the torrent list", lambda: by_css("#app").is_displayed())
    if driver.current_url.rstrip("/") != base:
        fail(driver, f"login did not land on the page: {driver.current_url}")
    cookies = [c for c in driver.get_cookies() if c["name"] == f"peer_session_{port}"]
    if not cookies:
        fail(driver, f"no session cookie: {driver.get_cookies()}")
    cookie = cookies[0]
    if not cookie.get("httpOnly") or cookie.get("sameSite") != "Strict":
        fail(driver, f"cookie is not HttpOnly + SameSite=Strict: {cookie}")
    if driver.execute_script("return document.cookie").find("peer_session") >= 0:
        fail(driver, "the page's script can read the session cookie")

    step("the login URL works only once")
    driver.get(login)
    if "not valid" not in by_css("body").text:
        fail(driver, "a used login code was accepted again")
    driver.get(base + "/")
    wait_for(driver, "the app (still logged in)", lambda: by_css("#app").is_displayed())

    step("set the download directory")
    d = by_css("#add-dir")
    wait_for(driver, "a suggested directory", lambda: d.get_attribute("value") != "")
    d.clear()
    d.send_keys(cfg["dir"])

    step("add a torrent by uploading its .torrent file")
    by_css("#add-file").send_keys(cfg["torrent"])
    by_css("#form-file button[type=submit]").click()
    wait_for(driver, "the uploaded torrent's row", lambda: row(driver, cfg["torrent_name"]))
    wait_for(driver, "the uploaded torrent to be seeding",
             lambda: row_state(driver, cfg["torrent_name"]) == "seeding")
    pct = row(driver, cfg["torrent_name"]).find_element(By.CSS_SELECTOR, ".bar").get_attribute("aria-valuenow")
    if pct != "100":
        fail(driver, f"seeding torrent shows {pct}%")

    step("add a torrent by magnet link (keyboard: Enter submits)")
    m = by_css("#add-magnet")
    m.send_keys(cfg["magnet"])
    m.send_keys(Keys.ENTER)
    wait_for(driver, "the magnet's row", lambda: row(driver, cfg["magnet_name"]))
    wait_for(driver, "the magnet torrent to be seeding",
             lambda: row_state(driver, cfg["magnet_name"]) == "seeding")

    step("session totals and listening addresses")
    wait_for(driver, "downloaded total", lambda: by_css("#t-downloaded").text not in ("", "\u2013", "0 B"))
    info = by_css("#session-info").text
    if "Peers connect to" not in info or f"127.0.0.1:{port}" not in info:
        fail(driver, f"session section lacks the addresses: {info!r}")

    if cfg.get("screenshot"):
        step(f"screenshot of the main view -> {cfg['screenshot']}")
        time.sleep(1.2)
        driver.save_screenshot(cfg["screenshot"])

    step("phone-sized screen: no sideways scrolling")
    driver.set_window_size(390, 844)
    time.sleep(0.5)
    over = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if over > 1:
        fail(driver, f"the page is {over}px wider than a phone screen")
    driver.set_window_size(1280, 860)

    step("detail view: files, trackers, pieces")
    row(driver, cfg["torrent_name"]).find_element(By.CSS_SELECTOR, ".link").send_keys(Keys.ENTER)
    wait_for(driver, "the detail view", lambda: by_css("#detail").is_displayed())
    wait_for(driver, "the detail title", lambda: by_css("#detail-h").text == cfg["torrent_name"])
    # The rows are re-rendered while the view refreshes: read their text
    # inside the wait (a stale row is retried), never after it.
    texts = wait_for(driver, "file rows", lambda: [
        f.text for f in driver.find_elements(By.CSS_SELECTOR, "#files tbody tr")])
    if not all("100%" in t for t in texts):
        fail(driver, f"files not all at 100%: {texts}")
    # A play link per file (its stream URL with the stream token) and the
    # torrent's M3U playlist, fetched with the page's cookie.
    hrefs = wait_for(driver, "play links", lambda: [
        a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#files a.play")])
    if len(hrefs) != len(texts) or not all("/stream/" in h and "?token=" in h for h in hrefs):
        fail(driver, f"play links: {hrefs} for files {texts}")
    wait_for(driver, "the playlist link", lambda: by_css("#playlist").is_displayed())
    m3u = driver.execute_script(
        "return fetch(document.querySelector('#playlist').href).then((r) => r.text())")
    if not m3u.startswith("#EXTM3U") or not all(h in m3u for h in hrefs):
        fail(driver, f"playlist: {m3u!r}")
    wait_for(driver, "a tracker row", lambda: driver.find_elements(By.CSS_SELECTOR, "#trackers tbody tr"))
    label = by_css("#pieces").get_attribute("aria-label")
    parts = label.replace("Pieces: ", "").split(" ")
    if len(parts) < 3 or parts[0] != parts[2] or parts[0] == "0":
        fail(driver, f"pieces bar label: {label!r}")
    by_css("#detail").send_keys(Keys.ESCAPE)
    wait_for(driver, "the list again", lambda: by_css("#torrents").is_displayed())

    step("pause (click) and resume (keyboard)")
    toggle = lambda: row(driver, cfg["torrent_name"]).find_element(By.CSS_SELECTOR, "[data-action=toggle]")
    toggle().click()
    wait_for(driver, "paused", lambda: row_state(driver, cfg["torrent_name"]) == "paused")
    toggle().send_keys(Keys.ENTER)
    wait_for(driver, "resumed", lambda: row_state(driver, cfg["torrent_name"]) == "seeding")

    step("sequential download on and off (issue 24)")
    seq = lambda: row(driver, cfg["torrent_name"]).find_element(By.CSS_SELECTOR, "[data-action=sequential]")
    seq().click()
    wait_for(driver, "sequential on", lambda: seq().get_attribute("aria-pressed") == "true")
    seq().click()
    wait_for(driver, "sequential off", lambda: seq().get_attribute("aria-pressed") == "false")

    tid = row(driver, cfg["torrent_name"]).get_attribute("data-id")
    ck = f"{cookie['name']}={cookie['value']}"
    step("labels set through the API show as tags under the name (issue 23)")
    code, text = call("POST", f"{base}/torrents/{tid}/labels",
                      {"Cookie": ck, "Origin": base, "Content-Type": "application/json"},
                      json.dumps({"labels": ["tv", "hd"]}).encode())
    if code != 200:
        fail(driver, f"setting labels: {code} {text}")
    tags = lambda: [t.text for t in row(driver, cfg["torrent_name"]).find_elements(By.CSS_SELECTOR, ".labels .tag")]
    wait_for(driver, "the labels as tags", lambda: tags() == ["tv", "hd"])
    step("labels edited in the detail view (issue 23)")
    row(driver, cfg["torrent_name"]).find_element(By.CSS_SELECTOR, ".link").send_keys(Keys.ENTER)
    wait_for(driver, "the detail view", lambda: by_css("#detail").is_displayed())
    box = by_css("#detail-labels")
    wait_for(driver, "the labels in the box", lambda: box.get_attribute("value") == "tv, hd")
    box.click()
    box.clear()
    box.send_keys("music , flac,, ")
    box.send_keys(Keys.ENTER)
    def api_labels():
        code, text = call("GET", f"{base}/torrents/{tid}", {"Cookie": ck, "Origin": base})
        return code == 200 and json.loads(text).get("labels") == ["music", "flac"]
    wait_for(driver, "the labels saved through the API", api_labels)
    by_css("#detail").send_keys(Keys.ESCAPE)
    wait_for(driver, "the list again", lambda: by_css("#torrents").is_displayed())
    wait_for(driver, "the edited labels as tags", lambda: tags() == ["music", "flac"])
    step("refused: no cookie, no Origin, another Origin, a rebinding Host")
    pause = f"{base}/torrents/{tid}/pause"
    checks = [
        ("no cookie", {"Origin": base}, 401),
        ("cookie, no Origin", {"Cookie": ck}, 403),
        ("cookie, another origin", {"Cookie": ck, "Origin": "http://evil.example"}, 403),
        ("cookie, another port", {"Cookie": ck, "Origin": "http://127.0.0.1:1"}, 403),
        ("cookie, rebinding Host", {"Cookie": ck, "Origin": "http://evil.example:" + port,
                                    "Host": "evil.example:" + port}, 403),
    ]
    for what, headers, want in checks:
        code, body = call("POST", pause, headers, b"{}")
        if code != want:
            fail(driver, f"{what}: got {code} {body}, want {want}")

    step("refused in the browser: a form posted from another origin")
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EvilPage)
    EvilPage.target = pause
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        # Same site, other port: the browser sends the cookie, the Origin check refuses.
        driver.get(f"http://127.0.0.1:{evil.server_address[1]}/")
        wait_for(driver, "the daemon's refusal", lambda: "cross-origin request refused" in by_css("body").text)
        # Another site: SameSite=Strict keeps the cookie home, so no session at all.
        driver.get(f"http://localhost:{evil.server_address[1]}/")
        wait_for(driver, "the daemon's refusal", lambda: "missing or wrong token" in by_css("body").text)
    finally:
        evil.shutdown()
    driver.get(base + "/")
    wait_for(driver, "the list", lambda: row(driver, cfg["torrent_name"]))
    time.sleep(1.5)
    if row_state(driver, cfg["torrent_name"]) != "seeding":
        fail(driver, f"a cross-origin post changed the torrent: {row_state(driver, cfg['torrent_name'])}")

    step("remove the magnet torrent with its data, the uploaded one without")
    for name, delete in ((cfg["magnet_name"], True), (cfg["torrent_name"], False)):
        row(driver, name).find_element(By.CSS_SELECTOR, "[data-action=remove]").click()
        wait_for(driver, "the remove dialog", lambda: by_css("#remove-dialog").is_displayed())
        box = by_css("#remove-data")
        if box.is_selected() != delete:
            box.click()
        by_css("#remove-confirm").click()
        wait_for(driver, f"{name} to be gone", lambda: row(driver, name) is None)
    wait_for(driver, "the empty list", lambda: by_css("#empty").is_displayed())

    step("add by URL: the daemon fetches the .torrent; its data is still there, so it seeds")
    with open(cfg["torrent"], "rb") as f:
        TorrentFile.data = f.read()
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TorrentFile)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    try:
        u = by_css("#add-url")
        u.send_keys(f"http://127.0.0.1:{files.server_address[1]}/files/upload.torrent")
        by_css("#form-url button[type=submit]").click()
        wait_for(driver, "the fetched torrent's row", lambda: row(driver, cfg["torrent_name"]))
        wait_for(driver, "the fetched torrent to be seeding",
                 lambda: row_state(driver, cfg["torrent_name"]) == "seeding")
    finally:
        files.shutdown()
    row(driver, cfg["torrent_name"]).find_element(By.CSS_SELECTOR, "[data-action=remove]").click()
    wait_for(driver, "the remove dialog", lambda: by_css("#remove-dialog").is_displayed())
    by_css("#remove-confirm").click()
    wait_for(driver, "the empty list", lambda: by_css("#empty").is_displayed())

    step("log out: the API refuses the old cookie")
    by_css("#logout").click()
    wait_for(driver, "the login notice", lambda: by_css("#login").is_displayed())
    code, _ = call("GET", f"{base}/torrents", {"Cookie": ck})
    if code != 401:
        fail(driver, f"the cookie still works after logout: {code}")


if __name__ == "__main__":
    main()
