#![allow(clippy::unwrap_used)]
//! Sniffing, and both sides of the handshake over loopback sockets in every
//! policy combination, with silent, short and flooding peers. The pure
//! machines' tests are in `proto/mse/tests.rs`.

use super::*;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn skey() -> [u8; 20] {
    let mut k = [0u8; 20];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8;
    }
    k
}

fn lookup_for(ihs: Vec<[u8; 20]>) -> impl FnMut(&[u8; 20]) -> Option<[u8; 20]> {
    move |h| ihs.iter().find(|ih| req2_hash(ih) == *h).copied()
}
#[test]
fn sniffing() {
    assert_eq!(
        sniff(b"\x13BitTorrent protocol\0\0", true),
        Sniffed::BitTorrent
    );
    assert_eq!(sniff(b"\x13BitTorrent", true), Sniffed::NeedMore);
    assert_eq!(sniff(b"\x13BitTorrenX", true), Sniffed::Mse);
    assert_eq!(sniff(b"GET /announce", true), Sniffed::Http);
    assert_eq!(sniff(b"GE", true), Sniffed::NeedMore);
    assert_eq!(sniff(b"GET /announce", false), Sniffed::Mse);
    assert_eq!(sniff(b"HEAD ", true), Sniffed::Http);
    assert_eq!(sniff(b"GEX", true), Sniffed::Mse);
    assert_eq!(sniff(&[0x9a; 96], true), Sniffed::Mse);
}

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

/// Send `data` through `s` with partial writes and a short write timeout,
/// as the peer thread does.
fn pump_out(s: &mut PeerStream, data: &[u8]) {
    s.set_write_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent < data.len() || s.has_pending() {
        assert!(Instant::now() < deadline, "stuck writing");
        if sent < data.len() {
            match s.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("{e}"),
            }
        } else {
            match s.push_pending() {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
}

fn pump_in(s: &mut PeerStream, mut got: Vec<u8>, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 8192];
    while got.len() < n {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "closed early");
        got.extend_from_slice(&buf[..k]);
    }
    got
}

#[test]
fn every_policy_combination_over_loopback() {
    use Encryption::*;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    for (ours, theirs, encrypted) in [
        (Prefer, Prefer, false),
        (Prefer, Require, true),
        (Require, Prefer, true),
        (Require, Require, true),
    ] {
        let (a, b) = pair();
        let deadline = Instant::now() + Duration::from_secs(10);
        let d2 = data.clone();
        let responder = std::thread::spawn(move || {
            let mut look = lookup_for(vec![[1; 20], skey()]);
            let (mut s, ih, payload) =
                respond(b, &[], theirs.methods(), &mut look, deadline).unwrap();
            assert_eq!(ih, skey());
            let got = pump_in(&mut s, payload, 5 + d2.len());
            assert_eq!(&got[..5], b"hello");
            assert!(got[5..] == d2[..], "responder got other bytes");
            pump_out(&mut s, b"world");
            pump_out(&mut s, &d2);
            s.is_encrypted()
        });
        let (mut s, payload) = initiate(a, skey(), ours.methods(), b"hello", deadline).unwrap();
        assert_eq!(s.is_encrypted(), encrypted, "{ours} -> {theirs}");
        pump_out(&mut s, &data);
        let got = pump_in(&mut s, payload, 5 + data.len());
        assert_eq!(&got[..5], b"world");
        assert!(got[5..] == data[..], "initiator got other bytes");
        assert_eq!(responder.join().unwrap(), encrypted);
    }
}

#[test]
fn short_and_silent_peers_time_out_or_close() {
    // Silent initiator: the responder gives up at its deadline.
    let (a, b) = pair();
    let t = Instant::now();
    let mut look = lookup_for(vec![skey()]);
    let r = respond(
        b,
        &[],
        3,
        &mut look,
        Instant::now() + Duration::from_millis(300),
    );
    assert_eq!(r.unwrap_err(), MseError::Timeout);
    assert!(t.elapsed() < Duration::from_secs(3));
    drop(a);

    // 50 bytes, then closed.
    let (mut a, b) = pair();
    a.write_all(&[0x55; 50]).unwrap();
    drop(a);
    let r = respond(
        b,
        &[],
        3,
        &mut look,
        Instant::now() + Duration::from_secs(5),
    );
    assert_eq!(r.unwrap_err(), MseError::Closed);

    // A plaintext-only peer closes on our Ya: the initiator sees it at once.
    let (a, mut b) = pair();
    let closer = std::thread::spawn(move || {
        let mut x = [0u8; 20];
        let _ = b.read(&mut x);
    });
    let r = initiate(a, skey(), 3, b"hi", Instant::now() + Duration::from_secs(5));
    assert!(matches!(r.unwrap_err(), MseError::Closed | MseError::Io(_)));
    closer.join().unwrap();

    // A responder flooding garbage after its key: refused within the window.
    let (a, mut b) = pair();
    let flood = std::thread::spawn(move || {
        let mut x = [0u8; 700];
        let _ = b.read(&mut x);
        let _ = b.write_all(&[0x42; 64 * 1024]);
    });
    let r = initiate(a, skey(), 3, b"hi", Instant::now() + Duration::from_secs(5));
    assert!(matches!(
        r.unwrap_err(),
        MseError::SyncNotFound("VC") | MseError::BadPublicKey
    ));
    flood.join().unwrap();
}
