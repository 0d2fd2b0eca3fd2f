//! A DHT of 20 of our sessions on loopback: a magnet link resolves (peers
//! from the DHT, metadata from them) and downloads with no tracker at all.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Event, Magnet, Phase};
use harness::*;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn magnet_resolves_and_downloads_through_a_dht_of_20_nodes() {
    let data = pseudo_random(1024 * 1024 + 5, 70);
    let (mi, seed_dir) = single_file_torrent("dht-data", &data, 32 * 1024);
    assert!(mi.announce.is_none() && mi.announce_list.is_empty());
    let first = session_with(|c| c.dht = true);
    let boot = first.dht_addr().unwrap();
    let mut nodes = vec![first];
    for _ in 1..20 {
        nodes.push(session_with(|c| {
            c.dht = true;
            c.dht_bootstrap = vec![boot];
        }));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    // Node 5 seeds and announces itself on the DHT (its announcer does).
    nodes[5]
        .add(AddTorrent::new(mi.clone(), &seed_dir))
        .unwrap();
    wait_phase(&nodes[5], &mi, Phase::Seeding, Duration::from_secs(20));
    // Node 17 knows only the magnet link (no tracker, no x.pe).
    let magnet = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", mi.info_hash)).unwrap();
    let mut peers = Vec::new();
    assert!(wait_until(Duration::from_secs(30), || {
        peers = nodes[17].dht_get_peers(&mi.info_hash, Duration::from_secs(5));
        !peers.is_empty()
    }));
    assert!(peers.contains(&nodes[5].local_addr_v4()), "{peers:?}");
    // The session resolves the magnet link by itself: peers from the DHT
    // (its announcer), metadata from them, then the download.
    let events = nodes[17].events();
    let dir = temp_dir("dht-leech");
    nodes[17].add(AddTorrent::magnet(magnet, &dir)).unwrap();
    wait_phase(&nodes[17], &mi, Phase::Seeding, Duration::from_secs(90));
    assert_eq!(std::fs::read(dir.join("dht-data")).unwrap(), data);
    let got: Vec<Event> = events.try_iter().collect();
    assert!(
        got.contains(&Event::MetadataReceived {
            info_hash: mi.info_hash,
            name: "dht-data".into()
        }),
        "{got:?}"
    );
}

/// One UDP port: the DHT and the UDP tracker share the socket on the
/// listening port number. A node bootstrapped from a peer's listening
/// `IP:PORT` (the one address a user knows) finds that peer's torrent, and
/// the same port still answers BEP 15 announces.
#[test]
fn dht_and_udp_tracker_share_the_listening_port() {
    let data = pseudo_random(256 * 1024 + 9, 71);
    let (mi, seed_dir) = single_file_torrent("one-port", &data, 32 * 1024);
    let seeder = session_with(|c| c.dht = true);
    let addr = seeder.local_addr_v4();
    assert_eq!(seeder.dht_addr(), Some(seeder.local_addr()));
    let line = seeder.listening();
    assert!(
        line.contains(&format!("UDP {addr} (UDP tracker + DHT)")),
        "{line}"
    );
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    // The DHT through the peer's own port.
    let node = session_with(|c| {
        c.dht = true;
        c.dht_bootstrap = vec![addr];
    });
    let mut peers = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            peers = node.dht_get_peers(&mi.info_hash, Duration::from_secs(3));
            peers.contains(&addr)
        }),
        "the DHT lookup through {addr} never found the seeder: {peers:?}"
    );
    // BEP 15 on the same port.
    udp_announce(addr, &mi.info_hash.0, [9; 20], 7777);
    let r = udp_announce(addr, &mi.info_hash.0, [8; 20], 7778);
    assert_eq!(r.peers, vec![SocketAddr::from(([127, 0, 0, 1], 7777))]);
}

/// One BEP 15 announce (connect, then announce `started` with `left` 1) by
/// hand, the way any UDP tracker client sends it; the answer is parsed by
/// the library's codec.
fn udp_announce(
    tracker: SocketAddr,
    info_hash: &[u8; 20],
    peer_id: [u8; 20],
    port: u16,
) -> bittorrent_core::proto::tracker::AnnounceResponse {
    use bittorrent_core::proto::tracker::{parse_udp_announce_response, UDP_PROTOCOL_ID};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    let mut exchange = |req: &[u8], tx: u32| -> Vec<u8> {
        for _ in 0..5 {
            sock.send_to(req, tracker).unwrap();
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if n >= 8 && buf[4..8] == tx.to_be_bytes() {
                    return buf[..n].to_vec();
                }
            }
        }
        panic!("no answer from the UDP tracker at {tracker}");
    };
    let mut connect = Vec::new();
    connect.extend_from_slice(&UDP_PROTOCOL_ID.to_be_bytes());
    connect.extend_from_slice(&0u32.to_be_bytes());
    connect.extend_from_slice(&11u32.to_be_bytes());
    let r = exchange(&connect, 11);
    assert!(r.len() >= 16 && r[..4] == 0u32.to_be_bytes(), "{r:?}");
    let mut ann = r[8..16].to_vec(); // connection id
    ann.extend_from_slice(&1u32.to_be_bytes()); // announce
    ann.extend_from_slice(&12u32.to_be_bytes());
    ann.extend_from_slice(info_hash);
    ann.extend_from_slice(&peer_id);
    ann.extend_from_slice(&0u64.to_be_bytes()); // downloaded
    ann.extend_from_slice(&1u64.to_be_bytes()); // left
    ann.extend_from_slice(&0u64.to_be_bytes()); // uploaded
    ann.extend_from_slice(&2u32.to_be_bytes()); // started
    ann.extend_from_slice(&0u32.to_be_bytes()); // ip
    ann.extend_from_slice(&9u32.to_be_bytes()); // key
    ann.extend_from_slice(&50i32.to_be_bytes()); // num_want
    ann.extend_from_slice(&port.to_be_bytes());
    let r = exchange(&ann, 12);
    parse_udp_announce_response(&r, false).unwrap()
}

/// BEP 32: dual-stack sessions whose only bootstrap node is an IPv6
/// address (`[::1]:PORT`) build the IPv6 DHT on their `udp6` sockets (the
/// IPv4 DHT stays empty); a seeder announces there, and a magnet link
/// resolves and downloads through IPv6 peers found in that DHT alone (no
/// tracker, no PEX, no LSD).
#[test]
fn ipv6_peers_find_each_other_through_the_ipv6_dht_alone() {
    use std::net::{IpAddr, Ipv6Addr};
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no ::1 here");
        eprintln!("SKIP: no IPv6 loopback on this host");
        return;
    }
    let data = pseudo_random(512 * 1024 + 3, 72);
    let (mi, seed_dir) = single_file_torrent("dht6-data", &data, 32 * 1024);
    let dual = |c: &mut bittorrent_core::Config| {
        c.listen_addr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        c.dht = true;
        c.lsd = false;
    };
    let first = session_with(dual);
    let v6 = |s: &bittorrent_core::Session| {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), s.local_addr().port())
    };
    assert_eq!(
        first.dht6_addr().map(|a| a.port()),
        Some(first.local_addr().port())
    );
    let boot = v6(&first);
    let mut nodes = vec![first];
    for _ in 1..8 {
        nodes.push(session_with(|c| {
            dual(c);
            c.dht_bootstrap = vec![boot];
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    nodes[3]
        .add(AddTorrent::new(mi.clone(), &seed_dir))
        .unwrap();
    wait_phase(&nodes[3], &mi, Phase::Seeding, Duration::from_secs(20));
    let seeder = v6(&nodes[3]);
    let mut peers = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            peers = nodes[6].dht_get_peers(&mi.info_hash, Duration::from_secs(3));
            peers.contains(&seeder)
        }),
        "the IPv6 DHT never gave {seeder}: {peers:?}"
    );
    assert!(
        peers.iter().all(|p| p.is_ipv6()),
        "only IPv6 values: {peers:?}"
    );
    let magnet = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", mi.info_hash)).unwrap();
    let dir = temp_dir("dht6-leech");
    nodes[6].add(AddTorrent::magnet(magnet, &dir)).unwrap();
    wait_phase(&nodes[6], &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("dht6-data")).unwrap(), data);
}
