//! `--bind` (issue 21): a session listening on one address sends from it
//! too. The machine has two IPv4 loopback addresses, 127.0.0.1 and
//! 127.0.0.2; the session binds 127.0.0.2 and its peer and trackers
//! listen on 127.0.0.1, so the kernel, left to choose by route, would send
//! from 127.0.0.1. An IPv6 peer is not dialled at all (the session is bound
//! to no IPv6 address). The HTTP tracker's connection leaves from
//! 127.0.0.2 too (the web seeds use the same connector).
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::AddTorrent;
use harness::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

#[test]
fn outgoing_peer_and_tracker_traffic_leaves_from_the_bound_address() {
    let bound = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let peer = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    peer.set_nonblocking(true).unwrap();
    let tracker = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    tracker
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let http = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    http.set_nonblocking(true).unwrap();
    let peer6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).ok();
    if let Some(l) = &peer6 {
        l.set_nonblocking(true).unwrap();
    }
    let data = pseudo_random(64 * 1024, 47);
    let (mi, _seed) = single_file_torrent("bind-source", &data, 16 * 1024);
    let s = session_with(|c| {
        c.listen_addr = bound;
        c.dht = false;
    });
    assert_eq!(s.local_addr().ip(), bound);
    let mut peers = vec![peer.local_addr().unwrap()];
    peers.extend(peer6.iter().map(|l| l.local_addr().unwrap()));
    let dir = temp_dir("bind-source-leech");
    s.add(AddTorrent::new(mi.clone(), &dir).peers(peers))
        .unwrap();
    let udp_url = format!("udp://{}", tracker.local_addr().unwrap());
    let http_url = format!("http://{}/announce", http.local_addr().unwrap());
    // Tier one (HTTP) fails at once (closed unanswered), then tier two (UDP).
    s.set_trackers(&mi.info_hash, vec![vec![http_url], vec![udp_url]])
        .unwrap();

    let (mut tcp_from, mut udp_from, mut http_from) = (None, None, None);
    let mut v6_dialled = false;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && (tcp_from.is_none() || udp_from.is_none() || http_from.is_none())
    {
        if let Ok((_c, from)) = http.accept() {
            http_from = Some(from);
        }
        if let Ok((_c, from)) = peer.accept() {
            tcp_from = Some(from);
        }
        if let Some(Ok((_c, _))) = peer6.as_ref().map(|l| l.accept()) {
            v6_dialled = true;
        }
        let mut b = [0u8; 2048];
        if let Ok((_, from)) = tracker.recv_from(&mut b) {
            udp_from = Some(from);
        }
    }
    let ip = |a: Option<SocketAddr>| a.map(|a| a.ip());
    assert_eq!(ip(tcp_from), Some(bound), "the peer's TCP connection");
    assert_eq!(ip(udp_from), Some(bound), "the UDP tracker's datagram");
    assert_eq!(ip(http_from), Some(bound), "the HTTP tracker's connection");
    // By now the IPv6 peer would have been dialled with the IPv4 one.
    std::thread::sleep(Duration::from_millis(500));
    if let Some(Ok(_)) = peer6.as_ref().map(|l| l.accept()) {
        v6_dialled = true;
    }
    assert!(
        !v6_dialled,
        "an IPv6 peer was dialled from an IPv4-only bind"
    );
}
