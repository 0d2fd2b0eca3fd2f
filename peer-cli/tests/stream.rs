//! Streaming over HTTP from the daemon (issue 24): the daemon downloads a
//! torrent from our rate-limited seeder while ranged `GET`s at random
//! offsets of `/stream/<info-hash>/<index>/<name>?token=` return exactly the
//! source's bytes (the first one before the download is complete: each
//! read steers the download to its bytes). `HEAD`, a read with no `Range`,
//! several readers at once; and the errors: a bad token (401), a file index
//! out of range (404), a range past the end (416).

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use support::*;

const PIECE: usize = 32 * 1024;
const LEN: usize = 4 * 1024 * 1024; // 8 s at the seeder's 512 KiB/s

/// One raw HTTP request: status, head (lower case), body.
fn http(port: u16, method: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new(), Vec::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
    );
    let _ = s.write_all(req.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    let body = out.get(split + 4..).unwrap_or_default().to_vec();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head, body)
}

fn api(port: u16, token: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let extra = format!(
        "Authorization: Bearer {token}\r\nContent-Length: {}\r\n",
        body.len()
    );
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Value::Null);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n{body}"
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

/// A ranged read of `a..=b`; asserts the answer and returns the bytes.
fn ranged(port: u16, path: &str, a: usize, b: usize) -> Vec<u8> {
    let (code, head, body) = http(port, "GET", path, &format!("Range: bytes={a}-{b}\r\n"));
    assert_eq!(code, 206, "bytes={a}-{b}: {head}");
    assert!(
        head.contains(&format!("content-range: bytes {a}-{b}/{LEN}")),
        "{head}"
    );
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    body
}

#[test]
fn ranged_reads_while_downloading_return_the_source_bytes() {
    let tmp = TempDir::new("stream");
    let seed_dir = tmp.subdir("seed");
    let src_path = make_single_file(&seed_dir, "movie.mp4", LEN);
    let src = std::fs::read(&src_path).expect("read the source");
    let torrent = tmp.path().join("m.torrent");
    let ih = peer_create_torrent(&src_path, &torrent, &["--piece-length", "32K"]);
    let seed_port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &seed_port.to_string(), "--no-lsd", "--no-dht"])
        .args(["--max-upload-rate", "512K"]);
    let mut seeder = Child::spawn("peer seed (512 KiB/s)", cmd);
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect(("127.0.0.1", seed_port))
            .is_ok()),
        "{}",
        seeder.output()
    );
    let state = tmp.subdir("state");
    let (mut d, port, token) = start_daemon_api(&state);
    let magnet = format!("magnet:?xt=urn:btih:{ih}&x.pe=127.0.0.1:{seed_port}");
    let body = json!({"magnet": magnet, "dir": tmp.subdir("down")}).to_string();
    let (code, added) = api(port, &token, "POST", "/torrents", &body);
    assert!((200..300).contains(&code), "{code} {added}\n{}", d.output());
    // The stream URLs (once the metadata is here).
    let mut list = Value::Null;
    let listed = wait_until(Duration::from_secs(30), || {
        list = api(port, &token, "GET", &format!("/torrents/{ih}/streams"), "").1;
        list["files"][0]["url"].is_string()
    });
    assert!(listed, "{list}\n{}", d.output());
    let url = list["files"][0]["url"].as_str().unwrap_or("");
    let path = url
        .split_once(&format!("127.0.0.1:{port}"))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    assert!(
        path.starts_with(&format!("/stream/{ih}/0/movie.mp4?token=")),
        "{url}"
    );
    assert_ne!(
        list["stream_token"],
        json!(token),
        "the control token is never in a URL"
    );

    // HEAD: the length, the media type, ranges accepted; no body.
    let (code, head, body) = http(port, "HEAD", &path, "");
    assert_eq!(code, 200, "{head}");
    assert!(head.contains(&format!("content-length: {LEN}")), "{head}");
    assert!(head.contains("content-type: video/mp4"), "{head}");
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    assert!(body.is_empty());

    // Ranged reads at pseudo-random offsets, the first while downloading.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    for i in 0..8 {
        let a = next(LEN);
        let b = (a + next(3 * PIECE)).min(LEN - 1);
        let got = ranged(port, &path, a, b);
        assert!(got == src[a..=b], "bytes {a}-{b} differ from the source");
        if i == 0 {
            let (_, t) = api(port, &token, "GET", &format!("/torrents/{ih}"), "");
            let progress = t["progress"].as_f64().unwrap_or(1.0);
            assert!(
                progress < 1.0,
                "the download was complete before the first read: {t}"
            );
        }
    }
    // Several readers at once, each its own range.
    let readers: Vec<_> = (0..3)
        .map(|k| {
            let (a, b) = (k * LEN / 3 + 1000, k * LEN / 3 + 1000 + 2 * PIECE);
            let p = path.clone();
            (a, b, std::thread::spawn(move || ranged(port, &p, a, b)))
        })
        .collect();
    for (a, b, t) in readers {
        let got = t.join().expect("reader thread");
        assert!(got == src[a..=b], "concurrent bytes {a}-{b} differ");
    }
    // The last bytes (`bytes=-N`), then the whole file with no Range.
    let (code, head, body) = http(port, "GET", &path, "Range: bytes=-100\r\n");
    assert_eq!(code, 206, "{head}");
    assert!(body == src[LEN - 100..], "the last 100 bytes differ");
    let (code, head, body) = http(port, "GET", &path, "");
    assert_eq!(code, 200, "{head}");
    assert_eq!(body.len(), LEN, "{head}");
    assert!(body == src, "the whole file differs from the source");

    // Errors: a range past the end, a bad token, a file out of range, no token.
    let (code, head, body) = http(port, "GET", &path, &format!("Range: bytes={LEN}-\r\n"));
    assert_eq!(code, 416, "{head}");
    assert!(
        head.contains(&format!("content-range: bytes */{LEN}")),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("past the end"));
    let bad = format!("/stream/{ih}/0/movie.mp4?token=0123");
    let (code, _, body) = http(port, "GET", &bad, "");
    assert_eq!(code, 401);
    assert!(String::from_utf8_lossy(&body).contains("stream token"));
    let (code, _, _) = http(port, "GET", &format!("/stream/{ih}/0/movie.mp4"), "");
    assert_eq!(code, 401, "no token");
    let out_of_range = path.replace("/0/movie.mp4", "/7/movie.mp4");
    let (code, _, body) = http(port, "GET", &out_of_range, "");
    assert_eq!(code, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("has no file 7"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // The stream token opens streams only.
    let st = list["stream_token"].as_str().unwrap_or("");
    let (code, _, _) = http(port, "GET", &format!("/torrents?token={st}"), "");
    assert_eq!(code, 401, "the stream token must not open the API");
    let (code, _, _) = http(port, "POST", &path, "Content-Length: 0\r\n");
    assert_eq!(code, 405);
    d.kill();
    seeder.kill();
}

/// `GET /torrents/ID/playlist.m3u`: `#EXTM3U`, then one `#EXTINF:-1,PATH`
/// and URL per file of a multi-file torrent, in file order; every URL opens
/// with `206` on a `Range` and returns that file's bytes. Authorised like the
/// API (no token: 401; the stream token alone: 401).
#[test]
fn playlist_lists_every_file_and_its_urls_open() {
    let tmp = TempDir::new("playlist");
    let seed_dir = tmp.subdir("seed");
    let top = make_multi_file_dir(&seed_dir, "album");
    let want = read_tree(&top);
    let torrent = tmp.path().join("a.torrent");
    let ih = peer_create_torrent(&top, &torrent, &["--piece-length", "32K"]);
    let seed_port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &seed_port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect(("127.0.0.1", seed_port))
            .is_ok()),
        "{}",
        seeder.output()
    );
    let state = tmp.subdir("state");
    let (mut d, port, token) = start_daemon_api(&state);
    let magnet = format!("magnet:?xt=urn:btih:{ih}&x.pe=127.0.0.1:{seed_port}");
    let body = json!({"magnet": magnet, "dir": tmp.subdir("down")}).to_string();
    let (code, added) = api(port, &token, "POST", "/torrents", &body);
    assert!((200..300).contains(&code), "{code} {added}\n{}", d.output());
    let auth = format!("Authorization: Bearer {token}\r\n");
    let m3u = format!("/torrents/{ih}/playlist.m3u");
    let (mut code, mut head, mut body) = (0, String::new(), Vec::new());
    let got = wait_until(Duration::from_secs(30), || {
        (code, head, body) = http(port, "GET", &m3u, &auth);
        code == 200
    });
    assert!(got, "{code} {head}\n{}", d.output());
    assert!(head.contains("content-type: audio/x-mpegurl"), "{head}");
    let text = String::from_utf8_lossy(&body).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{text}");
    // The same files, in the same order, as GET /torrents/ID/streams.
    let (_, list) = api(port, &token, "GET", &format!("/torrents/{ih}/streams"), "");
    let files = list["files"].as_array().cloned().unwrap_or_default();
    assert_eq!(files.len(), want.len(), "{list}");
    assert_eq!(lines.len(), 1 + 2 * files.len(), "{text}");
    for (k, f) in files.iter().enumerate() {
        let fpath = f["path"].as_str().unwrap_or("");
        let url = f["url"].as_str().unwrap_or("");
        assert_eq!(lines[1 + 2 * k], format!("#EXTINF:-1,{fpath}"), "{text}");
        assert_eq!(lines[2 + 2 * k], url, "{text}");
        // The URL as a player opens it: a Range, 206, the file's bytes.
        let rel = fpath.strip_prefix("album/").unwrap_or(fpath);
        let src = want
            .get(rel)
            .unwrap_or_else(|| panic!("{rel} not in the source"));
        let path = url
            .split_once(&format!("127.0.0.1:{port}"))
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        let b = src.len().min(70_000) - 1;
        let (code, head, got) = http(port, "GET", &path, &format!("Range: bytes=0-{b}\r\n"));
        assert_eq!(code, 206, "{url}: {head}");
        assert!(
            head.contains(&format!("content-range: bytes 0-{b}/{}", src.len())),
            "{head}"
        );
        assert!(
            got == src[..=b],
            "{fpath}: the bytes differ from the source"
        );
    }
    // Authorised like the API: not by the stream token, not without one.
    let st = list["stream_token"].as_str().unwrap_or("");
    let (code, _, _) = http(port, "GET", &format!("{m3u}?token={st}"), "");
    assert_eq!(code, 401, "the stream token must not open the playlist");
    let (code, _, _) = http(port, "GET", &m3u, "");
    assert_eq!(code, 401, "no token");
    let (code, _, _) = http(port, "POST", &m3u, &format!("{auth}Content-Length: 0\r\n"));
    assert_eq!(code, 405);
    d.kill();
    seeder.kill();
}

/// `peer FILE --stream` (the plain command, no daemon): it prints each
/// file's URL and a playlist URL on 127.0.0.1 with a random token; `HEAD`,
/// the playlist, a bad or missing token (`401`); then, while it downloads
/// from our seeder at 512 KiB/s, two readers far apart (one long `GET` from
/// the start, one from the middle of the file), both return the source's
/// bytes and both progress at once: the one in the middle has its first
/// 256 KiB before the first has read its half (each reader's next pieces by
/// deadline; in order from the lowest reader alone, which this test was
/// checked to fail with, the middle one waits for the whole half); with
/// `--once` it then ends with the file identical.
#[test]
fn plain_peer_streams_while_downloading() {
    use std::sync::Arc;
    let tmp = TempDir::new("plain-stream");
    let seed_dir = tmp.subdir("seed");
    let src_path = make_single_file(&seed_dir, "movie.mp4", LEN);
    let src = Arc::new(std::fs::read(&src_path).expect("read the source"));
    let torrent = tmp.path().join("m.torrent");
    let ih = peer_create_torrent(&src_path, &torrent, &["--piece-length", "32K"]);
    let seed_port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &seed_port.to_string(), "--no-lsd", "--no-dht"])
        .args(["--max-upload-rate", "512K"]);
    let mut seeder = Child::spawn("peer seed (512 KiB/s)", cmd);
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect(("127.0.0.1", seed_port))
            .is_ok()),
        "{}",
        seeder.output()
    );
    let down = tmp.subdir("down");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--peer", &format!("127.0.0.1:{seed_port}")])
        .args(["--stream", "--once"]);
    let mut leecher = Child::spawn("peer --stream", cmd);
    assert!(
        leecher.wait_for_output("playlist ", LONG_WAIT),
        "{}",
        leecher.output()
    );
    let out = String::from_utf8_lossy(&leecher.stdout_bytes()).to_string();
    let url_of = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_default()
            .to_string()
    };
    let url = url_of("stream movie.mp4: ");
    let playlist = url_of(&format!("playlist {ih}: "));
    // http://127.0.0.1:PORT/stream/<ih>/0/movie.mp4?token=T
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap_or_default();
    let (port, path) = rest.split_once('/').unwrap_or_default();
    let port: u16 = port.parse().unwrap_or(0);
    let path = format!("/{path}");
    assert!(
        path.starts_with(&format!("/stream/{ih}/0/movie.mp4?token=")) && port != 0,
        "{out}"
    );
    let token = path.rsplit_once("token=").map(|(_, t)| t).unwrap_or("");
    assert!(token.len() >= 16, "a random token: {out}");

    // HEAD, the playlist, and the token.
    let (code, head, _) = http(port, "HEAD", &path, "");
    assert_eq!(code, 200, "{head}");
    assert!(head.contains("content-type: video/mp4"), "{head}");
    let ppath = playlist
        .split_once(&format!("127.0.0.1:{port}"))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let (code, head, body) = http(port, "GET", &ppath, "");
    assert_eq!(code, 200, "{playlist}: {head}");
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(text, format!("#EXTM3U\n#EXTINF:-1,movie.mp4\n{url}\n"));
    let bad = path.replace(token, "0123456789abcdef0123456789abcdef");
    let (code, _, _) = http(port, "GET", &bad, "Range: bytes=0-9\r\n");
    assert_eq!(code, 401, "a bad token");
    let none = format!("/stream/{ih}/0/movie.mp4");
    let (code, _, _) = http(port, "GET", &none, "Range: bytes=0-9\r\n");
    assert_eq!(code, 401, "no token");
    let (code, _, _) = http(port, "GET", &ppath.replace(token, "x"), "");
    assert_eq!(code, 401, "the playlist with a bad token");

    // Two readers far apart, each one long GET read as it comes (a
    // player's connection: its reader stays for the whole body); each
    // notes when it had how many bytes.
    let reader = |from: usize, to: usize| {
        let (p, src) = (path.clone(), src.clone());
        std::thread::spawn(move || {
            let mut seen: Vec<(std::time::Instant, usize)> = Vec::new();
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                return seen;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
            let req = format!(
                "GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nRange: bytes={from}-{}\r\nConnection: close\r\n\r\n",
                to - 1
            );
            let _ = s.write_all(req.as_bytes());
            let mut buf = vec![0u8; 64 * 1024];
            let mut got: Vec<u8> = Vec::new();
            let mut body_at: Option<usize> = None;
            while let Ok(n @ 1..) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
                if body_at.is_none() {
                    body_at = got.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
                }
                if let Some(b) = body_at {
                    let body = &got[b..];
                    assert!(
                        body == &src[from..from + body.len()],
                        "the bytes from {from} differ"
                    );
                    seen.push((std::time::Instant::now(), body.len()));
                }
            }
            seen
        })
    };
    let mid = LEN / 2 + 1234;
    let t1 = reader(0, LEN / 2);
    let t2 = reader(mid, mid + LEN / 4);
    let (early, late) = (t1.join(), t2.join());
    let (early, late) = (early.unwrap_or_default(), late.unwrap_or_default());
    assert_eq!(early.last().map(|e| e.1), Some(LEN / 2), "{early:?}");
    assert_eq!(late.last().map(|e| e.1), Some(LEN / 4), "{late:?}");
    assert!(
        leecher.try_status().is_none(),
        "the download was complete before the readers ended: {}",
        leecher.output()
    );
    // Both progress at once: when the reader in the middle had its first
    // 256 KiB, the first had not read its whole half (so the download was
    // far from complete). In order from the lowest reader alone, the middle
    // one would have waited for all of it (checked: then it fails).
    let when = late
        .iter()
        .find(|e| e.1 >= 256 * 1024)
        .map(|e| e.0)
        .unwrap_or_else(std::time::Instant::now);
    let early_then = early
        .iter()
        .take_while(|e| e.0 <= when)
        .last()
        .map_or(0, |e| e.1);
    let ms = |v: &[(std::time::Instant, usize)]| {
        let t0 = early.first().map(|e| e.0).unwrap_or(when);
        v.iter()
            .map(|e| (e.0.saturating_duration_since(t0).as_millis(), e.1 >> 10))
            .collect::<Vec<_>>()
    };
    assert!(
        early_then < LEN / 2,
        "the far reader waited for the first: {early_then} bytes read from the start when it had 256 KiB\nfirst (ms, KiB): {:?}\nfar: {:?}",
        ms(&early),
        ms(&late)
    );

    // --once: it ends when complete, with the source's bytes.
    assert!(
        leecher
            .wait_exit(Duration::from_secs(120))
            .is_some_and(|s| s.success()),
        "{}",
        leecher.output()
    );
    assert!(
        std::fs::read(down.join("movie.mp4")).is_ok_and(|d| d == *src),
        "the downloaded file differs"
    );
    seeder.kill();
}
