#![allow(clippy::unwrap_used)]
//! Seeding goals: a complete torrent stops seeding (phase `Finished`: no
//! connections, none accepted, still listed) once it has uploaded
//! `seed_ratio` times its size or seeded for `seed_time`; the session's
//! `Config` sets the default, `AddTorrent` overrides it per torrent;
//! `Session::resume` seeds a finished torrent again.

mod harness;

use bittorrent_core::{AddTorrent, Phase, SeedGoal};
use harness::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn goal_arithmetic() {
    let g = SeedGoal {
        ratio: Some(1.5),
        time: None,
        idle: None,
    };
    assert!(!g.reached(149, 100, Duration::from_secs(1_000_000)));
    assert!(g.reached(150, 100, Duration::ZERO));
    let t = SeedGoal {
        ratio: None,
        time: Some(Duration::from_secs(60)),
        idle: None,
    };
    assert!(!t.reached(u64::MAX, 1, Duration::from_secs(59)));
    assert!(t.reached(0, 1, Duration::from_secs(60)));
    // Either limit ends seeding.
    let both = SeedGoal {
        ratio: Some(2.0),
        time: Some(Duration::from_secs(60)),
        idle: None,
    };
    assert!(both.reached(200, 100, Duration::ZERO));
    assert!(both.reached(0, 100, Duration::from_secs(60)));
    assert!(!SeedGoal::default().is_set());
}

#[test]
fn seed_ratio_from_the_config_and_from_add_torrent() {
    let data = pseudo_random(600 * 1024, 7);
    let (mi, seed_dir) = single_file_torrent("ratio.bin", &data, 64 * 1024);
    // The seeder's session stops seeding after uploading the torrent once.
    let seeder = session_with(|c| c.seed_ratio = Some(1.0));
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, WAIT);
    let st = seeder.status(&mi.info_hash).unwrap();
    assert_eq!(st.seed_goal.ratio, Some(1.0));
    // The leecher's own torrent has ratio 0: finished as soon as complete,
    // whatever its session says.
    let leecher = session_with(|c| c.seed_ratio = Some(50.0));
    let down = temp_dir("ratio-down");
    let mut add = AddTorrent::new(mi.clone(), &down).peers(vec![seeder.local_addr()]);
    add.seed_ratio = Some(0.0);
    leecher.add(add).unwrap();
    wait_phase(&leecher, &mi, Phase::Finished, WAIT);
    assert_eq!(std::fs::read(down.join("ratio.bin")).unwrap(), data);
    // The seeder uploaded the whole torrent: ratio 1 reached.
    wait_phase(&seeder, &mi, Phase::Finished, WAIT);
    let st = seeder.status(&mi.info_hash).unwrap();
    assert!(st.uploaded >= data.len() as u64, "{st:?}");
    assert!(wait_until(Duration::from_secs(10), || seeder
        .status(&mi.info_hash)
        .is_some_and(|s| s.peers == 0)));
    // Still listed in both sessions.
    assert_eq!(seeder.torrents().len(), 1);
    assert_eq!(leecher.torrents().len(), 1);
    leecher.shutdown();
    seeder.shutdown();
}

#[test]
fn seed_time_finishes_refuses_peers_and_resume_seeds_again() {
    let data = pseudo_random(300 * 1024, 9);
    let (mi, seed_dir) = single_file_torrent("time.bin", &data, 32 * 1024);
    let seeder = session();
    let mut add = AddTorrent::new(mi.clone(), &seed_dir);
    add.seed_time = Some(Duration::from_secs(2));
    seeder.add(add).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, WAIT);
    wait_phase(&seeder, &mi, Phase::Finished, Duration::from_secs(20));
    let st = seeder.status(&mi.info_hash).unwrap();
    assert!(st.seeding_time >= Duration::from_secs(2), "{st:?}");
    // A finished torrent serves nobody: a leecher gets nothing.
    let leecher = session();
    let down = temp_dir("time-down");
    leecher
        .add(AddTorrent::new(mi.clone(), &down).peers(vec![seeder.local_addr()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Downloading, WAIT);
    std::thread::sleep(Duration::from_secs(2));
    let ls = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(ls.pieces_have, 0, "{ls:?}");
    assert_eq!(seeder.status(&mi.info_hash).unwrap().peers, 0);
    // Resume: it seeds again (no goal now) and the leecher completes.
    seeder.resume(&mi.info_hash).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(10));
    assert!(!seeder.status(&mi.info_hash).unwrap().seed_goal.is_set());
    // (The leecher backs off after being refused; the seeder dials it.)
    seeder
        .add_peers(&mi.info_hash, vec![leecher.local_addr()])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, WAIT);
    assert_eq!(std::fs::read(down.join("time.bin")).unwrap(), data);
    leecher.shutdown();
    seeder.shutdown();
}

/// The embedded tracker's `downloaded` count for `ih` (a scrape over HTTP).
fn scraped_downloads(tracker: std::net::SocketAddr, ih: &[u8; 20]) -> Option<u64> {
    use std::io::{Read, Write};
    let q = bittorrent_core::proto::tracker::percent_encode(ih);
    let mut s = std::net::TcpStream::connect(tracker).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET /scrape?info_hash={q} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut r = Vec::new();
    s.read_to_end(&mut r).ok()?;
    let key = b"10:downloadedi";
    let at = r.windows(key.len()).position(|w| w == key)? + key.len();
    let end = at + r[at..].iter().position(|&b| b == b'e')?;
    std::str::from_utf8(&r[at..end]).ok()?.parse().ok()
}

/// `completed` goes to the tracker after a real download only: a seeder
/// that started complete announces `started` and never `completed`; a
/// leecher that downloads announces it once. The seeder is its own tracker
/// (the embedded one), whose scrape counts `completed` announces.
#[test]
fn completed_is_announced_only_after_a_download() {
    let data = pseudo_random(512 * 1024, 77);
    let (mut mi, seed_dir) = single_file_torrent("completed-once", &data, 32 * 1024);
    let seeder = session();
    let tracker = seeder.local_addr_v4();
    mi.announce = Some(format!("http://{tracker}/announce"));
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, WAIT);
    // The seeder's own `started` got through (only an answered announce
    // sets the URL); after it, a seeder that downloaded nothing has nothing
    // to announce.
    assert!(wait_until(WAIT, || seeder
        .status(&mi.info_hash)
        .is_some_and(|s| s.tracker.url.is_some())));
    let dir = temp_dir("completed-once-leech");
    let leecher = session();
    leecher.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, WAIT);
    assert_eq!(std::fs::read(dir.join("completed-once")).unwrap(), data);
    assert!(wait_until(WAIT, || scraped_downloads(
        tracker,
        &mi.info_hash.0
    )
    .is_some_and(|n| n >= 1)));
    // Were the seeder to announce `completed` too, it would have by now
    // (it goes out within a second of `started`).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(scraped_downloads(tracker, &mi.info_hash.0), Some(1));
}

/// Seeding once (`engine/torrent/seeding.rs`): a seeder capped at 1 MiB/s
/// with eight leechers (capped too, so the seeder's upload is the
/// bottleneck) sends each piece about once before any twice: its upload
/// stays under 2.1 times the torrent (1.6-1.7 measured; 2.3 without the
/// steering, and 2.6-4.3 in the 20-peer benchmark before it). Every
/// leecher completes byte-identical.
#[test]
fn capped_seeder_sends_each_piece_about_once() {
    const MIB: u64 = 1 << 20;
    let data = pseudo_random(8 * MIB as usize, 31);
    let (mi, seed_dir) = single_file_torrent("once.bin", &data, 256 * 1024);
    let seeder = session_with(|c| c.max_upload_rate = MIB);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, WAIT);
    let leechers: Vec<_> = (0..8)
        .map(|_| session_with(|c| c.max_upload_rate = MIB))
        .collect();
    let dirs: Vec<_> = (0..8).map(|i| temp_dir(&format!("once-{i}"))).collect();
    for (i, l) in leechers.iter().enumerate() {
        let mut peers = vec![seeder.local_addr()];
        peers.extend(leechers[..i].iter().map(|o| o.local_addr()));
        l.add(AddTorrent::new(mi.clone(), &dirs[i]).peers(peers))
            .unwrap();
    }
    for l in &leechers {
        wait_phase(l, &mi, Phase::Seeding, Duration::from_secs(180));
    }
    for (i, d) in dirs.iter().enumerate() {
        assert_eq!(
            std::fs::read(d.join("once.bin")).unwrap(),
            data,
            "leecher {i}"
        );
    }
    let up = seeder.status(&mi.info_hash).unwrap().uploaded;
    let multiple = up as f64 / data.len() as f64;
    eprintln!("seeder's upload multiple: {multiple:.2}");
    // 2.1: above the 1.6-1.7 measured on a loaded machine, below the 2.3
    // that the same swarm sends without steering.
    assert!(
        up * 10 < 21 * data.len() as u64,
        "seeder sent {multiple:.2} copies"
    );
    for l in leechers {
        l.shutdown();
    }
    seeder.shutdown();
}

/// A capped seeder with a single leecher steers nothing (nobody else could
/// serve it): the leecher downloads at the seeder's full rate.
#[test]
fn capped_seeder_serves_a_lone_leecher_at_full_speed() {
    const MIB: u64 = 1 << 20;
    let data = pseudo_random(2 * MIB as usize, 32);
    let (mi, seed_dir) = single_file_torrent("alone.bin", &data, 64 * 1024);
    let seeder = session_with(|c| c.max_upload_rate = MIB);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, WAIT);
    let leecher = session();
    let down = temp_dir("alone-down");
    let t0 = std::time::Instant::now();
    leecher
        .add(AddTorrent::new(mi.clone(), &down).peers(vec![seeder.local_addr()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, WAIT);
    let took = t0.elapsed();
    assert_eq!(std::fs::read(down.join("alone.bin")).unwrap(), data);
    let up = seeder.status(&mi.info_hash).unwrap().uploaded;
    // Sent once, nothing refused; 2 MiB at 1 MiB/s takes about 2 s (a
    // steered lone leecher would wait on rejects): generous for a loaded
    // machine, far from a stall.
    assert!(up < data.len() as u64 * 5 / 4, "sent {up}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    leecher.shutdown();
    seeder.shutdown();
}
