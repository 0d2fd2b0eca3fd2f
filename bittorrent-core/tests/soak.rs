//! Soak: 200 connections exchanging data with one seeder for a while
//! (`SOAK_SECS`, default 120): its thread count and RSS stay flat, and when
//! the connections close, threads and file descriptors return to where they
//! were (no leaks).
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::wire::{BlockRef, FrameDecoder, Handshake, Message, MAX_FRAME};
use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 200;

fn status_field(name: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn threads() -> u64 {
    status_field("Threads:")
}
fn rss_kib() -> u64 {
    status_field("VmRSS:")
}
fn fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// One client, connecting again (at most 10 times) while the seeder closes
/// it before its handshake: 200 connections opened at once overflow the
/// listen backlog and the per-IP handshake limit now and then.
fn client_retrying(
    addr: SocketAddr,
    ih: [u8; 20],
    pieces: u32,
    stop: &AtomicBool,
    got: &AtomicU64,
    seed: u64,
) {
    for _ in 0..10 {
        if client(addr, ih, pieces, stop, got, seed) || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One client: requests blocks 16 at a time and reads the pieces back.
/// Returns whether the seeder's handshake arrived.
fn client(
    addr: SocketAddr,
    ih: [u8; 20],
    pieces: u32,
    stop: &AtomicBool,
    got: &AtomicU64,
    seed: u64,
) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut id = *b"-SK0001-000000000000";
    id[8..16].copy_from_slice(format!("{seed:08}").as_bytes());
    if s.write_all(&Handshake::new(ih, id).encode()).is_err() {
        return false;
    }
    let mut out = Vec::new();
    Message::Interested.encode(&mut out);
    let _ = s.write_all(&out);
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut buf = vec![0u8; 65536];
    let mut hs_left = 68usize;
    let mut unchoked = false;
    let mut outstanding = 0u32;
    let mut x = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        if unchoked && outstanding == 0 {
            let mut out = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 16 distinct pieces (a duplicate request may be answered once).
            let start = (x % u64::from(pieces)) as u32;
            for k in 0..16 {
                let index = (start + k) % pieces;
                Message::Request(BlockRef {
                    index,
                    begin: 0,
                    length: 16384,
                })
                .encode(&mut out);
            }
            if s.write_all(&out).is_err() {
                return true;
            }
            outstanding = 16;
        }
        match s.read(&mut buf) {
            Ok(0) => return hs_left == 0,
            Ok(n) => {
                let skip = hs_left.min(n);
                hs_left -= skip;
                dec.feed(&buf[skip..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return hs_left == 0,
        }
        while let Ok(Some(m)) = dec.next_message() {
            if std::env::var("SOAK_DEBUG").is_ok() {
                let name = format!("{m:?}");
                eprintln!(
                    "client got {}",
                    name.split(['(', ' ', '{']).next().unwrap_or("")
                );
            }
            match m {
                Message::Unchoke => unchoked = true,
                Message::Choke => unchoked = false,
                Message::Piece { data, .. } => {
                    got.fetch_add(data.len() as u64, Ordering::Relaxed);
                    outstanding = outstanding.saturating_sub(1);
                }
                Message::Reject(_) => outstanding = outstanding.saturating_sub(1),
                _ => {}
            }
        }
    }
    true
}

#[test]
fn two_hundred_connections_stay_flat() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let data = pseudo_random(8 * 1024 * 1024, 50);
    let (mi, seed_dir) = single_file_torrent("soak", &data, 16 * 1024);
    let seeder = session_with(|c| {
        c.max_peers_per_torrent = 250;
        c.max_connections = 300;
        c.upload_slots = 250;
    });
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let (t0, f0) = (threads(), fds());

    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicU64::new(0));
    let addr = seeder.local_addr_v4();
    let ih = mi.info_hash.0;
    let pieces = mi.info.pieces.len() as u32;
    let clients: Vec<_> = (0..CONNECTIONS as u64)
        .map(|i| {
            let (stop, got) = (stop.clone(), got.clone());
            std::thread::spawn(move || client_retrying(addr, ih, pieces, &stop, &got, i + 1))
        })
        .collect();
    assert!(wait_until(Duration::from_secs(30), || {
        seeder
            .status(&mi.info_hash)
            .is_some_and(|s| s.peers >= CONNECTIONS - 5)
    }));
    // Warm-up, then the steady state is measured.
    std::thread::sleep(Duration::from_secs(secs.min(10)));
    let (t1, r1, f1, g1) = (threads(), rss_kib(), fds(), got.load(Ordering::Relaxed));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut peak_rss = r1;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(rss_kib());
        assert!(
            threads() <= t1 + 10,
            "threads grew: {} -> {}",
            t1,
            threads()
        );
    }
    let (t2, r2, f2, g2) = (threads(), rss_kib(), fds(), got.load(Ordering::Relaxed));
    eprintln!(
        "soak: {CONNECTIONS} connections, {secs} s: threads {t0} -> {t1} -> {t2}, \
         RSS {r1} -> {r2} KiB (peak {peak_rss}), fds {f0} -> {f1} -> {f2}, \
         {} MiB served in the steady state",
        (g2 - g1) / (1024 * 1024)
    );
    assert!(g2 > g1, "no data moved during the soak");
    assert!(t2 <= t1 + 10, "threads not flat: {t1} -> {t2}");
    assert!(f2 <= f1 + 10, "descriptors not flat: {f1} -> {f2}");
    assert!(
        peak_rss <= r1 + r1 / 2 + 32 * 1024,
        "RSS not flat: {r1} -> peak {peak_rss} KiB"
    );

    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    // Every peer thread and socket of the seeder goes away.
    assert!(
        wait_until(Duration::from_secs(30), || threads() <= t0 + 2
            && fds() <= f0 + 2),
        "leak after close: threads {t0} -> {}, fds {f0} -> {}",
        threads(),
        fds()
    );
    assert!(wait_until(Duration::from_secs(10), || {
        seeder.status(&mi.info_hash).is_some_and(|s| s.peers == 0)
    }));
}
