//! Our own client under test: the `peer` binary, its daemon and its
//! control API.

use super::{free_port, run_bounded, Child, LONG_WAIT};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The `peer` binary under test: the one cargo built for this test run, or `$PEER_BIN`
/// if set (to run the interop tests against another build, e.g. a release binary).
pub fn peer_bin() -> PathBuf {
    match std::env::var_os("PEER_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_peer")),
    }
}

/// Run `peer` with the arguments to completion (bounded by [`LONG_WAIT`]).
pub fn run_peer<S: AsRef<OsStr>>(args: &[S]) -> std::process::Output {
    let mut cmd = Command::new(peer_bin());
    cmd.args(args);
    run_bounded("peer", cmd, LONG_WAIT)
}

/// Start `peer daemon --state STATE` on a free port (LSD and DHT off), wait
/// for its control API and return it with the API's port and token (from
/// `STATE/control.json`).
pub fn start_daemon_api(state: &Path) -> (Child, u16, String) {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon").arg("--state").arg(state).args([
        "--port",
        &free_port().to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut d = Child::spawn("peer daemon", cmd);
    assert!(
        d.wait_for_output("web interface: http://", LONG_WAIT),
        "{}",
        d.output()
    );
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("control.json")).unwrap_or_default(),
    )
    .unwrap_or(serde_json::Value::Null);
    let port = info["port"].as_u64().unwrap_or(0) as u16;
    let token = info["token"].as_str().unwrap_or("").to_string();
    (d, port, token)
}

/// `peer info --json` of `torrent`, parsed.
pub fn peer_info_json(torrent: &Path) -> super::Json {
    let out = run_peer(&[
        OsStr::new("info"),
        torrent.as_os_str(),
        OsStr::new("--json"),
    ]);
    super::Json::parse(&String::from_utf8_lossy(&out.stdout)).expect("peer info JSON")
}

/// `peer create SRC -o OUT EXTRA...`; must succeed. Returns the info-hash
/// it prints (40 lowercase hex).
pub fn peer_create_torrent(src: &Path, out: &Path, extra: &[&str]) -> String {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("create").arg(src).arg("-o").arg(out).args(extra);
    let out = run_bounded("peer create", cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .expect("peer create prints the info-hash")
        .to_string()
}

/// One request to a daemon's control API on 127.0.0.1:`port` with the bearer `token`:
/// the HTTP status (0 when the connection failed) and the JSON body (`Null` when it is
/// not JSON). Reads with a 20 s timeout.
pub fn control_api(
    port: u16,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, serde_json::Value::Null);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(req.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let v = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("null"))
        .unwrap_or(serde_json::Value::Null);
    (code, v)
}
