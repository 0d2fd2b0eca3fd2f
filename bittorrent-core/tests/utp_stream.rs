//! uTP (BEP 29) over real UDP sockets on 127.0.0.1: a few MiB through a `UtpStream` pair,
//! byte-identical, directly and through relays that drop 1 % and 5 % of the datagrams both
//! ways and reorder some (issue 25's loss cases). This tests the transport alone, on
//! endpoints with sockets of their own; `utp_swarm.rs` tests it inside sessions.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use bittorrent_core::utp::UtpSocket;
#[path = "support/lossy_relay.rs"]
mod lossy_relay;
use lossy_relay::relay;

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

#[test]
fn two_mib_through_a_relay_dropping_5_percent_and_reordering() {
    through_a_lossy_relay(50, 7);
}

#[test]
fn two_mib_through_a_relay_dropping_1_percent_and_reordering() {
    through_a_lossy_relay(10, 13);
}

/// 2 MiB through a relay dropping `per_mille` of the datagrams both ways and delaying
/// every `reorder_every`-th behind the next: byte-identical.
fn through_a_lossy_relay(per_mille: u64, reorder_every: u64) {
    let payload = data(2 << 20);
    let a = UtpSocket::bind(lo()).unwrap();
    let b = UtpSocket::bind(lo()).unwrap();
    let (via, stop, dropped) = relay(b.local_addr(), per_mille, reorder_every);
    let (got, took) = transfer(&payload, &a, &b, via);
    stop.store(true, Ordering::Relaxed);
    assert!(
        dropped.load(Ordering::Relaxed) > 0,
        "the relay dropped nothing"
    );
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "bytes differ");
    eprintln!(
        "utp via a relay dropping {per_mille}/1000: {} bytes in {took:?}, {} datagrams dropped",
        got.len(),
        dropped.load(Ordering::Relaxed)
    );
}

/// Whether `s`'s file descriptor is readable now (what a peer thread's `poll` sees).
fn readable(s: &bittorrent_core::utp::UtpStream) -> bool {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        s.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap() > 0
}

/// Wait up to 5 s for `s` to turn readable.
fn wait_readable(s: &bittorrent_core::utp::UtpStream) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !readable(s) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    readable(s)
}

/// The receive low-water mark (issue 31): the stream's descriptor turns readable once the
/// mark is buffered, not for the first datagram; a read still returns what is there; a
/// mark lowered below what is buffered, and the end of the stream, make it readable at once.
#[test]
fn the_descriptor_waits_for_the_low_water_mark() {
    let a = UtpSocket::bind(lo()).unwrap();
    let b = UtpSocket::bind(lo()).unwrap();
    let mut s = a.connect(b.local_addr(), Duration::from_secs(5)).unwrap();
    let mut r = b.accept(Duration::from_secs(5)).unwrap();
    r.set_read_timeout(Some(Duration::from_secs(5)));
    r.set_recv_lowat(20_000);
    s.write_all(&data(5_000)).unwrap();
    // The 5,000 bytes arrive (a blocking read would take them) but stay below the mark.
    thread::sleep(Duration::from_millis(300));
    assert!(!readable(&r), "readable below the mark");
    s.write_all(&data(15_000)).unwrap();
    assert!(wait_readable(&r), "not readable at the mark");
    let mut got = vec![0u8; 20_000];
    r.read_exact(&mut got).unwrap();
    assert!(!readable(&r), "readable with nothing buffered");
    // A few bytes, then the mark lowered under them: readable at once.
    s.write_all(b"have").unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(!readable(&r));
    r.set_recv_lowat(1);
    assert!(readable(&r), "a lowered mark does not signal");
    let mut buf = [0u8; 4];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"have");
    // The end of the stream is readable whatever the mark.
    r.set_recv_lowat(1 << 18);
    drop(s);
    assert!(wait_readable(&r), "the FIN is not readable under a mark");
    assert_eq!(r.read(&mut buf).unwrap(), 0);
}
