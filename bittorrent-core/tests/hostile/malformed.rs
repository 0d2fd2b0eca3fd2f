//! Malformed remotes: a wrong info-hash, a 2 GiB frame, bad bitfields, a
//! `have` out of range, garbage after the handshake.

use crate::harness::*;
use crate::support::*;
use bittorrent_core::proto::wire::{Handshake, Message};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn wrong_info_hash_gets_no_handshake() {
    let _g = serial();
    let sd = seed("h-ih");
    let before = threads();
    let mut s = TcpStream::connect(sd.addr()).unwrap();
    let mut other = sd.ih();
    other[0] ^= 0xff;
    s.write_all(&Handshake::new(other, peer_id(9)).encode())
        .unwrap();
    // The seeder closes without sending a single byte of its handshake.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 68];
    let got = match s.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("seeder neither answered nor closed: {e}"),
    };
    assert_eq!(got, 0, "seeder sent its handshake for an unknown torrent");
    drop(s);
    assert_eq!(sd.peers(), 0);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

#[test]
fn length_prefix_of_2_pow_31_disconnects() {
    let _g = serial();
    let sd = seed("h-len");
    let before = threads();
    let mut a = attacker(sd.addr(), sd.ih());
    // A 2 GiB frame announced; a few bytes of it follow.
    a.raw(&[0x80, 0, 0, 0, 7, 0, 0, 0, 0]).unwrap();
    assert!(a.disconnected(Duration::from_secs(5)));
    drop(a);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

#[test]
fn bitfield_of_wrong_length_disconnects() {
    let _g = serial();
    let sd = seed("h-bflen");
    let before = threads();
    for wrong in [4usize, 6, 1000] {
        // 33 pieces need 5 bytes.
        let mut a = attacker(sd.addr(), sd.ih());
        a.send(&Message::Bitfield(vec![0; wrong])).unwrap();
        assert!(a.disconnected(Duration::from_secs(5)), "{wrong} bytes");
    }
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

/// Spare bits past the last piece are ignored, as libtorrent and
/// Transmission do (BEP 3 allows closing; nobody mainstream does).
#[test]
fn bitfield_with_spare_bits_is_tolerated() {
    let _g = serial();
    let sd = seed("h-bfspare");
    assert_eq!(sd.mi.info.pieces.len(), 33);
    let before = threads();
    // Piece 33 of 33 (index 33) is a spare bit: bit 0x40 of the last byte.
    let mut a = attacker(sd.addr(), sd.ih());
    a.send(&Message::Bitfield(vec![0, 0, 0, 0, 0x40])).unwrap();
    a.send(&Message::Interested).unwrap();
    // Still a peer we serve: it is unchoked and gets a block.
    assert!(wait_for(&mut a, |m| *m == Message::Unchoke));
    a.send(&req(0, 0, 16 * 1024)).unwrap();
    assert!(wait_for(&mut a, |m| matches!(m, Message::Piece { .. })));
    drop(a);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

#[test]
fn have_out_of_range_disconnects() {
    let _g = serial();
    let sd = seed("h-have");
    let before = threads();
    for bad in [33u32, 34, u32::MAX] {
        let mut a = attacker(sd.addr(), sd.ih());
        a.send(&Message::HaveNone).unwrap();
        // Control: a valid have is fine.
        a.send(&Message::Have(32)).unwrap();
        assert!(!a.disconnected(Duration::from_millis(300)));
        a.send(&Message::Have(bad)).unwrap();
        assert!(a.disconnected(Duration::from_secs(5)), "have {bad}");
    }
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}

#[test]
fn garbage_after_handshake_disconnects() {
    let _g = serial();
    let sd = seed("h-garbage");
    let before = threads();
    for seed in 1..=3u64 {
        let mut a = attacker(sd.addr(), sd.ih());
        let _ = a.raw(&pseudo_random(64 * 1024, seed));
        assert!(a.disconnected(Duration::from_secs(5)), "seed {seed}");
    }
    // Garbage instead of a handshake (not 19, not an HTTP method).
    let mut s = TcpStream::connect(sd.addr()).unwrap();
    let mut junk = pseudo_random(4096, 9);
    junk[0] = 0xfe;
    let _ = s.write_all(&junk);
    assert!(is_disconnected(&mut s, Duration::from_secs(5)));
    drop(s);
    // A valid handshake followed by an unknown message id.
    let mut a = attacker(sd.addr(), sd.ih());
    a.raw(&[0, 0, 0, 1, 99]).unwrap();
    assert!(a.disconnected(Duration::from_secs(5)));
    drop(a);
    still_serves(&sd.s, &sd.mi, &sd.data);
    assert_threads_settle(before);
}
