#![allow(clippy::unwrap_used)]
//! `Session::move_data`: the files move, the resume data follows (the
//! torrent is not checked again), a torrent keeps its limits and pause.

mod harness;

use bittorrent_core::{AddTorrent, Phase, SeedLimit, SeedLimits};
use harness::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn moved_data_is_resumed_not_checked() {
    let data = pseudo_random(300 * 1024 + 17, 11);
    let (mi, dir) = single_file_torrent("move.bin", &data, 32 * 1024);
    let state = temp_dir("move-state");
    let s = session_with(|c| c.state_dir = Some(state.clone()));
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, WAIT);
    let ih = mi.info_hash;
    assert!(!s.status(&ih).unwrap().resumed, "checked at the add");
    let limits = SeedLimits {
        ratio: SeedLimit::Limit(3.0),
        idle: SeedLimit::Unlimited,
    };
    s.set_seed_limits(&ih, limits).unwrap();
    s.set_torrent_rate_limits(&ih, 0, 70_000).unwrap();
    let new_dir = temp_dir("move-target").join("deeper");
    assert!(s.move_data(&ih, std::path::Path::new("rel"), true).is_err());
    s.move_data(&ih, &new_dir, true).unwrap();
    assert_eq!(std::fs::read(new_dir.join("move.bin")).unwrap(), data);
    assert!(!dir.join("move.bin").exists());
    wait_phase(&s, &mi, Phase::Seeding, WAIT);
    let st = s.status(&ih).unwrap();
    assert!(st.resumed, "the resume data followed the files");
    assert_eq!(st.pieces_have, st.pieces_total);
    assert_eq!(st.save_path, new_dir);
    assert_eq!(st.seed_limits, limits);
    assert_eq!(st.max_upload_rate, 70_000);
    // Without moving: it looks in the new place (nothing there).
    let empty = temp_dir("move-empty");
    s.move_data(&ih, &empty, false).unwrap();
    assert!(wait_until(WAIT, || s
        .status(&ih)
        .is_some_and(
            |st| st.phase == Phase::Downloading && st.pieces_have == 0
        )));
    assert!(new_dir.join("move.bin").exists());
}
