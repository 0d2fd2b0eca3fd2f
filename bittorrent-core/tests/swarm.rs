//! Real peers on loopback: whole sessions exchanging data.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::time::Duration;

#[test]
fn one_seeder_one_leecher() {
    let data = pseudo_random(3 * 1024 * 1024 + 777, 1);
    let (mi, seed_dir) = single_file_torrent("one", &data, 64 * 1024);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));

    let leech_dir = temp_dir("one-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &leech_dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(leech_dir.join("one")).unwrap(), data);
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.hash_failures, 0);
    assert!(st.downloaded >= data.len() as u64);
}

#[test]
fn multi_file_short_last_piece() {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.bin", pseudo_random(100_000, 2)),
        ("sub/b.bin", pseudo_random(1, 3)),
        ("sub/deeper/c.bin", pseudo_random(300_001, 4)),
        ("empty.txt", Vec::new()),
    ];
    let (mi, seed_dir) = multi_file_torrent("multi", &files, 32 * 1024);
    assert_ne!(mi.info.total_length % mi.info.piece_length, 0);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let leech_dir = temp_dir("multi-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &leech_dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    for (p, d) in &files {
        assert_eq!(
            &std::fs::read(leech_dir.join("multi").join(p)).unwrap(),
            d,
            "{p}"
        );
    }
}
