//! The piece-buffer budget bounds the pieces requests touch (issue 31): a
//! download keeps to it, so no piece is *spilled* (written block by block
//! and read back to be hashed) however far the hashers and the disk fall
//! behind. Before, every peer kept half a piece requested even with the
//! budget spent, and pieces waiting for their hash made those requests
//! start pieces the budget had no room for: leechers spilled 28-118 of 256
//! pieces from one seeder on a loaded machine.
//!
//! A small session budget (1 MiB: four 256 KiB pieces) makes the budget the
//! limit all the time; the count comes from `TorrentStatus::pieces_spilled`.
//! No timed asserts: the waits are bounds for a hang, not speed targets.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::time::Duration;

const PIECE: u64 = 256 * 1024;

fn download_spills_nothing(seeders: usize, seed: u64) {
    let data = pseudo_random(12 * 1024 * 1024, seed);
    let (mi, seed_dir) = single_file_torrent("budget", &data, PIECE);
    let mut sessions = Vec::new();
    for _ in 0..seeders {
        let s = session();
        s.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
        wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(60));
        sessions.push(s);
    }
    let peers = sessions.iter().map(|s| s.local_addr_v4()).collect();
    let leech_dir = temp_dir("budget-leech");
    let leecher = session_with(|c| c.piece_buffer_memory = 4 * PIECE);
    leecher
        .add(AddTorrent::new(mi.clone(), &leech_dir).peers(peers))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(180));
    assert_eq!(std::fs::read(leech_dir.join("budget")).unwrap(), data);
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.hash_failures, 0);
    assert_eq!(
        st.pieces_spilled, 0,
        "pieces spilled to disk with {seeders} seeder(s) and a 1 MiB budget"
    );
}

#[test]
fn a_single_seeder_download_spills_nothing() {
    download_spills_nothing(1, 311);
}

#[test]
fn a_download_from_four_seeders_spills_nothing() {
    download_spills_nothing(4, 312);
}
