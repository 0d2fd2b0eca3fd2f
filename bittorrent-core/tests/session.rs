//! The session API: pause, resume, remove, and a torrent list that survives
//! a restart of the session (kept in the state directory).
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase, Session};
use harness::*;
use std::path::Path;
use std::time::Duration;

fn with_state(state: &Path) -> Session {
    let state = state.to_path_buf();
    session_with(move |c| c.state_dir = Some(state))
}

#[test]
fn pause_resume_remove_and_restore() {
    let data = pseudo_random(48 * 16 * 1024, 60);
    let (mi, seed_dir) = single_file_torrent("managed", &data, 16 * 1024);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));

    let state = temp_dir("managed-state");
    let dir = temp_dir("managed-dl");
    // Added paused: nothing moves until resumed.
    let s = with_state(&state);
    let mut add = AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]);
    add.paused = true;
    s.add(add).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let st = s.status(&mi.info_hash).unwrap();
    assert!(st.paused);
    assert_eq!((st.downloaded, st.peers), (0, 0));
    s.resume(&mi.info_hash).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(60));
    s.pause(&mi.info_hash).unwrap();
    assert!(wait_until(Duration::from_secs(5), || s
        .status(&mi.info_hash)
        .is_some_and(|st| st.paused && st.peers == 0)));
    s.shutdown();

    // A new session on the same state directory brings the torrent back,
    // paused as it was, from resume data (nothing re-hashed).
    let s = with_state(&state);
    assert_eq!(s.restore().unwrap(), vec![mi.info_hash]);
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(20));
    let st = s.status(&mi.info_hash).unwrap();
    assert!(st.paused && st.resumed, "{st:?}");
    assert_eq!(st.checked_pieces, 0);
    assert_eq!(st.save_path, std::path::absolute(&dir).unwrap());

    // Remove with data: gone from the session, the state and the disk.
    s.remove(&mi.info_hash, true).unwrap();
    assert!(s.status(&mi.info_hash).is_none());
    assert!(!dir.join("managed").exists());
    assert!(!state
        .join(format!("torrents/{}.torrent", mi.info_hash))
        .exists());
    s.shutdown();
    let s = with_state(&state);
    assert!(s.restore().unwrap().is_empty());
}

#[test]
fn configuration_is_kept_in_the_state_directory() {
    let state = temp_dir("config-state");
    let s = session_with(|c| {
        c.state_dir = Some(state.clone());
        c.upload_slots = 7;
        c.max_peers_per_torrent = 33;
        c.peer_id_prefix = "-XY1234-".into();
    });
    let port = s.local_addr().port();
    s.shutdown();
    let c = bittorrent_core::Config::from_state_dir(&state).unwrap();
    assert_eq!(
        (c.listen_port, c.upload_slots, c.max_peers_per_torrent),
        (port, 7, 33)
    );
    assert_eq!(c.peer_id_prefix, "-XY1234-");
    assert!(bittorrent_core::Config::from_state_dir(&temp_dir("no-state")).is_none());
}
