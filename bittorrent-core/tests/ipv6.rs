//! IPv6 (issue 21): the default listener is dual stack, one port number
//! for both families; a leecher downloads from a seeder over `::1`; an IPv4
//! peer reaching the dual-stack listener (as `::ffff:a.b.c.d`) is counted
//! per IP as the IPv4 address it is.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use socket2::{Domain, Socket, Type};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

fn v6_loopback_works() -> bool {
    std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

#[test]
fn leecher_downloads_from_a_seeder_over_ipv6_loopback() {
    if !v6_loopback_works() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no ::1 here");
        eprintln!("SKIP: no IPv6 loopback on this host");
        return;
    }
    let data = pseudo_random(400 * 1024, 21);
    let (mi, seed_dir) = single_file_torrent("over-v6", &data, 32 * 1024);
    // The seeder binds only ::1; the leecher is dual stack (the default).
    let seeder = session_with(|c| c.listen_addr = IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(seeder.local_addr().ip(), Ipv6Addr::LOCALHOST);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let leecher = session_with(|c| c.listen_addr = IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let dir = temp_dir("over-v6-leech");
    let to = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), seeder.local_addr().port());
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![to]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("over-v6")).unwrap(), data);
}

/// A TCP connection to `to` from `from_ip` (another loopback address).
fn connect_from(from_ip: &str, to: SocketAddr) -> Option<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    let bind: SocketAddr = format!("{from_ip}:0").parse().unwrap();
    s.bind(&bind.into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
    Some(s.into())
}

#[test]
fn ipv4_peers_of_a_dual_stack_listener_are_limited_per_ipv4_address() {
    let seeder = session_with(|c| {
        c.listen_addr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        c.peer_limits.handshake_timeout = Duration::from_secs(60);
        c.max_handshakes_per_ip = 8;
        // 127.0.0.2 is this machine, trusted by default: play a remote host.
        c.trust_local = false;
    });
    let port = seeder.local_addr().port();
    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let silent: Vec<TcpStream> = (0..40)
        .filter_map(|_| connect_from("127.0.0.2", to))
        .collect();
    assert!(silent.len() >= 35, "only {} connected", silent.len());
    let closed = |s: &TcpStream| {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let r = (&*s).read(&mut b);
        s.set_nonblocking(false).unwrap();
        matches!(r, Ok(0)) || matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            silent.iter().filter(|s| !closed(s)).count() <= 8
        }),
        "{} still open",
        silent.iter().filter(|s| !closed(s)).count()
    );
}

/// A tracker that answers every announce with `body` (HTTP/1.0, one
/// request per connection). Returns its announce URL.
fn hostile_tracker(body: Vec<u8>) -> String {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/announce", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    url
}

fn compact(addrs: &[SocketAddr]) -> (Vec<u8>, Vec<u8>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for a in addrs {
        match a.ip() {
            IpAddr::V4(ip) => v4.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => v6.extend_from_slice(&ip.octets()),
        }
        let out = if a.is_ipv4() { &mut v4 } else { &mut v6 };
        out.extend_from_slice(&a.port().to_be_bytes());
    }
    (v4, v6)
}

/// Issue 21: a tracker hands out link-local, multicast, unspecified,
/// broadcast, reserved, IPv4-compatible and garbled v4-mapped addresses and
/// the leecher's own address, beside two honest seeders (one over IPv4,
/// one over IPv6). Every bad address is refused before it becomes a
/// candidate (counted in `refused_addresses`); the honest ones are used.
#[test]
fn hostile_tracker_addresses_are_never_dialled_and_honest_ones_are() {
    if !v6_loopback_works() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no ::1 here");
        eprintln!("SKIP: no IPv6 loopback on this host");
        return;
    }
    use bittorrent_core::proto::bencode::OwnedValue;
    let data = pseudo_random(1024 * 1024, 22);
    let (mut mi, seed_dir) = single_file_torrent("hostile-addrs", &data, 32 * 1024);
    // Slow seeders (about 2 s for the file from both): both get dialled
    // and seen in the peer table before the download ends.
    let rate = 256 * 1024;
    let seed4 = session_with(|c| c.max_upload_rate = rate);
    let seed6 = session_with(|c| {
        c.listen_addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        c.max_upload_rate = rate;
    });
    for s in [&seed4, &seed6] {
        s.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
        wait_phase(s, &mi, Phase::Seeding, Duration::from_secs(30));
    }
    // The leecher's port is known before the tracker answers: bind first.
    let leecher = session_with(|c| c.listen_addr = IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let own = leecher.local_addr().port();
    let bad: Vec<SocketAddr> = [
        "0.0.0.0:6881".to_string(),
        "224.0.0.1:6881".into(),
        "255.255.255.255:6881".into(),
        "0.1.2.3:6881".into(),
        "240.0.0.9:6881".into(),
        format!("127.0.0.1:{own}"),
        "[fe80::1]:6881".into(),
        "[febf:ffff::1]:6881".into(),
        "[ff02::1]:6881".into(),
        "[ff15::efc0:988f]:6771".into(),
        "[::]:6881".into(),
        "[::ffff:0.0.0.0]:6881".into(),
        "[::ffff:224.0.0.5]:6881".into(),
        "[::10.0.0.1]:6881".into(),
        format!("[::1]:{own}"),
        format!("[::ffff:127.0.0.1]:{own}"),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let honest = [seed4.local_addr(), seed6.local_addr()];
    let mut all = bad.clone();
    all.extend(honest);
    let (p4, p6) = compact(&all);
    let body = OwnedValue::Dict(vec![
        (b"interval".to_vec(), OwnedValue::Int(1800)),
        (b"peers".to_vec(), OwnedValue::Bytes(p4)),
        (b"peers6".to_vec(), OwnedValue::Bytes(p6)),
    ])
    .to_bytes();
    mi.announce = Some(hostile_tracker(body));
    let dir = temp_dir("hostile-addrs-leech");
    leecher.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    // The seeders are rate-limited: watch the peer table while it lasts.
    let mut seen = std::collections::HashSet::new();
    let done = wait_until(Duration::from_secs(60), || {
        for p in leecher
            .peers(&mi.info_hash, Duration::from_secs(2))
            .unwrap_or_default()
        {
            seen.insert(p.addr);
        }
        leecher.status(&mi.info_hash).unwrap().phase == Phase::Seeding
    });
    assert!(done, "download did not complete");
    assert_eq!(std::fs::read(dir.join("hostile-addrs")).unwrap(), data);
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.refused_addresses, bad.len(), "every bad address refused");
    // Both honest seeders were dialled, and nothing else.
    for h in honest {
        assert!(seen.contains(&h), "{h} never connected: {seen:?}");
    }
    assert!(seen.iter().all(|a| honest.contains(a)), "{seen:?}");
}

/// `Config::extra_listen_addrs` (`--bind` twice): an IPv4 and an IPv6
/// address on one port number, TCP and UDP (the DHT on the IPv4 one, the
/// IPv6 DHT on the IPv6 one); a stop wakes both listeners and closes both.
#[test]
fn two_listen_addresses_share_one_port_and_stop_cleanly() {
    if !v6_loopback_works() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no ::1 here");
        eprintln!("SKIP: no IPv6 loopback on this host");
        return;
    }
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let s = session_with(|c| {
        c.listen_addr = v6;
        c.extra_listen_addrs = vec![v4];
        c.dht = true;
        c.dht_bootstrap = Vec::new();
    });
    let port = s.local_addr().port();
    let both = [SocketAddr::new(v6, port), SocketAddr::new(v4, port)];
    assert_eq!(s.listen_addrs(), both);
    assert_eq!(s.dht_addr(), Some(SocketAddr::new(v4, port)));
    assert_eq!(s.dht6_addr(), Some(SocketAddr::new(v6, port)));
    for a in both {
        assert!(
            TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok(),
            "{a}"
        );
    }
    let t = std::time::Instant::now();
    s.shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    for a in both {
        assert!(
            TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_err(),
            "{a}"
        );
    }
}

/// Issue 21, bad input over PEX: a peer's `ut_pex` message (BEP 11) hands
/// out IPv6 link-local, multicast and unspecified addresses, garbled
/// v4-mapped ones and the leecher's own address in `added6` and `added`:
/// all are refused (counted in `refused_addresses`, one debug line per
/// message), none is dialled.
#[test]
fn hostile_pex_addresses_are_refused() {
    use bittorrent_core::proto::extension::PexMessage;
    use std::io::Write;
    use std::net::TcpListener;
    if !v6_loopback_works() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no ::1 here");
        eprintln!("SKIP: no IPv6 loopback on this host");
        return;
    }
    let data = pseudo_random(64 * 1024, 23);
    let (mi, _seed) = single_file_torrent("hostile-pex", &data, 16 * 1024);
    let leecher = session_with(|c| c.listen_addr = IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let own = leecher.local_addr().port();
    let bad: Vec<SocketAddr> = [
        "[fe80::1]:6881".to_string(),
        "[febf:ffff::1]:6881".into(),
        "[ff02::1]:6881".into(),
        "[ff15::efc0:988f]:6771".into(),
        "[::]:6881".into(),
        "[::10.0.0.1]:6881".into(),
        format!("[::1]:{own}"),
        "0.0.0.0:6881".into(),
        "224.0.0.1:6881".into(),
        format!("127.0.0.1:{own}"),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let raw = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dir = temp_dir("hostile-pex-leech");
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![raw.local_addr().unwrap()]))
        .unwrap();
    // The leecher may try MSE first: answer only a plaintext handshake.
    let mut s = loop {
        let (mut s, _) = raw.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut hs = [0u8; 68];
        if s.read_exact(&mut hs).is_ok() && hs[..20] == *b"\x13BitTorrent protocol" {
            assert_eq!(hs[25] & 0x10, 0x10, "BEP 10 bit");
            break s;
        }
    };
    let mut hs = Vec::from(&b"\x13BitTorrent protocol"[..]);
    hs.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
    hs.extend_from_slice(&mi.info_hash.0);
    hs.extend_from_slice(b"-XX0001-hostile-pex-");
    let ext = |id: u8, body: &[u8]| {
        let mut m = ((body.len() + 2) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&[20, id]);
        m.extend_from_slice(body);
        m
    };
    s.write_all(&hs).unwrap();
    s.write_all(&ext(0, b"d1:md6:ut_pexi1eee")).unwrap();
    // The leecher's extended handshake names its ut_pex id.
    let mut seen = Vec::new();
    let their_id = loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut m).unwrap();
        seen.extend_from_slice(&m);
        if m.len() > 2 && m[0] == 20 && m[1] == 0 {
            let at = m.windows(9).position(|w| w == b"6:ut_pexi").unwrap();
            let rest = &m[at + 9..];
            let end = rest.iter().position(|&b| b == b'e').unwrap();
            break std::str::from_utf8(&rest[..end]).unwrap().parse().unwrap();
        }
    };
    let pex = PexMessage {
        added: bad.clone(),
        ..Default::default()
    };
    s.write_all(&ext(their_id, &pex.encode())).unwrap();
    let refused = wait_until(Duration::from_secs(10), || {
        leecher.status(&mi.info_hash).unwrap().refused_addresses == bad.len()
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(refused, "refused {} of {}", st.refused_addresses, bad.len());
    // Nothing was dialled: the only peer is the raw one.
    let peers = leecher
        .peers(&mi.info_hash, Duration::from_secs(2))
        .unwrap_or_default();
    assert!(
        peers.iter().all(|p| p.addr == raw.local_addr().unwrap()),
        "{peers:?}"
    );
    drop(s);
}
