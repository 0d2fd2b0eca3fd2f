//! One UDP port (issue 10): the DHT and the UDP tracker share the UDP socket
//! on the listening port number, so `--dht-bootstrap IP:PORT` with another
//! peer's listening address joins its DHT. On loopback, with LSD off and no
//! tracker, a magnet link resolves through the seeder's DHT node alone. The
//! namespace (LAN) variant is in `lan.rs`.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

const NAME: &str = "one port data";

#[test]
fn dht_bootstrap_from_a_peers_listening_port_resolves_a_magnet() {
    let tmp = TempDir::new("one-port");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("trackerless.torrent");
    let mut create = Command::new(peer_bin());
    create.arg("create").arg(&src).arg("-o").arg(&torrent);
    let out = run_bounded("peer create", create, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .expect("peer create prints the info-hash")
        .to_string();

    let port = free_port();
    let mut seed = Command::new(peer_bin());
    seed.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &port.to_string(), "--no-lsd"])
        .env(
            "RUST_LOG",
            "info,bittorrent_core::discovery::announcer=debug",
        );
    let mut seeder = Child::spawn("peer seed", seed);
    // The start-up line names every socket: TCP and UDP on the same port.
    assert!(
        seeder.wait_for_output("listening on", LONG_WAIT),
        "no start-up line\n{}",
        seeder.output()
    );
    let out = seeder.output();
    assert!(
        out.contains(&format!("TCP [::]:{port} (peer wire + HTTP tracker)"))
            && out.contains(&format!("UDP 0.0.0.0:{port} (UDP tracker + DHT)"))
            && out.contains(&format!("UDP [::]:{port} (UDP tracker + DHT)"))
            && !out.contains("LSD 239"),
        "start-up line\n{out}"
    );

    // Start the magnet once the seeder has announced itself to its own DHT
    // node (its first DHT round): a magnet link that finds nobody gives up
    // at once today.
    assert!(
        seeder.wait_for_output("DHT: ", LONG_WAIT),
        "the seeder never ran its DHT round\n{}",
        seeder.output()
    );
    std::thread::sleep(Duration::from_millis(300));

    let down = tmp.subdir("magnet-download");
    let mut leech = Command::new(peer_bin());
    leech
        .arg(format!("magnet:?xt=urn:btih:{hash}"))
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--once"])
        .args(["--dht-bootstrap", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info");
    let mut leecher = Child::spawn("peer magnet", leech);
    leecher.close_stdin();
    let status = leecher.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "the magnet link did not resolve through the seeder's DHT port\n{}\n{}",
        leecher.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
}
