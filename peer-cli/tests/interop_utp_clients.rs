//! Interop over uTP (BEP 29, issue 25) with qBittorrent and Transmission, both directions,
//! a single-file and a multi-file torrent and a magnet link (the metadata over uTP too),
//! byte for byte.
//!
//! - **qBittorrent 4.5** (`qbittorrent-nox`, libtorrent 2.0 inside) in its uTP-only mode
//!   (`bittorrent_protocol` 2: no TCP in or out), on 127.0.0.1, driven by `interop/qbt.py
//!   --utp`; our side `--transport utp`. qBittorrent's own peer list must name every peer's
//!   connection `μTP`, none `BT` (TCP).
//! - **Transmission 3.00** (`transmission-daemon`, uTP on, driven by `transmission-remote`)
//!   on its own network namespace of a LAN (`support::netns`; Transmission never dials
//!   127.x peers), our `peer --transport utp` on another. Transmission cannot turn TCP off,
//!   so its namespace drops every TCP segment on its LAN interface (nft): whatever it moves
//!   crossed uTP. Its own peer list must flag our peer `T` (uTP). It finds our seeder through
//!   our embedded tracker over UDP (BEP 15, the same UDP port); either side dials the other
//!   over uTP (both were seen). Our seeder is a `peer daemon`, whose own peer list (the
//!   control API's details, `transport`) must show Transmission over uTP only. Our leecher is
//!   given Transmission's address.
//!
//! Needs root for the namespaces (loud SKIP without; a failure under `CI=true`), `ip`, `nft`.
//! Every wait is bounded; every child is killed on drop; the namespaces go with the `Lan`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::clients::*;
use support::netns::{self, Family, Lan};
use support::*;

/// qBittorrent's cap on the transfer, bytes/s each way: the 4 MiB case lasts about 10 s and
/// the 600 KiB one 1.5 s, long enough for `qbt.py` to see the peer in qBittorrent's list
/// (unlimited, a transfer on loopback is over before the first look).
const RATE_LIMIT: &str = "400000";

/// `peer` seeding `case` on `port` over uTP only (its embedded tracker is the announce).
fn utp_seeder(case: &Case, port: u16) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&case.torrent)
        .arg("--dir")
        .arg(&case.seed_root)
        .args(["--port", &port.to_string(), "--no-lsd", "--no-dht"])
        .args(["--transport", "utp"])
        .env("RUST_LOG", "info");
    let mut seeder = Child::spawn("peer seed (uTP)", cmd);
    assert!(
        seeder.wait_for_output("Seeding", LONG_WAIT),
        "our seeder never started seeding\n{}",
        seeder.output()
    );
    wait_tracker_knows(([127, 0, 0, 1], port).into(), &case.hash, &mut seeder);
    seeder
}

/// qBittorrent's `PEER ADDR CONNECTION` lines: at least one, every one uTP.
fn assert_qbt_peers_all_utp(qbt: &Child) {
    let out = qbt.output();
    let peers: Vec<&str> = out.lines().filter(|l| l.starts_with("PEER ")).collect();
    assert!(!peers.is_empty(), "qBittorrent listed no peer\n{out}");
    for p in &peers {
        assert!(
            p.ends_with("μTP"),
            "qBittorrent has a peer not over uTP: {p}\n{out}"
        );
    }
}

#[test]
fn qbittorrent_utp_only_downloads_from_peer() {
    if !Client::Qbittorrent.available() {
        return;
    }
    for kind in KINDS {
        let port = free_port();
        let case = Case::new(&format!("utp-qbt-leech-{kind:?}"), kind, port);
        let seeder = utp_seeder(&case, port);
        let down = case.tmp.subdir("down");
        let mut cmd = python_cmd("qbt.py");
        cmd.arg(case.tmp.subdir("qbt-profile"))
            .arg(free_port().to_string())
            .arg(free_port().to_string())
            .arg("--leech")
            .arg(case.source())
            .arg(&down)
            .args(["--timeout", "110", "--utp", "--rate-limit", RATE_LIMIT]);
        let t0 = Instant::now();
        let mut qbt = Child::spawn("qbt.py --utp", cmd);
        qbt.close_stdin();
        let status = qbt.wait_exit(LONG_WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "qBittorrent (uTP only) did not download {kind:?} from us\n{}\n{}",
            qbt.output(),
            seeder.output()
        );
        assert_same_data(&case.src, &down.join(&case.name));
        assert_qbt_peers_all_utp(&qbt);
        eprintln!("UTP qBittorrent <- peer {kind:?}: {:?}", t0.elapsed());
    }
}

#[test]
fn peer_downloads_from_qbittorrent_utp_only() {
    if !Client::Qbittorrent.available() {
        return;
    }
    for kind in KINDS {
        // No tracker needed: our leecher is given qBittorrent's address.
        let case = Case::new(&format!("utp-qbt-seed-{kind:?}"), kind, free_port());
        let qport = free_port();
        let mut cmd = python_cmd("qbt.py");
        cmd.arg(case.tmp.subdir("qbt-profile"))
            .arg(free_port().to_string())
            .arg(qport.to_string())
            .arg("--seed")
            .arg(&case.torrent)
            .arg(&case.seed_root)
            .args(["--timeout", "300", "--utp", "--rate-limit", RATE_LIMIT]);
        let mut qbt = Child::spawn("qbt.py --utp seed", cmd);
        assert!(
            qbt.wait_for_output("READY", LONG_WAIT),
            "qBittorrent never seeded\n{}",
            qbt.output()
        );
        let down = case.tmp.subdir("down");
        let mut cmd = Command::new(peer_bin());
        cmd.arg(case.source())
            .arg("--dir")
            .arg(&down)
            .args(["--port", &free_port().to_string()])
            .args(["--peer", &format!("127.0.0.1:{qport}")])
            .args(["--transport", "utp", "--no-lsd", "--no-dht", "--once"])
            .env("RUST_LOG", "info");
        let t0 = Instant::now();
        let mut leech = Child::spawn("peer leech (uTP)", cmd);
        leech.close_stdin();
        let status = leech.wait_exit(LONG_WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "peer did not download {kind:?} from qBittorrent over uTP\n{}\n{}",
            leech.output(),
            qbt.output()
        );
        assert_same_data(&case.src, &down.join(&case.name));
        // qBittorrent lists peers twice a second: give it one more look.
        wait_until(Duration::from_secs(5), || qbt.logged("PEER "));
        assert_qbt_peers_all_utp(&qbt);
        eprintln!("UTP peer <- qBittorrent {kind:?}: {:?}", t0.elapsed());
    }
}

// ----- Transmission, on a LAN of two namespaces -----

const OURS: usize = 0;
const THEIRS: usize = 1;
const TR_PORT: u16 = 51413;
const RPC: &str = "127.0.0.1:9091";
const OUR_PORT: u16 = 6881;

/// Two hosts (10.77.0.1 ours, 10.77.0.2 Transmission's) with TCP dropped on Transmission's
/// LAN interface, or None after a loud SKIP.
fn lan_without_tcp_for_transmission() -> Option<Lan> {
    let tr_ok = find_on_path("transmission-daemon").is_some()
        && find_on_path("transmission-remote").is_some();
    if !tr_ok {
        skip_or_fail(
            "transmission-daemon / transmission-remote",
            "apt-get install transmission-daemon transmission-cli",
        );
        return None;
    }
    if find_on_path("nft").is_none() {
        skip_or_fail("nft", "apt-get install nftables");
        return None;
    }
    let lan = netns::lan_or_skip("h25i", "h25i", &[Family::V4, Family::V4])?;
    let rules = "table inet h25i_notcp {\n\
        chain in { type filter hook input priority 0; policy accept;\n\
          iifname != \"lo\" meta l4proto tcp counter drop\n }\n\
        chain out { type filter hook output priority 0; policy accept;\n\
          oifname != \"lo\" meta l4proto tcp counter drop\n }\n}\n";
    let mut nft = Command::new("ip");
    nft.args(["netns", "exec", &lan.hosts[THEIRS], "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped());
    let mut child = nft.spawn().expect("nft");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(rules.as_bytes()).expect("nft rules");
    }
    assert!(child.wait().expect("nft").success(), "nft rules refused");
    Some(lan)
}

/// transmission-daemon in its namespace with uTP on (DHT, LPD, PEX off), RPC on its
/// loopback, once the RPC answers.
fn transmission_daemon(lan: &Lan, config: &Path, download: &Path) -> Child {
    let settings = format!(
        r#"{{
  "dht-enabled": false,
  "lpd-enabled": false,
  "utp-enabled": true,
  "pex-enabled": false,
  "port-forwarding-enabled": false,
  "encryption": 1,
  "peer-port": {TR_PORT},
  "peer-port-random-on-start": false,
  "rpc-enabled": true,
  "rpc-bind-address": "127.0.0.1",
  "rpc-port": 9091,
  "rpc-authentication-required": false,
  "rpc-whitelist-enabled": false,
  "rpc-host-whitelist-enabled": false,
  "speed-limit-up-enabled": false,
  "speed-limit-down-enabled": false,
  "start-added-torrents": true,
  "download-dir": "{}"
}}"#,
        download.display()
    );
    write_file(&config.join("settings.json"), settings.as_bytes());
    let tr = find_on_path("transmission-daemon").expect("checked");
    let mut cmd = lan.command(THEIRS, &tr);
    cmd.arg("-f").arg("-g").arg(config);
    let mut d = Child::spawn("transmission-daemon", cmd);
    let up = wait_until(Duration::from_secs(30), || {
        d.try_status().is_none() && tr_remote(lan, &["-l"]).is_some()
    });
    assert!(
        up,
        "transmission-daemon's RPC never answered\n{}",
        d.output()
    );
    d
}

/// `transmission-remote 127.0.0.1:9091 ARGS` in Transmission's namespace; its stdout if it
/// succeeded.
fn tr_remote(lan: &Lan, args: &[&str]) -> Option<String> {
    let tr = find_on_path("transmission-remote")?;
    let mut cmd = lan.command(THEIRS, &tr);
    cmd.arg(RPC).args(args);
    let out = run_bounded("transmission-remote", cmd, Duration::from_secs(20));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Transmission's peer list of torrent 1 (`-pi`): (address, flags) per peer.
fn tr_peers(lan: &Lan) -> Vec<(String, String)> {
    let Some(out) = tr_remote(lan, &["-t", "1", "-pi"]) else {
        return Vec::new();
    };
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = w.next()?;
            let flags = w.next()?;
            addr.parse::<std::net::IpAddr>()
                .is_ok()
                .then(|| (addr.to_string(), flags.to_string()))
        })
        .collect()
}

/// Torrent 1 is complete: "Percent Done" 100 % and done with it (seeding, or idle).
fn tr_complete(lan: &Lan) -> bool {
    tr_remote(lan, &["-t", "1", "-i"]).is_some_and(|i| {
        let line = |l: &str| i.lines().any(|x| x.trim() == l);
        line("Percent Done: 100%")
            && (line("State: Seeding") || line("State: Idle") || line("State: Finished"))
    })
}

/// Watches Transmission's peer list until `done` says stop; returns every (address, flags)
/// seen.
fn watch_tr_peers(lan: &Lan, limit: Duration, mut done: impl FnMut() -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for (addr, flags) in tr_peers(lan) {
            let line = format!("{addr} {flags}");
            if !seen.contains(&line) {
                seen.push(line);
            }
        }
        if done() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    seen
}

/// The TCP segments dropped in Transmission's namespace so far (in, out), for the report:
/// its own attempts to reach us over TCP.
fn tcp_dropped(lan: &Lan) -> String {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &lan.hosts[THEIRS],
        "nft",
        "list",
        "table",
        "inet",
    ])
    .arg("h25i_notcp");
    let out = run_bounded("nft list", cmd, Duration::from_secs(10));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("counter"))
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every peer Transmission listed was ours and flagged `T` (uTP).
fn assert_tr_peers_utp(seen: &[String]) {
    assert!(!seen.is_empty(), "Transmission never listed a peer");
    for s in seen {
        let (addr, flags) = s.split_once(' ').unwrap_or((s, ""));
        assert_eq!(addr, Lan::v4(OURS), "an unexpected peer: {seen:?}");
        assert!(flags.contains('T'), "our peer not over uTP: {s} ({seen:?})");
    }
}

/// A case on the LAN: the torrent announces to our host's embedded tracker over UDP.
fn lan_case(tag: &str, kind: Kind) -> Case {
    let case = Case::new(tag, kind, OUR_PORT);
    // Case::new makes an HTTP announce on 127.0.0.1; this one names the LAN host over UDP.
    let torrent = case.tmp.path().join("lan.torrent");
    peer_create_torrent(
        &case.src,
        &torrent,
        &[
            "--announce",
            &format!("udp://{}:{OUR_PORT}", Lan::v4(OURS)),
            "--piece-length",
            "32768",
        ],
    );
    std::fs::rename(&torrent, &case.torrent).expect("rename the torrent");
    case
}

/// `peer daemon --transport utp` on our host, seeding `case` (added with `peer add`).
struct OurDaemon {
    child: Child,
    api_port: u64,
    token: String,
    hash: String,
}

impl OurDaemon {
    fn start(lan: &Lan, case: &Case) -> OurDaemon {
        let state = case.tmp.subdir("our-state");
        let mut cmd = lan.command(OURS, &peer_bin());
        cmd.arg("daemon")
            .arg("--state")
            .arg(&state)
            .args(["--port", &OUR_PORT.to_string(), "--no-lsd", "--no-dht"])
            .args(["--transport", "utp"])
            .env("RUST_LOG", "info");
        let mut child = Child::spawn("peer daemon (uTP, host 1)", cmd);
        assert!(
            child.wait_for_output("web interface: http://", LONG_WAIT),
            "{}",
            child.output()
        );
        let mut add = lan.command(OURS, &peer_bin());
        add.arg("add")
            .arg(&case.torrent)
            .arg("--dir")
            .arg(&case.seed_root)
            .arg("--state")
            .arg(&state);
        let out = run_bounded("peer add", add, Duration::from_secs(60));
        assert!(out.status.success(), "{out:?}\n{}", child.output());
        let info: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(state.join("control.json")).unwrap_or_default(),
        )
        .unwrap_or(serde_json::Value::Null);
        OurDaemon {
            child,
            api_port: info["port"].as_u64().unwrap_or(0),
            token: info["token"].as_str().unwrap_or("").to_string(),
            hash: case.hash.clone(),
        }
    }

    /// (address, transport) of each peer in the torrent's details (control API, read from
    /// inside our namespace).
    fn peers(&self, lan: &Lan) -> Vec<(String, String)> {
        let python = find_on_path("python3").unwrap_or(SYSTEM_PYTHON.into());
        let mut cmd = lan.command(OURS, &python);
        cmd.arg("-c")
            .arg(
                "import sys, urllib.request\n\
                 r = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]})\n\
                 print(urllib.request.urlopen(r, timeout=5).read().decode())",
            )
            .arg(format!(
                "http://127.0.0.1:{}/torrents/{}/details",
                self.api_port, self.hash
            ))
            .arg(&self.token);
        let out = run_bounded("details", cmd, Duration::from_secs(20));
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        v["peers"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["address"].as_str().unwrap_or("").to_string(),
                            p["transport"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the leecher is given: the .torrent, or for a magnet case a magnet link whose only
/// tracker is our host's, over UDP.
fn lan_source(case: &Case) -> String {
    match case.kind {
        Kind::Magnet => format!(
            "magnet:?xt=urn:btih:{}&dn={}&tr=udp%3A%2F%2F{}%3A{OUR_PORT}",
            case.hash,
            case.name.replace(' ', "+"),
            Lan::v4(OURS)
        ),
        _ => case.torrent.display().to_string(),
    }
}

#[test]
fn transmission_downloads_from_peer_over_utp_on_a_lan() {
    let Some(lan) = lan_without_tcp_for_transmission() else {
        return;
    };
    for kind in KINDS {
        let case = lan_case(&format!("utp-tr-leech-{kind:?}"), kind);
        let down = case.tmp.subdir("tr-down");
        let config = case.tmp.subdir("tr-config");
        let daemon = transmission_daemon(&lan, &config, &down);
        // Our seeder is a daemon, so that its own peer list (the control API's details)
        // can be read while Transmission downloads.
        let ours = OurDaemon::start(&lan, &case);
        let t0 = Instant::now();
        let source = lan_source(&case);
        let down_s = down.display().to_string();
        assert!(
            tr_remote(&lan, &["-a", &source, "-w", &down_s]).is_some(),
            "transmission-remote -a failed\n{}",
            daemon.output()
        );
        let mut ours_seen: Vec<(String, String)> = Vec::new();
        let seen = watch_tr_peers(&lan, LONG_WAIT, || {
            for p in ours.peers(&lan) {
                if !ours_seen.contains(&p) {
                    ours_seen.push(p);
                }
            }
            tr_complete(&lan)
        });
        assert!(
            tr_complete(&lan),
            "Transmission did not download {kind:?} from us over uTP (peers seen {seen:?})\n{}\n{}\n{}",
            tr_remote(&lan, &["-t", "1", "-i"]).unwrap_or_default(),
            daemon.output(),
            ours.child.output()
        );
        assert_same_data(&case.src, &down.join(&case.name));
        assert_tr_peers_utp(&seen);
        // Our side's peer list (`PeerInfo::transport`, the details' `transport`): Transmission,
        // over uTP only.
        assert!(
            !ours_seen.is_empty(),
            "our daemon never listed Transmission\n{}",
            ours.child.output()
        );
        for (addr, transport) in &ours_seen {
            assert!(
                addr.starts_with(&format!("{}:", Lan::v4(THEIRS))) && transport == "utp",
                "our peer list: {ours_seen:?}"
            );
        }
        eprintln!(
            "UTP Transmission <- peer {kind:?}: {:?}, its peers {seen:?}, ours {ours_seen:?}, \
             TCP dropped: {}",
            t0.elapsed(),
            tcp_dropped(&lan)
        );
    }
}

#[test]
fn peer_downloads_from_transmission_over_utp_on_a_lan() {
    let Some(lan) = lan_without_tcp_for_transmission() else {
        return;
    };
    for kind in KINDS {
        let case = lan_case(&format!("utp-tr-seed-{kind:?}"), kind);
        let config = case.tmp.subdir("tr-config");
        let daemon = transmission_daemon(&lan, &config, &case.seed_root);
        let torrent = case.torrent.display().to_string();
        let seed_s = case.seed_root.display().to_string();
        assert!(tr_remote(&lan, &["-a", &torrent, "-w", &seed_s]).is_some());
        // Transmission checks the data it was given, then seeds.
        assert!(
            wait_until(LONG_WAIT, || tr_complete(&lan)),
            "Transmission never had the data\n{}\n{}",
            tr_remote(&lan, &["-t", "1", "-i"]).unwrap_or_default(),
            daemon.output()
        );
        let down = case.tmp.subdir("down");
        let mut cmd = lan.command(OURS, &peer_bin());
        cmd.arg(lan_source(&case))
            .arg("--dir")
            .arg(&down)
            .args([
                "--port",
                &OUR_PORT.to_string(),
                "--no-lsd",
                "--no-dht",
                "--once",
            ])
            .args(["--peer", &format!("{}:{TR_PORT}", Lan::v4(THEIRS))])
            .args(["--transport", "utp"])
            .env("RUST_LOG", "info");
        let t0 = Instant::now();
        let mut leech = Child::spawn("peer leech (uTP, host 1)", cmd);
        leech.close_stdin();
        let seen = watch_tr_peers(&lan, LONG_WAIT, || leech.try_status().is_some());
        let status = leech.wait_exit(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "peer did not download {kind:?} from Transmission over uTP (peers seen {seen:?})\n{}\n{}",
            leech.output(),
            daemon.output()
        );
        assert_same_data(&case.src, &down.join(&case.name));
        assert_tr_peers_utp(&seen);
        eprintln!(
            "UTP peer <- Transmission {kind:?}: {:?}, peers {seen:?}, TCP dropped: {}",
            t0.elapsed(),
            tcp_dropped(&lan)
        );
    }
}
