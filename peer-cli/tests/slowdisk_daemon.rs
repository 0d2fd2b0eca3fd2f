//! A slow or stalling disk freezes nothing, checked as the user meets it
//! (issue 30): `peer daemon`, driven over its control API (HTTP), downloads
//! torrent A onto a FUSE passthrough file system whose writes stall 3 s every
//! 32 writes (`bittorrent-core/tests/support/slowfs.py`) and torrent B onto a
//! normal disk, from a seeder of ours on loopback; another leecher of ours
//! fetches A's verified pieces from the daemon alone (A is private: no PEX),
//! under the daemon's upload cap for A. While A's disk stalls:
//! - every control API call answers in under 100 ms;
//! - a pause of A is applied and reported within 0.5 s and stays (2 s);
//! - A's details list its peers;
//! - the daemon keeps uploading A's verified pieces to the other leecher at
//!   its cap, with no gap over 1 s;
//! - B keeps at least half its (capped) speed in every 3 s window, also
//!   while a third torrent, C, on the stalling disk is removed (the DELETE
//!   answers in under 100 ms);
//! - the daemon's RSS stays under [`RSS_BOUND`].
//!
//! And at the end A (on the backing disk), B and the other leecher's copy of
//! A are byte-identical to the source. (kill -9 during a stall:
//! `slowdisk_kill.rs`.)
//!
//! Every measurement is printed (one `slowdisk:` line each) before the
//! checks, so that the test doubles as the benchmark of docs/BENCHMARKS.md:
//! `PEER_SLOWDISK_FS` replaces the slow file system's arguments (e.g.
//! `--rate 2000000`, or `--stall-at 64 --stall-secs 40`) and
//! `PEER_SLOWDISK_MIB` A's size (8 MiB by default), `PEER_SLOWDISK_UPLOAD_CAP`
//! the daemon's upload cap for A in bytes per second.
//!
//! Needs root, /dev/fuse, fusermount3 and Debian's python3-fusepy; without
//! them, a loud SKIP by hand and a failure under CI=true.
#![allow(clippy::unwrap_used)]

#[path = "../../bittorrent-core/tests/support/slowfs_mount.rs"]
mod slowfs_mount;
mod support;

use base64::Engine;
use bittorrent_core::{AddTorrent, Config, InfoHash, Metainfo, Phase, Session};
use serde_json::{json, Value};
use slowfs_mount::{script, SlowFs};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// The bound for every control API call.
const ANSWER_LIMIT: Duration = Duration::from_millis(100);
/// The bound for a pause to be applied and reported.
const PAUSE_LIMIT: Duration = Duration::from_millis(500);
/// The longest the daemon may go without uploading to the other leecher.
const UPLOAD_GAP_LIMIT: Duration = Duration::from_secs(1);
/// The daemon's upload cap for A (below what the stalling disk writes, so
/// the other leecher always has verified pieces to fetch;
/// `PEER_SLOWDISK_UPLOAD_CAP` overrides it for the benchmark's long stall).
const A_UPLOAD_CAP: u64 = 128 * 1024;
/// The share of the cap the uploads must reach.
const UPLOAD_SHARE: f64 = 0.8;
/// The seeder's cap for B, and the share of it B must keep in every window.
const B_CAP: u64 = 512 * 1024;
const B_WINDOW: Duration = Duration::from_secs(3);
/// The daemon's resident memory at most: its budgets (pieces assembling
/// 64 MiB, the disk queue 16 MiB inside it, kept pieces 32 MiB, the block
/// pool's free list 16 MiB) plus the program and its threads (about 20 MiB).
const RSS_BOUND: u64 = 150 << 20;
const PIECE: usize = 256 * 1024;

fn skip(why: &str) {
    skip_or_fail(
        "the FUSE slow disk",
        &format!("{why}; needs root, /dev/fuse, fuse3 and python3-fusepy"),
    );
}

/// The control API of a running daemon.
struct Api {
    port: u16,
    token: String,
    /// The slowest call so far, and which.
    slowest: (Duration, String),
    calls: u32,
    over: u32,
}

impl Api {
    fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token,
            body.len()
        );
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let took = t.elapsed();
        self.calls += 1;
        if method != "GET" {
            eprintln!("slowdisk: {method} {path}: {took:?}");
        }
        if took >= ANSWER_LIMIT {
            self.over += 1;
            eprintln!("slowdisk: slow call {method} {path}: {took:?}");
        }
        if took > self.slowest.0 {
            self.slowest = (took, format!("{method} {path}"));
        }
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let json = out
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, json)
    }

    fn get(&mut self, path: &str) -> Value {
        let (code, v) = self.call("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse().ok()))
        })
        .map_or(0, |kb: u64| kb * 1024)
}

fn make_torrent(dir: &Path, name: &str, len: usize, seed: u64, out: &Path) -> Metainfo {
    let src = dir.join(name);
    write_file(&src, &pseudo_random(len, seed));
    peer_create_torrent(
        &src,
        out,
        &["--piece-length", &PIECE.to_string(), "--private"],
    );
    Metainfo::from_bytes(&std::fs::read(out).unwrap()).unwrap()
}

fn add_body(torrent: &Path, dir: &Path, upload_cap: Option<u64>) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(torrent).unwrap());
    let mut v = json!({"torrent": b64, "dir": dir.to_str().unwrap()});
    if let Some(cap) = upload_cap {
        v["max_upload_rate"] = json!(cap);
    }
    v
}

fn session() -> Session {
    Session::start(Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        max_handshakes_per_ip: 64,
        dht_routers: Vec::new(),
        dht: false,
        lsd: false,
        ..Config::default()
    })
    .unwrap()
}

/// B's bytes over time, to check its speed in every window.
#[derive(Default)]
struct Progress(Vec<(Instant, u64)>);

impl Progress {
    /// The fewest bytes gained in any `window` between `from` and `to`.
    fn min_gain(&self, window: Duration, from: Instant, to: Instant) -> Option<u64> {
        let s: Vec<_> = self
            .0
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        let mut min = None;
        for (i, (t0, b0)) in s.iter().enumerate() {
            let Some((_, b1)) = s[i..].iter().find(|(t, _)| *t >= *t0 + window) else {
                break;
            };
            let g = b1.saturating_sub(*b0);
            min = Some(min.map_or(g, |m: u64| m.min(g)));
        }
        min
    }
}

#[test]
fn a_stalling_disk_freezes_nothing_in_the_daemon() {
    let tmp = TempDir::new("slowdisk-daemon");
    let backing = tmp.subdir("backing");
    let mnt = tmp.subdir("mnt");
    let fs_args: Vec<String> = std::env::var("PEER_SLOWDISK_FS")
        .unwrap_or_else(|_| "--stall-every 32 --stall-secs 3".into())
        .split_whitespace()
        .map(String::from)
        .collect();
    let args: Vec<&str> = fs_args.iter().map(String::as_str).collect();
    let _fs = match SlowFs::mount(&script(env!("CARGO_MANIFEST_DIR")), &backing, &mnt, &args) {
        Ok(fs) => fs,
        Err(why) => return skip(&why),
    };
    let a_mib: usize = std::env::var("PEER_SLOWDISK_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let up_cap: u64 = std::env::var("PEER_SLOWDISK_UPLOAD_CAP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(A_UPLOAD_CAP);
    eprintln!("slowdisk: file system {fs_args:?}, A {a_mib} MiB, A's upload cap {up_cap} B/s");

    let src = tmp.subdir("src");
    let (ta, tb, tc) = (
        tmp.path().join("a.torrent"),
        tmp.path().join("b.torrent"),
        tmp.path().join("c.torrent"),
    );
    let mi_a = make_torrent(&src, "a", a_mib << 20, 301, &ta);
    let mi_b = make_torrent(&src, "b", 32 << 20, 302, &tb);
    let mi_c = make_torrent(&src, "c", 4 << 20, 303, &tc);
    let (a, b, c) = (mi_a.info_hash, mi_b.info_hash, mi_c.info_hash);
    let seeder = session();
    for mi in [&mi_a, &mi_b, &mi_c] {
        seeder.add(AddTorrent::new(mi.clone(), &src)).unwrap();
        assert!(
            wait_until(Duration::from_secs(60), || seeder
                .status(&mi.info_hash)
                .is_some_and(|s| s.phase == Phase::Seeding)),
            "the seeder did not check {}",
            mi.info.name
        );
    }
    seeder.set_torrent_rate_limits(&b, 0, B_CAP).unwrap();

    // The daemon, its API, and the three torrents added over HTTP.
    let state = tmp.subdir("state");
    let daemon_port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(&state)
        .args(["--port", &daemon_port.to_string(), "--no-lsd", "--no-dht"])
        .env(DHT_ENV, "none")
        .env(
            "RUST_LOG",
            std::env::var("PEER_SLOWDISK_LOG").unwrap_or_else(|_| "info".into()),
        );
    let mut daemon = Child::spawn("peer daemon", cmd);
    assert!(
        daemon.wait_for_output("control API on", LONG_WAIT),
        "{}",
        daemon.output()
    );
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("control.json")).unwrap())
            .unwrap();
    let mut api = Api {
        port: u16::try_from(info["port"].as_u64().unwrap()).unwrap(),
        token: info["token"].as_str().unwrap().to_string(),
        slowest: (Duration::ZERO, String::new()),
        calls: 0,
        over: 0,
    };
    let pid = daemon.id();
    let daemon_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, daemon_port));
    let plain = tmp.subdir("plain");
    let (code, v) = api.call("POST", "/torrents", Some(add_body(&ta, &mnt, Some(up_cap))));
    assert!((200..300).contains(&code), "{code} {v}");
    let (code, v) = api.call("POST", "/torrents", Some(add_body(&tb, &plain, None)));
    assert!((200..300).contains(&code), "{code} {v}");
    // The seeder dials the daemon (the torrents are private: no tracker, no PEX).
    seeder.add_peers(&a, vec![daemon_addr]).unwrap();
    seeder.add_peers(&b, vec![daemon_addr]).unwrap();
    let (pa, pb, pc) = (
        format!("/torrents/{a}"),
        format!("/torrents/{b}"),
        format!("/torrents/{c}"),
    );

    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    let mut max_rss = 0u64;
    let mut b_progress = Progress::default();
    let mut saw_waiting = false;
    let mut max_queued = 0u64;
    let mut pause_took = None;
    let mut paused_flipped = false;
    let mut details_peers_in_stall: Vec<usize> = Vec::new();
    // A's status JSON: the longest it stayed the same while downloading.
    let mut a_last: Option<(Value, Instant)> = None;
    let mut a_unchanged = Duration::ZERO;
    let mut leecher: Option<Session> = None;
    let leech_dir = tmp.subdir("leech");
    let mut up_samples: Vec<(Instant, u64)> = Vec::new();
    let mut registered_after = None;
    let mut leech_started = None;
    let a_done: Duration;

    // One round of observation (about every 100 ms).
    let mut observe = |api: &mut Api,
                       leecher: &Option<Session>,
                       up: &mut Vec<(Instant, u64)>,
                       bp: &mut Progress|
     -> (Value, Value) {
        let list = api.get("/torrents");
        assert!(list.as_array().is_some_and(|l| l.len() >= 2), "{list}");
        let sa = api.get(&pa);
        let sb = api.get(&pb);
        let now = Instant::now();
        bp.0.push((now, n(&sb, "downloaded")));
        max_rss = max_rss.max(rss(pid));
        if let Some(l) = leecher {
            let got: u64 = l
                .peers(&a, Duration::from_secs(2))
                .unwrap_or_default()
                .iter()
                .map(|p| p.downloaded)
                .sum();
            up.push((now, got));
        }
        (sa, sb)
    };

    // Phase 1: A downloads onto the stalling disk; pause it once during a
    // stall; once 1 MiB of it is written, the other leecher starts.
    loop {
        assert!(
            Instant::now() < deadline,
            "A did not finish: {}",
            api.get(&pa)
        );
        let (sa, _) = observe(&mut api, &leecher, &mut up_samples, &mut b_progress);
        let state = sa["state"].as_str().unwrap_or("").to_string();
        if state == "seeding" {
            a_done = start.elapsed();
            break;
        }
        let waiting = sa["waiting_for_disk"] == json!(true);
        max_queued = max_queued.max(n(&sa, "disk_queued"));
        if state == "downloading" && sa["paused"] == json!(false) {
            let mut cmp = sa.clone();
            // Fields that tick by themselves are not what froze before.
            cmp["seeding_time"] = Value::Null;
            match &a_last {
                Some((v, _)) if *v == cmp => {}
                _ => a_last = Some((cmp, Instant::now())),
            }
            if let Some((_, since)) = &a_last {
                a_unchanged = a_unchanged.max(since.elapsed());
            }
        } else {
            a_last = None;
        }
        if waiting && state == "downloading" {
            saw_waiting = true;
            let d = api.get(&format!("{pa}/details"));
            let peers = d["peers"].as_array().map_or(0, |p| p.len());
            details_peers_in_stall.push(peers);
            if pause_took.is_none() && peers > 0 {
                // Pause during the stall: applied and reported, and stays.
                let t = Instant::now();
                let (code, v) = api.call("POST", &format!("{pa}/pause"), Some(json!({})));
                assert!((200..300).contains(&code), "{code} {v}");
                let applied = wait_until(Duration::from_secs(10), || {
                    let s = api.get(&pa);
                    s["paused"] == json!(true) && n(&s, "peers") == 0
                });
                pause_took = Some(t.elapsed());
                assert!(applied, "pause not applied: {}", api.get(&pa));
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until {
                    let s = api.get(&pa);
                    let in_list = api.get("/torrents");
                    let listed = in_list
                        .as_array()
                        .and_then(|l| l.iter().find(|t| t["id"] == json!(a.to_hex())))
                        .cloned()
                        .unwrap_or(Value::Null);
                    if s["paused"] != json!(true) || listed["paused"] != json!(true) {
                        paused_flipped = true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let (code, v) = api.call("POST", &format!("{pa}/resume"), Some(json!({})));
                assert!((200..300).contains(&code), "{code} {v}");
                // The seeder dials again (its back-off may be a few seconds).
                seeder.add_peers(&a, vec![daemon_addr]).unwrap();
            }
        }
        if leecher.is_none() && pause_took.is_some() && n(&sa, "bytes_have") >= 1 << 20 {
            let l = session();
            l.add(AddTorrent::new(mi_a.clone(), &leech_dir).peers(vec![daemon_addr]))
                .unwrap();
            leech_started = Some(Instant::now());
            leecher = Some(l);
        }
        if let (Some(t0), None) = (leech_started, registered_after) {
            // The daemon lists the other leecher (besides the seeder).
            let d = api.get(&format!("{pa}/details"));
            let listed = d["peers"].as_array().is_some_and(|p| {
                p.iter().any(|x| {
                    !x["address"]
                        .as_str()
                        .is_some_and(|s| s.ends_with(&format!(":{}", seeder.local_addr().port())))
                })
            });
            if listed {
                registered_after = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let leech_from = up_samples
        .iter()
        .find(|(_, b)| *b > 0)
        .map(|(t, _)| *t + Duration::from_secs(2));
    // The longest the daemon sent the other leecher nothing, from 2 s after
    // its first byte until A was complete on the daemon.
    let mut gap = Duration::ZERO;
    let mut up_rate = 0.0;
    if let Some(from) = leech_from {
        let s: Vec<_> = up_samples.iter().filter(|(t, _)| *t >= from).collect();
        let mut last = s.first().map(|(t, b)| (*t, *b));
        for (t, bytes) in &s {
            if let Some((lt, lb)) = last {
                if *bytes > lb {
                    last = Some((*t, *bytes));
                } else {
                    gap = gap.max(*t - lt);
                }
            }
        }
        if let (Some(f), Some(l)) = (s.first(), s.last()) {
            let up_bytes = l.1 - f.1;
            let secs = (l.0 - f.0).as_secs_f64().max(0.1);
            up_rate = up_bytes as f64 / secs;
            eprintln!(
                "slowdisk: uploads of A to the other leecher: {:.0} KiB/s over {secs:.1} s (cap {} KiB/s), longest gap {gap:?}",
                up_rate / 1024.0,
                up_cap / 1024
            );
        }
    }

    // Phase 2: C on the stalling disk; once the disk holds it back, remove
    // it while B downloads.
    let (code, v) = api.call("POST", "/torrents", Some(add_body(&tc, &mnt, None)));
    assert!((200..300).contains(&code), "{code} {v}");
    seeder.add_peers(&c, vec![daemon_addr]).unwrap();
    let c_waiting = wait_until(Duration::from_secs(60), || {
        let _ = observe(&mut api, &leecher, &mut up_samples, &mut b_progress);
        api.get(&pc)["waiting_for_disk"] == json!(true)
    });
    let t = Instant::now();
    let (code, v) = api.call("DELETE", &pc, None);
    let delete_took = t.elapsed();
    assert!((200..300).contains(&code), "{code} {v}");
    let removed_at = Instant::now();
    let until = removed_at + B_WINDOW + Duration::from_secs(1);
    while Instant::now() < until {
        let _ = observe(&mut api, &leecher, &mut up_samples, &mut b_progress);
        std::thread::sleep(Duration::from_millis(100));
    }
    let b_state = api.get(&pb)["state"].clone();
    let b_min = b_progress.min_gain(B_WINDOW, start + Duration::from_secs(5), Instant::now());
    let b_min_removal = b_progress.min_gain(
        B_WINDOW,
        removed_at - Duration::from_secs(1),
        Instant::now(),
    );

    eprintln!(
        "slowdisk: A complete on the daemon after {a_done:.1?}; A's status unchanged for at most {a_unchanged:?}; \
         most queued for the disk {max_queued} bytes"
    );
    eprintln!(
        "slowdisk: API: {} calls, {} at or over {ANSWER_LIMIT:?}, slowest {:?} ({})",
        api.calls, api.over, api.slowest.0, api.slowest.1
    );
    eprintln!(
        "slowdisk: pause applied and reported after {pause_took:?}; flipped back: {paused_flipped}; \
         details during stalls listed {} to {} peers ({} calls)",
        details_peers_in_stall.iter().min().unwrap_or(&0),
        details_peers_in_stall.iter().max().unwrap_or(&0),
        details_peers_in_stall.len()
    );
    eprintln!("slowdisk: the other leecher registered {registered_after:?} after it started");
    eprintln!(
        "slowdisk: C waiting for disk: {c_waiting}; DELETE of C answered in {delete_took:?}; \
         B (cap {} KiB/s) gained at least {:?} KiB in every {B_WINDOW:?} (at least {:?} KiB across the removal), B is {b_state}",
        B_CAP / 1024,
        b_min.map(|b| b / 1024),
        b_min_removal.map(|b| b / 1024)
    );
    eprintln!(
        "slowdisk: daemon peak RSS {} MiB (bound {} MiB)",
        max_rss >> 20,
        RSS_BOUND >> 20
    );

    // The checks.
    assert!(
        saw_waiting,
        "the disk never held A back: the test proves nothing"
    );
    assert!(
        api.slowest.0 < ANSWER_LIMIT,
        "{} of {} API calls took {ANSWER_LIMIT:?} or more; the slowest {:?} ({})",
        api.over,
        api.calls,
        api.slowest.0,
        api.slowest.1
    );
    let pause_took = pause_took.expect("A was never paused during a stall");
    assert!(
        pause_took < PAUSE_LIMIT,
        "pause applied after {pause_took:?}"
    );
    assert!(!paused_flipped, "a pause flipped back");
    assert!(
        details_peers_in_stall.iter().any(|&p| p > 0),
        "details never listed a peer during a stall: {details_peers_in_stall:?}"
    );
    assert!(
        leech_from.is_some(),
        "the other leecher got nothing from the daemon"
    );
    assert!(
        gap <= UPLOAD_GAP_LIMIT,
        "the daemon's uploads of A stopped for {gap:?}"
    );
    assert!(
        up_rate >= UPLOAD_SHARE * up_cap as f64,
        "the daemon uploaded A at {up_rate:.0} B/s, under {UPLOAD_SHARE} of its cap {up_cap}"
    );
    assert!(c_waiting, "C was never held back by the disk");
    assert!(delete_took < ANSWER_LIMIT, "DELETE took {delete_took:?}");
    assert_eq!(
        b_state,
        json!("downloading"),
        "B must still download during the removal"
    );
    let half = B_CAP * B_WINDOW.as_secs() / 2;
    assert!(
        b_min.is_some_and(|m| m >= half) && b_min_removal.is_some_and(|m| m >= half),
        "B slowed down: {b_min:?} / {b_min_removal:?} bytes in a {B_WINDOW:?} window (half its cap is {half})"
    );
    assert!(max_rss < RSS_BOUND, "peak RSS {max_rss}");
    assert!(
        max_queued <= 17 << 20,
        "{max_queued} bytes queued for the disk"
    );

    // The end: B uncapped, the other leecher's cap lifted; all identical.
    seeder.set_torrent_rate_limits(&b, 0, 0).unwrap();
    let (code, v) = api.call(
        "POST",
        &format!("{pa}/limits"),
        Some(json!({"max_upload_rate": 0})),
    );
    assert!((200..300).contains(&code), "{code} {v}");
    assert!(
        wait_until(Duration::from_secs(120), || api.get(&pb)["state"]
            == json!("seeding")),
        "B did not complete: {}",
        api.get(&pb)
    );
    let l = leecher.take().unwrap();
    let lt: InfoHash = a;
    assert!(
        wait_until(Duration::from_secs(120), || l
            .status(&lt)
            .is_some_and(|s| s.phase == Phase::Seeding)),
        "the other leecher did not complete: {:?}\nits peers: {:?}\nthe daemon's details: {}\n{}",
        l.status(&lt),
        l.peers(&lt, Duration::from_secs(2)),
        api.get(&format!("{pa}/details")),
        daemon.output()
    );
    l.shutdown();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(
        daemon.wait_exit(Duration::from_secs(30)).is_some(),
        "the daemon did not stop on SIGTERM\n{}",
        daemon.output()
    );
    assert_same_data(&src.join("a"), &backing.join("a"));
    assert_same_data(&src.join("b"), &plain.join("b"));
    assert_same_data(&src.join("a"), &leech_dir.join("a"));
    seeder.shutdown();
}
