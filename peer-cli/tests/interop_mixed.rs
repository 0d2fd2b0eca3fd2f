//! A mixed swarm (issue 10): our seeder; four leechers started together,
//! ours, aria2, libtorrent and qBittorrent, all finding each other through
//! the seeder's embedded tracker (no `--peer`). Every leecher must complete
//! byte-identical, and the leechers must upload to each other: each one's
//! own upload counter (our status line, aria2's JSON-RPC `uploadLength`,
//! libtorrent's and qBittorrent's payload counters) is read at the end.
//!
//! And a mixed swarm of ours and libtorrent only (issue 31): our seeder
//! (upload capped, so the swarm lasts through several choker rounds), two
//! of our leechers and two libtorrent leechers, all through the seeder's
//! embedded tracker: everyone completes byte-identical and none of our
//! peers bans anyone (our `banning ADDR: why` log line).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const LEN: usize = 12 * 1024 * 1024 + 4321;

/// True when `got` holds exactly the bytes of `want` (no panic: polled).
fn same_now(want: &Path, got: &Path) -> bool {
    match (std::fs::read(want), std::fs::read(got)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The last `key=N` number in `text` (`STATS up=N` lines).
fn last_number_after(text: &str, key: &str) -> Option<u64> {
    text.rmatch_indices(key).next().and_then(|(i, _)| {
        text[i + key.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
    })
}

/// Our upload total from the last plain status line (`uploaded 1.2 MiB`).
fn our_uploaded(text: &str) -> Option<u64> {
    let (i, _) = text.rmatch_indices(" uploaded ").next()?;
    let mut it = text[i + " uploaded ".len()..].split_whitespace();
    let v: f64 = it.next()?.parse().ok()?;
    let mult = match it.next()? {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((v * mult) as u64)
}

/// aria2's `uploadLength` of its (only) active download, over JSON-RPC.
fn aria2_uploaded(rpc_port: u16) -> Option<u64> {
    let body =
        r#"{"jsonrpc":"2.0","id":"1","method":"aria2.tellActive","params":[["uploadLength"]]}"#;
    let mut s = TcpStream::connect(("127.0.0.1", rpc_port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let req = format!(
        "POST /jsonrpc HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let key = "\"uploadLength\":\"";
    let i = resp.find(key)? + key.len();
    resp[i..].split('"').next()?.parse().ok()
}

#[test]
fn mixed_swarm_completes_and_leechers_upload_to_each_other() {
    let qbt = find_on_path("qbittorrent-nox").is_some()
        || skip_or_fail("qbittorrent-nox", "apt-get install qbittorrent-nox");
    if !(require_tools(&["aria2c", "libtorrent"]) && qbt) {
        return;
    }
    let tmp = TempDir::new("mixed");
    let seed_root = tmp.subdir("seed");
    let src = make_single_file(&seed_root, "mixed.bin", LEN);
    let torrent = tmp.path().join("mixed.torrent");
    let port = free_port();
    peer_create_torrent(
        &src,
        &torrent,
        &[
            "--announce",
            &format!("127.0.0.1:{port}"),
            "--piece-length",
            "65536",
        ],
    );
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_root)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "{}",
        seeder.output()
    );

    // The four leechers, started together.
    let dirs: Vec<PathBuf> = ["ours", "aria2", "libtorrent", "qbittorrent"]
        .iter()
        .map(|n| tmp.subdir(n))
        .collect();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&dirs[0])
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let ours = Child::spawn("peer leech", cmd);
    let rpc = free_port();
    let mut cmd = Command::new("aria2c");
    cmd.arg("-d")
        .arg(&dirs[1])
        .args([
            "--seed-ratio=0.0",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--summary-interval=0",
            "--console-log-level=warn",
            "--enable-rpc=true",
        ])
        .arg(format!("--rpc-listen-port={rpc}"))
        .arg(format!("--listen-port={}", free_port()))
        .arg(&torrent);
    let aria2 = Child::spawn("aria2c", cmd);
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(&torrent)
        .arg(&dirs[2])
        .args(["--stay", "--timeout", "150"])
        .args(["--listen-port", &free_port().to_string()]);
    let lt = Child::spawn("lt_leech.py", cmd);
    let mut cmd = python_cmd("qbt.py");
    cmd.arg(tmp.subdir("qbt-profile"))
        .arg(free_port().to_string())
        .arg(free_port().to_string())
        .arg("--leech")
        .arg(&torrent)
        .arg(&dirs[3])
        .args(["--stay", "--timeout", "150"]);
    let qb = Child::spawn("qbt.py", cmd);

    let t0 = Instant::now();
    let all_done = wait_until(LONG_WAIT, || {
        dirs.iter().all(|d| same_now(&src, &d.join("mixed.bin")))
    });
    let outputs = || {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            ours.output(),
            aria2.output(),
            lt.output(),
            qb.output(),
            seeder.output()
        )
    };
    for d in &dirs {
        assert!(
            same_now(&src, &d.join("mixed.bin")),
            "{} did not complete byte-identical (all done: {all_done})\n{}",
            d.display(),
            outputs()
        );
    }
    let took = t0.elapsed();
    // Our status line comes every 5 s; the others report every second.
    std::thread::sleep(Duration::from_secs(6));
    let ups = [
        ("ours", our_uploaded(&ours.output())),
        ("aria2", aria2_uploaded(rpc)),
        ("libtorrent", last_number_after(&lt.output(), "STATS up=")),
        ("qbittorrent", last_number_after(&qb.output(), "STATS up=")),
    ];
    let line = ups
        .iter()
        .map(|(n, u)| format!("{n} {}", u.map_or("?".into(), |u| u.to_string())))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        std::io::stderr().lock(),
        "INTEROP mixed swarm: 4 leechers complete in {:.1} s; uploaded (bytes): {line}",
        took.as_secs_f64()
    );
    for (n, u) in &ups {
        assert!(u.is_some(), "no upload counter from {n}\n{}", outputs());
    }
    let uploaders = ups.iter().filter(|(_, u)| u.unwrap_or(0) > 0).count();
    assert!(
        uploaders >= 2,
        "the leechers did not upload to each other ({line})\n{}",
        outputs()
    );
}

/// Lines where one of our peers banned someone (`banning ADDR: why`).
fn ban_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains("banning ")).collect()
}

#[test]
fn ban_lines_are_found() {
    let log = "[WARN bittorrent_core] mixed.bin: banning 127.0.0.1:5000: sent blocks we never asked it for\nok";
    assert_eq!(ban_lines(log).len(), 1);
    assert!(ban_lines("download complete (8.0 MiB), seeding").is_empty());
}

#[test]
fn mixed_swarm_of_ours_and_libtorrent_bans_no_one() {
    if !require_tool("libtorrent") {
        return;
    }
    const SIZE: usize = 8 * 1024 * 1024 + 777;
    let tmp = TempDir::new("mixed-noban");
    let seed_root = tmp.subdir("seed");
    let src = make_single_file(&seed_root, "noban.bin", SIZE);
    let torrent = tmp.path().join("noban.torrent");
    let port = free_port();
    peer_create_torrent(
        &src,
        &torrent,
        &[
            "--announce",
            &format!("127.0.0.1:{port}"),
            "--piece-length",
            "65536",
        ],
    );
    let ours = |root: &Path, port: u16, extra: &[&str]| {
        let mut cmd = Command::new(peer_bin());
        cmd.arg(&torrent)
            .arg("--dir")
            .arg(root)
            .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
            .args(extra)
            .env("PEER_DHT_BOOTSTRAP", "none")
            .env("RUST_LOG", "info");
        cmd
    };
    // Capped at 2 MiB/s: the leechers must get most pieces from each
    // other, and the choker turns over while they do.
    let mut seeder = Child::spawn(
        "peer seed",
        ours(&seed_root, port, &["--max-upload-rate", "2M"]),
    );
    assert!(
        seeder.wait_for_output("seeding", LONG_WAIT),
        "{}",
        seeder.output()
    );

    let names = ["ours-a", "lt-a", "ours-b", "lt-b"];
    let dirs: Vec<PathBuf> = names.iter().map(|n| tmp.subdir(n)).collect();
    let mut leechers = Vec::new();
    for (name, dir) in names.iter().zip(&dirs) {
        let child = if name.starts_with("ours") {
            Child::spawn(name, ours(dir, free_port(), &[]))
        } else {
            let mut cmd = python_cmd("lt_leech.py");
            cmd.arg(&torrent)
                .arg(dir)
                .args(["--stay", "--timeout", "150"])
                .args(["--listen-port", &free_port().to_string()]);
            Child::spawn(name, cmd)
        };
        leechers.push(child);
    }
    let all_done = wait_until(LONG_WAIT, || {
        dirs.iter().all(|d| same_now(&src, &d.join("noban.bin")))
    });
    let outputs = || {
        let mut s = seeder.output();
        for (n, c) in names.iter().zip(&leechers) {
            s.push_str(&format!("\n--- {n}\n{}", c.output()));
        }
        s
    };
    assert!(all_done, "the mixed swarm did not complete\n{}", outputs());
    for d in &dirs {
        assert_same_data(&src, &d.join("noban.bin"));
    }
    // Give late answers (after chokes, cancels) time to arrive and count.
    std::thread::sleep(Duration::from_secs(2));
    // Whole logs (`output()` keeps only their tails).
    let full = |c: &Child| {
        let mut b = c.stdout_bytes();
        b.extend(c.stderr_bytes());
        String::from_utf8_lossy(&b).into_owned()
    };
    let mut ours_logs = vec![("seeder", full(&seeder))];
    for (n, c) in names.iter().zip(&leechers) {
        if n.starts_with("ours") {
            ours_logs.push((*n, full(c)));
        }
    }
    for (n, log) in &ours_logs {
        // The logs are ours: the line is there when a ban happens.
        assert!(log.contains("seeding"), "{n} logged nothing useful:\n{log}");
        let bans = ban_lines(log);
        assert!(
            bans.is_empty(),
            "{n} banned peers: {bans:#?}\n{}",
            outputs()
        );
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "INTEROP mixed no-ban swarm: ours x3 (seeder capped 2 MiB/s) + libtorrent x2, complete, 0 bans"
    );
}
