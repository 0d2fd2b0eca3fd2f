//! IPv6 interop with the mainstream clients over `::1` (issue 21), both
//! directions, the peers finding each other through our embedded tracker
//! at `http://[::1]:P/announce` (BEP 7 `peers6`) with no `--peer` hint:
//! aria2, qBittorrent, rqbit and Transmission, driven as in the interop
//! matrix (`support/clients.rs`). libtorrent over IPv6 is in
//! `interop_ipv6.rs`.
//!
//! - `peer` seeds with `--bind ::1` (IPv6 loopback only, so every byte the
//!   client gets crossed IPv6); the client leeches the torrent and a magnet
//!   link whose only tracker is ours.
//! - The client seeds; a `peer --open-tracker --bind ::1` is the tracker and
//!   `peer --once --bind ::1` leeches; its log must show the client joining
//!   from `[::1]` and no peer over IPv4.
//!
//! Each case prints one `INTEROP-V6` line. Where a client cannot do IPv6
//! here, docs/INTEROP.md says so.

mod support;

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};
use support::clients::*;
use support::*;

const V6_KINDS: [Kind; 2] = [Kind::Single, Kind::Magnet];

fn v6(port: u16) -> SocketAddr {
    (Ipv6Addr::LOCALHOST, port).into()
}

fn ready(client: Client) -> bool {
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        return skip_or_fail("IPv6 interop", "no IPv6 loopback (::1) on this host");
    }
    client.available()
}

fn report(direction: &str, kind: Kind, bytes: u64, took: Duration) {
    let mbps = bytes as f64 / took.as_secs_f64().max(1e-3) / 1e6;
    let _ = writeln!(
        std::io::stderr().lock(),
        "INTEROP-V6 {direction} {kind:?}: {:.2} MB in {:.2} s = {mbps:.1} MB/s",
        bytes as f64 / 1e6,
        took.as_secs_f64()
    );
}

/// `peer ARGS... --port PORT --bind ::1 --no-lsd --no-dht`.
fn peer_v6(name: &str, port: u16, args: &[&std::ffi::OsStr]) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.args(args)
        .args(["--port", &port.to_string(), "--bind", "::1"])
        .args(["--no-lsd", "--no-dht"])
        .env(
            "RUST_LOG",
            "info,bittorrent_core::engine::torrent=debug,bittorrent_core::discovery::tracker=debug",
        );
    Child::spawn(name, cmd)
}

/// `peer` leeches from `client` seeding (or `client` from `peer` seeding),
/// each kind in [`V6_KINDS`].
fn client_leeches_from_peer(client: Client) {
    if !ready(client) {
        return;
    }
    for kind in V6_KINDS {
        let port = free_port();
        let case = Case::with_tracker(&format!("v6-{client:?}-leech-{kind:?}"), kind, v6(port));
        let args = [
            case.torrent.as_os_str(),
            "--dir".as_ref(),
            case.seed_root.as_os_str(),
        ];
        let mut seeder = peer_v6("peer seed (::1)", port, &args);
        assert!(
            seeder.wait_for_output("Seeding", LONG_WAIT),
            "our seeder never started seeding\n{}",
            seeder.output()
        );
        wait_tracker_knows(v6(port), &case.hash, &mut seeder);
        let down = case.tmp.subdir("down");
        let t0 = Instant::now();
        client_leech(client, &case, &case.source(), &down, &mut seeder);
        let took = t0.elapsed();
        assert_same_data(&case.src, &down.join(&case.name));
        report(&format!("peer -> {client:?}"), kind, case.bytes, took);
    }
}

fn peer_leeches_from_client(client: Client) {
    if !ready(client) {
        return;
    }
    for kind in V6_KINDS {
        let tport = free_port();
        let mut tracker = peer_v6(
            "peer --open-tracker (::1)",
            tport,
            &["--open-tracker".as_ref()],
        );
        assert!(
            tracker.wait_for_output("open tracker on", LONG_WAIT),
            "{}",
            tracker.output()
        );
        let case = Case::with_tracker(&format!("v6-{client:?}-seed-{kind:?}"), kind, v6(tport));
        let seeder = client_seed(client, &case, free_port(), v6(tport));
        let down = case.tmp.subdir("down");
        let source = case.source();
        let args = [
            source.as_ref(),
            "--dir".as_ref(),
            down.as_os_str(),
            "--once".as_ref(),
        ];
        let t0 = Instant::now();
        let mut leech = peer_v6("peer leech (::1)", free_port(), &args);
        leech.close_stdin();
        let status = leech.wait_exit(LONG_WAIT);
        let log = leech.output();
        assert!(
            status.is_some_and(|s| s.success()),
            "peer did not download {kind:?} from {client:?} over IPv6\n{log}\n{}",
            seeder.output()
        );
        let took = t0.elapsed();
        assert_same_data(&case.src, &down.join(&case.name));
        let joined = |prefix: &str| {
            log.lines()
                .any(|l| l.contains(&format!("peer {prefix}")) && l.contains("joined"))
        };
        assert!(joined("[::1]:"), "no peer joined over IPv6\n{log}");
        assert!(!joined("127.0.0.1:"), "a peer joined over IPv4\n{log}");
        report(&format!("{client:?} -> peer"), kind, case.bytes, took);
    }
}

#[test]
fn aria2_leeches_from_peer_over_ipv6() {
    client_leeches_from_peer(Client::Aria2);
}

#[test]
fn peer_leeches_from_aria2_over_ipv6() {
    peer_leeches_from_client(Client::Aria2);
}

#[test]
fn qbittorrent_leeches_from_peer_over_ipv6() {
    client_leeches_from_peer(Client::Qbittorrent);
}

#[test]
fn peer_leeches_from_qbittorrent_over_ipv6() {
    peer_leeches_from_client(Client::Qbittorrent);
}

#[test]
fn rqbit_leeches_from_peer_over_ipv6() {
    client_leeches_from_peer(Client::Rqbit);
}

#[test]
fn peer_leeches_from_rqbit_over_ipv6() {
    peer_leeches_from_client(Client::Rqbit);
}

#[test]
fn transmission_leeches_from_peer_over_ipv6() {
    client_leeches_from_peer(Client::Transmission);
}

#[test]
fn peer_leeches_from_transmission_over_ipv6() {
    peer_leeches_from_client(Client::Transmission);
}
