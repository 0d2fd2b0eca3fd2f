//! Request abusers: requests no piece can answer, oversized requests,
//! floods past the queue, and full queues that are never read.

use crate::harness::*;
use crate::support::*;
use bittorrent_core::proto::wire::Message;
use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

/// A request that no piece can answer is rejected (BEP 6), not fatal:
/// libtorrent answers invalid requests with a reject and keeps the peer, so
/// do we; the connection goes on serving valid requests.
#[test]
fn request_beyond_piece_end_is_rejected() {
    let _g = serial();
    let sd = seed("h-reqend");
    let before = threads();
    let last_len = (LEN % PIECE as usize) as u32; // 777 bytes in piece 32
    let bad = [
        req(0, 32 * 1024 - 100, 16 * 1024),
        req(0, 32 * 1024, 1),
        req(32, 0, last_len + 1),
        req(32, last_len, 1),
        req(33, 0, 16 * 1024),
        req(u32::MAX, u32::MAX, 16 * 1024),
    ];
    let mut a = attacker(sd.addr(), sd.ih());
    a.send(&Message::Interested).unwrap();
    assert!(wait_for(&mut a, |m| *m == Message::Unchoke));
    for m in bad {
        let Message::Request(b) = m else {
            unreachable!()
        };
        a.send(&m).unwrap();
        assert!(
            wait_for(&mut a, |x| *x == Message::Reject(b)),
            "no reject for {b:?}"
        );
    }
    a.send(&req(32, 0, last_len)).unwrap();
    assert!(wait_for(&mut a, |m| matches!(
        m,
        Message::Piece { index: 32, .. }
    )));
    drop(a);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

/// BEP 3 says implementations close connections that request more than
/// 16 KiB; libtorrent rejects such a request instead, and so do we.
#[test]
fn request_of_32_kib_is_rejected() {
    let _g = serial();
    let sd = seed("h-req32");
    let before = threads();
    let mut a = attacker(sd.addr(), sd.ih());
    a.send(&Message::Interested).unwrap();
    assert!(wait_for(&mut a, |m| *m == Message::Unchoke));
    let big = req(0, 0, 32 * 1024);
    a.send(&big).unwrap();
    let Message::Request(b) = big else {
        unreachable!()
    };
    assert!(wait_for(&mut a, |m| *m == Message::Reject(b)));
    assert!(!a.disconnected(Duration::from_millis(300)));
    drop(a);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

/// Send `n` distinct, valid 16 KiB requests (unaligned offsets `first..`
/// in pieces 0..32) at once; count the answers until every request has one
/// or 20 s pass. Every served block is checked against the data.
fn flood(a: &mut Attacker, data: &[u8], n: u32, first: u32) -> (u32, u32, Vec<u32>) {
    let mut wire = Vec::new();
    for j in 0..n {
        req(j % 32, first + j / 32, 16 * 1024).encode(&mut wire);
    }
    a.raw(&wire).unwrap();
    let (mut pieces, mut rejects, mut indices) = (0u32, 0u32, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    while pieces + rejects < n && Instant::now() < deadline {
        match a.next(Duration::from_secs(3)) {
            Some(Message::Piece {
                index,
                begin,
                data: d,
            }) => {
                let off = (u64::from(index) * PIECE) as usize + begin as usize;
                assert_eq!(d, &data[off..off + d.len()], "block {index}/{begin}");
                pieces += 1;
                indices.push(index);
            }
            Some(Message::Reject(_)) => rejects += 1,
            Some(_) => {}
            None => break,
        }
    }
    (pieces, rejects, indices)
}

/// 5,000 requests at once. The queue holds at most `max_upload_queue` (500
/// here; 4,096 by default, see the next test) requests; BEP 6 says every
/// request gets exactly one answer, so the excess is rejected, not queued
/// and not dropped. The connection stays up: flooding the queue is refused,
/// not a protocol error.
#[test]
fn five_thousand_requests_are_capped_and_rejected() {
    let _g = serial();
    let sd = seed_with("h-flood", LEN, |c| c.peer_limits.max_upload_queue = 500);
    let before = threads();
    let rss_before = rss_kib();
    let mut a = attacker(sd.addr(), sd.ih());
    assert!(!a.allowed_fast.is_empty());
    // Choked (never interested): only allowed-fast pieces are served.
    let (pieces, rejects, idx) = flood(&mut a, &sd.data, 5000, 0);
    assert_eq!(
        pieces + rejects,
        5000,
        "choked: {pieces} pieces, {rejects} rejects"
    );
    assert!(
        idx.iter().all(|i| a.allowed_fast.contains(i)),
        "served a piece outside the allowed-fast set while choking"
    );
    // Requests outside the allowed-fast set are all rejected; of the others
    // at most the queue's worth (500) plus what drained meanwhile is served.
    let outside = (0..5000u32)
        .filter(|j| !a.allowed_fast.contains(&(j % 32)))
        .count() as u32;
    assert!(rejects >= outside, "choked: {rejects} rejects < {outside}");
    assert!(pieces <= 1500, "choked: {pieces} served");
    // Unchoked: at most the queue's worth (plus what drained meanwhile).
    a.send(&Message::Interested).unwrap();
    assert!(wait_for(&mut a, |m| *m == Message::Unchoke));
    let (pieces, rejects, _) = flood(&mut a, &sd.data, 5000, 200);
    assert_eq!(
        pieces + rejects,
        5000,
        "unchoked: {pieces} pieces, {rejects} rejects"
    );
    assert!(
        (1..=1500).contains(&pieces),
        "unchoked: {pieces} served of 5000 (cap 500)"
    );
    assert!(!a.disconnected(Duration::from_millis(300)));
    drop(a);
    let grew = rss_kib().saturating_sub(rss_before);
    assert!(grew < 128 * 1024, "RSS grew by {grew} KiB");
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

/// The default queue is deep enough for a 1 Gbit/s peer 300 ms away (we
/// advertise `reqq` 4,096, 64 MiB of blocks), yet a peer that fills it and
/// never reads pins only the requests and one output burst: the data is read
/// as the socket drains, so the seeder's memory grows by a few MiB, not by
/// the 64 MiB it was asked for. Once the peer reads, every request gets its
/// one answer (a block, checked, or a reject past the queue).
#[test]
fn a_full_deep_queue_that_is_never_read_stays_bounded() {
    let _g = serial();
    // 8,000 distinct requests at unaligned offsets in pieces 0..32.
    let sd = seed_with("h-deepq", LEN, |c| {
        c.peer_limits.write_timeout = Duration::from_secs(30)
    });
    let before = threads();
    let mut a = attacker(sd.addr(), sd.ih());
    assert_eq!(a.reqq, Some(4096), "advertised reqq");
    a.send(&Message::Interested).unwrap();
    assert!(wait_for(&mut a, |m| *m == Message::Unchoke));
    let rss_before = rss_kib();
    const N: u32 = 8000;
    let mut wire = Vec::new();
    for j in 0..N {
        req(j % 32, j / 32, 16 * 1024).encode(&mut wire);
    }
    a.raw(&wire).unwrap();
    // Not reading for 3 s: the seeder has taken what its queue holds.
    let mut peak = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        peak = peak.max(rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    let grew = peak.saturating_sub(rss_before);
    eprintln!("RSS {rss_before} KiB before, {peak} KiB peak while not reading");
    assert!(
        grew < 16 * 1024,
        "RSS grew by {grew} KiB (queue of 64 MiB of blocks)"
    );
    // Now read: one answer per request, data checked.
    let (mut pieces, mut rejects) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(40);
    while pieces + rejects < N && Instant::now() < deadline {
        match a.next(Duration::from_secs(5)) {
            Some(Message::Piece { index, begin, data }) => {
                let off = (u64::from(index) * PIECE) as usize + begin as usize;
                assert_eq!(
                    data,
                    &sd.data[off..off + data.len()],
                    "block {index}/{begin}"
                );
                pieces += 1;
            }
            Some(Message::Reject(_)) => rejects += 1,
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(pieces + rejects, N, "{pieces} pieces, {rejects} rejects");
    assert!(pieces >= 4096, "the queue held only {pieces}");
    assert!(!a.disconnected(Duration::from_millis(300)));
    drop(a);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

/// A fast-extension peer that never reads but keeps sending requests while
/// its queue is full: every excess request is answered with a `reject`
/// appended to the output buffer, which cannot drain. Memory should stay
/// bounded (backpressure or a cap), not grow at the rate the peer writes
/// until the write timeout fires.
#[test]
fn rejects_to_a_peer_that_never_reads_stay_bounded() {
    let _g = serial();
    let sd = seed_with("h-rejamp", LEN, |c| {
        c.peer_limits.write_timeout = Duration::from_secs(8)
    });
    let before = threads();
    let rss_before = rss_kib();
    let mut a = attacker(sd.addr(), sd.ih());
    a.send(&Message::Interested).unwrap();
    assert!(wait_for(&mut a, |m| *m == Message::Unchoke));
    let mut s = a.s.try_clone().unwrap();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let flooder = std::thread::spawn(move || {
        let mut wire = Vec::new();
        for j in 0..60_000u32 {
            req(j % 32, j / 32, 16 * 1024).encode(&mut wire);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(6) {
            match s.write_all(&wire) {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    });
    let mut peak = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        peak = peak.max(rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    flooder.join().unwrap();
    // Still not reading: the write timeout drops it.
    assert!(wait_until(Duration::from_secs(15), || sd.peers() == 0));
    eprintln!("RSS {rss_before} KiB before, {peak} KiB peak");
    drop(a);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
    let grew = peak.saturating_sub(rss_before);
    assert!(grew < 16 * 1024, "RSS grew by {grew} KiB in 6 s");
}
