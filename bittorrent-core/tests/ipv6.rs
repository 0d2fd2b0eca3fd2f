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
