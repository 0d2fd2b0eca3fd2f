//! Hybrid torrents (BEP 52 v1+v2) in both swarms, with our own sessions on
//! loopback: a seeder accepts a peer that names the torrent by its
//! truncated v2 info-hash (and answers with that hash), announces under
//! both hashes, and its embedded tracker answers for both; a leecher that
//! knows only the tracker downloads the hybrid byte for byte.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::metainfo::{Format, Metainfo};
use bittorrent_core::proto::wire::{Handshake, HANDSHAKE_LEN};
use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// The files written: path and bytes.
type Files = Vec<(PathBuf, Vec<u8>)>;

/// A hybrid torrent of a small directory (two files, so pad files) and the
/// directory holding it.
fn hybrid(name: &str) -> (Metainfo, PathBuf, Files) {
    let (mi, dir, files, _) = hybrid_seeded(name, name, 1);
    (mi, dir, files)
}

fn v2_hash(mi: &Metainfo) -> [u8; 20] {
    mi.info_hash_v2.unwrap().truncated().0
}

#[test]
fn a_peer_naming_the_v2_hash_is_answered_with_it() {
    let (mi, dir, _) = hybrid("hy-hs");
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(20));
    // Two peer ids: the seeder refuses a second connection from a peer id
    // it is still connected to.
    for (ih, id) in [(v2_hash(&mi), b'1'), (mi.info_hash.0, b'3')] {
        let mut peer_id = *b"-XX0001-hybridtest00";
        peer_id[19] = id;
        let mut c = TcpStream::connect_timeout(&s.local_addr_v4(), Duration::from_secs(2)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(&Handshake::new(ih, peer_id).encode()).unwrap();
        let mut reply = [0u8; HANDSHAKE_LEN];
        c.read_exact(&mut reply).unwrap();
        let hs = Handshake::decode(&reply).unwrap();
        assert_eq!(hs.info_hash, ih, "the seeder answers with the hash named");
        // Then the seeder's pieces: a bitfield (5) or have-all (0x0e).
        let mut head = [0u8; 5];
        c.read_exact(&mut head).unwrap();
        assert!(matches!(head[4], 5 | 0x0e), "first message {head:?}");
    }
    // A hash that is neither: closed without an answer.
    let mut c = TcpStream::connect_timeout(&s.local_addr_v4(), Duration::from_secs(2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut other = v2_hash(&mi);
    other[0] ^= 1;
    c.write_all(&Handshake::new(other, *b"-XX0001-hybridtest02").encode())
        .unwrap();
    let mut buf = [0u8; 1];
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    let _ = std::fs::remove_dir_all(dir);
}

/// One HTTP announce to `addr`'s tracker for `ih`; the whole answer.
fn announce(addr: SocketAddr, ih: &[u8; 20]) -> Vec<u8> {
    use bittorrent_core::proto::tracker::percent_encode;
    let req = format!(
        "GET /announce?info_hash={}&peer_id=-XX0001-hybridquery1&port=9&uploaded=0&downloaded=0&left=1&compact=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        percent_encode(ih)
    );
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn announced_and_tracked_under_both_hashes_and_downloaded() {
    let (mut mi, dir, files) = hybrid("hy-trk");
    let seeder = session();
    let addr = seeder.local_addr_v4();
    mi.announce = Some(bittorrent_core::proto::metainfo::normalize_announce_url(
        &addr.to_string(),
    ));
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    // The seeder announces to its own tracker under both hashes: each
    // swarm lists it (compact: 127.0.0.1 and its port).
    let mut me = vec![127, 0, 0, 1];
    me.extend_from_slice(&addr.port().to_be_bytes());
    for ih in [mi.info_hash.0, v2_hash(&mi)] {
        let mut last = Vec::new();
        let listed = wait_until(Duration::from_secs(15), || {
            last = announce(addr, &ih);
            contains(&last, &me)
        });
        assert!(
            listed,
            "hash {ih:02x?} not tracked with the seeder: {}",
            String::from_utf8_lossy(&last)
        );
    }
    // A leecher with only the tracker downloads it.
    let down = temp_dir("hy-trk-leech");
    let leecher = session();
    leecher.add(AddTorrent::new(mi.clone(), &down)).unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    for (p, d) in &files {
        let rel = p.strip_prefix(&dir).unwrap();
        assert_eq!(
            &std::fs::read(down.join(rel)).unwrap(),
            d,
            "{}",
            rel.display()
        );
    }
    // Removed: neither hash is tracked any more.
    seeder.remove(&mi.info_hash, false).unwrap();
    let r = announce(addr, &v2_hash(&mi));
    assert!(
        contains(&r, b"failure reason"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    drop(leecher);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// A "hybrid" whose v1 `pieces` are those of data B and whose v2 half is
/// that of data A: checking data B, every SHA-1 matches and no v2 hash
/// does, so no piece is had (BEP 52: a hybrid's pieces match both views).
#[test]
fn a_piece_that_fails_its_v2_hash_is_not_had() {
    use bittorrent_core::proto::bencode::{decode, OwnedValue};
    let (_, dir_a, _, bytes_a) = hybrid_seeded("hy-forge-a", "t", 11);
    let (mi_b, dir_b, _, _) = hybrid_seeded("hy-forge-b", "t", 21);
    let doc = decode(&bytes_a).unwrap().to_owned_value();
    let OwnedValue::Dict(mut top) = doc else {
        panic!("not a dict")
    };
    for (k, v) in top.iter_mut() {
        if k.as_slice() == b"info" {
            let OwnedValue::Dict(info) = v else {
                panic!("info")
            };
            for (k, v) in info.iter_mut() {
                if k.as_slice() == b"pieces" {
                    *v = OwnedValue::Bytes(mi_b.info.pieces.concat());
                }
            }
        }
    }
    let forged = Metainfo::from_bytes(&OwnedValue::Dict(top).to_bytes()).unwrap();
    assert_eq!(forged.format(), Format::Hybrid);
    let s = session();
    s.add(AddTorrent::new(forged.clone(), &dir_b)).unwrap();
    let checked = wait_until(Duration::from_secs(20), || {
        s.status(&forged.info_hash)
            .is_some_and(|st| st.checked_pieces == st.pieces_total)
    });
    let st = s.status(&forged.info_hash).unwrap();
    assert!(checked, "{st:?}");
    assert_eq!(st.pieces_have, 0, "{st:?}");
    assert_ne!(st.phase, Phase::Seeding);
    // The same data against its own torrent: all had.
    let s2 = session();
    s2.add(AddTorrent::new(mi_b.clone(), &dir_b)).unwrap();
    wait_phase(&s2, &mi_b, Phase::Seeding, Duration::from_secs(20));
    drop((s, s2));
    let _ = std::fs::remove_dir_all(dir_a);
    let _ = std::fs::remove_dir_all(dir_b);
}

/// One raw handshake to `s` with `reserved` bits and `ih`; the reply.
fn handshake_with(s: &bittorrent_core::Session, ih: [u8; 20], v2_bit: bool, id: u8) -> Handshake {
    use bittorrent_core::proto::wire::RESERVED_V2;
    let mut peer_id = *b"-XX0001-upgradetest0";
    peer_id[19] = id;
    let mut ours = Handshake::new(ih, peer_id);
    if v2_bit {
        ours.reserved[RESERVED_V2.0] |= RESERVED_V2.1;
    }
    let mut c = TcpStream::connect_timeout(&s.local_addr_v4(), Duration::from_secs(2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&ours.encode()).unwrap();
    let mut reply = [0u8; HANDSHAKE_LEN];
    c.read_exact(&mut reply).unwrap();
    Handshake::decode(&reply).unwrap()
}

/// BEP 52's upgrade path, answering: a hybrid named by its v1 hash with
/// the v2 bit is answered with the truncated v2 hash (the connection is
/// upgraded); without the bit the peer (a v1-only client) sees the v1 hash,
/// and our answer offers the upgrade with the bit; a v1 torrent is never
/// upgraded and our handshake for it carries no v2 bit (libtorrent 2.0
/// drops a peer that claims v2 for a v1 torrent).
#[test]
fn the_v2_bit_on_a_hybrids_v1_hash_upgrades_the_connection() {
    let (mi, dir, _) = hybrid("hy-upgrade");
    let data = pseudo_random(40_000, 5);
    let (v1mi, v1dir) = single_file_torrent("hy-upgrade-v1", &data, 16384);
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    s.add(AddTorrent::new(v1mi.clone(), &v1dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(20));
    wait_phase(&s, &v1mi, Phase::Seeding, Duration::from_secs(20));

    let up = handshake_with(&s, mi.info_hash.0, true, b'1');
    assert_eq!(up.info_hash, v2_hash(&mi), "upgraded to the v2 hash");
    assert!(up.supports_v2());
    let plain = handshake_with(&s, mi.info_hash.0, false, b'2');
    assert_eq!(
        plain.info_hash, mi.info_hash.0,
        "a v1 peer sees the v1 hash"
    );
    assert!(plain.supports_v2(), "our answer offers the upgrade");
    let v1 = handshake_with(&s, v1mi.info_hash.0, true, b'3');
    assert_eq!(
        v1.info_hash, v1mi.info_hash.0,
        "a v1 torrent is not upgraded"
    );
    assert!(!v1.supports_v2(), "no v2 bit for a v1 torrent");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(v1dir);
}

/// BEP 52's upgrade path between two of our sessions: the leecher dials
/// the hybrid's v1 hash with the v2 bit, the seeder answers with the v2
/// hash, and both record the connection as speaking v2 (the peer list's
/// `v2`); the hybrid downloads byte-identical over it.
#[test]
fn our_sessions_upgrade_a_hybrid_connection_to_v2() {
    let (mi, dir, files) = hybrid("hy-up-seed");
    // Slow enough (30 kB/s for 150 kB) to look at the connection.
    let seeder = session_with(|c| c.max_upload_rate = 30_000);
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let down = temp_dir("hy-up-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &down).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    let both_v2 = wait_until(Duration::from_secs(15), || {
        let v2 = |s: &bittorrent_core::Session| {
            s.peers(&mi.info_hash, Duration::from_secs(2))
                .is_some_and(|p| p.len() == 1 && p[0].v2)
        };
        v2(&seeder) && v2(&leecher)
    });
    assert!(
        both_v2,
        "seeder {:?}\nleecher {:?}",
        seeder.peers(&mi.info_hash, Duration::from_secs(2)),
        leecher.peers(&mi.info_hash, Duration::from_secs(2))
    );
    seeder.set_rate_limits(0, 0).unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    for (p, d) in &files {
        let rel = p.strip_prefix(&dir).unwrap();
        assert_eq!(&std::fs::read(down.join(rel)).unwrap(), d);
    }
    drop((seeder, leecher));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}
