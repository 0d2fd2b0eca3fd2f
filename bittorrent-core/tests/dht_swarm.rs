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
    use bittorrent_core::discovery::tracker::{
        announce_with, AnnounceEvent, AnnounceOptions, AnnounceRequest,
    };
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
    let req = AnnounceRequest {
        info_hash: mi.info_hash,
        peer_id: [9; 20],
        port: 7777,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: AnnounceEvent::Started,
        numwant: 50,
        key: 9,
    };
    let opts = AnnounceOptions {
        timeout: Duration::from_secs(5),
        udp_base_timeout: Duration::from_millis(300),
        udp_max_retries: 3,
    };
    let url = format!("udp://{addr}");
    announce_with(&url, &req, &opts).unwrap();
    let second = AnnounceRequest {
        peer_id: [8; 20],
        port: 7778,
        ..req
    };
    let r = announce_with(&url, &second, &opts).unwrap();
    assert_eq!(r.peers, vec![SocketAddr::from(([127, 0, 0, 1], 7777))]);
}
