//! Our external address as others report it (issue 21): a peer's `yourip`
//! in its extended handshake (BEP 10) and a tracker's `external ip`
//! (BEP 24) reach `Session::external_addresses`, one vote per peer address
//! or tracker URL, private addresses ignored. (The gateway's report is
//! tested against miniupnpd in `peer-cli/tests/port_map.rs`.)
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::extension::ExtHandshake;
use bittorrent_core::proto::wire::{Handshake, Message};
use bittorrent_core::{AddTorrent, ExternalSource, Phase, Session};
use harness::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const PIECE: u64 = 32 * 1024;

/// Connect to `addr`, exchange handshakes and send an extended handshake
/// saying `yourip`; keep the socket open a moment so it is read.
fn tell_yourip(addr: SocketAddr, info_hash: [u8; 20], yourip: &str) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // A new peer id per connection: a session refuses a second connection
    // from a peer id it still has (its Left may not be handled yet).
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut peer_id = *b"-XA0001-000000000000";
    peer_id[12..].copy_from_slice(format!("{n:08}").as_bytes());
    s.write_all(&Handshake::new(info_hash, peer_id).encode())
        .unwrap();
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).unwrap();
    let h = ExtHandshake {
        yourip: Some(yourip.parse().unwrap()),
        ..Default::default()
    };
    let mut out = Vec::new();
    Message::Extended {
        id: 0,
        payload: h.encode(),
    }
    .encode(&mut out);
    s.write_all(&out).unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

fn reported(s: &Session, ip: &str, source: ExternalSource) -> Option<u32> {
    let ip: IpAddr = ip.parse().unwrap();
    s.external_addresses()
        .into_iter()
        .find(|e| e.ip == ip && e.source == source)
        .map(|e| e.votes)
}

#[test]
fn a_peers_yourip_is_recorded_once_per_peer_address() {
    let data = pseudo_random(100_000, 7);
    let (mi, dir) = single_file_torrent("yourip", &data, PIECE);
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(20));
    assert!(s.external_addresses().is_empty());
    // A private address is no external address.
    tell_yourip(s.local_addr(), mi.info_hash.0, "10.1.2.3");
    tell_yourip(s.local_addr(), mi.info_hash.0, "84.124.73.14");
    assert!(
        wait_until(Duration::from_secs(10), || reported(
            &s,
            "84.124.73.14",
            ExternalSource::Peer
        )
        .is_some()),
        "{:?}",
        s.external_addresses()
    );
    assert_eq!(
        reported(&s, "10.1.2.3", ExternalSource::Peer),
        None,
        "{:?}",
        s.external_addresses()
    );
    // The same peer address again (a reconnect) is not a second vote.
    for _ in 0..3 {
        tell_yourip(s.local_addr(), mi.info_hash.0, "84.124.73.14");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        reported(&s, "84.124.73.14", ExternalSource::Peer),
        Some(1),
        "{:?}",
        s.external_addresses()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A one-shot HTTP tracker on loopback whose every answer says our
/// address is `ext` (4 bytes, BEP 24).
fn tracker_saying(ext: [u8; 4]) -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        let mut answered = 0;
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < end && answered < 2 {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let mut body = b"d11:external ip4:".to_vec();
            body.extend_from_slice(&ext);
            body.extend_from_slice(b"8:intervali1800e5:peers0:e");
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(&body);
            answered += 1;
        }
        answered
    });
    (addr, t)
}

#[test]
fn a_trackers_external_ip_is_recorded() {
    let data = pseudo_random(100_000, 8);
    let (mut mi, dir) = single_file_torrent("extip", &data, PIECE);
    let (tracker, t) = tracker_saying([84, 124, 73, 14]);
    mi.announce = Some(format!("http://{tracker}/announce"));
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || reported(
            &s,
            "84.124.73.14",
            ExternalSource::Tracker
        ) == Some(1)),
        "{:?}",
        s.external_addresses()
    );
    drop(s);
    assert!(t.join().unwrap() >= 1);
    let _ = std::fs::remove_dir_all(dir);
}
