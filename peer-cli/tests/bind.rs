//! `--bind ADDR` (issue 21): the listening address(es) of `peer` and
//! `peer daemon`, on loopback.
//!
//! (a) `--bind 127.0.0.1 --bind ::1`: one port number, two listeners; a
//!     leecher dialling each address downloads from the seeder;
//! (b) `peer daemon --bind 127.0.0.1 --bind [::1]`: listens on those two only,
//!     and `GET /status` (`listen_addrs`) and `peer status` say so;
//! (c) two addresses of one family are refused with a readable message.
//!
//! LSD and the DHT are off: the address given is the only way in.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;
use support::*;

fn have_v6_loopback() -> bool {
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        return true;
    }
    skip_or_fail("--bind test", "no IPv6 loopback (::1) on this host")
}

fn leech(torrent: &std::path::Path, dir: &std::path::Path, peer: &str) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--once", "--peer", peer]);
    Child::spawn("peer leech", cmd)
}

#[test]
fn a_two_bind_addresses_one_per_family() {
    if !have_v6_loopback() {
        return;
    }
    let tmp = TempDir::new("bind-two");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "b.bin", 700 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &["--piece-length", "32K"]);
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--bind",
        "::1",
        "--no-lsd",
        "--no-dht",
    ]);
    let mut seeder = Child::spawn("peer seed", cmd);
    assert!(
        seeder.wait_for_output("listening on", LONG_WAIT),
        "{}",
        seeder.output()
    );
    let out = seeder.output();
    assert!(
        out.contains(&format!("TCP 127.0.0.1:{port}"))
            && out.contains(&format!("TCP [::1]:{port}")),
        "{out}"
    );
    let mut leechers = Vec::new();
    for (i, peer) in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
        .iter()
        .enumerate()
    {
        let down = tmp.subdir(&format!("down{i}"));
        leechers.push((leech(&torrent, &down, peer), down));
    }
    for (l, down) in &mut leechers {
        let st = l.wait_exit(LONG_WAIT);
        assert!(
            st.is_some_and(|s| s.success()),
            "{}\n---\n{}",
            l.output(),
            seeder.output()
        );
        assert_same_data(&src, &down.join("b.bin"));
    }
}

#[test]
fn b_daemon_binds_two_addresses_and_says_so() {
    if !have_v6_loopback() {
        return;
    }
    let tmp = TempDir::new("bind-daemon");
    let state = tmp.subdir("state");
    let port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(&state)
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--bind", "[::1]"])
        .args(["--no-lsd", "--no-dht"])
        .env("RUST_LOG", "info");
    let mut d = Child::spawn("peer daemon", cmd);
    assert!(
        d.wait_for_output("control API on", LONG_WAIT),
        "daemon did not start\n{}",
        d.output()
    );
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        assert!(
            wait_until(LONG_WAIT, || TcpStream::connect((ip, port)).is_ok()),
            "the daemon does not listen on {ip} port {port}\n{}",
            d.output()
        );
    }
    // Only those two: another loopback address is not ours.
    let other: SocketAddr = (Ipv4Addr::new(127, 0, 0, 2), port).into();
    assert!(
        TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err(),
        "the daemon took 127.0.0.2 too\n{}",
        d.output()
    );
    let st = state.as_os_str();
    let out = run_peer(&["status".as_ref(), "--state".as_ref(), st, "--json".as_ref()]);
    let json = String::from_utf8_lossy(&out.stdout);
    let want = format!(r#""listen_addrs":["127.0.0.1:{port}","[::1]:{port}"]"#);
    assert!(json.contains(&want), "{json}");
    let out = run_peer(&["status".as_ref(), "--state".as_ref(), st]);
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("listening on 127.0.0.1:{port} and [::1]:{port}");
    assert!(text.contains(&want), "{text}");
    d.kill();
}

#[test]
fn c_two_addresses_of_one_family_are_refused() {
    let tmp = TempDir::new("bind-refused");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "r.bin", 40 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(&src, &torrent, &[]);
    let port = free_port().to_string();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent).arg("--dir").arg(&seed_dir).args([
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--bind",
        "127.0.0.2",
        "--no-lsd",
        "--no-dht",
    ]);
    let out = run_bounded("peer --bind twice", cmd, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("one address per family"), "{err}");
}

/// (d) Outgoing traffic leaves from the bound address: a host (network
/// namespace, root) with two IPv6 addresses, `fd21:a::1` on its LAN side and
/// `fd21:a::99` on `lo`; `peer --bind fd21:a::99` dials a peer, announces to
/// an HTTP and a UDP tracker, all listening on `fd21:a::1`, where the kernel
/// left to itself would send from `fd21:a::1` (the destination's own
/// address). A small Python server records the source address of each.
/// `PEER_TEST_NETNS_TAG` (default `p21s`) starts the namespaces' and veths'
/// names.
#[test]
fn d_outgoing_traffic_leaves_from_the_bound_ipv6_address() {
    use support::netns::{ip, lan_or_skip, Family};
    let tag = std::env::var("PEER_TEST_NETNS_TAG").unwrap_or_else(|_| "p21s".into());
    let Some(lan) = lan_or_skip(&format!("{tag}-"), &tag, &[Family::V6]) else {
        return;
    };
    let host = lan.hosts[0].clone();
    ip(&[
        "-n",
        &host,
        "addr",
        "add",
        "fd21:a::99/128",
        "dev",
        "lo",
        "nodad",
    ])
    .expect("a second address");
    let tmp = TempDir::new("bind-source");
    let seed_dir = tmp.subdir("seed");
    let src = make_single_file(&seed_dir, "s.bin", 64 * 1024);
    let torrent = tmp.path().join("t.torrent");
    peer_create_torrent(
        &src,
        &torrent,
        &[
            "--announce",
            "http://[fd21:a::1]:7002/announce",
            "--announce",
            "udp://[fd21:a::1]:7003",
        ],
    );
    let server = r#"
import select, socket, sys, time
def tcp(port):
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("fd21:a::1", port)); s.listen(8); return s
peer, http = tcp(7001), tcp(7002)
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); udp.bind(("fd21:a::1", 7003))
names = {peer: "PEER", http: "HTTP", udp: "UDP"}
print("READY", flush=True)
seen, keep, end = set(), [], time.monotonic() + 40
while len(seen) < 3 and time.monotonic() < end:
    for s in select.select(list(names), [], [], 0.5)[0]:
        if s is udp:
            _, a = udp.recvfrom(2048)
        else:
            c, a = s.accept()
            if s is http: c.close()
            else: keep.append(c)
        if names[s] not in seen:
            seen.add(names[s]); print(names[s], a[0], flush=True)
"#;
    let mut py = lan.command(0, std::path::Path::new(SYSTEM_PYTHON));
    py.args(["-c", server]);
    let mut srv = Child::spawn("source recorder", py);
    assert!(srv.wait_for_output("READY", LONG_WAIT), "{}", srv.output());
    let mut cmd = lan.command(0, &peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(tmp.subdir("leech"))
        .arg("--state")
        .arg(tmp.subdir("state"))
        .args(["--port", "6881", "--bind", "fd21:a::99"])
        .args(["--no-lsd", "--no-dht", "--peer", "[fd21:a::1]:7001"])
        .env("PEER_PORT_MAP", "off");
    let leecher = Child::spawn("peer --bind fd21:a::99", cmd);
    let _ = srv.wait_exit(Duration::from_secs(45));
    let out = srv.output();
    for what in ["PEER", "HTTP", "UDP"] {
        let from = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{what} ")))
            .unwrap_or_else(|| panic!("no {what} contact\n{out}\n{}", leecher.output()));
        assert_eq!(from.trim(), "fd21:a::99", "{what}: {out}");
    }
    drop(leecher);
    drop(lan);
}
