//! IPv6 interop with libtorrent over `::1` (issue 21), TCP only (uTP off in
//! the scripts): libtorrent listens on `[::1]` alone, so every byte crosses
//! IPv6.
//!
//! (a) libtorrent seeds on `[::1]:P`, `peer --peer [::1]:P --once` downloads;
//! (b) `peer` seeds (dual-stack listener), libtorrent on `[::1]` downloads
//!     from `[::1]:P`.

mod support;

use std::net::{Ipv6Addr, TcpStream};
use std::process::Command;
use std::time::Duration;
use support::*;

const NAME: &str = "v6 data";

fn ready() -> bool {
    if !require_tool("libtorrent") {
        return false;
    }
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        return skip_or_fail("IPv6 interop", "no IPv6 loopback (::1) on this host");
    }
    true
}

fn fixture(tag: &str) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = TempDir::new(tag);
    let seed_dir = tmp.subdir("seed");
    make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("v6.torrent");
    peer_create_torrent(&seed_dir.join(NAME), &torrent, &["--piece-length", "16K"]);
    (tmp, seed_dir, torrent)
}

#[test]
fn a_peer_downloads_from_libtorrent_over_ipv6() {
    if !ready() {
        return;
    }
    let (tmp, seed_dir, torrent) = fixture("v6-lt-seeds");
    let lt_port = free_port();
    let seeder = clients::lt_seeder(&torrent, &seed_dir, lt_port, 300, &["--listen-host", "::1"]);
    let down = tmp.subdir("download");
    let mut cmd = clients::our_leecher_cmd(&torrent, &down, &format!("[::1]:{lt_port}"));
    cmd.arg("--once");
    let mut leech = Child::spawn("peer leech", cmd);
    leech.close_stdin();
    let st = leech.wait_exit(LONG_WAIT);
    assert!(
        st.is_some_and(|s| s.success()),
        "peer --once over IPv6: {st:?}\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&seed_dir.join(NAME), &down.join(NAME));
}

#[test]
fn b_libtorrent_downloads_from_peer_over_ipv6() {
    if !ready() {
        return;
    }
    let (tmp, seed_dir, torrent) = fixture("v6-peer-seeds");
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        wait_until(LONG_WAIT, || {
            TcpStream::connect((Ipv6Addr::LOCALHOST, port)).is_ok() || seeder.try_status().is_some()
        }) && seeder.try_status().is_none(),
        "our seeder is not listening on [::1]:{port}\n{}",
        seeder.output()
    );
    let leech_dir = tmp.subdir("lt-download");
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(&torrent)
        .arg(&leech_dir)
        .args(["--listen-host", "::1"])
        .args(["--peer", &format!("[::1]:{port}")])
        .args(["--timeout", &LONG_WAIT.as_secs().to_string()]);
    let mut leech = Child::spawn("lt_leech.py", cmd);
    leech.close_stdin();
    let status = leech
        .wait_exit(LONG_WAIT + Duration::from_secs(30))
        .unwrap_or_else(|| panic!("lt_leech.py hung\n{}\n{}", leech.output(), seeder.output()));
    assert!(
        status.success(),
        "libtorrent could not download from our seeder over IPv6: {status}\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&seed_dir.join(NAME), &leech_dir.join(NAME));
}
