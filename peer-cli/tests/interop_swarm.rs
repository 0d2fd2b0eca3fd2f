//! Interop (issue 3 contract): our peer exchanges data with libtorrent and Transmission
//! over loopback, byte for byte.
//!
//! (a) libtorrent seeds, `peer --once` downloads;
//! (b) `peer` seeds, libtorrent downloads;
//! (c) Transmission seeds, `peer --once` dials it and downloads
//!     (Transmission 3.00 never dials 127.x peers, so we must dial it).
//!
//! Every wait is bounded by [`LONG_WAIT`]; every child is killed on drop.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// Name of the shared data (a directory with several files of odd sizes).
const NAME: &str = "swarm data";

struct Fixture {
    tmp: TempDir,
    seed_dir: PathBuf,
    torrent: PathBuf,
}

impl Fixture {
    /// Seed data under `<tmp>/seed/NAME/` and a torrent of it (16 KiB pieces, so
    /// there are many pieces and a short last one), made by `make`.
    fn new(tag: &str, make: impl Fn(&Path, &Path)) -> Fixture {
        let tmp = TempDir::new(tag);
        let seed_dir = tmp.subdir("seed");
        let src = make_multi_file_dir(&seed_dir, NAME);
        let torrent = tmp.path().join("swarm.torrent");
        make(&src, &torrent);
        assert!(torrent.is_file(), "no torrent at {}", torrent.display());
        Fixture {
            tmp,
            seed_dir,
            torrent,
        }
    }

    fn source(&self) -> PathBuf {
        self.seed_dir.join(NAME)
    }
}

fn must_succeed(name: &str, cmd: Command) {
    let out = run_bounded(name, cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lt_create(src: &Path, out: &Path) {
    let mut cmd = python_cmd("lt_create.py");
    cmd.arg(src).arg(out).args(["--piece-length", "16384"]);
    must_succeed("lt_create.py", cmd);
}

fn peer_create(src: &Path, out: &Path) {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("create")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(["--piece-length", "16384"]);
    must_succeed("peer create", cmd);
}

/// Run our leecher `peer TORRENT --dir DIR --port P --peer 127.0.0.1:REMOTE --once`
/// and require exit 0 within [`LONG_WAIT`] and byte-identical data.
fn peer_leech_from(fx: &Fixture, remote_port: u16, remote: &mut Child) {
    let down = fx.tmp.subdir("download");
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&fx.torrent)
        .arg("--dir")
        .arg(&down)
        .args(["--port", &free_port().to_string()])
        .args(["--peer", &format!("127.0.0.1:{remote_port}")])
        .arg("--once")
        .arg("--no-lsd") // tests send nothing beyond loopback
        .env("RUST_LOG", "info");
    let mut leech = Child::spawn("peer leech", cmd);
    leech.close_stdin();
    let status = leech.wait_exit(LONG_WAIT);
    let status = status.unwrap_or_else(|| {
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
    assert_same_data(&fx.source(), &down.join(NAME));
}

#[test]
fn a_peer_downloads_from_libtorrent_seed() {
    if !require_tool("libtorrent") {
        return;
    }
    let fx = Fixture::new("lt-seeds", lt_create);
    let lt_port = free_port();
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(&fx.torrent)
        .arg(&fx.seed_dir)
        .arg(lt_port.to_string())
        .args(["--timeout", "300"]);
    let mut seeder = Child::spawn("lt_seed.py", cmd);
    assert!(
        seeder.wait_for_output("READY", LONG_WAIT),
        "libtorrent never started seeding\n{}",
        seeder.output()
    );
    peer_leech_from(&fx, lt_port, &mut seeder);
}

#[test]
fn b_libtorrent_downloads_from_peer_seed() {
    if !require_tool("libtorrent") {
        return;
    }
    let fx = Fixture::new("peer-seeds", peer_create);
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&fx.torrent)
        .arg("--dir")
        .arg(&fx.seed_dir)
        .args(["--port", &port.to_string()])
        .arg("--no-lsd")
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
    let leech_dir = fx.tmp.subdir("lt-download");
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(&fx.torrent)
        .arg(&leech_dir)
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--timeout", &LONG_WAIT.as_secs().to_string()]);
    let mut leech = Child::spawn("lt_leech.py", cmd);
    leech.close_stdin();
    let status = leech
        .wait_exit(LONG_WAIT + Duration::from_secs(30))
        .unwrap_or_else(|| panic!("lt_leech.py hung\n{}\n{}", leech.output(), seeder.output()));
    assert!(
        status.success(),
        "libtorrent could not download from our seeder: {status}\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    assert_same_data(&fx.source(), &leech_dir.join(NAME));
}

#[test]
fn c_peer_downloads_from_transmission_seed() {
    if !require_tools(&["transmission-cli", "libtorrent"]) {
        return;
    }
    let fx = Fixture::new("tr-seeds", lt_create);
    let tr_port = free_port();
    let config = fx.tmp.subdir("transmission-config");
    let cmd = transmission_cmd(None, &config, &fx.seed_dir, tr_port, &fx.torrent);
    let mut seeder = Child::spawn("transmission-cli", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "Transmission never started seeding\n{}",
        seeder.output()
    );
    peer_leech_from(&fx, tr_port, &mut seeder);
}
