//! Interop over the DHT (BEP 5) with libtorrent, no tracker anywhere:
//! (a) libtorrent, bootstrapped from our seeder's DHT node, finds our seeder
//!     through the DHT and downloads from it;
//! (b) a libtorrent seeder announces through a DHT node of ours; our peer,
//!     given only a magnet link and that node, finds libtorrent through the
//!     DHT, fetches the metadata from it and downloads.

mod support;

use std::process::Command;
use support::*;

const NAME: &str = "dht data";

/// Start `peer` with `args`, wait for its (IPv4) DHT node and return its UDP port.
fn peer_with_dht(name: &str, args: &[&std::ffi::OsStr]) -> (Child, u16) {
    let mut cmd = Command::new(peer_bin());
    cmd.args(args).arg("--no-lsd").env("RUST_LOG", "info");
    let mut p = Child::spawn(name, cmd);
    assert!(
        p.wait_for_output("DHT node (IPv4) on", LONG_WAIT),
        "{}",
        p.output()
    );
    let out = p.output();
    let port = out
        .split("DHT node (IPv4) on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .expect("DHT port in the log");
    (p, port)
}

#[test]
fn libtorrent_finds_our_seeder_through_our_dht() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("dht-a");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &[]);
    let port = free_port().to_string();
    let (seeder, dht_port) = peer_with_dht(
        "peer seed",
        &[
            torrent.as_os_str(),
            "--dir".as_ref(),
            seed_dir.as_os_str(),
            "--port".as_ref(),
            port.as_ref(),
        ],
    );
    // One UDP port: the DHT listens on the peer wire port number.
    assert_eq!(dht_port.to_string(), port, "{}", seeder.output());
    let down = tmp.subdir("down");
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(&torrent).arg(&down).args([
        "--dht-node",
        &format!("127.0.0.1:{dht_port}"),
        "--timeout",
        "100",
    ]);
    let mut leech = Child::spawn("lt_leech.py", cmd);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "libtorrent did not find us through the DHT\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
}

#[test]
fn our_magnet_finds_libtorrent_through_the_dht() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("dht-b");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let hash = peer_create_torrent(&src, &torrent, &[]);
    // A DHT node of ours (a peer running only its tracker and DHT).
    let port = free_port().to_string();
    let (_node, dht_port) = peer_with_dht(
        "peer node",
        &["--open-tracker".as_ref(), "--port".as_ref(), port.as_ref()],
    );
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(&torrent)
        .arg(&seed_dir)
        .arg(free_port().to_string())
        .args([
            "--dht-node",
            &format!("127.0.0.1:{dht_port}"),
            "--timeout",
            "300",
        ]);
    let mut seeder = Child::spawn("lt_seed.py", cmd);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "{}",
        seeder.output()
    );
    let down = tmp.subdir("down");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(format!("magnet:?xt=urn:btih:{hash}"))
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--once"])
        .args(["--dht-bootstrap", &format!("127.0.0.1:{dht_port}")])
        .env("RUST_LOG", "info");
    let mut leech = Child::spawn("peer magnet", cmd);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "our peer did not find libtorrent through the DHT\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
}
