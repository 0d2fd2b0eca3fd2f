//! The mainstream clients driven by the interop tests (issue 10; IPv6 in
//! issue 21): aria2, qBittorrent (`qbittorrent-nox` through its Web API,
//! `interop/qbt.py`), rqbit, Transmission and libtorrent
//! (`interop/lt_*.py`), each as a leecher ([`client_leech`]) or a seeder
//! ([`client_seed`]) of a [`Case`] (a single-file, multi-file or magnet
//! torrent with one tracker, IPv4 or IPv6). Used by `interop_matrix.rs` and
//! `interop_ipv6_clients.rs`.

use super::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Size of the single-file case.
pub const SINGLE_LEN: usize = 4 * 1024 * 1024 + 777;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Aria2,
    Qbittorrent,
    Rqbit,
    Transmission,
    Libtorrent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Single,
    Multi,
    Magnet,
}

pub const KINDS: [Kind; 3] = [Kind::Single, Kind::Multi, Kind::Magnet];

/// rqbit from PATH or from cargo's bin directory (`cargo install rqbit`).
pub fn rqbit_bin() -> Option<PathBuf> {
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
    pub fn available(self) -> bool {
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
pub struct Case {
    pub tmp: TempDir,
    /// The file or the top directory of the torrent.
    pub src: PathBuf,
    /// The directory that holds `src` (the seeder's `--dir`).
    pub seed_root: PathBuf,
    pub torrent: PathBuf,
    pub hash: String,
    pub name: String,
    pub bytes: u64,
    pub kind: Kind,
    /// The torrent's only tracker (`http://TRACKER/announce`).
    pub tracker: SocketAddr,
}

impl Case {
    /// A case announcing to `127.0.0.1:announce_port`.
    pub fn new(tag: &str, kind: Kind, announce_port: u16) -> Case {
        Case::with_tracker(tag, kind, (Ipv4Addr::LOCALHOST, announce_port).into())
    }

    /// A case whose torrent (and magnet link) announces to `tracker`, e.g.
    /// `[::1]:P` for IPv6.
    pub fn with_tracker(tag: &str, kind: Kind, tracker: SocketAddr) -> Case {
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
                &format!("http://{tracker}/announce"),
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
            tracker,
        }
    }

    /// What the leecher is given: the .torrent, or a magnet link whose only
    /// source is the case's tracker.
    pub fn source(&self) -> String {
        match self.kind {
            Kind::Magnet => {
                let host = self.tracker.to_string();
                let host = host
                    .replace('[', "%5B")
                    .replace(']', "%5D")
                    .replace(':', "%3A");
                format!(
                    "magnet:?xt=urn:btih:{}&dn={}&tr=http%3A%2F%2F{host}%2Fannounce",
                    self.hash,
                    self.name.replace(' ', "+")
                )
            }
            _ => self.torrent.display().to_string(),
        }
    }
}

pub fn read_tree_or_file(p: &Path) -> u64 {
    if p.is_file() {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    } else {
        read_tree(p).values().map(|v| v.len() as u64).sum()
    }
}

/// Peers the tracker on `port` knows for `hash` (scrape: complete + incomplete).
pub fn tracker_peers(tracker: SocketAddr, hash: &str) -> u64 {
    let mut q = String::new();
    for i in 0..20 {
        q.push('%');
        q.push_str(&hash[2 * i..2 * i + 2]);
    }
    let Ok(mut s) = TcpStream::connect_timeout(&tracker, Duration::from_secs(2)) else {
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

/// A libtorrent child (`lt_*.py`) logged no tracker error (its `lt alert`
/// lines).
pub fn no_lt_tracker_errors(who: &str, output: &str) {
    for line in output.lines() {
        assert!(
            !(line.contains("lt alert") && line.to_ascii_lowercase().contains("tracker")),
            "{who} got a tracker error: {line}\n{output}"
        );
    }
}

pub fn wait_tracker_knows(tracker: SocketAddr, hash: &str, who: &mut Child) {
    assert!(
        wait_until(LONG_WAIT, || tracker_peers(tracker, hash) > 0),
        "the seeding client never announced to our tracker\n{}",
        who.output()
    );
}

/// The client downloads `source` into `down` (returns when it is complete).
pub fn client_leech(client: Client, case: &Case, source: &str, down: &Path, seeder: &mut Child) {
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
pub fn client_seed(client: Client, case: &Case, port: u16, tracker: SocketAddr) -> Child {
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
        Client::Libtorrent => lt_seeder(&case.torrent, &case.seed_root, port, 300, &[]),
    };
    wait_tracker_knows(tracker, &case.hash, &mut c);
    c
}

/// libtorrent (`lt_seed.py`) seeding `torrent` from `dir` on `port` for at
/// most `timeout` seconds, with `extra` arguments; not waited for.
pub fn lt_seed(torrent: &Path, dir: &Path, port: u16, timeout: u64, extra: &[&str]) -> Child {
    let mut cmd = python_cmd("lt_seed.py");
    cmd.arg(torrent)
        .arg(dir)
        .arg(port.to_string())
        .args(["--timeout", &timeout.to_string()])
        .args(extra);
    Child::spawn("lt_seed.py", cmd)
}

/// [`lt_seed`], once it says READY (bounded by [`LONG_WAIT`]).
pub fn lt_seeder(torrent: &Path, dir: &Path, port: u16, timeout: u64, extra: &[&str]) -> Child {
    let mut c = lt_seed(torrent, dir, port, timeout, extra);
    assert!(
        c.wait_for_output("READY", LONG_WAIT),
        "libtorrent never seeded\n{}",
        c.output()
    );
    c
}

/// libtorrent (`lt_leech.py`, at most 100 s) downloading `source` (a
/// torrent file or a magnet link) into `down` with `extra` arguments, once
/// it says DONE (bounded by [`LONG_WAIT`]; else a panic naming `what` with
/// its output and the `seeder`'s).
pub fn lt_leecher(
    source: impl AsRef<std::ffi::OsStr>,
    down: &Path,
    extra: &[&str],
    seeder: &Child,
    what: &str,
) -> Child {
    let mut cmd = python_cmd("lt_leech.py");
    cmd.arg(source)
        .arg(down)
        .args(["--timeout", "100"])
        .args(extra);
    let mut leech = Child::spawn("lt_leech.py", cmd);
    assert!(
        leech.wait_for_output("DONE", LONG_WAIT),
        "libtorrent did not download {what}\n{}\n{}",
        leech.output(),
        seeder.output()
    );
    leech
}

/// Our leecher of `source` (a torrent file or a magnet link) into `down`,
/// given `peer` as a peer, on a free port (LSD and DHT off,
/// `RUST_LOG=info`; callers add options).
pub fn our_leecher_cmd(source: impl AsRef<std::ffi::OsStr>, down: &Path, peer: &str) -> Command {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(source)
        .arg("--dir")
        .arg(down)
        .args(["--peer", peer])
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    cmd
}

/// Our seeder for `torrent` with its data in `dir`, on `port` (LSD and DHT off,
/// `RUST_LOG=info`), once it says it is seeding.
pub fn our_seeder(torrent: &Path, dir: &Path, port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "our seeder never started seeding\n{}",
        seeder.output()
    );
    seeder
}

/// A `transmission-cli` command that seeds or downloads `torrent` in
/// `download_dir` on peer port `port`, with its own config in `config_dir`:
/// quiet and local (no DHT, LPD, uTP, PEX or port mapping; plaintext, so our
/// peer can talk to it; no RPC). `program` lets a caller run it through a
/// wrapper (`ip netns exec`); pass `None` for plain `transmission-cli`.
pub fn transmission_cmd(
    program: Option<Command>,
    config_dir: &Path,
    download_dir: &Path,
    port: u16,
    torrent: &Path,
) -> Command {
    let settings = format!(
        r#"{{
  "dht-enabled": false,
  "lpd-enabled": false,
  "utp-enabled": false,
  "pex-enabled": false,
  "port-forwarding-enabled": false,
  "encryption": 0,
  "peer-port": {port},
  "peer-port-random-on-start": false,
  "rpc-enabled": false,
  "speed-limit-up-enabled": false,
  "speed-limit-down-enabled": false,
  "download-dir": "{}"
}}"#,
        download_dir.display()
    );
    write_file(&config_dir.join("settings.json"), settings.as_bytes());
    let mut cmd = program.unwrap_or_else(|| Command::new("transmission-cli"));
    cmd.arg("-g")
        .arg(config_dir)
        .arg("-w")
        .arg(download_dir)
        .args(["-p", &port.to_string(), "-et", "-M", "-U", "-D"])
        .arg(torrent);
    cmd
}
