//! File selection on loopback: skipped files are never created, bytes of
//! theirs in pieces shared with wanted files live in the part file, a
//! torrent whose wanted files are complete is finished, the selection
//! survives a restart, and selecting the files later completes them from
//! the part file plus the network.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::layout::Layout;
use bittorrent_core::selection::{self, Glob};
use bittorrent_core::{AddTorrent, Config, FilePriority, Phase, Session};
use harness::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const N: FilePriority = FilePriority::Normal;
const S: FilePriority = FilePriority::Skip;

fn files() -> Vec<(&'static str, Vec<u8>)> {
    // Pieces of 32 KiB. a = [0, 100000): pieces 0-3; b = [100000, 250000):
    // pieces 3-7 (3 shared with a, 7 with c, 4-6 b's alone); c = [250000,
    // 370003): pieces 7-11 (11 shared with d); d = [370003, 450003):
    // pieces 11-13 (12 and 13 d's alone).
    vec![
        ("a.bin", pseudo_random(100_000, 11)),
        ("sub/b.bin", pseudo_random(150_000, 12)),
        ("c.bin", pseudo_random(120_003, 13)),
        ("sub/d.bin", pseudo_random(80_000, 14)),
    ]
}

fn session_in(state: &std::path::Path) -> Session {
    Session::start(Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        state_dir: Some(state.to_path_buf()),
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn skipped_files_stay_absent_then_complete_from_the_part_file_and_the_network() {
    let files = files();
    let (mi, seed_dir) = multi_file_torrent("sel", &files, 32 * 1024);
    let layout = Layout::of(&mi.info);
    assert_eq!(selection::shared_pieces(&mi.info), vec![3, 7, 11]);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));

    // Only a and c, chosen the way the CLI does it.
    let only = [Glob::new("a.bin").unwrap(), Glob::new("c.*").unwrap()];
    let prios = selection::select(&mi.info, None, &only, &[]).unwrap();
    assert_eq!(prios, vec![N, S, N, S]);
    let leech_dir = temp_dir("sel-leech");
    let state = temp_dir("sel-state");
    let leecher = session_in(&state);
    let mut add = AddTorrent::new(mi.clone(), &leech_dir).peers(vec![seeder.local_addr_v4()]);
    add.file_priorities = Some(prios);
    leecher.add(add).unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));

    let root = leech_dir.join("sel");
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(st.is_selection_complete() && !st.is_complete(), "{st:?}");
    // Pieces 0-3 (a), 7-11 (c and the shared ones); never 4-6 or 12-13.
    assert_eq!(st.pieces_wanted, 9);
    assert_eq!(st.pieces_wanted_have, 9);
    assert_eq!(st.pieces_have, 9);
    assert_eq!(st.wanted_length, 100_000 + 120_003);
    assert_eq!(st.hash_failures, 0);
    assert_eq!(std::fs::read(root.join("a.bin")).unwrap(), files[0].1);
    assert_eq!(std::fs::read(root.join("c.bin")).unwrap(), files[2].1);
    assert!(
        !root.join("sub/b.bin").exists(),
        "a skipped file is created"
    );
    assert!(
        !root.join("sub/d.bin").exists(),
        "a skipped file is created"
    );
    // The skipped bytes of pieces 3, 7 and 11 are in the part file, whose
    // slots are the shared pieces in order.
    let part = leech_dir.join(format!(".{}.parts", mi.info_hash));
    let pbytes = std::fs::read(&part).unwrap();
    let pl = 32 * 1024usize;
    let b_in_3 = &files[1].1[..3 * pl + pl - 100_000];
    assert_eq!(&pbytes[100_000 - 3 * pl..pl], b_in_3);
    let d_in_11 = &files[3].1[..12 * pl - 370_003];
    assert_eq!(&pbytes[2 * pl + (370_003 - 11 * pl)..3 * pl], d_in_11);
    let listed = leecher.files(&mi.info_hash).unwrap();
    assert_eq!(listed[1].priority, S);
    assert!(!listed[1].created && listed[0].created);
    assert_eq!(listed[0].bytes_have, 100_000);

    // A restart with the same state directory: the selection comes back
    // from the resume data (nothing given), nothing is created or fetched.
    leecher.shutdown();
    let leecher = session_in(&state);
    leecher.restore().unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(30));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(st.resumed, "{st:?}");
    assert_eq!(st.pieces_wanted, 9);
    assert!(!root.join("sub/b.bin").exists());
    assert_eq!(leecher.files(&mi.info_hash).unwrap()[3].priority, S);

    // Select everything: b and d are created with their bytes from the
    // part file, and only the pieces never fetched come over the network.
    let missing: u64 = (0..layout.num_pieces)
        .filter(|p| ![0, 1, 2, 3, 7, 8, 9, 10, 11].contains(p))
        .map(|p| u64::from(layout.piece_len(p)))
        .sum();
    let before = st.downloaded;
    leecher
        .set_file_priorities(&mi.info_hash, vec![N; 4])
        .unwrap();
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4()])
        .unwrap();
    let done = wait_until(Duration::from_secs(60), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.is_complete() && s.phase == Phase::Seeding)
    });
    assert!(done, "{:?}", leecher.status(&mi.info_hash));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.hash_failures, 0);
    assert_eq!(
        st.downloaded - before,
        missing,
        "the shared pieces must not be fetched again"
    );
    for (p, d) in &files {
        assert_eq!(&std::fs::read(root.join(p)).unwrap(), d, "{p}");
    }
    assert!(
        !part.exists(),
        "every file exists: the part file is removed"
    );
    leecher.shutdown();
    seeder.shutdown();
}

#[test]
fn a_partial_seed_uploads_shared_pieces_from_its_part_file() {
    // A seeds B, which keeps only a and c. With A gone, C (which wants a
    // only) gets pieces 0-3 from B alone; piece 3 holds b's first bytes,
    // which B reads from its part file to upload it.
    let files = files();
    let (mi, seed_dir) = multi_file_torrent("part", &files, 32 * 1024);
    let a = session();
    a.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&a, &mi, Phase::Seeding, Duration::from_secs(30));
    let b_dir = temp_dir("part-b");
    let b = session();
    let mut add = AddTorrent::new(mi.clone(), &b_dir).peers(vec![a.local_addr_v4()]);
    add.file_priorities = Some(vec![N, S, N, S]);
    b.add(add).unwrap();
    wait_phase(&b, &mi, Phase::Seeding, Duration::from_secs(60));
    a.shutdown();

    // C wants a only: pieces 0-3, all of which B has (3 via its part file).
    let c_dir = temp_dir("part-c");
    let c = session();
    let mut add = AddTorrent::new(mi.clone(), &c_dir).peers(vec![b.local_addr_v4()]);
    add.file_priorities = Some(vec![N, S, S, S]);
    c.add(add).unwrap();
    wait_phase(&c, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = c.status(&mi.info_hash).unwrap();
    assert_eq!(st.hash_failures, 0);
    assert_eq!(st.pieces_have, 4);
    assert_eq!(std::fs::read(c_dir.join("part/a.bin")).unwrap(), files[0].1);
    assert!(!c_dir.join("part/c.bin").exists());
    c.shutdown();
    b.shutdown();
}

#[test]
fn a_magnet_link_applies_its_selector_when_the_metadata_arrives() {
    let files = files();
    let (mi, seed_dir) = multi_file_torrent("mag", &files, 32 * 1024);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let magnet = bittorrent_core::Magnet::of(&mi);
    let dir = temp_dir("mag-leech");
    let leecher = session();
    let mut add = AddTorrent::magnet(magnet, &dir).peers(vec![seeder.local_addr_v4()]);
    add.file_selector = Some(selection::Selector {
        files: Some("2".into()),
        only: vec![],
        skip: vec![],
    });
    add.max_download_rate = 8 << 20;
    leecher.add(add).unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(st.is_selection_complete() && !st.is_complete(), "{st:?}");
    assert_eq!(st.max_download_rate, 8 << 20);
    assert_eq!(std::fs::read(dir.join("mag/c.bin")).unwrap(), files[2].1);
    for skipped in ["a.bin", "sub/b.bin", "sub/d.bin"] {
        assert!(!dir.join("mag").join(skipped).exists(), "{skipped}");
    }
    leecher.shutdown();
    seeder.shutdown();
}
