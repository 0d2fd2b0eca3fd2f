//! The interop matrix (issue 10): every mainstream client in both directions,
//! with a single-file torrent, a multi-file torrent and a magnet link, the
//! peers finding each other through our embedded tracker with no `--peer`
//! hint, on loopback. Clients: aria2, qBittorrent (`qbittorrent-nox` driven
//! through its Web API by `interop/qbt.py`), rqbit, Transmission and
//! libtorrent (`interop/lt_*.py`).
//!
//! - `peer` seeds: the torrent's announce is the seeder's own `IP:PORT`; the
//!   client leeches it (or the magnet link with `tr=` that tracker).
//! - The client seeds: a `peer --open-tracker` process is the tracker; our
//!   `peer --once` leeches (or resolves the magnet link through it).
//!
//! Each case prints one `INTEROP` line with the measured rate (wall time from
//! the leecher's start to completion, start-up included; docs/INTEROP.md).
//! The mixed swarm (our seeder; leechers ours, aria2, libtorrent and
//! qBittorrent) is in `interop_mixed.rs`. Every wait is bounded by
//! [`LONG_WAIT`]; every child is killed on drop.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// Size of the single-file case.
const SINGLE_LEN: usize = 4 * 1024 * 1024 + 777;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Aria2,
    Qbittorrent,
    Rqbit,
    Transmission,
    Libtorrent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Single,
    Multi,
    Magnet,
}

const KINDS: [Kind; 3] = [Kind::Single, Kind::Multi, Kind::Magnet];

/// rqbit from PATH or from cargo's bin directory (`cargo install rqbit`).
fn rqbit_bin() -> Option<PathBuf> {
    find_on_path("rqbit").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let p = home.join("bin/rqbit");
        p.is_file().then_some(p)
    })
}

impl Client {
    /// True if the client is installed (SKIP by hand, failure under CI=true).
    fn available(self) -> bool {
        match self {
            Client::Aria2 => require_tool("aria2c"),
            Client::Qbittorrent => {
                if find_on_path("qbittorrent-nox").is_some() {
                    true
                } else {
                    skip_or_fail("qbittorrent-nox", "apt-get install qbittorrent-nox")
                }
            }
            Client::Rqbit => {
                if rqbit_bin().is_some() {
                    true
                } else {
                    skip_or_fail("rqbit", "cargo install rqbit --locked")
                }
            }
            Client::Transmission => require_tool("transmission-cli"),
            Client::Libtorrent => require_tool("libtorrent"),
        }
    }
}

/// The shared data, its torrent and where it is seeded from.
struct Case {
    tmp: TempDir,
    /// The file or the top directory of the torrent.
    src: PathBuf,
    /// The directory that holds `src` (the seeder's `--dir`).
    seed_root: PathBuf,
    torrent: PathBuf,
    hash: String,
    name: String,
    bytes: u64,
    kind: Kind,
}

impl Case {
    fn new(tag: &str, kind: Kind, announce_port: u16) -> Case {
        let tmp = TempDir::new(tag);
        let seed_root = tmp.subdir("seed");
        let (src, name) = match kind {
            Kind::Single => (
                make_single_file(&seed_root, "single.bin", SINGLE_LEN),
                "single.bin".to_string(),
            ),
            Kind::Multi | Kind::Magnet => (
                make_multi_file_dir(&seed_root, "multi data"),
                "multi data".to_string(),
            ),
        };
        let bytes = read_tree_or_file(&src);
        let torrent = tmp.path().join("case.torrent");
        let hash = peer_create_torrent(
            &src,
            &torrent,
            &[
                "--announce",
                &format!("127.0.0.1:{announce_port}"),
                "--piece-length",
                "32768",
            ],
        );
        Case {
            tmp,
            src,
            seed_root,
            torrent,
            hash,
            name,
            bytes,
            kind,
        }
    }

    /// What the leecher is given: the .torrent, or a magnet link whose only
    /// source is the tracker on `tracker_port`.
    fn source(&self, tracker_port: u16) -> String {
        match self.kind {
            Kind::Magnet => format!(
                "magnet:?xt=urn:btih:{}&dn={}&tr=http%3A%2F%2F127.0.0.1%3A{tracker_port}%2Fannounce",
                self.hash,
                self.name.replace(' ', "+")
            ),
            _ => self.torrent.display().to_string(),
        }
    }
}

fn read_tree_or_file(p: &Path) -> u64 {
    if p.is_file() {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    } else {
        read_tree(p).values().map(|v| v.len() as u64).sum()
    }
}

/// One `INTEROP ...` line on the real stderr (not captured), for INTEROP.md.
fn report(direction: &str, kind: Kind, bytes: u64, took: Duration) {
    let mbps = bytes as f64 / took.as_secs_f64().max(1e-3) / 1e6;
    let _ = writeln!(
        std::io::stderr().lock(),
        "INTEROP {direction} {kind:?}: {:.2} MB in {:.2} s = {mbps:.1} MB/s",
        bytes as f64 / 1e6,
        took.as_secs_f64()
    );
}

/// `peer` seeding `case` on `port` (its embedded tracker is the announce).
fn peer_seeder(case: &Case, port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&case.torrent)
        .arg("--dir")
        .arg(&case.seed_root)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "our seeder never started seeding\n{}",
        seeder.output()
    );
    // Its announcer registers it with its own tracker right after the check;
    // a client announcing before that would wait a whole interval.
    wait_tracker_knows(port, &case.hash, &mut seeder);
    seeder
}

/// `peer --open-tracker` on `port`.
fn open_tracker(port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.args([
        "--open-tracker",
        "--port",
        &port.to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut t = Child::spawn("peer --open-tracker", cmd);
    assert!(
        t.wait_for_output("open tracker on", LONG_WAIT),
        "{}",
        t.output()
    );
    t
}

/// Peers the tracker on `port` knows for `hash` (scrape: complete + incomplete).
fn tracker_peers(port: u16, hash: &str) -> u64 {
    let mut q = String::new();
    for i in 0..20 {
        q.push('%');
        q.push_str(&hash[2 * i..2 * i + 2]);
    }
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /scrape?info_hash={q} HTTP/1.0\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    let int_after = |key: &str| -> u64 {
        text.find(key)
            .and_then(|i| {
                text[i + key.len()..]
                    .split('e')
                    .next()
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    };
    int_after("8:completei") + int_after("10:incompletei")
}

fn wait_tracker_knows(port: u16, hash: &str, who: &mut Child) {
    assert!(
        wait_until(LONG_WAIT, || tracker_peers(port, hash) > 0),
        "the seeding client never announced to our tracker\n{}",
        who.output()
    );
}

/// The client downloads `source` into `down` (returns when it is complete).
fn client_leech(client: Client, case: &Case, source: &str, down: &Path, seeder: &mut Child) {
    let port = free_port();
    let fail = |what: &str, c: &Child, s: &Child| -> ! {
        panic!("{client:?} {what}\n{}\n{}", c.output(), s.output())
    };
    match client {
        Client::Aria2 => {
            let mut cmd = Command::new("aria2c");
            cmd.arg("-d")
                .arg(down)
                .args([
                    "--seed-time=0",
                    "--enable-dht=false",
                    "--enable-dht6=false",
                    "--bt-enable-lpd=false",
                    "--summary-interval=0",
                    "--console-log-level=warn",
                    "--bt-stop-timeout=110",
                ])
                .arg(format!("--listen-port={port}"))
                .arg(source);
            let mut c = Child::spawn("aria2c", cmd);
            c.close_stdin();
            match c.wait_exit(LONG_WAIT) {
                Some(s) if s.success() => {}
                _ => fail("did not complete", &c, seeder),
            }
        }
        Client::Rqbit => {
            let mut cmd = Command::new(rqbit_bin().expect("checked"));
            cmd.args([
                "--disable-dht",
                "--disable-dht-persistence",
                "--disable-lsd",
                "--disable-upnp-port-forward",
                "--listen-port",
                &port.to_string(),
                "download",
                "--exit-on-finish",
                "--disable-http-api",
                "-o",
            ])
            .arg(down)
            .arg(source);
            let mut c = Child::spawn("rqbit", cmd);
            c.close_stdin();
            match c.wait_exit(LONG_WAIT) {
                Some(s) if s.success() => {}
                _ => fail("did not complete", &c, seeder),
            }
        }
        Client::Qbittorrent => {
            let mut cmd = python_cmd("qbt.py");
            cmd.arg(case.tmp.subdir("qbt-profile"))
                .arg(free_port().to_string())
                .arg(port.to_string())
                .arg("--leech")
                .arg(source)
                .arg(down)
                .args(["--timeout", "110"]);
            let mut c = Child::spawn("qbt.py", cmd);
            c.close_stdin();
            match c.wait_exit(LONG_WAIT) {
                Some(s) if s.success() => {}
                _ => fail("did not complete", &c, seeder),
            }
        }
        Client::Transmission => {
            let config = case.tmp.subdir("transmission-config");
            let cmd = transmission_cmd(None, &config, down, port, Path::new(source));
            let mut c = Child::spawn("transmission-cli", cmd);
            if !c.wait_for_output("Seeding", LONG_WAIT) {
                fail("did not complete", &c, seeder);
            }
        }
        Client::Libtorrent => {
            let mut cmd = python_cmd("lt_leech.py");
            cmd.arg(source).arg(down).args([
                "--timeout",
                "110",
                "--listen-port",
                &port.to_string(),
            ]);
            let mut c = Child::spawn("lt_leech.py", cmd);
            c.close_stdin();
            match c.wait_exit(LONG_WAIT) {
                Some(s) if s.success() => {}
                _ => fail("did not complete", &c, seeder),
            }
        }
    }
}

/// The client seeds `case` on `port`; returns once it says it seeds (or,
/// for clients that print nothing useful, once our tracker on
/// `tracker_port` knows it).
fn client_seed(client: Client, case: &Case, port: u16, tracker_port: u16) -> Child {
    let mut c = match client {
        Client::Aria2 => {
            let mut cmd = Command::new("aria2c");
            cmd.arg("-d")
                .arg(&case.seed_root)
                .args([
                    "--check-integrity=true",
                    "--seed-ratio=0.0",
                    "--enable-dht=false",
                    "--enable-dht6=false",
                    "--bt-enable-lpd=false",
                    "--summary-interval=0",
                    "--console-log-level=warn",
                ])
                .arg(format!("--listen-port={port}"))
                .arg(&case.torrent);
            Child::spawn("aria2c seed", cmd)
        }
        Client::Rqbit => {
            let mut cmd = Command::new(rqbit_bin().expect("checked"));
            cmd.args([
                "--disable-dht",
                "--disable-dht-persistence",
                "--disable-lsd",
                "--disable-upnp-port-forward",
                "--listen-port",
                &port.to_string(),
                "download",
                "--overwrite",
                "--disable-http-api",
                "-o",
            ])
            .arg(&case.seed_root)
            .arg(&case.torrent);
            Child::spawn("rqbit seed", cmd)
        }
        Client::Qbittorrent => {
            let mut cmd = python_cmd("qbt.py");
            cmd.arg(case.tmp.subdir("qbt-profile"))
                .arg(free_port().to_string())
                .arg(port.to_string())
                .arg("--seed")
                .arg(&case.torrent)
                .arg(&case.seed_root)
                .args(["--timeout", "300"]);
            let mut c = Child::spawn("qbt.py seed", cmd);
            assert!(
                c.wait_for_output("READY", LONG_WAIT),
                "qBittorrent never seeded\n{}",
                c.output()
            );
            c
        }
        Client::Transmission => {
            let config = case.tmp.subdir("transmission-config");
            let cmd = transmission_cmd(None, &config, &case.seed_root, port, &case.torrent);
            let mut c = Child::spawn("transmission-cli seed", cmd);
            assert!(
                c.wait_for_output("Seeding", LONG_WAIT),
                "Transmission never seeded\n{}",
                c.output()
            );
            c
        }
        Client::Libtorrent => {
            let mut cmd = python_cmd("lt_seed.py");
            cmd.arg(&case.torrent)
                .arg(&case.seed_root)
                .arg(port.to_string())
                .args(["--timeout", "300"]);
            let mut c = Child::spawn("lt_seed.py", cmd);
            assert!(
                c.wait_for_output("READY", LONG_WAIT),
                "libtorrent never seeded\n{}",
                c.output()
            );
            c
        }
    };
    wait_tracker_knows(tracker_port, &case.hash, &mut c);
    c
}

/// `peer` seeds; `client` leeches each kind through our embedded tracker.
fn client_leeches_from_peer(client: Client) {
    if !client.available() {
        return;
    }
    for kind in KINDS {
        let port = free_port();
        let case = Case::new(&format!("{client:?}-leech-{kind:?}"), kind, port);
        let mut seeder = peer_seeder(&case, port);
        let down = case.tmp.subdir("down");
        let t0 = Instant::now();
        client_leech(client, &case, &case.source(port), &down, &mut seeder);
        let took = t0.elapsed();
        assert_same_data(&case.src, &down.join(&case.name));
        report(&format!("peer -> {client:?}"), kind, case.bytes, took);
    }
}

/// `client` seeds; `peer --once` leeches each kind through a `peer
/// --open-tracker`.
fn peer_leeches_from_client(client: Client) {
    if !client.available() {
        return;
    }
    for kind in KINDS {
        let tport = free_port();
        let _tracker = open_tracker(tport);
        let case = Case::new(&format!("{client:?}-seed-{kind:?}"), kind, tport);
        let seeder = client_seed(client, &case, free_port(), tport);
        let down = case.tmp.subdir("down");
        let mut cmd = Command::new(peer_bin());
        cmd.arg(case.source(tport))
            .arg("--dir")
            .arg(&down)
            .args(["--port", &free_port().to_string()])
            .args(["--no-lsd", "--no-dht", "--once"])
            .env("RUST_LOG", "info");
        let t0 = Instant::now();
        let mut leech = Child::spawn("peer leech", cmd);
        leech.close_stdin();
        let status = leech.wait_exit(LONG_WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "peer did not download {kind:?} from {client:?}\n{}\n{}",
            leech.output(),
            seeder.output()
        );
        let took = t0.elapsed();
        assert_same_data(&case.src, &down.join(&case.name));
        report(&format!("{client:?} -> peer"), kind, case.bytes, took);
    }
}

#[test]
fn aria2_leeches_from_peer() {
    client_leeches_from_peer(Client::Aria2);
}

#[test]
fn peer_leeches_from_aria2() {
    peer_leeches_from_client(Client::Aria2);
}

#[test]
fn qbittorrent_leeches_from_peer() {
    client_leeches_from_peer(Client::Qbittorrent);
}

#[test]
fn peer_leeches_from_qbittorrent() {
    peer_leeches_from_client(Client::Qbittorrent);
}

#[test]
fn rqbit_leeches_from_peer() {
    client_leeches_from_peer(Client::Rqbit);
}

#[test]
fn peer_leeches_from_rqbit() {
    peer_leeches_from_client(Client::Rqbit);
}

#[test]
fn transmission_leeches_from_peer() {
    client_leeches_from_peer(Client::Transmission);
}

#[test]
fn peer_leeches_from_transmission() {
    peer_leeches_from_client(Client::Transmission);
}

#[test]
fn libtorrent_leeches_from_peer() {
    client_leeches_from_peer(Client::Libtorrent);
}

#[test]
fn peer_leeches_from_libtorrent() {
    peer_leeches_from_client(Client::Libtorrent);
}
