//! A swarm found through an HTTPS tracker: the torrent announces only to
//! `https://localhost:PORT/announce`, a TLS terminator (rustls, a
//! certificate signed by a test CA made with rcgen) in front of the
//! seeder's embedded tracker. The leecher trusts that CA through
//! `SSL_CERT_FILE` only, is given no peer address, and downloads everything
//! from the seeder it learns of over TLS. Without the CA it cannot announce.

mod support;

#[path = "../../bittorrent-core/tests/tls/mod.rs"]
mod tls;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;
use support::*;
use tls::{forward_to, TestCa, TestServer};

#[test]
fn leecher_finds_the_seeder_through_an_https_tracker() {
    let tmp = TempDir::new("https-tracker");
    let ca = TestCa::new();
    let ca_file = ca.write_ca(&tmp.subdir("ca"));
    let seed_port = free_port();
    let front = TestServer::https(
        &ca,
        forward_to(SocketAddr::from(([127, 0, 0, 1], seed_port))),
    );
    let announce = format!("https://localhost:{}/announce", front.addr.port());

    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "secure.bin", 600 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &["--announce", &announce]);
    let out = run_peer(&["info".as_ref(), torrent.as_os_str(), "--json".as_ref()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&announce));

    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &seed_port.to_string(), "--no-lsd", "--no-dht"])
        .env("SSL_CERT_FILE", &ca_file)
        .env_remove("SSL_CERT_DIR")
        .env("RUST_LOG", "info");
    let seeder = Child::spawn("peer seed (https tracker)", cmd);
    assert!(wait_until(LONG_WAIT, || TcpStream::connect((
        "127.0.0.1",
        seed_port
    ))
    .is_ok()));

    // Without the CA: the announce fails on the certificate.
    let down = tmp.subdir("down");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(tmp.subdir("untrusted"))
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .env("SSL_CERT_FILE", tmp.path().join("no-such-ca.pem"))
        .env("SSL_CERT_DIR", tmp.subdir("empty-ca-dir"))
        .env("RUST_LOG", "warn");
    let mut untrusted = Child::spawn("peer leech (untrusted)", cmd);
    assert!(
        untrusted.wait_for_output("TLS", Duration::from_secs(60)),
        "{}",
        untrusted.output()
    );
    untrusted.kill();

    // With the CA: the tracker over TLS names the seeder; no --peer given.
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&down)
        .args([
            "--port",
            &free_port().to_string(),
            "--no-lsd",
            "--no-dht",
            "--once",
        ])
        .env("SSL_CERT_FILE", &ca_file)
        .env_remove("SSL_CERT_DIR")
        .env("RUST_LOG", "info");
    let mut leech = Child::spawn("peer leech (https tracker)", cmd);
    let st = leech.wait_exit(LONG_WAIT);
    assert!(
        st.is_some_and(|s| s.success()),
        "{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join("secure.bin"));
    assert!(
        leech.logged(&format!("tracker {announce}")),
        "{}",
        leech.output()
    );
}
