//! The interop matrix (issue 10): every mainstream client in both directions,
//! with a single-file torrent, a multi-file torrent and a magnet link, the
//! peers finding each other through our embedded tracker with no `--peer`
//! hint, on loopback. Clients: aria2, qBittorrent (`qbittorrent-nox` driven
//! through its Web API by `interop/qbt.py`), rqbit, Transmission and
//! libtorrent (`interop/lt_*.py`).
//!
//! - `peer` seeds: the torrent's announce is the seeder's own `IP:PORT`; the
//!   client leeches it (or the magnet link with `tr=` that tracker).
//! - The client seeds: a `peer --open-tracker` process is the tracker; our
//!   `peer --once` leeches (or resolves the magnet link through it).
//!
//! Each case prints one `INTEROP` line with the measured rate (wall time from
//! the leecher's start to completion, start-up included; docs/INTEROP.md).
//! The mixed swarm (our seeder; leechers ours, aria2, libtorrent and
//! qBittorrent) is in `interop_mixed.rs`. Every wait is bounded by
//! [`LONG_WAIT`]; every child is killed on drop.

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};
use support::clients::*;
use support::*;

/// Our tracker (a `peer` on `port`) on IPv4 loopback.
fn local(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

/// One `INTEROP ...` line on the real stderr (not captured), for INTEROP.md.
fn report(direction: &str, kind: Kind, bytes: u64, took: Duration) {
    let mbps = bytes as f64 / took.as_secs_f64().max(1e-3) / 1e6;
    let _ = writeln!(
        std::io::stderr().lock(),
        "INTEROP {direction} {kind:?}: {:.2} MB in {:.2} s = {mbps:.1} MB/s",
        bytes as f64 / 1e6,
        took.as_secs_f64()
    );
}

/// `peer` seeding `case` on `port` (its embedded tracker is the announce).
fn peer_seeder(case: &Case, port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&case.torrent)
        .arg("--dir")
        .arg(&case.seed_root)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "our seeder never started seeding\n{}",
        seeder.output()
    );
    // Its announcer registers it with its own tracker right after the check;
    // a client announcing before that would wait a whole interval.
    wait_tracker_knows(local(port), &case.hash, &mut seeder);
    seeder
}

/// `peer --open-tracker` on `port`.
fn open_tracker(port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.args([
        "--open-tracker",
        "--port",
        &port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut t = Child::spawn("peer --open-tracker", cmd);
    assert!(
        t.wait_for_output("open tracker on", LONG_WAIT),
        "{}",
        t.output()
    );
    t
}

/// `peer` seeds; `client` leeches each kind through our embedded tracker.
fn client_leeches_from_peer(client: Client) {
    if !client.available() {
        return;
    }
    for kind in KINDS {
        let port = free_port();
        let case = Case::new(&format!("{client:?}-leech-{kind:?}"), kind, port);
        let mut seeder = peer_seeder(&case, port);
        let down = case.tmp.subdir("down");
        let t0 = Instant::now();
        client_leech(client, &case, &case.source(), &down, &mut seeder);
        let took = t0.elapsed();
        assert_same_data(&case.src, &down.join(&case.name));
        report(&format!("peer -> {client:?}"), kind, case.bytes, took);
    }
}

/// `client` seeds; `peer --once` leeches each kind through a `peer
/// --open-tracker`.
fn peer_leeches_from_client(client: Client) {
    if !client.available() {
        return;
    }
    for kind in KINDS {
        let tport = free_port();
        let _tracker = open_tracker(tport);
        let case = Case::new(&format!("{client:?}-seed-{kind:?}"), kind, tport);
        let seeder = client_seed(client, &case, free_port(), local(tport));
        let down = case.tmp.subdir("down");
        let mut cmd = Command::new(peer_bin());
        cmd.arg(case.source())
            .arg("--dir")
            .arg(&down)
            .args(["--port", &free_port().to_string()])
            .args(["--no-lsd", "--no-dht", "--once"])
            .env("RUST_LOG", "info");
        let t0 = Instant::now();
        let mut leech = Child::spawn("peer leech", cmd);
        leech.close_stdin();
        let status = leech.wait_exit(LONG_WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "peer did not download {kind:?} from {client:?}\n{}\n{}",
            leech.output(),
            seeder.output()
        );
        let took = t0.elapsed();
        assert_same_data(&case.src, &down.join(&case.name));
        report(&format!("{client:?} -> peer"), kind, case.bytes, took);
    }
}

#[test]
fn aria2_leeches_from_peer() {
    client_leeches_from_peer(Client::Aria2);
}

#[test]
fn peer_leeches_from_aria2() {
    peer_leeches_from_client(Client::Aria2);
}

#[test]
fn qbittorrent_leeches_from_peer() {
    client_leeches_from_peer(Client::Qbittorrent);
}

#[test]
fn peer_leeches_from_qbittorrent() {
    peer_leeches_from_client(Client::Qbittorrent);
}

#[test]
fn rqbit_leeches_from_peer() {
    client_leeches_from_peer(Client::Rqbit);
}

#[test]
fn peer_leeches_from_rqbit() {
    peer_leeches_from_client(Client::Rqbit);
}

#[test]
fn transmission_leeches_from_peer() {
    client_leeches_from_peer(Client::Transmission);
}

#[test]
fn peer_leeches_from_transmission() {
    peer_leeches_from_client(Client::Transmission);
}

#[test]
fn libtorrent_leeches_from_peer() {
    client_leeches_from_peer(Client::Libtorrent);
}

#[test]
fn peer_leeches_from_libtorrent() {
    peer_leeches_from_client(Client::Libtorrent);
}
