//! Interop (issue 4): real clients use our peer's embedded tracker.
//!
//! `peer --open-tracker` runs a peer whose only job here is its tracker; a
//! torrent made with `peer create --announce 127.0.0.1:PORT` names it. A
//! seeder (libtorrent, or Transmission) and a libtorrent leecher that is
//! given no peer address find each other only through our tracker.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

const NAME: &str = "tracked data";

fn start_tracker() -> (Child, u16) {
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.args(["--open-tracker", "--no-lsd", "--port", &port.to_string()])
        .env("RUST_LOG", "bittorrent_core=debug");
    let mut t = Child::spawn("peer --open-tracker", cmd);
    assert!(
        t.wait_for_output("open tracker on", LONG_WAIT),
        "tracker did not start\n{}",
        t.output()
    );
    (t, port)
}

/// libtorrent leecher with no `--peer`: it must get the seeder from the tracker.
fn lt_leech_via_tracker(torrent: &Path, save: &Path, seeder: &mut Child, tracker: &mut Child) {
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(torrent).arg(save).args(["--timeout", "100"]);
    let mut leech = Child::spawn("lt_leech.py", cmd);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "libtorrent leecher did not complete through our tracker\n{}\n{}\n{}",
        leech.output(),
        seeder.output(),
        tracker.output()
    );
}

#[test]
fn libtorrent_peers_meet_through_our_tracker() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("lt-tracker");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let (mut tracker, port) = start_tracker();
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(
        &src,
        &torrent,
        &[
            "--announce",
            &format!("127.0.0.1:{port}"),
            "--piece-length",
            "16384",
        ],
    );
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(&torrent)
        .arg(&seed_dir)
        .arg(free_port().to_string())
        .args(["--timeout", "300"]);
    let mut seeder = Child::spawn("lt_seed.py", cmd);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "{}",
        seeder.output()
    );
    let down = tmp.subdir("down");
    lt_leech_via_tracker(&torrent, &down, &mut seeder, &mut tracker);
    assert_same_data(&src, &down.join(NAME));
}

#[test]
fn transmission_seed_and_libtorrent_leech_meet_through_our_tracker() {
    if !require_tools(&["transmission-cli", "libtorrent"]) {
        return;
    }
    let tmp = TempDir::new("tr-tracker");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let (mut tracker, port) = start_tracker();
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(
        &src,
        &torrent,
        &[
            "--announce",
            &format!("127.0.0.1:{port}"),
            "--piece-length",
            "16384",
        ],
    );
    let tr_port = free_port();
    let config = tmp.subdir("transmission-config");
    let cmd = transmission_cmd(None, &config, &seed_dir, tr_port, &torrent);
    let mut seeder = Child::spawn("transmission-cli", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "Transmission never started seeding\n{}",
        seeder.output()
    );
    let down = tmp.subdir("down");
    lt_leech_via_tracker(&torrent, &down, &mut seeder, &mut tracker);
    assert_same_data(&src, &down.join(NAME));
}
