//! Peer wire tolerance: sequences that mainstream clients send and that
//! libtorrent, qBittorrent and Transmission accept must not cost the
//! connection, and must be understood.
//!
//! aria2 opens with `have-none`, then `allowed-fast`, then a late
//! `bitfield` (sometimes two). A raw-socket peer plays that here, once as a
//! seeder feeding our leecher and once as a leecher downloading from our
//! seeder; in both cases the download completes byte for byte over that one
//! connection.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::bitfield::Bitfield;
use bittorrent_core::proto::layout::Layout;
use bittorrent_core::proto::wire::{BlockRef, FrameDecoder, Handshake, Message, MAX_FRAME};
use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PIECE: u64 = 32 * 1024;
/// 20 pieces, the last one short.
const LEN: usize = 19 * 32 * 1024 + 1234;

/// A raw wire connection: the next message within a deadline.
struct Raw {
    s: TcpStream,
    dec: FrameDecoder,
}

impl Raw {
    fn next(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.dec.next_message() {
                Ok(Some(m)) => return Some(m),
                Ok(None) => {}
                Err(_) => return None,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self
                .s
                .set_read_timeout(Some(left.min(Duration::from_millis(100))));
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.dec.feed(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    fn send(&mut self, msgs: &[Message]) {
        let mut out = Vec::new();
        for m in msgs {
            m.encode(&mut out);
        }
        self.s.write_all(&out).unwrap();
    }
}

fn set_of(n: usize, pieces: impl IntoIterator<Item = usize>) -> Bitfield {
    let mut b = Bitfield::new(n);
    for i in pieces {
        b.set(i);
    }
    b
}

/// Our leecher against an aria2-like seeder: `have-none`, `allowed-fast 0`,
/// a bitfield of pieces 0..16, a second bitfield of pieces 0..8 only, then
/// `unchoke`. The leecher must keep the connection, take the second
/// bitfield as the peer's whole piece set (never asking for pieces 8..16,
/// which the first bitfield claimed), and, after a late `have-all`, count
/// the peer as a seed and finish the download from it.
#[test]
fn leecher_accepts_have_none_allowed_fast_and_two_late_bitfields() {
    let data = pseudo_random(LEN, 7);
    let (mi, _seed_dir) = single_file_torrent("tol-leech", &data, PIECE);
    let layout = Layout::of(&mi.info);
    let n = layout.num_pieces as usize;
    assert_eq!(n, 20);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = temp_dir("tol-leech-down");
    // The raw peer below speaks plaintext only: dial it in clear.
    let leecher = session_with(|c| c.encryption = bittorrent_core::Encryption::Off);
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![addr]))
        .unwrap();

    let violations = Arc::new(AtomicU32::new(0));
    let send_have_all = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (v2, go2, stop2) = (violations.clone(), send_have_all.clone(), stop.clone());
    let ih = mi.info_hash.0;
    let data2 = data.clone();
    let peer = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        // The leecher may try an encrypted (MSE) handshake first; like aria2
        // set to plaintext, this peer drops it and waits for the plaintext
        // retry (first byte 19).
        let s = loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut first = [0u8; 1];
                    if s.read_exact(&mut first).is_ok() && first[0] == 19 {
                        let mut rest = [0u8; 67];
                        s.read_exact(&mut rest).unwrap();
                        break s;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("the leecher never dialled in plaintext: {e}"),
            }
        };
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Raw {
            s,
            dec: FrameDecoder::new(MAX_FRAME),
        };
        let mut id = *b"A2-1-37-0-aria2like0";
        id[19] = b'1';
        raw.s.write_all(&Handshake::new(ih, id).encode()).unwrap();
        let first = set_of(n, 0..16);
        let mut current = set_of(n, 0..8);
        raw.send(&[
            Message::HaveNone,
            Message::AllowedFast(0),
            Message::Bitfield(first.as_bytes().to_vec()),
            Message::Bitfield(current.as_bytes().to_vec()),
            Message::Unchoke,
        ]);
        let mut sent_have_all = false;
        while !stop2.load(Ordering::SeqCst) {
            if !sent_have_all && go2.load(Ordering::SeqCst) {
                sent_have_all = true;
                current = Bitfield::full(n);
                raw.send(&[Message::HaveAll]);
            }
            let Some(m) = raw.next(Duration::from_millis(100)) else {
                continue;
            };
            let Message::Request(b) = m else { continue };
            if !current.get(b.index as usize) {
                v2.fetch_add(1, Ordering::SeqCst);
                raw.send(&[Message::Reject(b)]);
                continue;
            }
            let off = (layout.piece_offset(b.index) + u64::from(b.begin)) as usize;
            let block = data2[off..off + b.length as usize].to_vec();
            let _ = raw.s.write_all(
                &Message::Piece {
                    index: b.index,
                    begin: b.begin,
                    data: block,
                }
                .to_bytes(),
            );
        }
    });

    // Pieces 0..8, and nothing the peer no longer claims.
    let got8 = wait_until(Duration::from_secs(60), || {
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.pieces_have == 8)
    });
    let st = leecher.status(&mi.info_hash).unwrap();
    assert!(got8, "the first 8 pieces never arrived: {st:?}");
    assert_eq!(st.peers, 1, "the aria2-like peer was dropped: {st:?}");
    assert_eq!(st.seeds, 0, "the peer has only 8 of 20 pieces: {st:?}");
    // Give a wrong picker the time to ask for pieces 8..16.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "requests for pieces only the replaced bitfield claimed"
    );
    // A late have-all: the peer is now a seed and the rest comes from it.
    send_have_all.store(true, Ordering::SeqCst);
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("tol-leech")).unwrap(), data);
    assert_eq!(violations.load(Ordering::SeqCst), 0);
    stop.store(true, Ordering::SeqCst);
    peer.join().unwrap();
    drop(leecher);
    let _ = std::fs::remove_dir_all(dir);
}

/// An aria2-like leecher against our seeder: handshake, `have-none`,
/// `allowed-fast`-style chatter, an empty bitfield, a second bitfield with
/// one piece, a `have`, then interested. The seeder keeps it, unchokes it
/// and serves every block of the torrent, which arrives byte for byte.
#[test]
fn seeder_serves_a_peer_that_sends_have_none_then_two_bitfields() {
    let data = pseudo_random(LEN, 11);
    let (mi, seed_dir) = single_file_torrent("tol-seed", &data, PIECE);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let layout = Layout::of(&mi.info);
    let n = layout.num_pieces as usize;

    let s = TcpStream::connect_timeout(&seeder.local_addr(), Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Raw {
        s,
        dec: FrameDecoder::new(MAX_FRAME),
    };
    raw.s
        .write_all(&Handshake::new(mi.info_hash.0, *b"A2-1-37-0-aria2like2").encode())
        .unwrap();
    let mut hs = [0u8; 68];
    raw.s
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    raw.s.read_exact(&mut hs).unwrap();
    raw.send(&[
        Message::HaveNone,
        Message::Bitfield(Bitfield::new(n).as_bytes().to_vec()),
        Message::Bitfield(set_of(n, [3]).as_bytes().to_vec()),
        Message::Have(5),
        Message::Interested,
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut unchoked = false;
    while !unchoked && Instant::now() < deadline {
        match raw.next(Duration::from_secs(1)) {
            Some(Message::Unchoke) => unchoked = true,
            Some(_) => {}
            None if raw.s.peer_addr().is_err() => break,
            None => {}
        }
    }
    assert!(unchoked, "the seeder never unchoked the aria2-like peer");
    // Request everything, 16 KiB at a time, a few pieces at once.
    let mut got = vec![0u8; LEN];
    let mut blocks: Vec<BlockRef> = (0..layout.num_pieces)
        .flat_map(|p| (0..layout.blocks_in_piece(p)).map(move |b| (p, b)))
        .map(|(p, b)| layout.block(p, b))
        .collect();
    let total = blocks.len();
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received < total && Instant::now() < deadline {
        let batch: Vec<Message> = blocks
            .drain(..blocks.len().min(16))
            .map(Message::Request)
            .collect();
        let want = batch.len();
        raw.send(&batch);
        let mut answered = 0;
        while answered < want && Instant::now() < deadline {
            match raw.next(Duration::from_secs(5)) {
                Some(Message::Piece { index, begin, data }) => {
                    let off = (layout.piece_offset(index) + u64::from(begin)) as usize;
                    got[off..off + data.len()].copy_from_slice(&data);
                    answered += 1;
                    received += 1;
                }
                Some(Message::Reject(b)) => panic!("the seeder rejected {b:?}"),
                Some(_) => {}
                None => panic!("the seeder dropped the aria2-like peer"),
            }
        }
    }
    assert_eq!(received, total, "not every block arrived");
    assert!(got == data, "the blocks differ from the seeded data");
    assert_eq!(seeder.status(&mi.info_hash).unwrap().peers, 1);
}
