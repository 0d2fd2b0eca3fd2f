//! Sequential download (issue 24): `peer FILE --sequential` fetching from
//! our seeder, rate-limited on loopback, completes its pieces in (nearly)
//! ascending order, and the copy is byte-identical; the same download
//! without the flag does not (rarest-first, random ties), so the check can
//! fail.
//!
//! How the order is seen: the leecher writes a piece to its (preallocated,
//! zero-filled) file only once the piece is verified, so the test reads the
//! file every 10 ms and notes which pieces hold the source's bytes. At every
//! look, the highest piece on disk may be at most [`TOLERANCE`] pieces past
//! the first piece not yet on disk: the picker's window is 16 pieces
//! (`sequence::DEFAULT_WINDOW`), and pieces verified together are written
//! by the disk writer in batches, possibly out of order within a batch.
//!
//! The daemon's control API: the `sequential` and `first_last_piece` keys
//! of `POST /torrents`, `POST /torrents/ID/order`, the torrent object.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const PIECE: usize = 32 * 1024;
const PIECES: usize = 128; // 4 MiB: 4 s at the seeder's 1 MiB/s
const TOLERANCE: usize = 24;

/// Run a leecher (with `flags`) against the seeder on `port` and return
/// the largest spread (highest piece on disk minus the first missing one)
/// seen while it downloaded.
fn leech(
    tmp: &TempDir,
    name: &str,
    torrent: &Path,
    src: &[u8],
    port: u16,
    flags: &[&str],
) -> usize {
    let down = tmp.subdir(name);
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--peer", &format!("127.0.0.1:{port}"), "--once"])
        .args(flags);
    let mut child = Child::spawn(&format!("peer leech {flags:?}"), cmd);
    let file = down.join("seq.bin");
    let mut on_disk = [false; PIECES];
    let mut spread = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let exited = child.try_status().is_some();
        if let Ok(data) = std::fs::read(&file) {
            for (i, seen) in on_disk.iter_mut().enumerate() {
                let r = i * PIECE..((i + 1) * PIECE).min(src.len());
                if !*seen && data.get(r.clone()) == Some(&src[r]) {
                    *seen = true;
                }
            }
            let front = on_disk.iter().position(|s| !s).unwrap_or(PIECES);
            if let Some(far) = on_disk.iter().rposition(|s| *s) {
                spread = spread.max(far.saturating_sub(front));
            }
        }
        if exited || on_disk.iter().all(|s| *s) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = child.wait_exit(Duration::from_secs(60));
    assert!(st.is_some_and(|s| s.success()), "{}", child.output());
    assert!(on_disk.iter().all(|s| *s), "not every piece seen on disk");
    let got = std::fs::read(&file).unwrap_or_default();
    assert!(got == src, "{name}: the copy differs from the source");
    spread
}

#[test]
fn sequential_leecher_completes_pieces_in_order() {
    let tmp = TempDir::new("sequential");
    let seed_dir = tmp.subdir("seed");
    let src_path = make_single_file(&seed_dir, "seq.bin", PIECE * PIECES);
    let src = std::fs::read(&src_path).expect("read the source");
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src_path, &torrent, &["--piece-length", "32K"]);
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .args(["--max-upload-rate", "1M"]);
    let mut seeder = Child::spawn("peer seed (1 MiB/s)", cmd);
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "{}",
        seeder.output()
    );
    let seq = leech(&tmp, "seq", &torrent, &src, port, &["--sequential"]);
    let rarest = leech(&tmp, "rarest", &torrent, &src, port, &[]);
    seeder.kill();
    eprintln!("largest spread: sequential {seq} pieces, rarest-first {rarest} pieces");
    assert!(
        seq <= TOLERANCE,
        "--sequential: a piece {seq} pieces past the first missing one was on disk"
    );
    assert!(
        rarest > TOLERANCE,
        "without --sequential the order was nearly ascending too ({rarest}): the check proves nothing"
    );
}

/// One control API call; the status code and the JSON body.
fn call(port: u16, token: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Value::Null);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    let v =
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap_or(Value::Null);
    (code, v)
}

#[test]
fn daemon_api_sets_and_shows_the_piece_order() {
    let tmp = TempDir::new("sequential-api");
    let src = make_single_file(&tmp.subdir("src"), "api.bin", 256 * 1024);
    let torrent = tmp.path().join("a.torrent");
    let ih = peer_create_torrent(&src, &torrent, &["--piece-length", "32K"]);
    let state = tmp.subdir("state");
    let (mut d, port, token) = start_daemon_api(&state);
    let down = tmp.subdir("down");
    let body = json!({"path": torrent, "dir": down, "sequential": true}).to_string();
    let (code, added) = call(port, &token, "POST", "/torrents", &body);
    assert!((200..300).contains(&code), "{code} {added}\n{}", d.output());
    let path = format!("/torrents/{}", &ih[..8]);
    let mut t = Value::Null;
    // The status snapshot is published by the torrent thread.
    let shown = wait_until(Duration::from_secs(20), || {
        t = call(port, &token, "GET", &path, "").1;
        t["sequential"] == json!(true)
    });
    assert!(shown, "{t}");
    assert_eq!(t["first_last_piece"], json!(false), "{t}");
    // A key left out keeps its value.
    let (code, v) = call(
        port,
        &token,
        "POST",
        &format!("{path}/order"),
        r#"{"first_last_piece":true}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["sequential"], json!(true), "{v}");
    assert_eq!(v["first_last_piece"], json!(true), "{v}");
    let (code, v) = call(
        port,
        &token,
        "POST",
        &format!("{path}/order"),
        r#"{"sequential":false}"#,
    );
    assert_eq!(code, 200, "{v}");
    let shown = wait_until(Duration::from_secs(20), || {
        t = call(port, &token, "GET", &path, "").1;
        t["sequential"] == json!(false) && t["first_last_piece"] == json!(true)
    });
    assert!(shown, "{t}");
    // Not a boolean: 400; a method other than POST: 405; no such torrent: 404.
    let (code, v) = call(
        port,
        &token,
        "POST",
        &format!("{path}/order"),
        r#"{"sequential":"yes"}"#,
    );
    assert_eq!(code, 400, "{v}");
    let (code, _) = call(port, &token, "GET", &format!("{path}/order"), "");
    assert_eq!(code, 405);
    let (code, _) = call(port, &token, "POST", "/torrents/00000000/order", "{}");
    assert_eq!(code, 404);
    let body = json!({"path": torrent, "dir": tmp.subdir("d2"), "sequential": 1}).to_string();
    let (code, _) = call(port, &token, "POST", "/torrents", &body);
    assert_eq!(code, 400, "a non-boolean `sequential` on add");
    d.kill();
}
