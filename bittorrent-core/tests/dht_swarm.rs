//! A DHT of 20 of our sessions on loopback: a magnet link resolves (peers
//! from the DHT, metadata from them) and downloads with no tracker at all.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Event, Magnet, Phase};
use harness::*;
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
