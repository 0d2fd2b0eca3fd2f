//! `--bind ADDR` (issue 21): the listening address(es) of `peer` and
//! `peer daemon`, on loopback.
//!
//! (a) `--bind 127.0.0.1 --bind ::1`: one port number, two listeners; a
//!     leecher dialling each address downloads from the seeder;
//! (b) `peer daemon --bind ::1`: listens on `[::1]` only (IPv4 refused);
//! (c) two addresses of one family are refused with a readable message.
//!
//! LSD and the DHT are off: the address given is the only way in.

mod support;

use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};
use std::process::Command;
use std::time::Duration;
use support::*;

fn have_v6_loopback() -> bool {
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        return true;
    }
    skip_or_fail("--bind test", "no IPv6 loopback (::1) on this host")
}

fn leech(torrent: &std::path::Path, dir: &std::path::Path, peer: &str) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--once", "--peer", peer]);
    Child::spawn("peer leech", cmd)
}

#[test]
fn a_two_bind_addresses_one_per_family() {
    if !have_v6_loopback() {
        return;
    }
    let tmp = TempDir::new("bind-two");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "b.bin", 700 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &["--piece-length", "32K"]);
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--bind",
        "::1",
        "--no-lsd",
        "--no-dht",
    ]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("listening on", LONG_WAIT),
        "{}",
        seeder.output()
    );
    let out = seeder.output();
    assert!(
        out.contains(&format!("TCP 127.0.0.1:{port}"))
            && out.contains(&format!("TCP [::1]:{port}")),
        "{out}"
    );
    let mut leechers = Vec::new();
    for (i, peer) in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
        .iter()
        .enumerate()
    {
        let down = tmp.subdir(&format!("down{i}"));
        leechers.push((leech(&torrent, &down, peer), down));
    }
    for (l, down) in &mut leechers {
        let st = l.wait_exit(LONG_WAIT);
        assert!(
            st.is_some_and(|s| s.success()),
            "{}\n---\n{}",
            l.output(),
            seeder.output()
        );
        assert_same_data(&src, &down.join("b.bin"));
    }
}

#[test]
fn b_daemon_binds_ipv6_loopback_only() {
    if !have_v6_loopback() {
        return;
    }
    let tmp = TempDir::new("bind-daemon");
    let state = tmp.subdir("state");
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(&state)
        .args(["--port", &port.to_string(), "--bind", "[::1]"])
        .args(["--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut d = Child::spawn("peer daemon", cmd);
    assert!(
        d.wait_for_output("control API on", LONG_WAIT),
        "daemon did not start\n{}",
        d.output()
    );
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect((
            Ipv6Addr::LOCALHOST,
            port
        ))
        .is_ok()),
        "the daemon does not listen on [::1]:{port}\n{}",
        d.output()
    );
    // Only [::1]: the same port number over IPv4 is not ours.
    assert!(
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(2))
            .is_err(),
        "the daemon took IPv4 too\n{}",
        d.output()
    );
    d.kill();
}

#[test]
fn c_two_addresses_of_one_family_are_refused() {
    let tmp = TempDir::new("bind-refused");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "r.bin", 40 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &[]);
    let port = free_port().to_string();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--bind",
        "127.0.0.2",
        "--no-lsd",
        "--no-dht",
    ]);
    let out = run_bounded("peer --bind twice", cmd, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("one address per family"), "{err}");
}
