//! Interop over uTP only (BEP 29, issue 25) with libtorrent 2.0 on 127.0.0.1, both
//! directions, byte for byte: libtorrent with `enable_outgoing_tcp` and
//! `enable_incoming_tcp` false (uTP only) seeds and `peer --transport utp` downloads from
//! it; `peer --transport utp` seeds and libtorrent (uTP only) downloads from it; and
//! `peer --transport utp` downloads a multi-file torrent from libtorrent (uTP only)
//! starting from its magnet link (the metadata over uTP too).
//!
//! Each test prints its rate (`UTP RATE ...`). The file is 8 MiB; `UTP_MIB=N` measures with
//! a larger one (docs/BENCHMARKS.md). Every wait is bounded; every child is killed on drop.

mod support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const NAME: &str = "utp.bin";

fn size() -> usize {
    let mib = std::env::var("UTP_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=4096).contains(n))
        .unwrap_or(8);
    mib << 20
}

struct Fixture {
    tmp: TempDir,
    seed_dir: PathBuf,
    torrent: PathBuf,
    len: usize,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let tmp = TempDir::new(tag);
        let seed_dir = tmp.subdir("seed");
        let len = size();
        make_single_file(&seed_dir, NAME, len);
        let torrent = tmp.path().join("utp.torrent");
        peer_create_torrent(&seed_dir.join(NAME), &torrent, &["--piece-length", "256K"]);
        Fixture {
            tmp,
            seed_dir,
            torrent,
            len,
        }
    }

    fn report(&self, what: &str, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "UTP RATE {what}: {} MiB in {secs:.2} s = {:.1} MB/s (start-up included)",
            self.len >> 20,
            self.len as f64 / 1e6 / secs
        );
    }
}

/// Run `peer ... --once` (`cmd`) to completion within `LONG_WAIT`; it must exit 0.
fn leech_once(name: &str, cmd: Command, seeder: &Child) {
    let mut leech = Child::spawn(name, cmd);
    leech.close_stdin();
    let status = leech.wait_exit(LONG_WAIT).unwrap_or_else(|| {
        panic!(
            "peer --once did not finish within {LONG_WAIT:?}\n{}\n{}",
            leech.output(),
            seeder.output()
        )
    });
    assert!(
        status.success(),
        "peer --once exited with {status}\n{}\n{}",
        leech.output(),
        seeder.output()
    );
}

#[test]
fn a_peer_downloads_from_libtorrent_over_utp_only() {
    if !require_tool("libtorrent") {
        return;
    }
    let fx = Fixture::new("utp-lt-seeds");
    let lt_port = free_port();
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(&fx.torrent)
        .arg(&fx.seed_dir)
        .arg(lt_port.to_string())
        .args(["--timeout", "300", "--utp"]);
    let mut seeder = Child::spawn("lt_seed.py", cmd);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "libtorrent never started seeding\n{}",
        seeder.output()
    );
    let down = fx.tmp.subdir("download");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&fx.torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string()])
        .args(["--peer", &format!("127.0.0.1:{lt_port}")])
        .args(["--transport", "utp"])
        .arg("--once")
        .arg("--no-lsd")
        .arg("--no-dht")
        .env("RUST_LOG", "info");
    let started = Instant::now();
    leech_once("peer leech", cmd, &seeder);
    fx.report("peer <- libtorrent", started);
    assert_same_data(&fx.seed_dir.join(NAME), &down.join(NAME));
}

#[test]
fn b_libtorrent_downloads_from_peer_over_utp_only() {
    if !require_tool("libtorrent") {
        return;
    }
    let fx = Fixture::new("utp-peer-seeds-lt");
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&fx.torrent)
        .arg("--dir")
        .arg(&fx.seed_dir)
        .args(["--port", &port.to_string()])
        .args(["--transport", "utp"])
        .arg("--no-lsd")
        .arg("--no-dht")
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed", cmd);
    // The UDP port opens with the TCP listener.
    let listening = wait_until(LONG_WAIT, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() || seeder.try_status().is_some()
    });
    assert!(
        listening && seeder.try_status().is_none(),
        "our seeder is not listening on {port}\n{}",
        seeder.output()
    );
    let leech_dir = fx.tmp.subdir("lt-download");
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(&fx.torrent)
        .arg(&leech_dir)
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--timeout", &LONG_WAIT.as_secs().to_string(), "--utp"]);
    let started = Instant::now();
    let mut leech = Child::spawn("lt_leech.py", cmd);
    leech.close_stdin();
    let status = leech
        .wait_exit(LONG_WAIT + Duration::from_secs(30))
        .unwrap_or_else(|| panic!("lt_leech.py hung\n{}\n{}", leech.output(), seeder.output()));
    assert!(
        status.success(),
        "libtorrent (uTP only) could not download from our seeder: {status}\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    fx.report("libtorrent <- peer", started);
    assert_same_data(&fx.seed_dir.join(NAME), &leech_dir.join(NAME));
}

#[test]
fn c_a_peer_downloads_a_multi_file_magnet_link_from_libtorrent_over_utp_only() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("utp-lt-magnet");
    let seed_dir = tmp.subdir("seed");
    let src = make_multi_file_dir(&seed_dir, "multi");
    let torrent = tmp.path().join("multi.torrent");
    let ih = peer_create_torrent(&src, &torrent, &["--piece-length", "32K"]);
    let lt_port = free_port();
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(&torrent)
        .arg(&seed_dir)
        .arg(lt_port.to_string())
        .args(["--timeout", "300", "--utp"]);
    let mut seeder = Child::spawn("lt_seed.py", cmd);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "libtorrent never started seeding\n{}",
        seeder.output()
    );
    // The metadata (BEP 9) and the data both over uTP: libtorrent accepts no TCP.
    let magnet = format!("magnet:?xt=urn:btih:{ih}&x.pe=127.0.0.1:{lt_port}");
    let down = tmp.subdir("download");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&magnet)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string()])
        .args(["--transport", "utp"])
        .arg("--once")
        .arg("--no-lsd")
        .arg("--no-dht")
        .env("RUST_LOG", "info");
    leech_once("peer leech (magnet)", cmd, &seeder);
    assert_same_data(&src, &down.join("multi"));
}
