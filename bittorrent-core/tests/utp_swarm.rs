//! uTP (BEP 29) between our own sessions, through the session's shared UDP port: a
//! multi-piece torrent moves over uTP only (`TransportPolicy::Utp` on both sides),
//! byte-identical, and both peer lists say `Utp`; a seeder serves one leecher over uTP and
//! one over TCP at once; `Both` (the default) connects over uTP to a peer that speaks it and
//! falls back to TCP when nothing answers uTP; and a transfer
//! through a relay that drops 3 % of the datagrams and reorders some completes; and a
//! storm of DHT queries and UDP tracker requests on the shared port does not starve uTP.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Metainfo, Phase, Session, Transport, TransportPolicy};
use harness::*;
#[path = "support/lossy_relay.rs"]
mod lossy_relay;
use lossy_relay::relay;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Wait for `phase`, noting the transports seen in `s`'s peer list on the way (with
/// whether the connection was dialled by `s`).
fn wait_noting(
    s: &Session,
    mi: &Metainfo,
    phase: Phase,
    timeout: Duration,
    seen: &mut Vec<(Transport, bool)>,
) {
    wait_all_noting(&[s], mi, phase, timeout, std::slice::from_mut(seen));
}

/// [`wait_noting`] for several sessions at once (`seen[i]` for `sessions[i]`).
fn wait_all_noting(
    sessions: &[&Session],
    mi: &Metainfo,
    phase: Phase,
    timeout: Duration,
    seen: &mut [Vec<(Transport, bool)>],
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let mut done = true;
        for (s, seen) in sessions.iter().zip(seen.iter_mut()) {
            for p in s
                .peers(&mi.info_hash, Duration::from_secs(2))
                .unwrap_or_default()
            {
                if !seen.contains(&(p.transport, p.outgoing)) {
                    seen.push((p.transport, p.outgoing));
                }
            }
            done &= s.status(&mi.info_hash).is_some_and(|st| st.phase == phase);
        }
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {phase:?}");
}

#[test]
fn a_multi_piece_torrent_over_utp_only() {
    let data = pseudo_random(6 * 1024 * 1024 + 1234, 25);
    let (mi, seed_dir) = single_file_torrent("utp-only", &data, 64 * 1024);
    let seeder = session_with(|c| c.transport = TransportPolicy::Utp);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let dir = temp_dir("utp-only-leech");
    let leecher = session_with(|c| c.transport = TransportPolicy::Utp);
    let t0 = Instant::now();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr()]))
        .unwrap();
    let mut seen = Vec::new();
    wait_noting(
        &leecher,
        &mi,
        Phase::Seeding,
        Duration::from_secs(120),
        &mut seen,
    );
    eprintln!("utp only: {} bytes in {:?}", data.len(), t0.elapsed());
    assert_eq!(std::fs::read(dir.join("utp-only")).unwrap(), data);
    assert!(seen.iter().all(|(t, _)| *t == Transport::Utp), "{seen:?}");
    assert!(!seen.is_empty());
}

#[test]
fn one_leecher_over_utp_and_one_over_tcp_from_one_seeder() {
    let data = pseudo_random(3 * 1024 * 1024 + 99, 26);
    let (mi, seed_dir) = single_file_torrent("utp-mixed", &data, 32 * 1024);
    // The seeder dials nobody; it accepts both transports. Its upload limit makes the
    // transfers last long enough for the peer lists to be seen.
    let seeder = session_with(|c| c.max_upload_rate = 2 << 20);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let (dir_u, dir_t) = (temp_dir("utp-mixed-u"), temp_dir("utp-mixed-t"));
    let over_utp = session_with(|c| c.transport = TransportPolicy::Utp);
    let over_tcp = session_with(|c| c.transport = TransportPolicy::Tcp);
    for (s, d) in [(&over_utp, &dir_u), (&over_tcp, &dir_t)] {
        s.add(AddTorrent::new(mi.clone(), d).peers(vec![seeder.local_addr()]))
            .unwrap();
    }
    let mut seen = [Vec::new(), Vec::new(), Vec::new()];
    wait_all_noting(
        &[&over_utp, &over_tcp, &seeder],
        &mi,
        Phase::Seeding,
        Duration::from_secs(120),
        &mut seen,
    );
    let [seen_u, seen_t, seen_s] = seen;
    assert_eq!(std::fs::read(dir_u.join("utp-mixed")).unwrap(), data);
    assert_eq!(std::fs::read(dir_t.join("utp-mixed")).unwrap(), data);
    // Each leecher dials by its own policy (the seeder, and maybe the other leecher, which
    // may dial it back by its own).
    let dialled = |seen: &[(Transport, bool)], t| seen.iter().any(|&(x, out)| out && x == t);
    assert!(dialled(&seen_u, Transport::Utp), "{seen_u:?}");
    assert!(!dialled(&seen_u, Transport::Tcp), "{seen_u:?}");
    assert!(dialled(&seen_t, Transport::Tcp), "{seen_t:?}");
    assert!(!dialled(&seen_t, Transport::Utp), "{seen_t:?}");
    let has = |t| seen_s.iter().any(|&(x, out)| !out && x == t);
    assert!(
        has(Transport::Tcp) && has(Transport::Utp),
        "the seeder's peers: {seen_s:?}"
    );
}

#[test]
fn both_falls_back_to_tcp_when_utp_goes_unanswered() {
    let data = pseudo_random(1024 * 1024 + 5, 27);
    let (mi, seed_dir) = single_file_torrent("utp-fallback", &data, 32 * 1024);
    // No DHT, no tracker, policy tcp: the seeder opens no UDP port at all.
    let seeder = session_with(|c| {
        c.dht = false;
        c.enable_tracker = false;
        c.transport = TransportPolicy::Tcp;
        c.max_upload_rate = 1 << 20;
    });
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let dir = temp_dir("utp-fallback-leech");
    let leecher = session_with(|c| c.transport = TransportPolicy::Both);
    let t0 = Instant::now();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr()]))
        .unwrap();
    let mut seen = Vec::new();
    wait_noting(
        &leecher,
        &mi,
        Phase::Seeding,
        Duration::from_secs(60),
        &mut seen,
    );
    assert_eq!(std::fs::read(dir.join("utp-fallback")).unwrap(), data);
    assert_eq!(seen, vec![(Transport::Tcp, true)]);
    eprintln!("both -> tcp fallback: done in {:?}", t0.elapsed());
}

/// The default policy (`both`) on both sides: the connection is made over uTP.
#[test]
fn the_default_both_prefers_utp() {
    let data = pseudo_random(1024 * 1024 + 3, 29);
    let (mi, seed_dir) = single_file_torrent("utp-default", &data, 32 * 1024);
    // The upload limit keeps the transfer long enough for the peer list to be seen.
    let seeder = session_with(|c| c.max_upload_rate = 1 << 20);
    assert_eq!(
        bittorrent_core::Config::default().transport,
        TransportPolicy::Both
    );
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let dir = temp_dir("utp-default-leech");
    let leecher = session_with(|_| {});
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr()]))
        .unwrap();
    let mut seen = Vec::new();
    wait_noting(
        &leecher,
        &mi,
        Phase::Seeding,
        Duration::from_secs(60),
        &mut seen,
    );
    assert_eq!(std::fs::read(dir.join("utp-default")).unwrap(), data);
    assert_eq!(seen, vec![(Transport::Utp, true)]);
}

#[test]
fn utp_through_a_relay_dropping_3_percent() {
    let data = pseudo_random(2 * 1024 * 1024 + 17, 28);
    let (mi, seed_dir) = single_file_torrent("utp-lossy", &data, 32 * 1024);
    let seeder = session_with(|c| c.transport = TransportPolicy::Utp);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let (via, stop, dropped) = relay(seeder.local_addr(), 30, 11);
    let dir = temp_dir("utp-lossy-leech");
    let leecher = session_with(|c| c.transport = TransportPolicy::Utp);
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![via]))
        .unwrap();
    let mut seen = Vec::new();
    wait_noting(
        &leecher,
        &mi,
        Phase::Seeding,
        Duration::from_secs(120),
        &mut seen,
    );
    stop.store(true, Ordering::Relaxed);
    assert_eq!(std::fs::read(dir.join("utp-lossy")).unwrap(), data);
    assert_eq!(seen, vec![(Transport::Utp, true)]);
    assert!(
        dropped.load(Ordering::Relaxed) > 0,
        "the relay dropped nothing"
    );
}

/// A storm of DHT queries and UDP tracker connect requests on the seeder's shared UDP port
/// (from 4 sockets, as fast as they can send, until the download ends or 200,000
/// datagrams) while a leecher downloads over uTP only from that port: the transfer
/// completes byte-identical, and the storm really was delivered (the seeder's DHT saw
/// queries, or the flooders were answered).
#[test]
fn a_dht_and_tracker_storm_on_the_shared_port_does_not_starve_utp() {
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Arc;

    let data = pseudo_random(4 * 1024 * 1024 + 77, 29);
    let (mi, seed_dir) = single_file_torrent("utp-storm", &data, 64 * 1024);
    let seeder = session_with(|c| c.transport = TransportPolicy::Utp);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    let target = seeder.local_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..4u8)
        .map(|i| {
            let (stop, sent, answered) = (stop.clone(), sent.clone(), answered.clone());
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.set_nonblocking(true).unwrap();
                let mut ping = b"d1:ad2:id20:".to_vec();
                ping.extend_from_slice(&[b'a' + i; 20]);
                ping.extend_from_slice(b"e1:q4:ping1:t2:xx1:y1:qe");
                let mut connect = 0x41727101980u64.to_be_bytes().to_vec();
                connect.extend_from_slice(&0u32.to_be_bytes());
                connect.extend_from_slice(&[i, 1, 2, 3]);
                let mut buf = [0u8; 1500];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 50_000 {
                    let msg: &[u8] = if n % 2 == 0 { &ping } else { &connect };
                    if sock.send_to(msg, target).is_ok() {
                        n += 1;
                    }
                    while sock.recv_from(&mut buf).is_ok() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    if n % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
                sent.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();

    let dir = temp_dir("utp-storm-leech");
    let leecher = session_with(|c| c.transport = TransportPolicy::Utp);
    let t0 = Instant::now();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![target]))
        .unwrap();
    let mut seen = Vec::new();
    wait_noting(
        &leecher,
        &mi,
        Phase::Seeding,
        Duration::from_secs(180),
        &mut seen,
    );
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let (sent, answered) = (
        sent.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
    );
    eprintln!(
        "utp under a storm: {} bytes in {:?}; {sent} storm datagrams sent, {answered} answered",
        data.len(),
        t0.elapsed()
    );
    assert_eq!(std::fs::read(dir.join("utp-storm")).unwrap(), data);
    assert!(seen.iter().all(|(t, _)| *t == Transport::Utp), "{seen:?}");
    assert!(!seen.is_empty());
    assert!(sent >= 1_000, "the storm never ran: {sent} datagrams");
    assert!(
        answered > 0,
        "the storm never reached the shared port's DHT or tracker"
    );
}
