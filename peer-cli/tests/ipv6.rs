//! IPv6 from the command line (issue 21): `--peer [::1]:PORT` downloads
//! from a seeder over IPv6, and an IPv6 leecher finds the seeder through
//! the seeder's embedded tracker over HTTP (`http://[::1]:PORT/announce`,
//! the seeder handed out in `peers6`) and over UDP (BEP 15 over IPv6). LSD and the DHT are off, so the
//! address given (or announced) is the only way to the seeder.

mod support;

use std::net::{Ipv6Addr, TcpStream};
use std::process::Command;
use support::*;

fn have_v6_loopback() -> bool {
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        return true;
    }
    skip_or_fail("IPv6 test", "no IPv6 loopback (::1) on this host")
}

fn seed(torrent: &std::path::Path, dir: &std::path::Path, port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent).arg("--dir").arg(dir).args([
        "--port",
        &port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect((
            Ipv6Addr::LOCALHOST,
            port
        ))
        .is_ok()),
        "the seeder does not listen on [::1]:{port}\n{}",
        seeder.output()
    );
    // Dual stack: the same port number takes IPv4 too.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(
        seeder.wait_for_output("listening on", LONG_WAIT),
        "{}",
        seeder.output()
    );
    seeder
}

fn leech(torrent: &std::path::Path, dir: &std::path::Path, extra: &[String]) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .arg("--once")
        .args(extra);
    Child::spawn("peer leech", cmd)
}

#[test]
fn leecher_dials_a_seeder_given_as_ipv6_peer() {
    if !have_v6_loopback() {
        return;
    }
    let tmp = TempDir::new("ipv6-peer");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "v6.bin", 600 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &["--piece-length", "32K"]);
    let port = free_port();
    let seeder = seed(&torrent, &seed_dir, port);
    let out = seeder.output();
    assert!(out.contains(&format!("TCP [::]:{port}")), "{out}");
    let down = tmp.subdir("down");
    let mut l = leech(&torrent, &down, &["--peer".into(), format!("[::1]:{port}")]);
    let st = l.wait_exit(LONG_WAIT);
    assert!(st.is_some_and(|s| s.success()), "{}", l.output());
    assert_same_data(&src, &down.join("v6.bin"));
}

#[test]
fn ipv6_leecher_finds_the_seeder_through_the_embedded_tracker() {
    through_the_embedded_tracker("http");
}

/// BEP 15 over IPv6: the seeder's IPv6-only UDP socket answers with
/// 18-byte peers.
#[test]
fn ipv6_leecher_finds_the_seeder_through_the_embedded_udp_tracker() {
    through_the_embedded_tracker("udp");
}

fn through_the_embedded_tracker(scheme: &str) {
    if !have_v6_loopback() {
        return;
    }
    let tmp = TempDir::new(&format!("ipv6-{scheme}-tracker"));
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "v6t.bin", 500 * 1024);
    let torrent = tmp.path().join("t.torrent");
    let port = free_port();
    let announce = format!("{scheme}://[::1]:{port}/announce");
    peer_create_torrent(
        &src,
        &torrent,
        &["--piece-length", "32K", "--announce", &announce],
    );
    let seeder = seed(&torrent, &seed_dir, port);
    let down = tmp.subdir("down");
    let mut l = leech(&torrent, &down, &[]);
    let st = l.wait_exit(LONG_WAIT);
    assert!(
        st.is_some_and(|s| s.success()),
        "{}\nseeder:\n{}",
        l.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join("v6t.bin"));
}
