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

/// Every lifecycle step shows up as an event, for every subscriber, in
/// order: added, checked, completed, paused, resumed, removed.
#[test]
fn events_tell_the_lifecycle_to_every_subscriber() {
    use bittorrent_core::{Error, Event};
    let data = pseudo_random(20 * 16 * 1024 + 7, 61);
    let (mi, seed_dir) = single_file_torrent("evented", &data, 16 * 1024);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    let s = session();
    let (a, b) = (s.events(), s.events());
    let ih = mi.info_hash;
    let dir = temp_dir("evented-dl");
    s.add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    // Typed errors: a second add, an unknown torrent.
    assert!(matches!(
        s.add(AddTorrent::new(mi.clone(), &dir)),
        Err(Error::AlreadyAdded(h)) if h == ih
    ));
    let other = bittorrent_core::InfoHash([9; 20]);
    assert!(matches!(s.pause(&other), Err(Error::UnknownTorrent(h)) if h == other));
    let next = |rx: &crossbeam_channel::Receiver<Event>| {
        rx.recv_timeout(Duration::from_secs(60)).expect("an event")
    };
    assert_eq!(
        next(&a),
        Event::Added {
            info_hash: ih,
            name: "evented".into()
        }
    );
    assert!(
        matches!(next(&a), Event::Checked { info_hash, pieces_have: 0, .. } if info_hash == ih)
    );
    assert_eq!(next(&a), Event::Completed { info_hash: ih });
    s.pause(&ih).unwrap();
    assert_eq!(next(&a), Event::Paused { info_hash: ih });
    s.resume(&ih).unwrap();
    assert_eq!(next(&a), Event::Resumed { info_hash: ih });
    s.remove(&ih, false).unwrap();
    assert_eq!(next(&a), Event::Removed { info_hash: ih });
    let all_b: Vec<Event> = b.try_iter().collect();
    assert_eq!(all_b.len(), 6, "{all_b:?}");
    assert_eq!(all_b[5], Event::Removed { info_hash: ih });
    // Shut down from a shared reference; later calls say so.
    let shared = std::sync::Arc::new(s);
    shared.shutdown();
    assert!(matches!(
        shared.add(AddTorrent::new(mi, &dir)),
        Err(Error::Stopped)
    ));
}

/// A magnet link added to a session shows in phase `Metadata`, is kept in
/// the state directory, comes back with `restore` in a new session and
/// becomes a torrent when its peer appears.
#[test]
fn a_magnet_link_survives_a_restart_and_resolves() {
    use bittorrent_core::{Error, Magnet};
    let data = pseudo_random(9 * 16 * 1024, 62);
    let (mi, seed_dir) = single_file_torrent("magnetic", &data, 16 * 1024);
    let ih = mi.info_hash;
    let state = temp_dir("magnetic-state");
    let dir = temp_dir("magnetic-dl");
    // Its peer: a port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let link = format!("magnet:?xt=urn:btih:{ih}&dn=soon&x.pe=127.0.0.1:{port}");
    let s = with_state(&state);
    s.add(AddTorrent::magnet(Magnet::parse(&link).unwrap(), &dir))
        .unwrap();
    let st = s.status(&ih).unwrap();
    assert_eq!((&st.phase, st.name.as_str()), (&Phase::Metadata, "soon"));
    assert!(!st.is_complete());
    assert!(matches!(s.pause(&ih), Err(Error::NoMetadata(h)) if h == ih));
    assert!(matches!(
        s.add(AddTorrent::magnet(Magnet::parse(&link).unwrap(), &dir)),
        Err(Error::AlreadyAdded(_))
    ));
    assert_eq!(s.torrents().len(), 1);
    s.shutdown();

    let seeder = session_with(|c| c.listen_port = port);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    let s = with_state(&state);
    let events = s.events();
    assert_eq!(s.restore().unwrap(), vec![ih]);
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("magnetic")).unwrap(), data);
    let got: Vec<_> = events.try_iter().collect();
    assert!(
        got.contains(&bittorrent_core::Event::MetadataReceived {
            info_hash: ih,
            name: "magnetic".into()
        }),
        "{got:?}"
    );
    assert!(state.join(format!("torrents/{ih}.torrent")).exists());
    assert!(!state.join(format!("torrents/{ih}.magnet")).exists());
}
