//! v2-only torrents (BEP 52, no v1 `pieces`) given as a complete `.torrent`
//! file, between our own sessions on loopback: a multi-file torrent (a
//! multi-piece file, a file smaller than a piece, an empty file) made by
//! our creator downloads byte for byte, nothing of the implicit padding
//! reaches the disk, the handshake names the truncated v2 info-hash with
//! BEP 52's v2 bit; a corrupt piece is refused (its sender banned) and
//! fetched again from an honest seeder. Without its piece layers (a
//! `.torrent` lacking them, a `btmh` magnet link) the leecher fetches them
//! with hash requests first; a peer lying about them is refused.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::create::{create_torrent, CreateOptions, TorrentFormat};
use bittorrent_core::proto::hash_msg::{self, HashMessage, HashRequest};
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::merkle;
use bittorrent_core::proto::metainfo::{v2::aligned_view, Format, Metainfo};
use bittorrent_core::proto::wire::{
    FrameDecoder, Handshake, Message, HANDSHAKE_LEN, MAX_FRAME, RESERVED_V2,
};
use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The files written: path and bytes.
type Files = Vec<(PathBuf, Vec<u8>)>;

const PIECE: u64 = 32768;

/// A v2-only torrent of directory `<dir>/t`: `big.bin` (7 pieces, the last
/// short), `empty.txt`, `small.bin` (under a piece, ending inside its first
/// 16 KiB block so the rest of its piece is padding) and `sub/mid.bin`
/// (2 pieces, the last file).
fn v2_torrent(name: &str) -> (Metainfo, PathBuf, Files) {
    let dir = temp_dir(name);
    let top = dir.join("t");
    let files = vec![
        (top.join("big.bin"), pseudo_random(200_000, 1)),
        (top.join("empty.txt"), Vec::new()),
        (top.join("small.bin"), pseudo_random(5_000, 2)),
        (top.join("sub/mid.bin"), pseudo_random(40_000, 3)),
    ];
    for (p, d) in &files {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
    let opts = CreateOptions {
        piece_length: Some(PIECE),
        format: TorrentFormat::V2,
        ..CreateOptions::default()
    };
    let bytes = create_torrent(&top, &opts, &|_, _| {}).unwrap();
    let mi = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(mi.format(), Format::V2);
    assert_eq!(mi.v2.as_ref().unwrap().missing_layers(), 0);
    (mi, dir, files)
}

/// Every file is where it belongs with its bytes, and nothing else (no pad
/// file, no padding) is on disk.
fn assert_same_files(from: &Path, to: &Path, files: &Files) {
    for (p, d) in files {
        let rel = p.strip_prefix(from).unwrap();
        let got = std::fs::read(to.join(rel)).unwrap_or_else(|e| panic!("{rel:?}: {e}"));
        assert!(&got == d, "{} differs", rel.display());
    }
    let mut found = Vec::new();
    let mut stack = vec![to.join("t")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p.strip_prefix(to).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    let mut expected: Vec<PathBuf> = files
        .iter()
        .map(|(p, _)| p.strip_prefix(from).unwrap().to_path_buf())
        .collect();
    expected.sort();
    assert_eq!(found, expected, "files on disk");
}

#[test]
fn a_v2_only_torrent_downloads_byte_identical() {
    let (mi, dir, files) = v2_torrent("v2-dl");
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    // The seeder's start-up check verified every piece against v2 hashes.
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let st = seeder.status(&mi.info_hash).unwrap();
    let v2 = mi.v2.as_ref().unwrap();
    assert_eq!(st.pieces_total as u64, v2.num_pieces, "{st:?}");
    // Our handshake: the v2 info-hash truncated to 20 bytes, the v2 bit.
    let ih = mi.info_hash_v2.unwrap().truncated().0;
    assert_eq!(mi.info_hash.0, ih);
    let mut c =
        TcpStream::connect_timeout(&seeder.local_addr_v4(), Duration::from_secs(2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = Handshake::new(ih, *b"-XX0001-v2onlytest01");
    hello.reserved[RESERVED_V2.0] |= RESERVED_V2.1;
    c.write_all(&hello.encode()).unwrap();
    let mut reply = [0u8; HANDSHAKE_LEN];
    c.read_exact(&mut reply).unwrap();
    let hs = Handshake::decode(&reply).unwrap();
    assert_eq!(hs.info_hash, ih);
    assert_ne!(hs.reserved[RESERVED_V2.0] & RESERVED_V2.1, 0, "no v2 bit");
    drop(c);

    let down = temp_dir("v2-dl-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &down).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.hash_failures, 0, "{st:?}");
    assert_eq!(st.pieces_have, st.pieces_total, "{st:?}");
    assert_same_files(&dir, &down, &files);
    // The leecher's copy passes a fresh start-up check (v2 hashes) too.
    drop(leecher);
    let again = session();
    again.add(AddTorrent::new(mi.clone(), &down)).unwrap();
    wait_phase(&again, &mi, Phase::Seeding, Duration::from_secs(20));
    drop(again);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

#[test]
fn a_corrupt_v2_piece_is_refused_and_fetched_again() {
    let (mi, dir, files) = v2_torrent("v2-bad");
    // The scripted peer answers every request with garbage; it sees the
    // torrent as the engine does (piece-aligned, v2 piece numbers).
    let mut aligned = mi.clone();
    aligned.info = aligned_view(&mi.info, mi.v2.as_ref().unwrap());
    let bad = scripted_peer(
        &aligned,
        vec![0; aligned.info.total_length as usize],
        Script::Corrupt,
    );
    let down = temp_dir("v2-bad-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &down).peers(vec![bad.addr]))
        .unwrap();
    let banned = wait_until(Duration::from_secs(30), || {
        leecher.status(&mi.info_hash).is_some_and(|s| s.banned >= 1)
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(banned, "corrupting peer not banned: {st:?}");
    assert!(st.hash_failures >= 1, "{st:?}");
    assert_eq!(st.pieces_have, 0, "{st:?}");
    // An honest seeder arrives: every piece is fetched (again) and right.
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4(), bad.addr])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_same_files(&dir, &down, &files);
    assert_eq!(bad.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop(leecher);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// `mi` as a `.torrent` without `piece layers` gives it.
fn without_layers(mi: &Metainfo) -> Metainfo {
    let mut bare = mi.clone();
    for l in bare.v2.as_mut().unwrap().piece_layers.iter_mut() {
        *l = None;
    }
    assert!(bare.v2.as_ref().unwrap().missing_layers() > 0);
    bare
}

/// A seeder of `mi` from `dir`, seeding.
fn seeder_of(mi: &Metainfo, dir: &Path) -> bittorrent_core::Session {
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), dir)).unwrap();
    wait_phase(&seeder, mi, Phase::Seeding, Duration::from_secs(20));
    seeder
}

/// A v2-only torrent given without its piece layers (a `.torrent` lacking
/// `piece layers`) fetches them from our seeder with hash requests, checks
/// them against each file's root, then downloads byte for byte; the state
/// directory keeps a `.torrent` with the layers, so a restart goes straight
/// to the check (no metadata phase) and the saved torrent is complete.
#[test]
fn a_v2_only_torrent_without_its_piece_layers_fetches_them_and_downloads() {
    let (mi, dir, files) = v2_torrent("v2-nolayer");
    let seeder = seeder_of(&mi, &dir);
    let down = temp_dir("v2-nolayer-leech");
    let state = down.join("state");
    let st2 = state.clone();
    let leecher = session_with(move |c| c.state_dir = Some(st2));
    leecher
        .add(AddTorrent::new(without_layers(&mi), &down).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!((st.hash_failures, st.banned), (0, 0), "{st:?}");
    assert_eq!(st.pieces_have as u64, mi.v2.as_ref().unwrap().num_pieces);
    assert_same_files(&dir, &down, &files);
    drop(leecher);
    // The saved `.torrent` carries the layers fetched.
    let saved = std::fs::read(
        state
            .join("torrents")
            .join(format!("{}.torrent", mi.info_hash)),
    )
    .unwrap();
    let back = Metainfo::from_bytes(&saved).unwrap();
    assert_eq!(back.v2, mi.v2);
    // A restart without any peer: no metadata phase, the copy checks out.
    drop(seeder);
    let st2 = state.clone();
    let again = session_with(move |c| c.state_dir = Some(st2));
    assert_eq!(again.restore().unwrap(), vec![mi.info_hash]);
    let phase = again.status(&mi.info_hash).unwrap().phase;
    assert_ne!(phase, Phase::Metadata);
    wait_phase(&again, &mi, Phase::Seeding, Duration::from_secs(20));
    drop(again);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// A v2-only magnet link (`xt=urn:btmh:1220...` alone): the info
/// dictionary by `ut_metadata`, checked against the SHA-256 info-hash, the
/// piece layers by hash requests, then the download, byte for byte.
#[test]
fn a_v2_only_magnet_link_downloads_byte_identical() {
    let (mi, dir, files) = v2_torrent("v2-magnet");
    let seeder = seeder_of(&mi, &dir);
    let uri = format!("magnet:?xt=urn:btmh:1220{}&dn=t", mi.info_hash_v2.unwrap());
    let magnet = Magnet::parse(&uri).unwrap();
    assert!(magnet.is_v2_only());
    assert_eq!(magnet.info_hash, mi.info_hash);
    let down = temp_dir("v2-magnet-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::magnet(magnet, &down).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!((st.hash_failures, st.banned), (0, 0), "{st:?}");
    assert_same_files(&dir, &down, &files);
    drop(leecher);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// A peer that answers the v2 handshake of `ih` and every hash request
/// with `hashes` of the right count and wrong values (`lie`), or with a
/// `hash reject` (an honest peer without the layers); counts the
/// BitTorrent handshakes it got.
fn hash_peer(ih: [u8; 20], lie: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let n = conns.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let n = n.clone();
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                let mut hs = [0u8; HANDSHAKE_LEN];
                // (An MSE attempt first is not a BitTorrent handshake: it
                // times out and is not counted.)
                if c.read_exact(&mut hs).is_err() || Handshake::decode(&hs).is_err() {
                    return;
                }
                n.fetch_add(1, Ordering::SeqCst);
                let mut hello = Handshake::new(ih, *b"-XX0001-liarliarliar");
                hello.reserved[RESERVED_V2.0] |= RESERVED_V2.1;
                let _ = c.write_all(&hello.encode());
                let mut dec = FrameDecoder::new(MAX_FRAME);
                let mut buf = vec![0u8; 65536];
                loop {
                    while let Ok(Some(m)) = dec.next_message() {
                        if let Message::Hash { id: 21, payload } = m {
                            let request = HashRequest::header(&payload).unwrap();
                            let n = request.length as usize + request.uncles();
                            let reply = match lie {
                                true => HashMessage::Hashes {
                                    request,
                                    hashes: vec![[0xAB; 32]; n],
                                },
                                false => HashMessage::Reject(request),
                            };
                            let _ = c.write_all(&reply.to_frame());
                        }
                    }
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => dec.feed(&buf[..k]),
                    }
                }
            });
        }
    });
    (addr, conns)
}

/// A peer sending piece-layer hashes that do not prove against the file's
/// root is refused (counted as banned, not asked again, not handed to the
/// torrent); one that rejects every request is not banned and is asked
/// again; an honest seeder found later completes the torrent.
#[test]
fn wrong_piece_layer_hashes_are_refused_and_an_honest_seeder_completes() {
    let (mi, dir, files) = v2_torrent("v2-liar");
    let (bad, conns) = hash_peer(mi.info_hash.0, true);
    let (shy, shy_conns) = hash_peer(mi.info_hash.0, false);
    let down = temp_dir("v2-liar-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(without_layers(&mi), &down).peers(vec![bad, shy]))
        .unwrap();
    let both = wait_until(Duration::from_secs(40), || {
        shy_conns.load(Ordering::SeqCst) >= 2
            && leecher.status(&mi.info_hash).is_some_and(|s| s.banned >= 1)
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(
        both,
        "liar not refused or rejecting peer not asked again: {st:?}"
    );
    assert_eq!(st.banned, 1, "only the liar is banned: {st:?}");
    assert_eq!(st.phase, Phase::Metadata, "{st:?}");
    // The layer stage's progress: both multi-piece files' layers missing.
    assert_eq!(
        (st.piece_layers_missing, st.piece_layers_fetched),
        (2, 0),
        "{st:?}"
    );
    let seeder = seeder_of(&mi, &dir);
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4(), bad])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_same_files(&dir, &down, &files);
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "the liar was dialled again"
    );
    drop(leecher);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// BEP 52 hash requests to our seeder of a v2-only torrent (what a client
/// that started from a magnet link sends for the piece layers): a piece
/// layer with its proof comes back and verifies against the file's
/// `pieces root` (block layers too: `tests/v2_blocks.rs`); unknown roots,
/// bad counts and ranges past the tree are rejected; a flood is bounded (rejected past the
/// per-second budget, the connection stays up); a request of the wrong
/// size closes the connection.
#[test]
fn our_seeder_answers_hash_requests_and_rejects_the_rest() {
    let (mi, dir, _) = v2_torrent("v2-hashes");
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let v2 = mi.v2.as_ref().unwrap();
    // big.bin: 200,000 bytes, 13 blocks (a tree 4 layers high over 16
    // leaves), 7 pieces of 32 KiB (the piece layer is layer 1, 8 wide).
    let big = &v2.files[0];
    assert_eq!(big.length, 200_000);
    let root = big.pieces_root.unwrap();
    let layer = v2.piece_layers[0].clone().unwrap();
    assert_eq!(layer.len(), 7);
    let ih = mi.info_hash.0;
    let connect = || v2_connect(seeder.local_addr_v4(), ih, *b"-XX0001-v2hashtest01");
    let req = |root, base_layer, index, length, proof_layers| HashRequest {
        pieces_root: root,
        base_layer,
        index,
        length,
        proof_layers,
    };
    let mut c = connect();
    let mut dec = FrameDecoder::new(MAX_FRAME);
    // As libtorrent asks: the whole piece layer, proof up to the root
    // (layers above the base: 3, all implied by 8 base hashes).
    let whole = req(root, 1, 0, 8, 2);
    // Two base hashes and the uncles up to the root.
    let part = req(root, 1, 4, 2, 2);
    let refused = [
        req([7; 32], 1, 0, 8, 2),                          // unknown root
        req(root, 1, 0, 3, 0),                             // not a power of two
        req(root, 1, 8, 8, 0),                             // past the layer
        req(root, 1, 0, 8, 3),                             // proof past the root
        req(v2.files[2].pieces_root.unwrap(), 1, 0, 2, 0), // a file of one piece
    ];
    let mut out = Vec::new();
    for r in [whole, part].iter().chain(&refused) {
        out.extend_from_slice(&HashMessage::Request(*r).to_frame());
    }
    c.write_all(&out).unwrap();
    let got = hash_replies(&mut c, &mut dec, 2 + refused.len());
    let HashMessage::Hashes { request, hashes } = &got[0] else {
        panic!("{:?}", got[0]);
    };
    assert_eq!(*request, whole);
    let base = hash_msg::verify(&whole, hashes, &root, 4).expect("verifies against the root");
    assert_eq!(base[..7], layer[..]);
    assert_eq!(base[7], merkle::pad_hash(1));
    let HashMessage::Hashes { request, hashes } = &got[1] else {
        panic!("{:?}", got[1]);
    };
    assert_eq!(*request, part);
    assert_eq!(hashes.len(), 2 + 2);
    let base = hash_msg::verify(&part, hashes, &root, 4).expect("verifies against the root");
    assert_eq!(base[..], layer[4..6]);
    for (r, m) in refused.iter().zip(&got[2..]) {
        assert_eq!(*m, HashMessage::Reject(*r));
    }
    // A flood: 600 requests at once; every one is answered, at most the
    // per-second budget (200) with hashes in each second, the rest
    // rejected, and the connection stays up.
    let flood: Vec<u8> = (0..600)
        .flat_map(|_| HashMessage::Request(whole).to_frame())
        .collect();
    c.write_all(&flood).unwrap();
    let got = hash_replies(&mut c, &mut dec, 600);
    let answered = got
        .iter()
        .filter(|m| matches!(m, HashMessage::Hashes { .. }))
        .count();
    assert!((100..600).contains(&answered), "{answered} of 600 answered");
    c.write_all(&HashMessage::Request(whole).to_frame())
        .unwrap();
    assert_eq!(hash_replies(&mut c, &mut dec, 1).len(), 1);
    // A hash request one byte short: a protocol error, the connection ends.
    let mut short = HashMessage::Request(whole).to_frame();
    short.pop();
    short[3] -= 1;
    c.write_all(&short).unwrap();
    let mut buf = [0u8; 4096];
    let closed = wait_until(Duration::from_secs(5), || {
        matches!(c.read(&mut buf), Ok(0) | Err(_))
    });
    assert!(closed, "still connected after a malformed hash request");
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
}
