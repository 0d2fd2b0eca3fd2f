//! Hybrid torrents (BEP 52 v1+v2) in both swarms, with our own sessions on
//! loopback: a seeder accepts a peer that names the torrent by its
//! truncated v2 info-hash (and answers with that hash), announces under
//! both hashes, and its embedded tracker answers for both; a leecher that
//! knows only the tracker downloads the hybrid byte for byte.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::create::{create_torrent, CreateOptions, TorrentFormat};
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

/// [`hybrid`] of directory `top` in a fresh dir `name`, data from `seed`;
/// the torrent's bytes too.
fn hybrid_seeded(name: &str, top: &str, seed: u64) -> (Metainfo, PathBuf, Files, Vec<u8>) {
    let dir = temp_dir(name);
    let top = dir.join(top);
    let files = vec![
        (top.join("a.bin"), pseudo_random(100_000, seed)),
        (top.join("b/c.bin"), pseudo_random(50_001, seed + 1)),
    ];
    for (p, d) in &files {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
    let opts = CreateOptions {
        piece_length: Some(16384),
        format: TorrentFormat::Hybrid,
        ..CreateOptions::default()
    };
    let bytes = create_torrent(&top, &opts, &|_, _| {}).unwrap();
    let mi = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(mi.format(), Format::Hybrid);
    (mi, dir, files, bytes)
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
