//! Interop with encryption forced on the other side (issue 10): Message
//! Stream Encryption with real clients, both directions, byte for byte.
//!
//! (a) libtorrent seeds with encryption forced (`in/out_enc_policy` forced,
//!     `allowed_enc_level` RC4 only), `peer --encryption require` downloads;
//! (b) `peer` (default policy, prefer) seeds, libtorrent forced downloads;
//! (c) aria2 with `--bt-require-crypto=true --bt-min-crypto-level=arc4`
//!     seeds, `peer` (prefer) dials it and downloads;
//! (d) `peer --encryption require` seeds, aria2 (crypto required) downloads,
//!     finding the seeder through its embedded tracker.
//!
//! Each test prints the transfer rate (`ENCRYPTION RATE ...`). The file is
//! 8 MiB; set `ENC_MIB=N` to measure with a larger one (docs/INTEROP.md).
//! Every wait is bounded by [`LONG_WAIT`]; every child is killed on drop.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const NAME: &str = "encrypted.bin";

fn size() -> usize {
    let mib = std::env::var("ENC_MIB")
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
    /// `<tmp>/seed/NAME` and a torrent of it by `peer create EXTRA...`.
    fn new(tag: &str, extra: &[&str]) -> Fixture {
        let tmp = TempDir::new(tag);
        let seed_dir = tmp.subdir("seed");
        let len = size();
        make_single_file(&seed_dir, NAME, len);
        let torrent = tmp.path().join("enc.torrent");
        let mut args = vec!["--piece-length", "256K"];
        args.extend_from_slice(extra);
        peer_create_torrent(&seed_dir.join(NAME), &torrent, &args);
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
            "ENCRYPTION RATE {what}: {} MiB in {secs:.2} s = {:.1} MB/s (start-up included)",
            self.len >> 20,
            self.len as f64 / 1e6 / secs
        );
    }
}

fn peer_seed(fx: &Fixture, port: u16, encryption: &str) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&fx.torrent)
        .arg("--dir")
        .arg(&fx.seed_dir)
        .args(["--port", &port.to_string()])
        .args(["--encryption", encryption])
        .arg("--no-lsd") // tests send nothing beyond loopback
        .arg("--no-dht")
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed", cmd);
    let listening = wait_until(LONG_WAIT, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() || seeder.try_status().is_some()
    });
    assert!(
        listening && seeder.try_status().is_none(),
        "our seeder is not listening on {port}\n{}",
        seeder.output()
    );
    seeder
}

/// `peer TORRENT --once --peer 127.0.0.1:REMOTE --encryption E`: exit 0 and
/// identical data required.
fn peer_leech_from(fx: &Fixture, remote_port: u16, remote: &mut Child, encryption: &str) {
    let down = fx.tmp.subdir("download");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&fx.torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string()])
        .args(["--peer", &format!("127.0.0.1:{remote_port}")])
        .args(["--encryption", encryption])
        .arg("--once")
        .arg("--no-lsd")
        .arg("--no-dht")
        .env("RUST_LOG", "info");
    let started = Instant::now();
    let mut leech = Child::spawn("peer leech", cmd);
    leech.close_stdin();
    let status = leech.wait_exit(LONG_WAIT).unwrap_or_else(|| {
        panic!(
            "peer --once did not finish within {LONG_WAIT:?}\n{}\n{}",
            leech.output(),
            remote.output()
        )
    });
    assert!(
        status.success(),
        "peer --once exited with {status}\n{}\n{}",
        leech.output(),
        remote.output()
    );
    fx.report(&format!("peer ({encryption}) <- remote"), started);
    assert_same_data(&fx.seed_dir.join(NAME), &down.join(NAME));
}

fn wait_child_ok(name: &str, child: &mut Child, other: &Child) {
    let status = child
        .wait_exit(LONG_WAIT + Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{name} hung\n{}\n{}", child.output(), other.output()));
    assert!(
        status.success(),
        "{name} could not download from our seeder: {status}\n{}\n{}",
        child.output(),
        other.output()
    );
}

#[test]
fn a_peer_require_downloads_from_libtorrent_forced() {
    if !require_tool("libtorrent") {
        return;
    }
    let fx = Fixture::new("enc-lt-seeds", &[]);
    let lt_port = free_port();
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(&fx.torrent)
        .arg(&fx.seed_dir)
        .arg(lt_port.to_string())
        .args(["--timeout", "300", "--encrypt"]);
    let mut seeder = Child::spawn("lt_seed.py", cmd);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "libtorrent never started seeding\n{}",
        seeder.output()
    );
    peer_leech_from(&fx, lt_port, &mut seeder, "require");
}

#[test]
fn b_libtorrent_forced_downloads_from_peer_prefer() {
    if !require_tool("libtorrent") {
        return;
    }
    let fx = Fixture::new("enc-peer-seeds-lt", &[]);
    let port = free_port();
    let seeder = peer_seed(&fx, port, "prefer");
    let leech_dir = fx.tmp.subdir("lt-download");
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(&fx.torrent)
        .arg(&leech_dir)
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--timeout", &LONG_WAIT.as_secs().to_string(), "--encrypt"]);
    let started = Instant::now();
    let mut leech = Child::spawn("lt_leech.py", cmd);
    leech.close_stdin();
    wait_child_ok("lt_leech.py (encryption forced)", &mut leech, &seeder);
    fx.report("libtorrent (forced) <- peer (prefer)", started);
    assert_same_data(&fx.seed_dir.join(NAME), &leech_dir.join(NAME));
}

/// aria2c with encryption required, no DHT/LPD/PEX, quiet.
fn aria2_cmd(torrent: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new("aria2c");
    cmd.arg(format!("--dir={}", dir.display()))
        .arg(format!("--listen-port={port}"))
        .args([
            "--bt-require-crypto=true",
            "--bt-min-crypto-level=arc4",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--check-integrity=true",
            "--file-allocation=none",
            "--summary-interval=0",
            "--console-log-level=notice",
            "--bt-tracker-connect-timeout=5",
            "--bt-tracker-interval=2",
            "--no-conf=true",
        ])
        .arg(torrent);
    cmd
}

#[test]
fn c_peer_prefer_downloads_from_aria2_requiring_crypto() {
    if !require_tool("aria2c") {
        return;
    }
    let fx = Fixture::new("enc-aria2-seeds", &[]);
    let port = free_port();
    let mut cmd = aria2_cmd(&fx.torrent, &fx.seed_dir, port);
    cmd.arg("--seed-ratio=0.0").arg("--seed-time=10");
    let mut seeder = Child::spawn("aria2c seed", cmd);
    // aria2 checks the file first, then listens.
    let listening = wait_until(LONG_WAIT, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() || seeder.try_status().is_some()
    });
    assert!(
        listening && seeder.try_status().is_none(),
        "aria2 is not listening on {port}\n{}",
        seeder.output()
    );
    peer_leech_from(&fx, port, &mut seeder, "prefer");
}

#[test]
fn d_aria2_requiring_crypto_downloads_from_peer_require() {
    if !require_tool("aria2c") {
        return;
    }
    // The torrent announces to the seeder's embedded tracker: aria2 has no
    // way to be told a peer address directly.
    let port = free_port();
    let fx = Fixture::new(
        "enc-peer-seeds-aria2",
        &["--announce", &format!("127.0.0.1:{port}")],
    );
    let seeder = peer_seed(&fx, port, "require");
    let leech_dir = fx.tmp.subdir("aria2-download");
    let mut cmd = aria2_cmd(&fx.torrent, &leech_dir, free_port());
    cmd.arg("--seed-time=0");
    let started = Instant::now();
    let mut leech = Child::spawn("aria2c leech", cmd);
    leech.close_stdin();
    wait_child_ok("aria2c (crypto required)", &mut leech, &seeder);
    fx.report("aria2 (require) <- peer (require)", started);
    assert_same_data(&fx.seed_dir.join(NAME), &leech_dir.join(NAME));
}
