//! Metadata from peers (BEP 9) goes through the metainfo limits before it
//! is accepted: a peer serving an info dictionary with a path 10,000
//! levels deep (its hash genuine: the attacker published the magnet)
//! leaves the leecher alive, bounded in memory and still looking; a peer
//! serving such a dictionary for another torrent's magnet is dropped and an
//! honest peer then completes the download.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::bencode::OwnedValue as O;
use bittorrent_core::proto::extension::{ExtHandshake, MetadataMessage, METADATA_PIECE_SIZE};
use bittorrent_core::proto::wire::{FrameDecoder, Handshake, Message, MAX_FRAME};
use bittorrent_core::{AddTorrent, Encryption, Magnet, Phase};
use harness::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The id our fake peer wants `ut_metadata` messages with.
const FAKE_METADATA_ID: u8 = 3;

/// An info dictionary whose one file is `levels` directories deep.
fn deep_info(levels: usize) -> Vec<u8> {
    let path = (0..levels)
        .map(|i| O::bytes(format!("d{}", i % 10)))
        .collect();
    let file = O::Dict(vec![
        (b"length".to_vec(), O::Int(1)),
        (b"path".to_vec(), O::List(path)),
    ]);
    O::Dict(vec![
        (b"files".to_vec(), O::List(vec![file])),
        (b"name".to_vec(), O::bytes("deep")),
        (b"piece length".to_vec(), O::Int(16384)),
        (b"pieces".to_vec(), O::Bytes(vec![7; 20])),
    ])
    .to_bytes()
}

/// A peer that answers every `ut_metadata` request with pieces of `info`,
/// whatever info-hash it is asked for.
struct FakePeer {
    addr: SocketAddr,
    /// Connections whose every metadata piece was sent.
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn fake_peer(info: Vec<u8>) -> FakePeer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (sv, st) = (served.clone(), stop.clone());
    let info = Arc::new(info);
    thread::spawn(move || {
        while !st.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    let (info, sv) = (info.clone(), sv.clone());
                    thread::spawn(move || {
                        if serve(s, &info).is_some() {
                            sv.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    FakePeer { addr, served, stop }
}

/// One connection: handshakes, then every requested piece. Some when all
/// pieces were sent.
fn serve(mut s: TcpStream, info: &[u8]) -> Option<()> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).ok()?;
    let theirs = Handshake::decode(&hs).ok()?;
    s.write_all(&Handshake::new(theirs.info_hash, *b"-FK0001-000000000000").encode())
        .ok()?;
    let ours = ExtHandshake {
        m: vec![("ut_metadata".into(), FAKE_METADATA_ID)],
        metadata_size: Some(info.len() as u64),
        ..Default::default()
    };
    let mut out = Vec::new();
    Message::Extended {
        id: 0,
        payload: ours.encode(),
    }
    .encode(&mut out);
    s.write_all(&out).ok()?;
    let pieces = info.len().div_ceil(METADATA_PIECE_SIZE);
    let mut sent = 0;
    let mut their_id = None;
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Ok(Some(m)) = dec.next_message() {
            let Message::Extended { id, payload } = m else {
                continue;
            };
            if id == 0 {
                their_id = ExtHandshake::decode(&payload).ok()?.id_of("ut_metadata");
            } else if id == FAKE_METADATA_ID {
                if let Ok(MetadataMessage::Request { piece }) = MetadataMessage::decode(&payload) {
                    let start = piece as usize * METADATA_PIECE_SIZE;
                    let end = (start + METADATA_PIECE_SIZE).min(info.len());
                    let data = MetadataMessage::Data {
                        piece,
                        total_size: info.len() as u64,
                        data: info.get(start..end)?.to_vec(),
                    };
                    let mut out = Vec::new();
                    Message::Extended {
                        id: their_id?,
                        payload: data.encode(),
                    }
                    .encode(&mut out);
                    s.write_all(&out).ok()?;
                    sent += 1;
                    if sent == pieces {
                        return Some(());
                    }
                }
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => dec.feed(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Peak resident memory of this process, KiB.
fn peak_rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Before the fix one 10,000-level path cost 2.7 GB; the test process
/// (sessions, threads, the fake peer) stays far below this.
const PEAK_LIMIT_KIB: usize = 256 * 1024;

#[test]
fn deep_metadata_is_refused_and_the_leecher_stays_bounded_and_looking() {
    let info = deep_info(10_000);
    let ih = sha1_smol::Sha1::from(&info).digest().bytes();
    let hex: String = ih.iter().map(|b| format!("{b:02x}")).collect();
    let fake = fake_peer(info);
    let s = session_with(|c| c.encryption = Encryption::Off);
    let link = format!("magnet:?xt=urn:btih:{hex}&dn=deep&x.pe={}", fake.addr);
    let dir = temp_dir("deep-magnet");
    s.add(AddTorrent::magnet(Magnet::parse(&link).unwrap(), &dir))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || fake
            .served
            .load(Ordering::SeqCst)
            >= 1),
        "the leecher never fetched the metadata"
    );
    // Time to parse (and refuse) it.
    thread::sleep(Duration::from_secs(2));
    let key = bittorrent_core::InfoHash(ih);
    let st = s.status(&key).expect("the magnet is still there");
    assert_eq!(st.phase, Phase::Metadata, "refused metadata was accepted");
    // The refused peer is not asked again at once (held off), and the
    // session still answers.
    let served = fake.served.load(Ordering::SeqCst);
    thread::sleep(Duration::from_secs(3));
    assert_eq!(fake.served.load(Ordering::SeqCst), served);
    assert_eq!(s.torrents().len(), 1);
    let peak = peak_rss_kib();
    assert!(
        peak < PEAK_LIMIT_KIB,
        "peak RSS {peak} KiB over {PEAK_LIMIT_KIB} KiB"
    );
    s.shutdown();
}

#[test]
fn a_peer_serving_other_metadata_is_dropped_and_an_honest_one_completes() {
    let data = pseudo_random(5 * 16 * 1024, 28);
    let (mi, seed_dir) = single_file_torrent("honest", &data, 16 * 1024);
    let fake = fake_peer(deep_info(10_000));
    let seeder = session_with(|c| c.encryption = Encryption::Off);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    // The fake peer first; the honest seeder is known only later.
    let leecher = session_with(|c| c.encryption = Encryption::Off);
    let link = format!(
        "magnet:?xt=urn:btih:{}&dn=honest&x.pe={}",
        mi.info_hash, fake.addr
    );
    let dir = temp_dir("honest-magnet");
    leecher
        .add(AddTorrent::magnet(Magnet::parse(&link).unwrap(), &dir))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || fake
            .served
            .load(Ordering::SeqCst)
            >= 1),
        "the leecher never fetched from the fake peer"
    );
    assert_eq!(
        leecher.status(&mi.info_hash).unwrap().phase,
        Phase::Metadata
    );
    // Then it learns of the honest seeder.
    leecher
        .add_peers(&mi.info_hash, vec![seeder.local_addr()])
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("honest")).unwrap(), data);
    leecher.shutdown();
    seeder.shutdown();
}
