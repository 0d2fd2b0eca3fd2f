//! One host's silent sockets do not lock others out of the listener: at
//! most `max_handshakes_per_ip` (8) of its connections may sit in the
//! handshake at once, the rest are closed at accept.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use socket2::{Domain, Socket, Type};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A TCP connection to `to` from `from_ip` (another loopback address).
fn connect_from(from_ip: &str, to: SocketAddr) -> Option<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    let bind: SocketAddr = format!("{from_ip}:0").parse().unwrap();
    s.bind(&bind.into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
    Some(s.into())
}

#[test]
fn five_hundred_silent_sockets_from_one_host_do_not_delay_others() {
    let data = pseudo_random(512 * 1024, 9);
    let (mi, seed_dir) = single_file_torrent("silent", &data, 32 * 1024);
    // A handshake timeout of 60 s: without the per-IP cap, the silent
    // sockets would hold all 500 slots for a minute.
    let seeder = session_with(|c| {
        c.peer_limits.handshake_timeout = Duration::from_secs(60);
        c.max_handshakes_per_ip = bittorrent_core::Config::default().max_handshakes_per_ip;
        // 127.0.0.2 is this machine, trusted by default: play a remote host.
        c.trust_local = false;
    });
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let addr = seeder.local_addr_v4();
    let silent: Vec<TcpStream> = (0..500)
        .filter_map(|_| connect_from("127.0.0.2", addr))
        .collect();
    assert!(silent.len() >= 450, "only {} connected", silent.len());
    // Most were closed at accept; 8 stay in their handshake.
    let closed = |s: &TcpStream| {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let r = (&*s).read(&mut b);
        s.set_nonblocking(false).unwrap();
        matches!(r, Ok(0)) || matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
    };
    assert!(wait_until(Duration::from_secs(10), || {
        silent.iter().filter(|s| !closed(s)).count() <= 8
    }));
    // A leecher from another address gets in and downloads at once.
    let t0 = Instant::now();
    let dir = temp_dir("silent-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![addr]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(30));
    assert_eq!(std::fs::read(dir.join("silent")).unwrap(), data);
    let open = silent.iter().filter(|s| !closed(s)).count();
    eprintln!(
        "500 silent sockets: {open} still in their handshake; leecher done in {:?}",
        t0.elapsed()
    );
    assert!(open <= 8);
}
