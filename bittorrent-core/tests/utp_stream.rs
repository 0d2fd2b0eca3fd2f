//! uTP (BEP 29) over real UDP sockets on 127.0.0.1: a few MiB through a `UtpStream` pair,
//! byte-identical, directly and through a relay that drops and reorders datagrams. The
//! endpoint is not yet wired into the session (issue 25); this tests the transport alone.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bittorrent_core::utp::UtpSocket;

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn data(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Send `payload` from a stream dialled to `target` (through `via` when given) to the
/// stream `b` accepts; the bytes received and the wall time.
fn transfer(payload: &[u8], a: &UtpSocket, b: &UtpSocket, dial: SocketAddr) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    let mut s = a.connect(dial, Duration::from_secs(5)).unwrap();
    let mut r = b.accept(Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30)));
    r.set_read_timeout(Some(Duration::from_secs(30)));
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    });
    s.write_all(payload).unwrap();
    drop(s); // FIN after the last byte
    let got = reader.join().unwrap();
    let took = t0.elapsed();
    // Both streams are gone: both endpoints forget the connection (FIN ACKed, or the
    // peer's late FIN answered with a RESET), not after the 60 s idle timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (a.connections(), b.connections()) != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "connections left: {} and {}",
            a.connections(),
            b.connections()
        );
        thread::sleep(Duration::from_millis(20));
    }
    (got, took)
}

#[test]
fn four_mib_on_loopback_arrive_byte_identical() {
    let payload = data(4 << 20);
    let a = UtpSocket::bind(lo()).unwrap();
    let b = UtpSocket::bind(lo()).unwrap();
    let (got, took) = transfer(&payload, &a, &b, b.local_addr());
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "bytes differ");
    eprintln!("utp loopback: {} bytes in {took:?}", got.len());
}

/// A relay between a client and `server`: drops `drop_per_mille` of the datagrams (both
/// ways) and delays every `reorder_every`-th one behind the next.
fn relay(
    server: SocketAddr,
    drop_per_mille: u64,
    reorder_every: u64,
) -> (SocketAddr, Arc<AtomicBool>, Arc<AtomicU64>) {
    let sock = UdpSocket::bind(lo()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let (st, dr) = (Arc::clone(&stop), Arc::clone(&dropped));
    thread::spawn(move || {
        let mut client: Option<SocketAddr> = None;
        let mut buf = vec![0u8; 65_536];
        let mut held: Option<(Vec<u8>, SocketAddr)> = None;
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut n = 0u64;
        while !st.load(Ordering::Relaxed) {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                if let Some((d, to)) = held.take() {
                    let _ = sock.send_to(&d, to);
                }
                continue;
            };
            let to = if from == server {
                match client {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                client = Some(from);
                server
            };
            n += 1;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng % 1000 < drop_per_mille {
                dr.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let d = buf[..len].to_vec();
            if reorder_every > 0 && n % reorder_every == 0 && held.is_none() {
                held = Some((d, to));
                continue;
            }
            let _ = sock.send_to(&d, to);
            if let Some((h, hto)) = held.take() {
                let _ = sock.send_to(&h, hto);
            }
        }
    });
    (addr, stop, dropped)
}

#[test]
fn two_mib_through_a_relay_dropping_5_percent_and_reordering() {
    let payload = data(2 << 20);
    let a = UtpSocket::bind(lo()).unwrap();
    let b = UtpSocket::bind(lo()).unwrap();
    let (via, stop, dropped) = relay(b.local_addr(), 50, 7);
    let (got, took) = transfer(&payload, &a, &b, via);
    stop.store(true, Ordering::Relaxed);
    assert!(
        dropped.load(Ordering::Relaxed) > 0,
        "the relay dropped nothing"
    );
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "bytes differ");
    eprintln!(
        "utp via lossy relay: {} bytes in {took:?}, {} datagrams dropped",
        got.len(),
        dropped.load(Ordering::Relaxed)
    );
}
