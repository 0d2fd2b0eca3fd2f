//! Planted blocks and smart ban, against a real seeder behind a slow link.
//!
//! The seeder is a real `Session` reached through a loopback relay that
//! throttles the link to ~2 MB/s, so pieces stay in flight for a while and an
//! attacker has time to interfere:
//! * a peer with no data that sprays one garbage 16 KiB block per piece
//!   (blocks we never asked it for) must not get a single block stored, must
//!   be banned, and must not get the honest seeder banned;
//! * a peer that answers the requests it *was* sent with garbage for the
//!   first block of each piece (and rejects the rest, so that every piece it
//!   touches mixes its block with the seeder's) must be pinned by smart ban
//!   while the seeder, whose blocks all match, stays.
//!
//! In both cases the leecher completes byte-identical.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::bitfield::Bitfield;
use bittorrent_core::proto::layout::Layout;
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::proto::wire::{FrameDecoder, Handshake, Message, MAX_FRAME};
use bittorrent_core::{AddTorrent, Phase, Session};
use harness::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PIECE: u64 = 64 * 1024;
const LEN: usize = 8 * 1024 * 1024 - 999;
/// The relay's rate, bytes per second (both directions together).
const RATE: u64 = 2_000_000;

/// Paces writes to `RATE` bytes per second over all connections.
struct Pacer {
    start: Instant,
    sent: u64,
}

impl Pacer {
    fn wait(pacer: &Mutex<Pacer>, n: usize) {
        let due = {
            let mut p = pacer.lock().unwrap();
            p.sent += n as u64;
            p.start + Duration::from_secs_f64(p.sent as f64 / RATE as f64)
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// A loopback TCP relay to `target`, throttled to `RATE`: the "slow link"
/// in front of the seeder. Accepts until dropped.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    relayed: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let relayed = Arc::new(AtomicU64::new(0));
        let pacer = Arc::new(Mutex::new(Pacer {
            start: Instant::now(),
            sent: 0,
        }));
        let (s2, r2) = (stop.clone(), relayed.clone());
        let handle = std::thread::spawn(move || {
            let mut pumps = Vec::new();
            while !s2.load(Ordering::SeqCst) {
                let (inside, _) = match listener.accept() {
                    Ok(x) => x,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(_) => continue,
                };
                let Ok(outside) = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                else {
                    continue;
                };
                inside.set_nonblocking(false).unwrap();
                for (from, to) in [
                    (inside.try_clone().unwrap(), outside.try_clone().unwrap()),
                    (outside, inside),
                ] {
                    let (stop, pacer, relayed) = (s2.clone(), pacer.clone(), r2.clone());
                    pumps.push(std::thread::spawn(move || {
                        pump(from, to, &stop, &pacer, &relayed)
                    }));
                }
            }
            for p in pumps {
                let _ = p.join();
            }
        });
        Relay {
            addr,
            stop,
            relayed,
            handle: Some(handle),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    stop: &AtomicBool,
    pacer: &Mutex<Pacer>,
    relayed: &AtomicU64,
) {
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    to.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                Pacer::wait(pacer, n);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                relayed.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A seeder behind a relay, and a leecher dialling the relay.
struct Swarm {
    mi: Metainfo,
    data: Vec<u8>,
    _seeder: Session,
    relay: Relay,
    leecher: Session,
    leech_dir: std::path::PathBuf,
}

fn swarm(name: &str, seed: u64) -> Swarm {
    let data = pseudo_random(LEN, seed);
    let (mi, seed_dir) = single_file_torrent(name, &data, PIECE);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let relay = Relay::start(seeder.local_addr_v4());
    let leech_dir = temp_dir(&format!("{name}-leech"));
    let leecher = session();
    Swarm {
        mi,
        data,
        _seeder: seeder,
        relay,
        leecher,
        leech_dir,
    }
}

fn peer_id(tag: u8) -> [u8; 20] {
    let mut id = *b"-EV0001-attacker0000";
    id[19] = tag;
    id
}

/// Whether the peer on `s` hung up within `within`.
fn hung_up(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn sprayed_blocks_are_dropped_and_only_the_sprayer_is_banned() {
    let sw = swarm("planted-spray", 41);
    let ih = sw.mi.info_hash;
    sw.leecher
        .add(AddTorrent::new(sw.mi.clone(), &sw.leech_dir).peers(vec![sw.relay.addr]))
        .unwrap();
    // Pieces are in flight from the seeder.
    assert!(
        wait_until(Duration::from_secs(30), || {
            sw.leecher.status(&ih).is_some_and(|s| s.downloaded > 0)
        }),
        "no data through the relay: {:?}",
        sw.leecher.status(&ih)
    );
    // The attacker connects once and sprays one garbage block per piece,
    // round after round, until it is thrown out.
    let mut s =
        TcpStream::connect_timeout(&sw.leecher.local_addr_v4(), Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&Handshake::new(ih.0, peer_id(b'1')).encode())
        .unwrap();
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).unwrap();
    let layout = Layout::of(&sw.mi.info);
    let mut sent = 0u32;
    let deadline = Instant::now() + Duration::from_secs(20);
    'spray: while Instant::now() < deadline {
        for i in 0..layout.num_pieces {
            let mut wire = Vec::new();
            Message::Piece {
                index: i,
                begin: 0,
                data: vec![0xAA; 16 * 1024],
            }
            .encode(&mut wire);
            if s.write_all(&wire).is_err() {
                break 'spray;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        hung_up(&mut s, Duration::from_secs(10)),
        "the leecher kept a peer spraying unrequested blocks ({sent} sent)"
    );
    wait_phase(
        &sw.leecher,
        &sw.mi,
        Phase::Seeding,
        Duration::from_secs(120),
    );
    let st = sw.leecher.status(&ih).unwrap();
    assert_eq!(
        std::fs::read(sw.leech_dir.join("planted-spray")).unwrap(),
        sw.data
    );
    assert_eq!(st.hash_failures, 0, "a planted block was stored: {st:?}");
    assert_eq!(st.banned, 1, "only the attacker is banned: {st:?}");
    assert!(sw.relay.relayed.load(Ordering::Relaxed) >= LEN as u64);
    eprintln!(
        "spray: attacker sent {sent} blocks before the ban; leecher: {} bytes downloaded, {} banned",
        st.downloaded, st.banned
    );
}

/// A peer that claims every piece, unchokes, answers a request for the first
/// block of a piece with garbage and rejects (BEP 6) every other request.
/// Returns its address and how many garbage blocks it sent.
fn corrupt_first_blocks(mi: &Metainfo) -> (SocketAddr, Arc<AtomicU32>, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let layout = Layout::of(&mi.info);
    let ih = mi.info_hash.0;
    let garbage = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (g2, s2) = (garbage.clone(), stop.clone());
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(150);
        while !s2.load(Ordering::SeqCst) && Instant::now() < deadline {
            let s = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let _ = serve_corrupt(s, ih, layout, &g2, &s2);
        }
    });
    (addr, garbage, stop)
}

fn serve_corrupt(
    mut s: TcpStream,
    ih: [u8; 20],
    layout: Layout,
    garbage: &AtomicU32,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs)?;
    if hs[..20] != *b"\x13BitTorrent protocol" {
        return Ok(()); // an MSE attempt: close, like a plaintext-only client
    }
    let mut ours = Handshake::new(ih, peer_id(b'2'));
    ours.reserved = [0, 0, 0, 0, 0, 0, 0, 0x04]; // fast extension
    s.write_all(&ours.encode())?;
    let mut out = Message::Bitfield(
        Bitfield::full(layout.num_pieces as usize)
            .as_bytes()
            .to_vec(),
    )
    .to_bytes();
    Message::Unchoke.encode(&mut out);
    s.write_all(&out)?;
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(k) => dec.feed(&buf[..k]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        }
        let mut out = Vec::new();
        while let Ok(Some(m)) = dec.next_message() {
            let Message::Request(b) = m else { continue };
            if b.begin == 0 {
                garbage.fetch_add(1, Ordering::Relaxed);
                Message::Piece {
                    index: b.index,
                    begin: b.begin,
                    data: vec![0x55; b.length as usize],
                }
                .encode(&mut out);
            } else {
                Message::Reject(b).encode(&mut out);
            }
        }
        s.write_all(&out)?;
    }
    Ok(())
}

#[test]
fn smart_ban_pins_a_peer_that_corrupts_blocks_it_was_asked_for() {
    let sw = swarm("planted-smart", 42);
    let ih = sw.mi.info_hash;
    let (bad, garbage, stop) = corrupt_first_blocks(&sw.mi);
    sw.leecher
        .add(AddTorrent::new(sw.mi.clone(), &sw.leech_dir).peers(vec![sw.relay.addr, bad]))
        .unwrap();
    wait_phase(
        &sw.leecher,
        &sw.mi,
        Phase::Seeding,
        Duration::from_secs(120),
    );
    stop.store(true, Ordering::SeqCst);
    let st = sw.leecher.status(&ih).unwrap();
    assert_eq!(
        std::fs::read(sw.leech_dir.join("planted-smart")).unwrap(),
        sw.data
    );
    assert!(
        garbage.load(Ordering::Relaxed) >= 1 && st.hash_failures >= 1,
        "the attack never landed: {st:?}"
    );
    // The seeder was never banned (it is the only source of good data and
    // the download completed); the attacker was.
    assert_eq!(st.banned, 1, "{st:?}");
    eprintln!(
        "smart ban: attacker sent {} garbage blocks; {} hash failures; {} banned",
        garbage.load(Ordering::Relaxed),
        st.hash_failures,
        st.banned
    );
}
