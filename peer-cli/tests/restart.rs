//! Power loss, simulated: `kill -9` a downloading `peer` at several moments
//! and start it again with the same `--dir` and `--state`; it completes with
//! byte-identical data, keeping what was verified before each kill.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

#[test]
fn kill_9_while_downloading_then_restart_completes() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("restart");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "big.bin", 24 * 1024 * 1024);
    let torrent = tmp.path().join("big.torrent");
    let mut create = Command::new(peer_bin());
    create
        .arg("create")
        .arg(&src)
        .arg("-o")
        .arg(&torrent)
        .args(["--piece-length", "65536"]);
    let out = run_bounded("peer create", create, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    // A slow seeder (4 MB/s) so that the kills land mid-download.
    let lt_port = free_port();
    let mut seed = python_cmd("lt_seed.py");
    seed.arg(&torrent)
        .arg(&seed_dir)
        .arg(lt_port.to_string())
        .args(["--timeout", "300", "--upload-limit", "4000000"]);
    let mut seeder = Child::spawn("lt_seed.py", seed);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "{}",
        seeder.output()
    );

    let down = tmp.subdir("down");
    let state = tmp.subdir("state");
    let leech = || {
        let mut c = Command::new(peer_bin());
        c.arg(&torrent)
            .arg("--dir")
            .arg(&down)
            .arg("--state")
            .arg(&state)
            .args(["--port", &free_port().to_string()])
            .args(["--peer", &format!("127.0.0.1:{lt_port}")])
            .arg("--once")
            .arg("--no-lsd")
            .env("RUST_LOG", "info");
        c
    };
    let mut present = Vec::new();
    for (round, after) in [700u64, 1500, 2500].iter().enumerate() {
        let mut p = Child::spawn(&format!("peer (run {})", round + 1), leech());
        std::thread::sleep(Duration::from_millis(*after));
        p.kill(); // SIGKILL: no clean shutdown, no flush
        present.push(pieces_present(&p.output()));
    }
    let mut last = Child::spawn("peer (final run)", leech());
    let status = last.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "final run did not complete\n{}",
        last.output()
    );
    assert_same_data(&src, &down.join("big.bin"));
    // Every restart found the verified pieces of the runs before it on disk.
    let final_present = pieces_present(&last.output()).expect("final run checked its data");
    assert!(
        final_present > 0,
        "nothing survived the kills: {present:?} then {final_present}\n{}",
        last.output()
    );
}

/// `N` from the log line "NAME: N of M pieces present" (or the resume line).
fn pieces_present(log: &str) -> Option<u32> {
    log.lines().find_map(|l| {
        let (_, rest) = l
            .split_once(": resumed from ")
            .map(|(a, b)| (a, b.split_once(": ").map_or(b, |x| x.1)))
            .or_else(|| l.split_once("big.bin: "))?;
        let n = rest.split_whitespace().next()?.parse().ok()?;
        rest.contains(" pieces").then_some(n)
    })
}
