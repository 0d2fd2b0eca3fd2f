//! Issue 21: a dual-stack LAN of network namespaces on one bridge. Host 0
//! is a dual-stack seeder (10.77.0.1 and fd21:a::1), hosts 1 and 2 have
//! only IPv6 (fd21:a::2, fd21:a::3), host 3 only IPv4 (10.77.0.4). Each
//! way for the IPv6-only hosts to find each other is tested on its own,
//! the others switched off, and every download is checked byte for byte:
//!
//! (a) our embedded tracker (a private torrent: no PEX, DHT or LSD), over
//!     IPv6 (BEP 7), with the IPv4-only host completing beside them; the
//!     seeder listens on its two LAN addresses alone (`--bind` twice);
//! (b) PEX (no tracker, `--no-dht --no-lsd`): both know only the seeder;
//! (c) the IPv6 DHT (BEP 32; no tracker, no LSD): the second IPv6 host
//!     starts after the seeder is gone, knowing only the first's DHT node;
//! (d) LSD over IPv6 (BEP 14, `[ff15::efc0:988f]:6771`, `--no-dht`, no
//!     tracker) between the two IPv6-only hosts.
//!
//! A host's log line `peer [fd21:a::N]:PORT joined` (debug) shows whom it
//! connected to. Namespaces are named `p21a-...` and removed on drop.
//! Needs root and iproute2: a loud SKIP by hand, a failure under CI=true.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::netns::{lan_or_skip, Family, Lan};
use support::*;

const NAME: &str = "dual share";
const HOSTS: [Family; 4] = [Family::Dual, Family::V6, Family::V6, Family::V4];
/// Enough for the second leecher to start before the first is done.
const SEED_RATE: &str = "4194304";
const LOG: &str = "info,bittorrent_core::engine::torrent=debug,bittorrent_core::discovery=debug";

struct Setup {
    lan: Lan,
    tmp: TempDir,
    src: PathBuf,
    seed_dir: PathBuf,
    torrent: PathBuf,
}

fn setup(tag: &str, families: &[Family], create_args: &[&str]) -> Option<Setup> {
    let lan = lan_or_skip("p21a-", "q21", families)?;
    let tmp = TempDir::new(tag);
    let seed_dir = tmp.subdir("seed");
    let src = seed_dir.join(NAME);
    std::fs::create_dir_all(&src).expect("create the shared directory");
    write_file(
        &src.join("a.bin"),
        &pseudo_random(6 * 1024 * 1024 + 17, 210),
    );
    write_file(&src.join("b/c.bin"), &pseudo_random(1024 * 1024 + 3, 211));
    let torrent = tmp.path().join("share.torrent");
    let mut create = Command::new(peer_bin());
    create
        .arg("create")
        .arg(&src)
        .arg("-o")
        .arg(&torrent)
        .args(create_args);
    let out = run_bounded("peer create", create, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    Some(Setup {
        lan,
        tmp,
        src,
        seed_dir,
        torrent,
    })
}

impl Setup {
    /// `peer TORRENT --dir DIR --port 6881 ARGS...` on host `i`.
    fn peer(&self, i: usize, what: &str, dir: &Path, args: &[&str]) -> Child {
        let mut c = self.lan.command(i, &peer_bin());
        c.arg(what)
            .arg("--dir")
            .arg(dir)
            .args(["--port", "6881"])
            .args(args)
            .env("RUST_LOG", LOG);
        Child::spawn(&format!("peer (host {i})"), c)
    }

    fn seeder(&self, args: &[&str]) -> Child {
        let mut all = vec!["--max-upload-rate", SEED_RATE];
        all.extend_from_slice(args);
        let mut s = self.peer(0, &self.torrent.to_string_lossy(), &self.seed_dir, &all);
        assert!(
            s.wait_for_output("listening on", LONG_WAIT),
            "{}",
            s.output()
        );
        s
    }

    fn leecher(&self, i: usize, args: &[&str]) -> (Child, PathBuf) {
        let dir = self.tmp.subdir(&format!("host{i}"));
        let c = self.peer(i, &self.torrent.to_string_lossy(), &dir, args);
        (c, dir)
    }

    fn completes(&self, c: &mut Child, dir: &Path, others: &[&Child]) {
        let status = c.wait_exit(Duration::from_secs(60));
        let logs: Vec<String> = others.iter().map(|o| o.output()).collect();
        assert!(
            status.is_some_and(|s| s.success()),
            "did not complete\n{}\n---\n{}",
            c.output(),
            logs.join("\n---\n")
        );
        assert_same_data(&self.src, &dir.join(NAME));
    }
}

/// Whether `log` shows a connection with host `i` over IPv6.
fn met(log: &str, i: usize) -> bool {
    let who = format!("peer [{}]:", Lan::v6(i));
    log.lines()
        .any(|l| l.contains(&who) && l.contains("joined"))
}

#[test]
fn a_ipv6_hosts_meet_through_the_embedded_tracker() {
    let url = format!("http://[{}]:6881/announce", Lan::v6(0));
    let Some(s) = setup("dual-tracker", &HOSTS, &["--announce", &url, "--private"]) else {
        return;
    };
    // The dual-stack seeder listens on its LAN interface's two addresses
    // (`--bind`, one per family), the IPv4 and the IPv6 leechers reach it.
    let (b4, b6) = (Lan::v4(0), Lan::v6(0));
    let seeder = s.seeder(&["--bind", &b4, "--bind", &b6]);
    let line = format!("TCP [{b6}]:6881");
    assert!(seeder.logged(&line), "{}", seeder.output());
    let (mut h1, d1) = s.leecher(1, &["--once"]);
    std::thread::sleep(Duration::from_millis(700));
    let (mut h2, d2) = s.leecher(2, &["--once"]);
    // The IPv4-only host cannot reach an IPv6 tracker: it is given the
    // seeder's IPv4 address.
    let v4_seeder = format!("{}:6881", Lan::v4(0));
    let (mut h3, d3) = s.leecher(3, &["--once", "--peer", &v4_seeder]);
    s.completes(&mut h2, &d2, &[&h1, &seeder]);
    s.completes(&mut h1, &d1, &[&seeder]);
    s.completes(&mut h3, &d3, &[&seeder]);
    assert!(
        met(&h2.output(), 1) || met(&h1.output(), 2),
        "the IPv6 hosts never met\n{}\n---\n{}",
        h2.output(),
        h1.output()
    );
}

#[test]
fn b_ipv6_hosts_meet_through_pex() {
    let Some(s) = setup("dual-pex", &HOSTS[..3], &[]) else {
        return;
    };
    let seeder = s.seeder(&["--no-dht", "--no-lsd"]);
    let only = format!("[{}]:6881", Lan::v6(0));
    let args = ["--once", "--no-dht", "--no-lsd", "--peer", &only];
    let (mut h1, d1) = s.leecher(1, &args);
    std::thread::sleep(Duration::from_millis(700));
    let (mut h2, d2) = s.leecher(2, &args);
    s.completes(&mut h2, &d2, &[&h1, &seeder]);
    s.completes(&mut h1, &d1, &[&seeder]);
    assert!(
        met(&h2.output(), 1) || met(&h1.output(), 2),
        "the IPv6 hosts never met through PEX\n{}\n---\n{}",
        h2.output(),
        h1.output()
    );
}

#[test]
fn c_ipv6_hosts_meet_through_the_ipv6_dht() {
    let Some(s) = setup("dual-dht", &HOSTS[..3], &[]) else {
        return;
    };
    let mut seeder = s.seeder(&["--no-lsd", "--dht-bootstrap", "none"]);
    let boot0 = format!("[{}]:6881", Lan::v6(0));
    let (mut h1, d1) = s.leecher(1, &["--no-lsd", "--dht-bootstrap", &boot0]);
    assert!(
        h1.wait_for_output("download complete", Duration::from_secs(60)),
        "host 1 never completed through the DHT\n{}\n---\n{}",
        h1.output(),
        seeder.output()
    );
    assert_same_data(&s.src, &d1.join(NAME));
    // The seeder leaves: no tracker, no PEX, no LSD; only host 1's DHT
    // node, which stores host 1's own announce.
    seeder.kill();
    let boot1 = format!("[{}]:6881", Lan::v6(1));
    let (mut h2, d2) = s.leecher(2, &["--once", "--no-lsd", "--dht-bootstrap", &boot1]);
    s.completes(&mut h2, &d2, &[&h1]);
    assert!(met(&h2.output(), 1), "{}", h2.output());
}

#[test]
fn d_ipv6_only_hosts_meet_through_lsd() {
    let Some(s) = setup("dual-lsd", &[Family::V6, Family::V6], &[]) else {
        return;
    };
    // The seeder is host 0, IPv6 only here: LSD runs on the IPv6 group
    // alone, joined on the interface of its `--bind` address.
    let seeder = s.seeder(&["--no-dht", "--bind", &Lan::v6(0)]);
    let out = seeder.output();
    assert!(
        out.contains("LSD [ff15::efc0:988f]:6771")
            && !out.contains("239.192.152.143")
            && !out.contains("no interface has"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (mut h1, d1) = s.leecher(1, &["--once", "--no-dht"]);
    s.completes(&mut h1, &d1, &[&seeder]);
    assert!(met(&h1.output(), 0), "{}", h1.output());
    let heard = format!("lsd: peer [{}]:6881", Lan::v6(1));
    assert!(
        seeder.logged(&heard),
        "the seeder never heard the IPv6 LSD announce\n{}",
        seeder.output()
    );
}
