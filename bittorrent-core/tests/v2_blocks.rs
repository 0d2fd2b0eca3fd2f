//! BEP 52 below the piece layer, between our own sessions and scripted
//! peers on loopback: our seeder answers `hash request`s for the 16 KiB
//! block layer from the data of the pieces it has (the hashes verify
//! against the piece layer and, with their proof, the file's root), rejects
//! them for pieces it lacks, past the tree or past its limits, and stays
//! bounded under a flood; a leecher whose v2 piece fails with blocks from
//! two peers asks for the piece's block hashes, bans exactly the peer that
//! sent the bad block, keeps the good blocks (not fetched again) and
//! completes byte-identical.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::create::{create_torrent, CreateOptions, TorrentFormat};
use bittorrent_core::proto::bitfield::Bitfield;
use bittorrent_core::proto::block_layer::{self, piece_request, verify_piece_blocks};
use bittorrent_core::proto::hash_msg::{self, HashMessage, HashRequest};
use bittorrent_core::proto::merkle::Hash256;
use bittorrent_core::proto::metainfo::{v2::aligned_view, Format, Metainfo};
use bittorrent_core::proto::wire::{FrameDecoder, Handshake, Message, HANDSHAKE_LEN, MAX_FRAME};
use bittorrent_core::{AddTorrent, Phase, Session};
use harness::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// 64 KiB pieces: 4 blocks each, the piece layer is layer 2.
const PIECE: u64 = 65536;

/// A v2-only torrent of one file `f.bin` of `len` bytes in `<dir>/f.bin`.
fn v2_file(name: &str, len: usize) -> (Metainfo, PathBuf, Vec<u8>) {
    let dir = temp_dir(name);
    let data = pseudo_random(len, 7);
    std::fs::write(dir.join("f.bin"), &data).unwrap();
    let opts = CreateOptions {
        piece_length: Some(PIECE),
        format: TorrentFormat::V2,
        ..CreateOptions::default()
    };
    let bytes = create_torrent(&dir.join("f.bin"), &opts, &|_, _| {}).unwrap();
    let mi = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(mi.format(), Format::V2);
    (mi, dir, data)
}

fn connect(s: &Session, ih: [u8; 20]) -> TcpStream {
    v2_connect(s.local_addr_v4(), ih, *b"-XX0001-v2blocktest1")
}

fn ask(c: &mut TcpStream, dec: &mut FrameDecoder, reqs: &[HashRequest]) -> Vec<HashMessage> {
    let out: Vec<u8> = reqs
        .iter()
        .flat_map(|r| HashMessage::Request(*r).to_frame())
        .collect();
    c.write_all(&out).unwrap();
    hash_replies(c, dec, reqs.len())
}

fn req(root: Hash256, base_layer: u32, index: u32, length: u32, proof: u32) -> HashRequest {
    HashRequest {
        pieces_root: root,
        base_layer,
        index,
        length,
        proof_layers: proof,
    }
}

/// The leaf hashes of piece `j` of `data` (zero leaves past the end).
fn leaves(data: &[u8], j: usize) -> Vec<Hash256> {
    let piece = data.get(j * PIECE as usize..).unwrap_or_default();
    let piece = &piece[..piece.len().min(PIECE as usize)];
    block_layer::leaves_of_piece(piece, piece.len() as u64, 4)
}

/// Our seeder answers block-layer requests from its data: one piece's
/// blocks (what we ask after a failure) verify against the piece layer and
/// equal the data's leaf hashes; with a proof to the root they verify
/// against the root; past the tree, past 512 blocks of data, an unknown
/// root: rejected; a flood of block requests is answered, partly with
/// rejects, and the connection stays up.
#[test]
fn our_seeder_answers_block_layer_requests_that_verify() {
    // 17 pieces, the last of 5,000 bytes: a tree 7 layers high (32 pieces
    // of 4 leaves).
    let (mi, dir, data) = v2_file("v2-blocks-serve", 16 * PIECE as usize + 5000);
    let v2 = mi.v2.as_ref().unwrap();
    let root = v2.files[0].pieces_root.unwrap();
    let layer = v2.piece_layers[0].clone().unwrap();
    assert_eq!(layer.len(), 17);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let mut c = connect(&seeder, mi.info_hash.0);
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let pieces: Vec<HashRequest> = [0u64, 5, 16]
        .iter()
        .map(|&j| piece_request(root, 2, j).unwrap())
        .collect();
    let with_proof = req(root, 0, 20, 4, 6); // piece 5, proof to the root
    let half = req(root, 0, 22, 2, 6); // half of piece 5
    let refused = [
        req(root, 0, 20, 4, 7),   // proof past the root
        req(root, 0, 128, 4, 0),  // past the tree
        req(root, 1, 0, 512, 1),  // 1,024 blocks of data
        req([3; 32], 0, 0, 4, 1), // unknown root
        req(root, 0, 0, 1024, 0), // over 512 hashes
    ];
    let all: Vec<HashRequest> = pieces
        .iter()
        .chain([&with_proof, &half])
        .chain(&refused)
        .copied()
        .collect();
    let got = ask(&mut c, &mut dec, &all);
    for (r, (m, j)) in pieces.iter().zip(got.iter().zip([0usize, 5, 16])) {
        let HashMessage::Hashes { request, hashes } = m else {
            panic!("{r:?}: {m:?}");
        };
        assert_eq!(request, r);
        let good = verify_piece_blocks(r, hashes, &layer[j]).expect("verifies");
        assert_eq!(good, leaves(&data, j), "piece {j}");
    }
    for (r, m) in [with_proof, half].iter().zip(&got[3..5]) {
        let HashMessage::Hashes { hashes, .. } = m else {
            panic!("{r:?}: {m:?}");
        };
        let base = hash_msg::verify(r, hashes, &root, 7).expect("verifies against the root");
        assert_eq!(
            base[..],
            leaves(&data, 5)[(r.index - 20) as usize..][..r.length as usize]
        );
    }
    for (r, m) in refused.iter().zip(&got[5..]) {
        assert_eq!(*m, HashMessage::Reject(*r));
    }
    // A flood: 600 requests for a piece's blocks at once: all replied to,
    // not all with hashes (200 requests a second, 32 MiB of data a
    // second), the connection stays up.
    let flood = vec![pieces[1]; 600];
    let t0 = std::time::Instant::now();
    let got = ask(&mut c, &mut dec, &flood);
    let answered = got
        .iter()
        .filter(|m| matches!(m, HashMessage::Hashes { .. }))
        .count();
    assert!((100..600).contains(&answered), "{answered} of 600 answered");
    eprintln!("flood of 600: {answered} answered in {:?}", t0.elapsed());
    assert_eq!(ask(&mut c, &mut dec, &[pieces[0]]).len(), 1);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
}

/// A session that lacks a piece (damaged on disk, found by the check)
/// rejects block-layer requests for it and answers those for the others.
#[test]
fn block_hash_requests_for_pieces_we_lack_are_rejected() {
    let (mi, dir, data) = v2_file("v2-blocks-lack", 8 * PIECE as usize);
    let mut damaged = data.clone();
    damaged[3 * PIECE as usize + 100] ^= 1;
    std::fs::write(dir.join("f.bin"), &damaged).unwrap();
    let root = mi.v2.as_ref().unwrap().files[0].pieces_root.unwrap();
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    let checked = wait_until(Duration::from_secs(20), || {
        s.status(&mi.info_hash)
            .is_some_and(|st| st.phase == Phase::Downloading && st.pieces_have == 7)
    });
    assert!(checked, "{:?}", s.status(&mi.info_hash));
    let mut c = connect(&s, mi.info_hash.0);
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let lacking = piece_request(root, 2, 3).unwrap();
    let have = piece_request(root, 2, 4).unwrap();
    let got = ask(&mut c, &mut dec, &[lacking, have]);
    assert_eq!(got[0], HashMessage::Reject(lacking));
    assert!(matches!(&got[1], HashMessage::Hashes { request, .. } if *request == have));
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

/// A piece whose first block came from a scripted peer (corrupted) and the
/// rest from an honest seeder fails; the leecher asks the seeder for the
/// piece's block hashes, bans the scripted peer alone, keeps the seeder's
/// three blocks and fetches only the bad one again: the seeder uploads the
/// torrent exactly once, the leecher downloads it plus that one block.
#[test]
fn a_bad_block_bans_only_its_sender_and_the_good_blocks_are_kept() {
    let len = 16 * PIECE as usize;
    let (mi, dir, data) = v2_file("v2-blocks-ban", len);
    let mut aligned = mi.clone();
    aligned.info = aligned_view(&mi.info, mi.v2.as_ref().unwrap());
    assert_eq!(aligned.info.total_length, len as u64);
    let bad = scripted_peer(&aligned, data.clone(), Script::OneBadBlockThenChoke);
    let down = temp_dir("v2-blocks-ban-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &down).peers(vec![bad.addr]))
        .unwrap();
    let got_one = wait_until(Duration::from_secs(30), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.downloaded >= 16384)
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(got_one, "no block from the scripted peer: {st:?}");
    assert_eq!((st.pieces_have, st.hash_failures, st.banned), (0, 0, 0));
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4()])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.hash_failures, 1, "{st:?}");
    assert_eq!(st.banned, 1, "{st:?}");
    assert_eq!(std::fs::read(down.join("f.bin")).unwrap(), data);
    // Only the bad block was fetched again.
    assert_eq!(st.downloaded, len as u64 + 16384, "{st:?}");
    let up = seeder.status(&mi.info_hash).unwrap().uploaded;
    assert_eq!(up, len as u64, "the seeder sent more than the torrent");
    assert_eq!(bad.connections.load(Ordering::SeqCst), 1);
    drop(leecher);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}

/// A peer that has every piece (bitfield, never unchokes) and answers each
/// hash request with the right number of wrong hashes; counts the hash
/// requests it got.
fn hash_liar(ih: [u8; 20], pieces: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let n = asked.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let n = n.clone();
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                let mut hs = [0u8; HANDSHAKE_LEN];
                if c.read_exact(&mut hs).is_err() || Handshake::decode(&hs).is_err() {
                    return; // an MSE attempt: the dialer falls back to plaintext
                }
                let mut hello = Handshake::new(ih, *b"-XX0001-hashliar0001");
                hello.reserved = [0; 8];
                let mut out = hello.encode().to_vec();
                Message::Bitfield(Bitfield::full(pieces).as_bytes().to_vec()).encode(&mut out);
                let _ = c.write_all(&out);
                let mut dec = FrameDecoder::new(MAX_FRAME);
                let mut buf = vec![0u8; 65536];
                loop {
                    while let Ok(Some(m)) = dec.next_message() {
                        if let Message::Hash { id: 21, payload } = m {
                            n.fetch_add(1, Ordering::SeqCst);
                            let request = HashRequest::header(&payload).unwrap();
                            let k = request.length as usize + request.uncles();
                            let reply = HashMessage::Hashes {
                                request,
                                hashes: vec![[0xAB; 32]; k],
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
    (addr, asked)
}

/// As above, with a third peer that has the piece and sent none of it, so
/// it is asked for the block hashes first, and lies: its hashes do not add
/// up to the piece hash, it is banned, the seeder is asked next, and the
/// bad block's sender is banned; the seeder never is.
#[test]
fn wrong_block_hashes_get_their_sender_banned_and_the_next_peer_is_asked() {
    let len = 16 * PIECE as usize;
    let (mi, dir, data) = v2_file("v2-blocks-liar", len);
    let mut aligned = mi.clone();
    aligned.info = aligned_view(&mi.info, mi.v2.as_ref().unwrap());
    let bad = scripted_peer(&aligned, data.clone(), Script::OneBadBlockThenChoke);
    let (liar, asked) = hash_liar(mi.info_hash.0, 16);
    let down = temp_dir("v2-blocks-liar-leech");
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &down).peers(vec![bad.addr]))
        .unwrap();
    let got_one = wait_until(Duration::from_secs(30), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.downloaded >= 16384)
    });
    assert!(got_one, "{:?}", leecher.status(&mi.info_hash));
    leecher.add_peers(&mi.info_hash, vec![liar]).unwrap();
    let both = wait_until(Duration::from_secs(20), || {
        leecher.status(&mi.info_hash).is_some_and(|s| s.peers >= 2)
    });
    assert!(both, "{:?}", leecher.status(&mi.info_hash));
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr_v4()])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the liar is asked once");
    assert_eq!((st.hash_failures, st.banned), (1, 2), "{st:?}");
    assert_eq!(st.downloaded, len as u64 + 16384, "{st:?}");
    assert_eq!(seeder.status(&mi.info_hash).unwrap().uploaded, len as u64);
    assert_eq!(std::fs::read(down.join("f.bin")).unwrap(), data);
    drop(leecher);
    drop(seeder);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(down);
}
