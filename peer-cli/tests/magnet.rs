//! Starting from a magnet link: the info dictionary is fetched from peers
//! with `ut_metadata` (BEP 9), checked against the info-hash, then the data
//! is downloaded. From our own seeder and from libtorrent.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use support::*;

const NAME: &str = "magnet data";

fn magnet_leech(hash: &str, seeder_port: u16, down: &Path, seeder: &mut Child) {
    let magnet = format!("magnet:?xt=urn:btih:{hash}&dn=x&x.pe=127.0.0.1:{seeder_port}");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&magnet)
        .arg("--dir")
        .arg(down)
        .args(["--port", &free_port().to_string(), "--once", "--no-lsd"])
        .env("RUST_LOG", "info");
    let mut leech = Child::spawn("peer magnet", cmd);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "magnet download failed\n{}\n{}",
        leech.output(),
        seeder.output()
    );
}

#[test]
fn magnet_link_from_our_seeder() {
    let tmp = TempDir::new("magnet-ours");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let hash = peer_create_torrent(&src, &torrent, &[]);
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &port.to_string(), "--no-lsd"]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(wait_until(LONG_WAIT, || TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    let down = tmp.subdir("down");
    magnet_leech(&hash, port, &down, &mut seeder);
    assert_same_data(&src, &down.join(NAME));
}

#[test]
fn magnet_link_from_libtorrent() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("magnet-lt");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let hash = peer_create_torrent(&src, &torrent, &[]);
    let lt_port = free_port();
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(&torrent)
        .arg(&seed_dir)
        .arg(lt_port.to_string())
        .args(["--timeout", "300"]);
    let mut seeder = Child::spawn("lt_seed.py", cmd);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "{}",
        seeder.output()
    );
    let down = tmp.subdir("down");
    magnet_leech(&hash, lt_port, &down, &mut seeder);
    assert_same_data(&src, &down.join(NAME));
}

/// The magnet link's only peer (`x.pe`) starts 3 s after `peer MAGNET
/// --once`: the metadata thread keeps re-dialling it (1 s, 2 s, 4 s ...),
/// fetches the metadata once it is up, and the download completes without
/// the ~10 s wait the first data connection used to take.
#[test]
fn magnet_whose_peer_starts_3_s_later_completes() {
    let tmp = TempDir::new("magnet-late");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, NAME);
    let torrent = tmp.path().join("t.torrent");
    let hash = peer_create_torrent(&src, &torrent, &[]);
    let port = free_port();
    let down = tmp.subdir("down");
    let magnet = format!("magnet:?xt=urn:btih:{hash}&dn=x&x.pe=127.0.0.1:{port}");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&magnet)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string(), "--once", "--no-lsd"])
        .args(["--no-dht"])
        .env("RUST_LOG", "info");
    let t0 = std::time::Instant::now();
    let mut leech = Child::spawn("peer magnet", cmd);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        leech.try_status().is_none(),
        "the magnet gave up before its peer was up\n{}",
        leech.output()
    );
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let seeder = Child::spawn("peer seed", cmd);
    let status = leech.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "magnet download failed\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&src, &down.join(NAME));
    eprintln!("magnet with a late peer: complete after {:?}", t0.elapsed());
}
