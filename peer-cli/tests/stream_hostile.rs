//! Streaming over HTTP under a crowd (issue 24, "thousands of concurrent
//! readers: clear errors, bounded threads"): 1,000 connections opened at once
//! to the daemon's stream URL, each with a whole-file `GET` written, half of
//! them never read. The daemon's thread count (`/proc/PID/status`) stays
//! within a fixed bound of what it was before; every connection that is read
//! gets either the file's exact bytes, a `503`, or is closed (never a hang,
//! never wrong bytes); some get `503`; and once they are gone a normal ranged
//! read returns the right bytes.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

const LEN: usize = 4 * 1024 * 1024;
const CROWD: usize = 1000;
/// Threads the daemon may add while the crowd is connected (its pool is
/// fixed: a thread per connection would add hundreds).
const THREAD_SLACK: i64 = 16;

fn api(port: u16, token: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    control_api(port, token, method, path, body)
}

/// Split a raw answer into status, head (lower case) and body.
fn parse(out: &[u8]) -> (u16, String, &[u8]) {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    let body = out.get(split + 4..).unwrap_or_default();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head, body)
}

fn threads_of(pid: u32) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(-1)
}

/// How one read connection ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Whole,
    Busy,
    Closed,
    Other(String),
}

#[test]
fn a_thousand_readers_at_once_get_bytes_or_503_with_bounded_threads() {
    let tmp = TempDir::new("stream-crowd");
    let seed_dir = tmp.subdir("seed");
    let src_path = make_single_file(&seed_dir, "movie.mp4", LEN);
    let src = std::fs::read(&src_path).expect("read the source");
    let torrent = tmp.path().join("m.torrent");
    let ih = peer_create_torrent(&src_path, &torrent, &["--piece-length", "64K"]);
    let state = tmp.subdir("state");
    let (d, port, token) = start_daemon_api(&state);
    // The daemon seeds the file it already has (so every read can be answered).
    let body = json!({"path": torrent, "dir": seed_dir}).to_string();
    let (code, added) = api(port, &token, "POST", "/torrents", &body);
    assert!((200..300).contains(&code), "{code} {added}\n{}", d.output());
    let mut list = Value::Null;
    let listed = wait_until(Duration::from_secs(30), || {
        list = api(port, &token, "GET", &format!("/torrents/{ih}/streams"), "").1;
        list["files"][0]["url"].is_string()
    });
    assert!(listed, "{list}\n{}", d.output());
    let url = list["files"][0]["url"].as_str().unwrap_or("").to_string();
    let path = url
        .split_once(&format!("127.0.0.1:{port}"))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    assert!(path.starts_with(&format!("/stream/{ih}/0/")), "{url}");
    let verified = wait_until(Duration::from_secs(30), || {
        let (_, t) = api(port, &token, "GET", &format!("/torrents/{ih}"), "");
        t["progress"].as_f64() == Some(1.0) || t["bytes_have"].as_u64() == Some(LEN as u64)
    });
    assert!(verified, "{}", d.output());

    let pid = d.id();
    let before = threads_of(pid);
    assert!(before > 0, "no /proc/{pid}/status");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");

    // Open the crowd from 10 threads at once; each writes its request.
    let started = Instant::now();
    let openers: Vec<_> = (0..10)
        .map(|_| {
            let req = req.clone();
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                let mut failed = 0usize;
                for _ in 0..CROWD / 10 {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
                        Ok(mut s) => {
                            let _ = s.write_all(req.as_bytes());
                            conns.push(s);
                        }
                        Err(_) => failed += 1,
                    }
                }
                (conns, failed)
            })
        })
        .collect();
    let mut peak = before;
    let mut groups = Vec::new();
    let mut connect_failed = 0;
    for o in openers {
        peak = peak.max(threads_of(pid));
        let (c, f) = o.join().expect("opener thread");
        groups.push(c);
        connect_failed += f;
    }
    let opened: usize = groups.iter().map(Vec::len).sum();
    eprintln!(
        "opened {opened} connections ({connect_failed} failed to connect) in {:?}",
        started.elapsed()
    );
    assert!(opened >= CROWD / 2, "only {opened} of {CROWD} connected");

    // Read every second connection (from 10 threads); leave the others unread.
    let mut unread = Vec::new();
    let readers: Vec<_> = groups
        .into_iter()
        .map(|conns| {
            let mut read = Vec::new();
            for (i, c) in conns.into_iter().enumerate() {
                if i % 2 == 0 {
                    read.push(c);
                } else {
                    unread.push(c);
                }
            }
            let src = src.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for mut c in read {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
                    let mut out = Vec::new();
                    let res = c.read_to_end(&mut out);
                    let (code, head, body) = parse(&out);
                    let hung = matches!(&res, Err(e) if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ));
                    outcomes.push(match (res, code) {
                        _ if hung => {
                            Outcome::Other(format!("no answer in 60 s ({} bytes)", out.len()))
                        }
                        (_, 0) if out.is_empty() => Outcome::Closed,
                        (Err(e), _) => Outcome::Other(format!("{e} after {} bytes", out.len())),
                        (Ok(_), 200) if body == &src[..] => Outcome::Whole,
                        (Ok(_), 503) => Outcome::Busy,
                        (Ok(_), c) => Outcome::Other(format!("{c} {head} ({} bytes)", body.len())),
                    });
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    while readers.iter().any(|r| !r.is_finished()) {
        peak = peak.max(threads_of(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    for r in readers {
        outcomes.extend(r.join().expect("reader thread"));
    }
    peak = peak.max(threads_of(pid));
    let count = |o: &Outcome| outcomes.iter().filter(|x| *x == o).count();
    let (whole, busy, closed) = (
        count(&Outcome::Whole),
        count(&Outcome::Busy),
        count(&Outcome::Closed),
    );
    let bad: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Other(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    eprintln!(
        "read {}: {whole} whole files, {busy} 503, {closed} closed, {} other; threads {before} before, {peak} at most, in {:?}",
        outcomes.len(),
        bad.len(),
        started.elapsed()
    );
    assert!(bad.is_empty(), "{:?}", &bad[..bad.len().min(5)]);
    assert!(busy > 0, "no 503 for {} readers at once", outcomes.len());
    assert!(
        peak - before <= THREAD_SLACK,
        "threads grew from {before} to {peak} with {opened} connections"
    );
    drop(unread);

    // Afterwards a normal ranged read returns the right bytes.
    let (a, b) = (LEN / 3, LEN / 3 + 100_000);
    let mut got = (0, String::new(), Vec::new());
    let ok = wait_until(Duration::from_secs(30), || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nRange: bytes={a}-{b}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let (code, head, body) = parse(&out);
        got = (code, head, body.to_vec());
        code == 206
    });
    assert!(ok, "{} {}\n{}", got.0, got.1, d.output());
    assert!(got.2 == src[a..=b], "wrong bytes after the crowd");
    assert!(threads_of(pid) - before <= THREAD_SLACK);
}
