//! `--tcp-congestion NAME` (issue 21): the TCP congestion control of our
//! peer connections, on loopback.
//!
//! (a) seeder and leecher both with `--tcp-congestion reno` (the one
//!     algorithm every Linux kernel has and lets any process use): while
//!     the (rate-capped) transfer runs, `ss -tin` shows `reno` on the
//!     seeder's accepted socket and on the leecher's dialled one, whatever
//!     the system's default is; the download completes byte-identical;
//! (b) a name the kernel does not have is refused at start-up, by `peer`
//!     and by `peer daemon`, with the kernel's lists in the message;
//!     a malformed name is refused by the argument parser.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

/// The congestion-control names `ss -tin` shows for TCP sockets whose local
/// or remote port is `port`.
fn algorithms_on_port(port: u16) -> Vec<String> {
    let mut cmd = Command::new("ss");
    cmd.args(["-tinH", "state", "established"]);
    let out = run_bounded("ss", cmd, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    let mut lines = text.lines().peekable();
    // `ss -tin` prints a socket's line, then its details indented.
    while let Some(line) = lines.next() {
        let on_port = line
            .split_whitespace()
            .skip(2)
            .take(2)
            .any(|a| a.rsplit(':').next() == Some(&port.to_string()));
        let Some(details) = lines.peek().filter(|l| l.starts_with(char::is_whitespace)) else {
            continue;
        };
        if on_port {
            if let Some(cc) = details.split_whitespace().next() {
                found.push(cc.to_string());
            }
        }
        lines.next();
    }
    found
}

#[test]
fn a_reno_on_accepted_and_dialled_sockets() {
    if !require_tool("ss") {
        return;
    }
    let tmp = TempDir::new("tcp-cc");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "cc.bin", 3 << 20);
    let torrent = tmp.path().join("cc.torrent");
    peer_create_torrent(&src, &torrent, &["--piece-length", "64K"]);
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .args([
            "--bind",
            "127.0.0.1",
            "--tcp-congestion",
            "reno",
            "--transport",
            "tcp",
        ])
        .args(["--max-upload-rate", "512K"]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("listening on", LONG_WAIT),
        "{}",
        seeder.output()
    );
    let down = tmp.subdir("down");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--bind", "127.0.0.1", "--tcp-congestion", "reno", "--once"])
        .args(["--transport", "tcp"])
        .args(["--peer", &format!("127.0.0.1:{port}")]);
    let mut leecher = Child::spawn("peer leech", cmd);
    // Both ends of the connection: the seeder's accepted socket (local
    // port `port`) and the leecher's dialled one (remote port `port`).
    let mut seen = Vec::new();
    let both = wait_until(Duration::from_secs(30), || {
        seen = algorithms_on_port(port);
        seen.len() >= 2 || leecher.try_status().is_some()
    });
    assert!(
        both && seen.len() >= 2,
        "no connection seen on port {port}: {seen:?}\n{}",
        leecher.output()
    );
    assert!(seen.iter().all(|cc| cc == "reno"), "{seen:?}");
    let st = leecher.wait_exit(LONG_WAIT);
    assert!(st.is_some_and(|s| s.success()), "{}", leecher.output());
    assert_same_data(&src, &down.join("cc.bin"));
}

#[test]
fn b_unknown_names_are_refused_at_start_up() {
    let tmp = TempDir::new("tcp-cc-bad");
    let src = make_single_file(&tmp.subdir("d"), "x.bin", 64 * 1024);
    let torrent = tmp.path().join("x.torrent");
    peer_create_torrent(&src, &torrent, &[]);
    let port = free_port().to_string();
    let state = tmp.subdir("state");
    let t = torrent.to_str().unwrap();
    let s = state.to_str().unwrap();
    for args in [
        vec![t, "--port", &port, "--no-lsd", "--no-dht"],
        vec![
            "daemon", "--state", s, "--port", &port, "--no-lsd", "--no-dht",
        ],
    ] {
        let mut argv = args.clone();
        argv.extend(["--tcp-congestion", "no_such_cc"]);
        let out = run_peer(&argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{argv:?} started: {err}");
        assert!(
            err.contains("no_such_cc") && err.contains("available:") && err.contains("reno"),
            "{argv:?}: {err}"
        );
        let mut argv = args;
        argv.extend(["--tcp-congestion", "not a name"]);
        let out = run_peer(&argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("not a TCP congestion control name"),
            "{err}"
        );
    }
}
