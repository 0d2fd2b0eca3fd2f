//! Remote "seeders" against our leecher: unsolicited blocks, choke storms.

use crate::harness::*;
use crate::support::*;
use bittorrent_core::proto::wire::{Handshake, Message};
use bittorrent_core::{AddTorrent, Phase};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Our leecher dials a "seeder" that keeps choking it and pushes blocks
/// nobody asked for (garbage data). The leecher drops every one of them,
/// bans the sender once it passes the limit of unrequested blocks, stores
/// none of it, and completes from a real seeder.
#[test]
fn unsolicited_pieces_get_their_sender_banned() {
    let _g = serial();
    let sd = seed("h-unsol");
    let before = threads();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = temp_dir("h-unsol-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(sd.mi.clone(), &dir).peers(vec![listener.local_addr().unwrap()]))
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The leecher dials encrypted first (Encryption::Prefer) and falls back to
    // a plaintext handshake; like a plaintext-only client, drop the MSE attempt.
    let mut s = loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut hs = [0u8; 68];
                if s.read_exact(&mut hs).is_ok() && hs[..20] == *b"\x13BitTorrent protocol" {
                    break s;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("the leecher never dialled in plaintext: {e}"),
        }
    };
    let mut ours = Handshake::new(sd.ih(), peer_id(77));
    ours.reserved = [0, 0, 0, 0, 0, 0, 0, 0x04]; // fast only
    s.write_all(&ours.encode()).unwrap();
    let mut wire = Message::HaveAll.to_bytes();
    for j in 0..300u32 {
        Message::Piece {
            index: j % 32,
            begin: (j / 32 % 2) * 16 * 1024,
            data: vec![0xAA; 16 * 1024],
        }
        .encode(&mut wire);
    }
    let _ = s.write_all(&wire); // the leecher may close while we write
                                // Blocks we never asked for are dropped and counted against the sender:
                                // past the limit (16, engine/torrent/mod.rs) the sender is banned.
    assert!(
        is_disconnected(&mut s, Duration::from_secs(5)),
        "leecher kept a peer that sprayed 300 unrequested blocks"
    );
    let st = leecher.status(&sd.mi.info_hash).unwrap();
    assert_eq!(st.pieces_have, 0);
    assert_eq!(
        st.hash_failures, 0,
        "unrequested garbage was stored: {st:?}"
    );
    drop(listener);
    leecher
        .add_peers(&sd.mi.info_hash, vec![sd.addr()])
        .unwrap();
    wait_phase(&leecher, &sd.mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("h-unsol")).unwrap(), sd.data);
    drop(s);
    drop(leecher);
    assert_threads_settle(before);
}

/// A peer that chokes and unchokes us in the same instant, again and again,
/// and serves every request it ever got (the ones it had queued when it
/// choked, and our second request for the same block after the unchoke):
/// the duplicate answers are waste, not an attack. It is never banned (it
/// is the only source: a ban would leave the download unfinished) and the
/// download completes with the right bytes.
#[test]
fn a_choke_storm_that_serves_everything_is_not_banned() {
    let _g = serial();
    let data = pseudo_random(2 << 20, 4242);
    let (mi, _seed_dir) = single_file_torrent("h-storm", &data, 64 * 1024);
    let storm = scripted_peer(&mi, data.clone(), Script::ChokeStorm(6));
    let dir = temp_dir("h-storm-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![storm.addr]))
        .unwrap();
    // Done, or banned (before the fix: banned within a second, 21 of 32
    // pieces in).
    assert!(wait_until(Duration::from_secs(90), || leecher
        .status(&mi.info_hash)
        .is_some_and(|s| s.phase == Phase::Seeding || s.banned > 0)));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.banned, 0, "an honest peer was banned: {st:?}");
    assert_eq!(st.phase, Phase::Seeding, "{st:?}");
    assert_eq!(st.hash_failures, 0, "{st:?}");
    assert_eq!(std::fs::read(dir.join("h-storm")).unwrap(), data);
    drop(leecher);
    drop(storm);
    let _ = std::fs::remove_dir_all(dir);
}
