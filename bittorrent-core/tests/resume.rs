//! Resume data: a restart trusts what was saved when the files still match
//! it, and rechecks (then repairs by downloading) when they do not.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::{AddTorrent, Phase, Session};
use harness::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn with_state(state: &Path) -> Session {
    let state = state.to_path_buf();
    session_with(move |c| c.state_dir = Some(state))
}

/// Download `name` completely into `dir` with resume data in `state`.
fn first_run(name: &str) -> (Metainfo, Vec<u8>, PathBuf, PathBuf, Session) {
    let data = pseudo_random(40 * 16 * 1024 + 99, 30);
    let (mi, seed_dir) = single_file_torrent(name, &data, 16 * 1024);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    let dir = temp_dir(&format!("{name}-dl"));
    let state = temp_dir(&format!("{name}-state"));
    let s = with_state(&state);
    s.add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(60));
    s.shutdown();
    assert!(state
        .join(format!("torrents/{}.resume", mi.info_hash))
        .is_file());
    (mi, data, dir, state, seeder)
}

#[test]
fn restart_of_a_complete_torrent_trusts_resume_data() {
    let (mi, data, dir, state, _seeder) = first_run("resumed");
    let s = with_state(&state);
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(20));
    let st = s.status(&mi.info_hash).unwrap();
    assert!(st.resumed);
    assert_eq!(
        st.checked_pieces, 0,
        "resume data trusted: nothing re-hashed"
    );
    assert_eq!(st.downloaded, 0);
    assert_eq!(std::fs::read(dir.join("resumed")).unwrap(), data);
}

#[test]
fn truncated_file_is_noticed_and_repaired() {
    let (mi, data, dir, state, seeder) = first_run("truncated");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("truncated"))
        .unwrap();
    f.set_len(data.len() as u64 / 2).unwrap();
    drop(f);
    let s = with_state(&state);
    s.add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = s.status(&mi.info_hash).unwrap();
    assert!(!st.resumed);
    assert!(st.checked_pieces > 0);
    assert!(st.downloaded > 0 && st.downloaded < data.len() as u64);
    assert_eq!(std::fs::read(dir.join("truncated")).unwrap(), data);
}

#[test]
fn deleted_file_is_noticed_and_repaired() {
    let (mi, data, dir, state, seeder) = first_run("deleted");
    std::fs::remove_file(dir.join("deleted")).unwrap();
    let s = with_state(&state);
    s.add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(60));
    assert!(!s.status(&mi.info_hash).unwrap().resumed);
    assert_eq!(std::fs::read(dir.join("deleted")).unwrap(), data);
}

#[test]
fn corrupt_resume_file_means_a_recheck_not_a_crash() {
    let (mi, data, dir, state, _seeder) = first_run("corrupt-resume");
    let path = state.join(format!("torrents/{}.resume", mi.info_hash));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    bytes.extend_from_slice(b"\xff\x00garbage");
    std::fs::write(&path, &bytes).unwrap();
    let s = with_state(&state);
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(20));
    let st = s.status(&mi.info_hash).unwrap();
    assert!(!st.resumed);
    assert_eq!(st.checked_pieces, mi.info.pieces.len() as u32);
    assert_eq!(std::fs::read(dir.join("corrupt-resume")).unwrap(), data);
}
