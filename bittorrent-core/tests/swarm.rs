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

#[test]
fn one_seeder_four_leechers_share_among_themselves() {
    let data = pseudo_random(8 * 1024 * 1024, 5);
    let (mi, seed_dir) = single_file_torrent("four", &data, 32 * 1024);
    // One upload slot (+1 optimistic) on the seeder: the other leechers must
    // get pieces from their fellow leechers.
    let seeder = session_with(|c| c.upload_slots = 1);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let leechers: Vec<_> = (0..4).map(|_| session()).collect();
    let dirs: Vec<_> = (0..4)
        .map(|i| temp_dir(&format!("four-leech{i}")))
        .collect();
    for (i, l) in leechers.iter().enumerate() {
        let mut peers = vec![seeder.local_addr_v4()];
        peers.extend(leechers[..i].iter().map(|o| o.local_addr_v4()));
        l.add(AddTorrent::new(mi.clone(), &dirs[i]).peers(peers))
            .unwrap();
    }
    for l in &leechers {
        wait_phase(l, &mi, Phase::Seeding, Duration::from_secs(120));
    }
    let mut leecher_upload = 0;
    let mut from_memory = 0;
    for (i, l) in leechers.iter().enumerate() {
        assert_eq!(
            std::fs::read(dirs[i].join("four")).unwrap(),
            data,
            "leecher {i}"
        );
        let st = l.status(&mi.info_hash).unwrap();
        assert_eq!(st.hash_failures, 0, "leecher {i}");
        leecher_upload += st.uploaded;
        from_memory += st.uploaded_from_memory;
    }
    // Pieces travelled through the swarm, not only from the seeder.
    assert!(
        leecher_upload > 0,
        "leechers uploaded nothing to each other"
    );
    // Pieces a leecher had just verified went on from its memory (and
    // arrived intact: no hash failures above).
    assert!(
        from_memory > 0,
        "no upload from kept pieces ({leecher_upload} bytes uploaded)"
    );
}

#[test]
fn corrupting_peer_is_banned_and_download_completes() {
    let data = pseudo_random(2 * 1024 * 1024, 6);
    let (mi, seed_dir) = single_file_torrent("corrupt", &data, 32 * 1024);
    let bad = scripted_peer(&mi, data.clone(), Script::Corrupt);
    let leech_dir = temp_dir("corrupt-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &leech_dir).peers(vec![bad.addr]))
        .unwrap();
    let banned = wait_until(Duration::from_secs(30), || {
        leecher.status(&mi.info_hash).is_some_and(|s| s.banned >= 1)
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(banned, "corrupting peer not banned: {st:?}");
    assert!(st.hash_failures >= 2);
    assert_eq!(st.pieces_have, 0);
    // A good seeder arrives; the download completes with correct data.
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4(), bad.addr])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(leech_dir.join("corrupt")).unwrap(), data);
    // The banned peer was never dialled again.
    assert_eq!(bad.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn peer_vanishing_mid_piece_does_not_stall() {
    let data = pseudo_random(1024 * 1024, 7);
    let (mi, seed_dir) = single_file_torrent("vanish", &data, 64 * 1024);
    let flaky = scripted_peer(&mi, data.clone(), Script::VanishAfter(3));
    let leech_dir = temp_dir("vanish-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &leech_dir).peers(vec![flaky.addr]))
        .unwrap();
    // It served 3 blocks of a 4-block piece, then went away.
    assert!(wait_until(Duration::from_secs(20), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.downloaded >= 3 * 16384 && s.peers == 0)
    }));
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4()])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(leech_dir.join("vanish")).unwrap(), data);
    assert_eq!(leecher.status(&mi.info_hash).unwrap().hash_failures, 0);
}

#[test]
fn interrupted_download_resumes_from_disk() {
    let piece = 32 * 1024u64;
    let data = pseudo_random(64 * piece as usize - 1234, 8);
    let (mi, seed_dir) = single_file_torrent("resume", &data, piece);
    let half = scripted_peer(&mi, data.clone(), Script::FirstPieces(40));
    let leech_dir = temp_dir("resume-leech");
    {
        let leecher = session();
        leecher
            .add(AddTorrent::new(mi.clone(), &leech_dir).peers(vec![half.addr]))
            .unwrap();
        assert!(wait_until(Duration::from_secs(30), || {
            leecher
                .status(&mi.info_hash)
                .is_some_and(|s| s.pieces_have == 40)
        }));
        leecher.shutdown();
    }
    // A new session over the same directory finds the 40 pieces on disk and
    // downloads only the rest.
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &leech_dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(leech_dir.join("resume")).unwrap(), data);
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.downloaded, data.len() as u64 - 40 * piece);
}

/// The announce URL is the seeder's own `IP:PORT`: its embedded tracker
/// introduces the peers to each other, with no other tracker anywhere.
#[test]
fn five_peers_find_each_other_through_the_embedded_tracker() {
    let data = pseudo_random(4 * 1024 * 1024, 9);
    let (mut mi, seed_dir) = single_file_torrent("tracked", &data, 32 * 1024);
    let seeder = session();
    mi.announce = Some(bittorrent_core::proto::metainfo::normalize_announce_url(
        &seeder.local_addr_v4().to_string(),
    ));
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let leechers: Vec<_> = (0..4).map(|_| session()).collect();
    let dirs: Vec<_> = (0..4)
        .map(|i| temp_dir(&format!("tracked-leech{i}")))
        .collect();
    for (i, l) in leechers.iter().enumerate() {
        // No peers given: only the tracker in the torrent.
        l.add(AddTorrent::new(mi.clone(), &dirs[i])).unwrap();
    }
    for l in &leechers {
        wait_phase(l, &mi, Phase::Seeding, Duration::from_secs(60));
        let st = l.status(&mi.info_hash).unwrap();
        assert!(st.tracker.error.is_none(), "{:?}", st.tracker);
        assert!(st.tracker.url.is_some());
    }
    for d in &dirs {
        assert_eq!(std::fs::read(d.join("tracked")).unwrap(), data);
    }
}

/// Two peers told only of a third (which has no data) learn of each other
/// through its `ut_pex` messages (BEP 11), connect, and complete: each had
/// half of the file.
#[test]
fn peers_find_each_other_by_pex() {
    let piece = 64 * 1024;
    let data = pseudo_random(64 * piece, 10);
    let (mi, _seed_dir) = single_file_torrent("pex", &data, piece as u64);
    let hub = session();
    let hub_dir = temp_dir("pex-hub");
    hub.add(AddTorrent::new(mi.clone(), &hub_dir)).unwrap();
    let halves = [&data[..32 * piece], &data[32 * piece..]];
    let mut peers = Vec::new();
    let mut dirs = Vec::new();
    for (i, half) in halves.iter().enumerate() {
        // Each peer starts with half of the file in place (zeros elsewhere).
        let dir = temp_dir(&format!("pex-half{i}"));
        let mut partial = vec![0u8; data.len()];
        let off = i * 32 * piece;
        partial[off..off + half.len()].copy_from_slice(half);
        std::fs::write(dir.join("pex"), &partial).unwrap();
        let s = session();
        s.add(AddTorrent::new(mi.clone(), &dir).peers(vec![hub.local_addr_v4()]))
            .unwrap();
        peers.push(s);
        dirs.push(dir);
    }
    for s in peers.iter().chain(std::iter::once(&hub)) {
        wait_phase(s, &mi, Phase::Seeding, Duration::from_secs(60));
    }
    let mut learned = 0;
    for (i, s) in peers.iter().enumerate() {
        assert_eq!(std::fs::read(dirs[i].join("pex")).unwrap(), data);
        learned += s.status(&mi.info_hash).unwrap().peers_from_pex;
    }
    assert_eq!(std::fs::read(hub_dir.join("pex")).unwrap(), data);
    // Nobody gave the two half-peers each other's address: only PEX did.
    assert!(learned >= 1, "no peer learned an address by PEX");
}

/// Trackers that are down, hang, or answer garbage never stop a download
/// from a known peer; the failure shows in the status.
#[test]
fn bad_trackers_leave_the_download_going() {
    use std::io::{Read, Write};
    let data = pseudo_random(2 * 1024 * 1024, 11);
    let (mut mi, seed_dir) = single_file_torrent("badtrackers", &data, 32 * 1024);
    // Down: a port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    // Hangs: accepts and never answers.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_addr = hang.local_addr().unwrap();
    // Garbage: answers with bytes that are not HTTP.
    let garbage = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_addr = garbage.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in garbage.incoming().take(20) {
            let Ok(mut s) = s else { continue };
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b);
            let _ = s.write_all(b"\x00\xffnot http at all\r\n\r\nd8:intervali");
        }
    });
    mi.announce_list = vec![
        vec![format!("http://{dead_addr}/announce")],
        vec![format!("http://{hang_addr}/announce")],
        vec![format!("http://{garbage_addr}/announce")],
        vec![format!("udp://{dead_addr}")],
    ];
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    let leech_dir = temp_dir("badtrackers-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &leech_dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(30));
    assert_eq!(std::fs::read(leech_dir.join("badtrackers")).unwrap(), data);
    // The announce round gives up within its bound and says why.
    assert!(wait_until(Duration::from_secs(40), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.tracker.error.is_some())
    }));
    drop(hang);
}

/// Several torrents in one session on one port, each from its own seeder.
#[test]
fn three_torrents_in_one_session() {
    let leecher = session();
    let mut keep = Vec::new();
    let mut wanted = Vec::new();
    for i in 0..3u64 {
        let data = pseudo_random(500_000 + i as usize * 77_777, 20 + i);
        let name = format!("multi{i}");
        let (mi, seed_dir) = single_file_torrent(&name, &data, 16 * 1024);
        let seeder = session();
        seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
        let dir = temp_dir(&format!("{name}-leech"));
        leecher
            .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
            .unwrap();
        keep.push(seeder);
        wanted.push((mi, dir, name, data));
    }
    assert_eq!(leecher.torrents().len(), 3);
    for (mi, dir, name, data) in &wanted {
        wait_phase(&leecher, mi, Phase::Seeding, Duration::from_secs(60));
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), data);
    }
}

/// BEP 6: a peer that keeps us choked but allows some pieces fast gives us
/// exactly those pieces.
#[test]
fn allowed_fast_pieces_are_fetched_while_choked() {
    let data = pseudo_random(16 * 32 * 1024, 12);
    let (mi, _seed_dir) = single_file_torrent("fast", &data, 32 * 1024);
    let choker = scripted_peer(&mi, data.clone(), Script::ChokedAllowedFast(3));
    let dir = temp_dir("fast-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![choker.addr]))
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.pieces_have == 3)
    }));
    std::thread::sleep(Duration::from_millis(500));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.pieces_have, 3, "{st:?}");
    assert_eq!(st.hash_failures, 0);
    let got = std::fs::read(dir.join("fast")).unwrap();
    assert_eq!(&got[..3 * 32 * 1024], &data[..3 * 32 * 1024]);
}

/// A chain: the seeder, a middle peer told of it, and an end peer told only
/// of the middle one (a private torrent: no PEX to find the seeder). Every
/// piece the end peer gets, it learns of from the middle peer's `have`s
/// (sent in batches, `torrent/haves.rs`) as the middle peer verifies it: the
/// download completes, all of it uploaded by the middle peer.
#[test]
fn a_chain_passes_pieces_on_through_its_middle_peer() {
    let piece = 32 * 1024;
    let data = pseudo_random(96 * piece, 11);
    let (mut mi, seed_dir) = single_file_torrent("chain", &data, piece as u64);
    mi.info.private = true;
    // One upload slot on the seeder, and it reaches the middle peer only.
    let seeder = session_with(|c| c.upload_slots = 1);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let (middle, end) = (session(), session());
    let (middle_dir, end_dir) = (temp_dir("chain-middle"), temp_dir("chain-end"));
    // The end peer first: it meets the middle peer before that has pieces,
    // so what it learns comes in `have`s, not in a bitfield.
    end.add(AddTorrent::new(mi.clone(), &end_dir).peers(vec![middle.local_addr_v4()]))
        .unwrap();
    middle
        .add(AddTorrent::new(mi.clone(), &middle_dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&end, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(end_dir.join("chain")).unwrap(), data);
    let peers = end.peers(&mi.info_hash, Duration::from_secs(5)).unwrap();
    assert!(
        peers.iter().all(|p| p.addr == middle.local_addr_v4()),
        "the end peer reached another peer than the middle one: {peers:?}"
    );
    let passed = middle.status(&mi.info_hash).unwrap().uploaded;
    assert!(
        passed >= data.len() as u64,
        "the middle peer passed on {passed} of {} bytes",
        data.len()
    );
}
