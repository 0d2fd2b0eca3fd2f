//! Seeding goals from the command line: `peer FILE --seed-ratio R` seeds
//! until it has uploaded R times the torrent's size, then exits 0 (plain
//! progress says so at once); `peer daemon --seed-time MINUTES` stops
//! seeding after that long and keeps the torrent listed as `finished`,
//! and `peer resume` seeds it again.

mod support;

use serde_json::Value;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

fn list(state: &Path) -> Option<Vec<Value>> {
    let out = run_peer(&[
        "list".as_ref(),
        "--json".as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()?
        .as_array()
        .cloned()
}

#[test]
fn seeder_with_a_ratio_goal_exits_once_it_has_uploaded_enough() {
    let tmp = TempDir::new("seed-ratio");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "ratio.bin", 700 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &["--piece-length", "32K"]);
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .args(["--seed-ratio", "1"]);
    let mut seeder = Child::spawn("peer seed --seed-ratio 1", cmd);
    assert!(wait_until(LONG_WAIT, || TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    // Not before anything was uploaded.
    std::thread::sleep(Duration::from_secs(2));
    assert!(seeder.try_status().is_none(), "{}", seeder.output());
    let down = tmp.subdir("down");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--peer", &format!("127.0.0.1:{port}"), "--once"]);
    let mut leech = Child::spawn("peer leech", cmd);
    let st = leech.wait_exit(LONG_WAIT);
    assert!(st.is_some_and(|s| s.success()), "{}", leech.output());
    assert_same_data(&src, &down.join("ratio.bin"));
    let st = seeder.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "the seeder did not exit 0 after reaching ratio 1: {st:?}\n{}",
        seeder.output()
    );
    let out = seeder.output();
    assert!(out.contains("ratio.bin: seeding goal reached"), "{out}");
}

#[test]
fn daemon_with_a_time_goal_keeps_finished_torrents_listed() {
    let tmp = TempDir::new("seed-time");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "time.bin", 200 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &[]);
    let state = tmp.subdir("state");
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(&state)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--seed-time", "0.05"]); // 3 s
    let mut d = Child::spawn("peer daemon --seed-time", cmd);
    assert!(
        d.wait_for_output("control API on", LONG_WAIT),
        "{}",
        d.output()
    );
    let out = run_peer(&[
        "add".as_ref(),
        torrent.as_os_str(),
        "--dir".as_ref(),
        seed_dir.as_os_str(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", d.output());
    let state_of = || {
        list(&state)
            .and_then(|l| l.first().cloned())
            .and_then(|t| t.get("state").and_then(Value::as_str).map(String::from))
    };
    assert!(
        wait_until(Duration::from_secs(60), || state_of().as_deref()
            == Some("finished")),
        "{:?}\n{}",
        list(&state),
        d.output()
    );
    // Still listed, still finished a moment later; counted in the status.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state_of().as_deref(), Some("finished"));
    let out = run_peer(&[
        "status".as_ref(),
        "--json".as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(v.get("finished").and_then(Value::as_u64), Some(1), "{v}");
    // `peer resume` seeds it again (no goal any more).
    let id = list(&state).unwrap_or_default()[0]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let out = run_peer(&[
        "resume".as_ref(),
        id.as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    assert!(out.status.success());
    assert!(wait_until(Duration::from_secs(10), || state_of()
        .as_deref()
        == Some("seeding")));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(state_of().as_deref(), Some("seeding"));
}
