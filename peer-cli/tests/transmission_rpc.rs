//! The Transmission RPC of `peer daemon` (issue 23), driven by clients no one
//! here wrote: Debian's `transmission-remote`, the `transmission-rpc` package
//! from PyPI, and `curl` for the transport (the 409 session-id handshake,
//! Basic authentication, a foreign Host header). A torrent added through the
//! RPC downloads from a real seeder (ours) and shows the same progress
//! through the RPC and our own API. Bad input gets a clear error, adds
//! nothing, and leaves the daemon answering.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::rpc::*;
use support::*;

const NAME: &str = "rpcdata";

/// A seeder (`peer FILE --dir`) of a multi-file torrent whose tracker is
/// itself; returns (seeder, torrent path, source dir).
fn start_seeder(tmp: &TempDir) -> (Child, PathBuf, PathBuf) {
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let seed_port = free_port();
    peer_create_torrent(
        &src,
        &torrent,
        &["--announce", &format!("127.0.0.1:{seed_port}")],
    );
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &seed_port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let seeder = Child::spawn("peer seed", cmd);
    assert!(wait_until(LONG_WAIT, || TcpStream::connect((
        "127.0.0.1",
        seed_port
    ))
    .is_ok()));
    (seeder, torrent, src)
}

fn remote(port: u16, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("transmission-remote");
    cmd.arg(format!("127.0.0.1:{port}")).args(args);
    let out = run_bounded("transmission-remote", cmd, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn transmission_remote_adds_lists_stops_starts_and_removes() {
    if !require_tool("transmission-remote") {
        return;
    }
    let tmp = TempDir::new("p23-remote");
    let (mut seeder, torrent, src) = start_seeder(&tmp);
    let state = tmp.subdir("state");
    let down = tmp.subdir("down");
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);

    // Session settings: the download directory and the speed limits.
    let (ok, out) = remote(port, &["-w", down.to_str().unwrap()]);
    assert!(ok && out.contains("success"), "{out}");
    let (ok, out) = remote(port, &["-d", "2000", "-u", "1500"]);
    assert!(ok, "{out}");
    let (ok, out) = remote(port, &["-si"]);
    assert!(ok, "{out}");
    assert!(out.contains("RPC version: 17"), "{out}");
    assert!(
        out.contains(&format!("Download directory: {}", down.display())),
        "{out}"
    );
    assert!(out.contains("Download speed limit: 2.00 MB/s"), "{out}");
    let s = rpc.ok("session-get", json!({}));
    assert_eq!(
        (s["speed-limit-down"].clone(), s["speed-limit-up"].clone()),
        (json!(2000), json!(1500))
    );
    // What cannot change while running is an error, not a fake success.
    let (ok, out) = remote(port, &["-p", "1"]);
    assert!(!ok || out.contains("cannot be changed"), "{out}");
    assert!(out.contains("cannot be changed"), "{out}");
    let (ok, out) = remote(port, &["-D", "-U"]);
    assert!(ok, "{out}");
    assert_eq!(
        rpc.ok("session-get", json!({}))["speed-limit-down-enabled"],
        false
    );

    // Add the file: it downloads from the seeder; the RPC and our API agree.
    let (ok, out) = remote(port, &["-a", torrent.to_str().unwrap()]);
    assert!(ok && out.contains("success"), "{out}");
    let done = wait_until(LONG_WAIT, || {
        let t = rpc.torrents(&["id", "percentDone", "status", "leftUntilDone"]);
        t.len() == 1 && t[0]["percentDone"] == 1.0 && t[0]["status"] == 6
    });
    assert!(
        done,
        "{:?}\n{}\n{}",
        rpc.torrents(&["percentDone", "status", "errorString"]),
        daemon.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    let ours = our_torrents(&state);
    assert_eq!(ours[0]["progress"], 1.0);
    assert_eq!(ours[0]["state"], "seeding");
    let t = &rpc.torrents(&["hashString", "leftUntilDone", "totalSize", "downloadedEver"])[0];
    assert_eq!(t["hashString"], ours[0]["id"]);
    assert_eq!(t["leftUntilDone"], 0);
    assert_eq!(t["totalSize"], ours[0]["total_length"]);
    assert!(t["downloadedEver"].as_u64().unwrap() >= t["totalSize"].as_u64().unwrap());

    // transmission-remote says "Idle" for a seed no one downloads from.
    let (ok, out) = remote(port, &["-l"]);
    assert!(
        ok && out.contains("100%") && out.contains(NAME) && out.contains("Idle"),
        "{out}"
    );
    let (ok, out) = remote(port, &["-t", "1", "-i"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("Hash: {}", t["hashString"].as_str().unwrap())),
        "{out}"
    );
    assert!(out.contains("Percent Done: 100%"), "{out}");
    let (ok, out) = remote(port, &["-t", "1", "-f"]);
    assert!(ok && out.contains(&format!("{NAME} (5 files)")), "{out}");
    assert!(out.contains("alpha.bin") && out.contains("100%"), "{out}");

    // Stop and start.
    let (ok, out) = remote(port, &["-t", "1", "-S"]);
    assert!(ok, "{out}");
    assert_eq!(rpc.torrents(&["status"])[0]["status"], 0);
    assert_eq!(our_torrents(&state)[0]["state"], "paused");
    let (ok, out) = remote(port, &["-t", "1", "-s"]);
    assert!(ok, "{out}");
    assert!(wait_until(Duration::from_secs(20), || rpc
        .torrents(&["status"])[0]["status"]
        == 6));
    // Verify: every piece is checked again; the data is intact, so the
    // torrent seeds again with all of it.
    let (ok, out) = remote(port, &["-t", "1", "-v"]);
    assert!(ok && out.contains("success"), "{out}");
    assert!(wait_until(Duration::from_secs(30), || {
        let t = rpc.torrents(&["status", "percentDone"]);
        t.len() == 1 && t[0]["status"] == 6 && t[0]["percentDone"] == 1.0
    }));

    // A magnet link and a URL (a local HTTP server) are added too.
    let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=pending";
    let (ok, out) = remote(port, &["-a", magnet]);
    assert!(ok && out.contains("success"), "{out}");
    let web = tmp.subdir("web");
    let src2 = make_single_file(&tmp.subdir("src2"), "second.bin", 70_000);
    peer_create_torrent(&src2, &web.join("second.torrent"), &[]);
    let (mut server, web_port) = http_server(&web);
    let (ok, out) = remote(
        port,
        &["-a", &format!("http://127.0.0.1:{web_port}/second.torrent")],
    );
    assert!(ok && out.contains("success"), "{out}");
    let names: Vec<String> = rpc
        .torrents(&["name"])
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec![NAME, "pending", "second.bin"], "{names:?}");
    server.kill();

    // Remove with its data.
    let (ok, out) = remote(port, &["-t", "1", "--remove-and-delete"]);
    assert!(ok, "{out}");
    assert!(!down.join(NAME).exists());
    assert_eq!(our_torrents(&state).len(), 2);
    let (_, out) = remote(port, &["-t", "1", "-i"]);
    assert!(out.contains("no torrent with id 1"), "{out}");
    daemon.kill();
    seeder.kill();
}

/// `python3 -m http.server` on a free port, serving `dir`; also `/loop`
/// (redirects to itself forever) and `/big` (gigabytes).
fn http_server(dir: &Path) -> (Child, u16) {
    let port = free_port();
    let script = format!(
        r#"
import http.server, os
os.chdir({dir:?})
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/loop":
            self.send_response(302); self.send_header("Location", "/loop"); self.end_headers(); return
        if self.path == "/big":
            self.send_response(200); self.send_header("Content-Length", str(4 << 30)); self.end_headers()
            try:
                while True: self.wfile.write(b"d" * 65536)
            except Exception: return
        return super().do_GET()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H).serve_forever()
"#,
        dir = dir.to_str().unwrap()
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]);
    let child = Child::spawn("http server", cmd);
    assert!(wait_until(Duration::from_secs(20), || TcpStream::connect(
        ("127.0.0.1", port)
    )
    .is_ok()));
    (child, port)
}

#[test]
fn python_transmission_rpc_fields_table_and_labels() {
    let have = Command::new(SYSTEM_PYTHON)
        .args(["-c", "import transmission_rpc"])
        .status()
        .is_ok_and(|s| s.success());
    if !have
        && !skip_or_fail(
            "transmission-rpc (PyPI)",
            "/usr/bin/python3 -m pip install --break-system-packages transmission-rpc",
        )
    {
        return;
    }
    let tmp = TempDir::new("p23-python");
    let (mut seeder, torrent, src) = start_seeder(&tmp);
    let state = tmp.subdir("state");
    let down = tmp.subdir("down");
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    let script = format!(
        r#"
import time, json, requests
from transmission_rpc import Client
c = Client(host="127.0.0.1", port={port})
s = c.get_session()
assert s.rpc_version >= 17, s.rpc_version
c.set_session(speed_limit_down=300, speed_limit_down_enabled=True)
assert c.get_session().speed_limit_down == 300
with open({torrent:?}, "rb") as f:
    t = c.add_torrent(f, download_dir={down:?}, labels=["tv"])
for _ in range(600):
    t = c.get_torrent(t.id)
    if t.percent_done == 1.0 and t.status == "seeding": break
    time.sleep(0.2)
assert t.percent_done == 1.0, (t.percent_done, t.status, t.error_string)
assert t.labels == ["tv"], t.labels
assert len(t.get_files()) == 5
only = c.get_torrents(arguments=["id", "name"])
# The package adds id and hashString to what it asks for.
assert set(only[0].fields) == {{"id", "name", "hashString"}}, only[0].fields
c.change_torrent(t.id, labels=["tv", "hd"])
assert c.get_torrent(t.id).labels == ["tv", "hd"]
c.stop_torrent(t.id)
assert c.get_torrent(t.id).status == "stopped"
c.start_torrent(t.id)
# A check of the data (intact: it seeds again) and a manual announce.
c.verify_torrent(t.id)
for _ in range(300):
    try:
        t = c.get_torrent(t.id)
        if t.percent_done == 1.0 and t.status == "seeding": break
    except KeyError:
        pass  # not listed while its thread restarts
    time.sleep(0.2)
assert t.percent_done == 1.0 and t.status == "seeding", (t.percent_done, t.status)
c.reannounce_torrent(t.id)
# The table format, by hand (the package does not parse it).
sid = c._Client__session_id
r = requests.post("http://127.0.0.1:{port}/transmission/rpc", headers={{"X-Transmission-Session-Id": sid}},
                  json={{"method": "torrent_get", "arguments": {{"fields": ["id", "hash_string", "percent_done"], "format": "table"}}}})
v = r.json()
assert v["result"] == "success", v
rows = v["arguments"]["torrents"]
assert rows[0] == ["id", "hash_string", "percent_done"], rows
assert rows[1][0] == t.id and rows[1][1] == t.hashString and rows[1][2] == 1.0, rows
print(json.dumps({{"hash": t.hashString}}))
c.remove_torrent(t.id, delete_data=True)
assert c.get_torrents() == []
print("PYTHON-OK")
"#,
        torrent = torrent.to_str().unwrap(),
        down = down.to_str().unwrap()
    );
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.args(["-c", &script]);
    let out = run_bounded("python transmission-rpc", cmd, LONG_WAIT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PYTHON-OK"), "{text}\n{}", daemon.output());
    assert!(!down.join(NAME).exists());
    let _ = src;
    daemon.kill();
    seeder.kill();
}

fn curl(args: &[&str]) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "20"]).args(args);
    let out = run_bounded("curl", cmd, Duration::from_secs(30));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn handshake_auth_host_and_bad_input() {
    if !require_tool("curl") {
        return;
    }
    let tmp = TempDir::new("p23-auth");
    let state = tmp.subdir("state");
    std::fs::write(
        state.join("settings.json"),
        r#"{"rpc-username":"me","rpc-password":"open sesame","rpc-host-whitelist":"nas.lan"}"#,
    )
    .unwrap();
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    // The password is hashed at rest.
    let settings = std::fs::read_to_string(state.join("settings.json")).unwrap();
    assert!(
        !settings.contains("open sesame") && settings.contains("pbkdf2-sha1$"),
        "{settings}"
    );
    let url = format!("http://127.0.0.1:{port}/transmission/rpc");
    let body = r#"{"method":"session-get","arguments":{"fields":["version"]},"tag":7}"#;

    // Without the password: 401, never the session id.
    let out = curl(&["-X", "POST", "-d", body, &url]);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(
        out.contains("WWW-Authenticate: Basic realm=\"Transmission\""),
        "{out}"
    );
    assert!(
        !out.to_ascii_lowercase()
            .contains("x-transmission-session-id"),
        "{out}"
    );
    let out = curl(&["-u", "me:wrong", "-X", "POST", "-d", body, &url]);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    // With it but without the session id: 409 and the id.
    let out = curl(&["-u", "me:open sesame", "-X", "POST", "-d", body, &url]);
    assert!(out.starts_with("HTTP/1.1 409"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("X-Transmission-Session-Id: "))
        .unwrap()
        .trim()
        .to_string();
    let hdr = format!("X-Transmission-Session-Id: {id}");
    let out = curl(&[
        "-u",
        "me:open sesame",
        "-H",
        &hdr,
        "-X",
        "POST",
        "-d",
        body,
        &url,
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains(r#""result":"success""#) && out.contains(r#""tag":7"#),
        "{out}"
    );
    assert!(out.contains(r#""version":"#), "{out}");
    // A wrong id: 409 again.
    let out = curl(&[
        "-u",
        "me:open sesame",
        "-H",
        "X-Transmission-Session-Id: nope",
        "-X",
        "POST",
        "-d",
        body,
        &url,
    ]);
    assert!(out.starts_with("HTTP/1.1 409"), "{out}");
    // A foreign Host: refused; one of rpc-host-whitelist: accepted.
    let out = curl(&[
        "-u",
        "me:open sesame",
        "-H",
        &hdr,
        "-H",
        "Host: evil.example",
        "-X",
        "POST",
        "-d",
        body,
        &url,
    ]);
    assert!(out.starts_with("HTTP/1.1 421"), "{out}");
    let out = curl(&[
        "-u",
        "me:open sesame",
        "-H",
        &hdr,
        "-H",
        "Host: nas.lan:9091",
        "-X",
        "POST",
        "-d",
        body,
        &url,
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // The web redirect.
    let out = curl(&[&format!("http://127.0.0.1:{port}/transmission/web/")]);
    assert!(
        out.starts_with("HTTP/1.1 301") && out.contains("Location: /"),
        "{out}"
    );

    let mut rpc = Rpc::new(port, Some("me:open sesame"));
    // Malformed JSON, no method, unknown method, field, argument, id.
    let (status, v) = rpc.post("{\"method\": ");
    assert_eq!(status, 400);
    assert!(
        v["result"].as_str().unwrap().starts_with("malformed JSON"),
        "{v}"
    );
    assert!(rpc
        .err("no-such-method", json!({}))
        .contains("not recognized"));
    assert!(rpc
        .err("torrent-get", json!({"fields": ["id", "nope"]}))
        .contains("unknown field nope"));
    assert!(rpc.err("torrent-get", json!({})).contains("fields"));
    assert!(rpc
        .err("session-set", json!({"bogus": 1}))
        .contains("unknown argument"));
    assert!(rpc
        .err("torrent-stop", json!({"ids": [42]}))
        .contains("no torrent with id 42"));
    assert!(rpc
        .err(
            "torrent-remove",
            json!({"ids": ["ffffffffffffffffffffffffffffffffffffffff"]})
        )
        .contains("no torrent"));
    // Paths the daemon may not read through the RPC.
    for f in ["/etc/passwd", "relative.torrent"] {
        assert!(
            rpc.err("torrent-add", json!({"filename": f}))
                .contains("filename"),
            "{f}"
        );
    }
    let inside = state.join("x.torrent");
    std::fs::write(&inside, b"d4:infod4:name1:xee").unwrap();
    assert!(rpc
        .err("torrent-add", json!({"filename": inside}))
        .contains("state directory"));
    assert!(rpc
        .err("torrent-add", json!({"metainfo": "!!!"}))
        .contains("base64"));
    assert!(rpc
        .err("torrent-add", json!({"metainfo": "aGVsbG8="}))
        .contains("not a torrent"));
    // A URL that redirects forever, one that serves gigabytes.
    let web = tmp.subdir("web");
    let (mut server, web_port) = http_server(&web);
    let e = rpc.err(
        "torrent-add",
        json!({"filename": format!("http://127.0.0.1:{web_port}/loop")}),
    );
    assert!(e.contains("redirect"), "{e}");
    let e = rpc.err(
        "torrent-add",
        json!({"filename": format!("http://127.0.0.1:{web_port}/big")}),
    );
    assert!(e.contains("MiB") || e.contains("large"), "{e}");
    server.kill();
    // A body over the limit: 413 before it is read.
    let huge = format!(
        "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {}\r\nX-Transmission-Session-Id: {}\r\nContent-Length: {}\r\n\r\n",
        rpc.auth.clone().unwrap(),
        rpc.id,
        64 << 20
    );
    assert_eq!(http(port, &huge).0, 413);
    // Nothing was added, and the daemon is fine.
    assert_eq!(
        rpc.ok("torrent-get", json!({"fields": ["id"]}))["torrents"],
        json!([])
    );
    assert_eq!(rpc.ok("session-stats", json!({}))["torrentCount"], 0);
    // rpc-version 18 names.
    let s = rpc.ok(
        "session_get",
        json!({"fields": ["rpc_version", "download_dir"]}),
    );
    assert_eq!(s["rpc_version"], 17);
    assert!(s["download_dir"].is_string(), "{s}");
    assert!(daemon.try_status().is_none(), "{}", daemon.output());
    // session-close stops the daemon.
    rpc.ok("session-close", json!({}));
    assert!(
        daemon.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        daemon.output()
    );
}

/// A leecher (`peer FILE --peer ADDR`) downloading from `addr` only.
fn start_leecher(tmp: &TempDir, torrent: &Path, addr: &str) -> Child {
    let dir = tmp.subdir("leech");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent).arg("--dir").arg(&dir).args([
        "--peer",
        addr,
        "--port",
        &free_port().to_string(),
        "--no-lsd",
        "--no-dht",
        "--once",
    ]);
    Child::spawn("peer leech", cmd)
}

#[test]
fn seeding_limits_and_labels_apply_and_survive_a_restart() {
    let tmp = TempDir::new("p23-limits");
    let data = tmp.subdir("data");
    let src = make_multi_file_dir(&data, NAME);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &[]);
    let state = tmp.subdir("state");
    let port = free_port();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    let s = rpc.ok("session-get", json!({}));
    assert_eq!(
        (
            s["seedRatioLimited"].clone(),
            s["idle-seeding-limit-enabled"].clone()
        ),
        (json!(false), json!(false))
    );
    let added = rpc.ok(
        "torrent-add",
        json!({"filename": torrent, "download-dir": data, "labels": ["tv", "hd"]}),
    );
    let id = added["torrent-added"]["id"].as_u64().unwrap();
    assert!(wait_until(LONG_WAIT, || rpc.torrents(&["status"])[0]
        ["status"]
        == 6));
    let f = [
        "seedRatioMode",
        "seedRatioLimit",
        "seedIdleMode",
        "seedIdleLimit",
        "labels",
    ];
    let t = &rpc.torrents(&f)[0];
    assert_eq!(
        (t["seedRatioMode"].clone(), t["seedIdleMode"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(t["labels"], json!(["tv", "hd"]));
    // Limits of its own: idle 45 minutes, ratio 1. Nothing uploaded yet:
    // it goes on seeding.
    rpc.ok(
        "torrent-set",
        json!({"ids": [id], "seedIdleLimit": 45, "seedIdleMode": 1}),
    );
    rpc.ok(
        "torrent-set",
        json!({"ids": [id], "seedRatioLimit": 1.0, "seedRatioMode": 1}),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rpc.torrents(&["status"])[0]["status"], 6);
    assert!(rpc
        .err("torrent-set", json!({"ids": [id], "seedRatioMode": 7}))
        .contains("seedRatioMode"));
    assert!(rpc
        .err("torrent-set", json!({"ids": [id], "seedRatioLimit": -1}))
        .contains("seedRatioLimit"));
    // A leecher takes the whole torrent from it: ratio 1 reached, the
    // torrent stops seeding (Transmission's "finished").
    let peer_port = rpc.ok("session-get", json!({"fields": ["peer-port"]}))["peer-port"]
        .as_u64()
        .unwrap();
    let mut leecher = start_leecher(&tmp, &torrent, &format!("127.0.0.1:{peer_port}"));
    let stopped = wait_until(LONG_WAIT, || {
        let t = &rpc.torrents(&["status", "isFinished"])[0];
        t["status"] == 0 && t["isFinished"] == true
    });
    let t = &rpc.torrents(&["uploadedEver", "totalSize", "uploadRatio"])[0];
    assert!(stopped, "{t}\n{}", leecher.output());
    assert!(
        t["uploadedEver"].as_u64().unwrap() >= t["totalSize"].as_u64().unwrap(),
        "{t}"
    );
    assert!(t["uploadRatio"].as_f64().unwrap() >= 1.0, "{t}");
    leecher.kill();
    assert_eq!(our_get(&state, "/torrents")[0]["state"], "finished");
    // Our API: the limits, the labels, the filter by label.
    let ours = our_get(&state, "/torrents?label=hd");
    assert_eq!(ours.as_array().unwrap().len(), 1);
    assert_eq!(ours[0]["seed_ratio_limit"], 1.0);
    assert_eq!(ours[0]["seed_idle_limit"], 45 * 60);
    assert_eq!(ours[0]["labels"], json!(["tv", "hd"]));
    assert_eq!(our_get(&state, "/torrents?label=movies"), json!([]));

    // Kept in the state directory. This run counts from zero: it seeds.
    daemon.kill();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    assert!(wait_until(LONG_WAIT, || !rpc.torrents(&["id"]).is_empty()));
    let t = &rpc.torrents(&f)[0];
    assert_eq!(t["seedRatioMode"], 1, "{t}");
    assert_eq!(t["seedRatioLimit"], 1.0);
    assert_eq!(
        (t["seedIdleMode"].clone(), t["seedIdleLimit"].clone()),
        (json!(1), json!(45))
    );
    assert_eq!(t["labels"], json!(["tv", "hd"]));
    assert!(wait_until(LONG_WAIT, || rpc.torrents(&["status"])[0]
        ["status"]
        == 6));
    // The session's limit: a ratio of 0, reached at once by a torrent that
    // follows the session's limit; not by one with a limit of its own.
    rpc.ok(
        "session-set",
        json!({"seedRatioLimited": true, "seedRatioLimit": 0.0, "idle-seeding-limit": 20}),
    );
    let s = rpc.ok("session-get", json!({}));
    assert_eq!(
        (
            s["seedRatioLimited"].clone(),
            s["seedRatioLimit"].clone(),
            s["idle-seeding-limit-enabled"].clone(),
            s["idle-seeding-limit"].clone()
        ),
        (json!(true), json!(0.0), json!(false), json!(20))
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rpc.torrents(&["status"])[0]["status"], 6);
    rpc.ok("torrent-set", json!({"ids": [id], "seedRatioMode": 0}));
    assert!(wait_until(Duration::from_secs(20), || {
        rpc.torrents(&["status"])[0]["status"] == 0
    }));
    let t = &rpc.torrents(&f)[0];
    assert_eq!(
        (t["seedRatioMode"].clone(), t["seedRatioLimit"].clone()),
        (json!(0), json!(0.0))
    );
    // The session's limits are kept too (settings.json).
    daemon.kill();
    let mut daemon = start_daemon(&state, port, &[]);
    let mut rpc = Rpc::new(port, None);
    let s = rpc.ok("session-get", json!({}));
    assert_eq!(
        (
            s["seedRatioLimited"].clone(),
            s["seedRatioLimit"].clone(),
            s["idle-seeding-limit"].clone()
        ),
        (json!(true), json!(0.0), json!(20))
    );
    // Unlimited again.
    rpc.ok("session-set", json!({"seedRatioLimited": false}));
    rpc.ok(
        "torrent-set",
        json!({"seedRatioMode": 2, "seedIdleMode": 0}),
    );
    let t = &rpc.torrents(&f)[0];
    assert_eq!(
        (t["seedRatioMode"].clone(), t["seedIdleMode"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(
        our_get(&state, "/torrents")[0]["seed_ratio_limit"],
        "unlimited"
    );
    daemon.kill();
}
