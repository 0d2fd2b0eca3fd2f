//! BEP 55 hole punching (`ut_holepunch`) on loopback.
//!
//! - As the relay: a session connected to two scripted peers that advertise
//!   `ut_holepunch` answers one's `rendezvous` for the other with a `connect`
//!   to each side (each with the other's address); for an unknown target it
//!   answers `error` NotConnected (2), for a peer without the extension
//!   NoSupport (3), for its own address NoSelf (4). Malformed payloads and
//!   messages from a peer that did not advertise the extension are ignored
//!   (the connection stays up and no answer comes).
//! - As the initiator and target: two sessions that do not know each other
//!   (no tracker, no peer list), each sent `connect` with the other's address
//!   by a scripted relay, dial each other over uTP at once and the leecher
//!   completes over uTP.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::proto::extension::{ExtHandshake, PexMessage, PEX_FLAG_HOLEPUNCH};
use bittorrent_core::proto::holepunch::{
    HolepunchErrorCode, HolepunchKind, HolepunchMessage, HOLEPUNCH_EXTENSION,
};
use bittorrent_core::proto::wire::{Handshake, Message};
use bittorrent_core::{AddTorrent, Phase, Transport, TransportPolicy};
use harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The id our scripted peers want `ut_holepunch` sent with.
const THEIR_ID: u8 = 9;
/// The id our scripted peers want `ut_pex` sent with.
const PEX_ID: u8 = 11;

/// A scripted peer on one TCP connection to a session.
struct Scripted {
    s: TcpStream,
    /// The session's id for `ut_holepunch` (from its extended handshake).
    their_hp: Option<u8>,
    buf: Vec<u8>,
}

fn peer_id() -> [u8; 20] {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = *b"-XH0001-000000000000";
    id[12..].copy_from_slice(format!("{n:08}").as_bytes());
    id
}

impl Scripted {
    /// Connect, handshake, send an extended handshake with listening port
    /// `p` (advertising `ut_holepunch` when `holepunch`), and read the
    /// session's extended handshake.
    fn connect(to: SocketAddr, info_hash: [u8; 20], p: u16, holepunch: bool) -> Scripted {
        Self::connect_with(to, info_hash, p, holepunch, false)
    }

    /// [`Scripted::connect`], also advertising `ut_pex` (as `PEX_ID`) when `pex`.
    fn connect_with(
        to: SocketAddr,
        info_hash: [u8; 20],
        p: u16,
        holepunch: bool,
        pex: bool,
    ) -> Scripted {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let hs = Handshake::new(info_hash, peer_id());
        s.write_all(&hs.encode()).unwrap();
        let mut m = Vec::new();
        if holepunch {
            m.push((HOLEPUNCH_EXTENSION.to_string(), THEIR_ID));
        }
        if pex {
            m.push(("ut_pex".to_string(), PEX_ID));
        }
        let h = ExtHandshake {
            m,
            p: Some(p),
            ..Default::default()
        };
        let mut c = Scripted {
            s,
            their_hp: None,
            buf: Vec::new(),
        };
        c.send_ext(0, &h.encode());
        let mut got = [0u8; 68];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut n = 0;
        while n < 68 && Instant::now() < deadline {
            match c.s.read(&mut got[n..]) {
                Ok(0) => panic!("closed during the handshake"),
                Ok(k) => n += k,
                Err(_) => {}
            }
        }
        assert_eq!(n, 68, "no handshake");
        let hs = c
            .next_ext(|id, _| id == 0, Duration::from_secs(5))
            .expect("no extended handshake");
        c.their_hp = ExtHandshake::decode(&hs)
            .unwrap()
            .id_of(HOLEPUNCH_EXTENSION);
        c
    }

    fn send_ext(&mut self, id: u8, payload: &[u8]) {
        let mut out = Vec::new();
        Message::Extended {
            id,
            payload: payload.to_vec(),
        }
        .encode(&mut out);
        self.s.write_all(&out).unwrap();
    }

    fn send_hp(&mut self, payload: &[u8]) {
        let id = self.their_hp.expect("the session advertised ut_holepunch");
        self.send_ext(id, payload);
    }

    /// The payload of the next extended message matching `want`, skipping
    /// everything else; `None` at the timeout. Panics if the session closes.
    fn next_ext(&mut self, want: impl Fn(u8, &[u8]) -> bool, t: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + t;
        loop {
            while self.buf.len() >= 4 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if self.buf.len() < 4 + len {
                    break;
                }
                let frame: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
                if frame.len() >= 2 && frame[0] == 20 && want(frame[1], &frame[2..]) {
                    return Some(frame[2..].to_vec());
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut b = [0u8; 4096];
            match self.s.read(&mut b) {
                Ok(0) => panic!("the session closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
        }
    }

    /// The next `ut_holepunch` message sent to us.
    fn next_hp(&mut self, t: Duration) -> Option<HolepunchMessage> {
        self.next_ext(|id, _| id == THEIR_ID, t)
            .map(|p| HolepunchMessage::decode(&p).unwrap())
    }
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn relay_sends_connect_to_both_sides_and_the_right_errors() {
    let data = pseudo_random(100_000, 55);
    let (mi, dir) = single_file_torrent("hp-relay", &data, 32 * 1024);
    let r = session();
    r.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&r, &mi, Phase::Seeding, Duration::from_secs(20));
    let ih = mi.info_hash.0;
    let mut x = Scripted::connect(r.local_addr(), ih, 40001, true);
    let mut y = Scripted::connect(r.local_addr(), ih, 40002, true);
    let mut z = Scripted::connect(r.local_addr(), ih, 40003, false);
    assert!(
        x.their_hp.is_some(),
        "the session does not advertise ut_holepunch"
    );
    // Let the torrent thread take the three extended handshakes.
    std::thread::sleep(Duration::from_millis(300));
    // PEX to a newcomer flags the peers that advertised ut_holepunch (0x08), only them.
    let mut w = Scripted::connect_with(r.local_addr(), ih, 40004, false, true);
    let pex = w
        .next_ext(|id, _| id == PEX_ID, Duration::from_secs(5))
        .expect("no PEX message");
    let pex = PexMessage::decode(&pex).unwrap();
    let flag = |port: u16| {
        let i = pex.added.iter().position(|a| *a == lo(port)).unwrap();
        pex.added_flags[i] & PEX_FLAG_HOLEPUNCH
    };
    assert_eq!(
        (flag(40001), flag(40002), flag(40003)),
        (PEX_FLAG_HOLEPUNCH, PEX_FLAG_HOLEPUNCH, 0),
        "{pex:?}"
    );
    drop(w);

    x.send_hp(&HolepunchMessage::rendezvous(lo(40002)).encode());
    let to_x = x
        .next_hp(Duration::from_secs(5))
        .expect("no connect to the initiator");
    assert_eq!(to_x, HolepunchMessage::connect(lo(40002)));
    let to_y = y
        .next_hp(Duration::from_secs(5))
        .expect("no connect to the target");
    assert_eq!(to_y.kind, HolepunchKind::Connect);
    assert_eq!(
        to_y.addr,
        lo(40001),
        "the target is told the initiator's listening address"
    );

    // Errors (two messages per second per connection are read: pace them).
    for (target, code) in [
        (lo(40999), HolepunchErrorCode::NotConnected),
        (lo(40003), HolepunchErrorCode::NoSupport),
        (r.local_addr(), HolepunchErrorCode::NoSelf),
    ] {
        std::thread::sleep(Duration::from_millis(1100));
        x.send_hp(&HolepunchMessage::rendezvous(target).encode());
        let m = x.next_hp(Duration::from_secs(5)).expect("no error answer");
        assert_eq!(m, HolepunchMessage::error(target, code), "for {target}");
    }
    // The target is not bothered by refused rendezvous.
    assert_eq!(y.next_hp(Duration::from_millis(300)), None);

    // Hostile: malformed payloads are ignored; the connection stays and the
    // next good message is answered.
    std::thread::sleep(Duration::from_millis(1100));
    x.send_hp(&[0, 0, 127, 0]);
    x.send_hp(&[7; 12]);
    assert_eq!(x.next_hp(Duration::from_millis(500)), None);
    std::thread::sleep(Duration::from_millis(1100));
    // Over the rate: the first two of a burst are read, the rest dropped.
    for _ in 0..6 {
        x.send_hp(&HolepunchMessage::rendezvous(lo(40999)).encode());
    }
    let mut answers = 0;
    while x.next_hp(Duration::from_millis(500)).is_some() {
        answers += 1;
    }
    assert_eq!(answers, 2, "rendezvous per second not bounded");

    // A peer that did not advertise the extension is ignored (BEP 55).
    if let Some(id) = z.their_hp {
        z.send_ext(id, &HolepunchMessage::rendezvous(lo(40001)).encode());
    }
    assert_eq!(
        z.next_ext(|id, _| id == THEIR_ID, Duration::from_millis(500)),
        None
    );
    assert_eq!(x.next_hp(Duration::from_millis(200)), None);
    drop((x, y, z));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn connect_makes_two_strangers_dial_each_other_over_utp() {
    let data = pseudo_random(6 * 1024 * 1024 + 77, 56);
    let (mi, seed_dir) = single_file_torrent("hp-connect", &data, 64 * 1024);
    // Capped, so that the transfer lasts long enough for the peer list to show the
    // punched connection (uncapped, uTP on loopback moves 6 MiB between two polls).
    let seeder = session_with(|c| {
        c.transport = TransportPolicy::Utp;
        c.max_upload_rate = 3 << 20;
    });
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let dir = temp_dir("hp-connect-leech");
    let leecher = session_with(|c| c.transport = TransportPolicy::Utp);
    leecher.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&leecher, &mi, Phase::Downloading, Duration::from_secs(20));
    // Strangers: neither knows the other.
    std::thread::sleep(Duration::from_millis(500));
    assert!(leecher
        .peers(&mi.info_hash, Duration::from_secs(2))
        .unwrap_or_default()
        .is_empty());

    // A scripted relay connected to both sends each the other's address.
    let ih = mi.info_hash.0;
    let mut to_seeder = Scripted::connect(seeder.local_addr(), ih, 40011, true);
    let mut to_leecher = Scripted::connect(leecher.local_addr(), ih, 40012, true);
    std::thread::sleep(Duration::from_millis(300));
    to_seeder.send_hp(&HolepunchMessage::connect(leecher.local_addr()).encode());
    to_leecher.send_hp(&HolepunchMessage::connect(seeder.local_addr()).encode());

    let relay_conn = to_leecher.s.local_addr().unwrap();
    let mut transports = Vec::new();
    let done = wait_until(Duration::from_secs(60), || {
        for p in leecher
            .peers(&mi.info_hash, Duration::from_secs(2))
            .unwrap_or_default()
        {
            if p.addr != relay_conn && !transports.contains(&p.transport) {
                transports.push(p.transport);
            }
        }
        leecher
            .status(&mi.info_hash)
            .is_some_and(|s| s.phase == Phase::Seeding)
    });
    assert!(
        done,
        "the leecher did not complete through the punched connection"
    );
    assert_eq!(transports, vec![Transport::Utp]);
    assert_eq!(std::fs::read(dir.join("hp-connect")).unwrap(), data);
    drop((to_seeder, to_leecher));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(seed_dir);
}

/// The whole initiator path with three of our sessions on loopback: B takes
/// no incoming connection at all (0 handshakes per address, loopback not
/// trusted: a host behind a NAT) and is connected to R; A, connected to R,
/// learns B from R's PEX with the holepunch flag, its direct dial to B is
/// refused, it asks R for a rendezvous, R sends `connect` to both, and B's
/// uTP dial to A makes the connection.
#[test]
fn rendezvous_through_a_relay_reaches_a_peer_that_takes_no_incoming() {
    let data = pseudo_random(3 * 1024 * 1024 + 5, 57);
    let (mi, seed_dir) = single_file_torrent("hp-three", &data, 64 * 1024);
    let r = session_with(|c| c.transport = TransportPolicy::Utp);
    r.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&r, &mi, Phase::Seeding, Duration::from_secs(20));
    // Slow R's upload so that A and B are still leeching when they meet.
    r.set_rate_limits(0, 512 * 1024).unwrap();
    // A scripted peer connected to R first, so that R's first PEX message to
    // B names it and R's next one to B (which would name A) is a minute away.
    let x = Scripted::connect(r.local_addr(), mi.info_hash.0, 40021, false);
    std::thread::sleep(Duration::from_millis(300));

    let dir_b = temp_dir("hp-three-b");
    let b = session_with(|c| {
        c.transport = TransportPolicy::Utp;
        c.trust_local = false;
        c.max_handshakes_per_ip = 0;
    });
    b.add(AddTorrent::new(mi.clone(), &dir_b).peers(vec![r.local_addr()]))
        .unwrap();
    let b_joined = wait_until(Duration::from_secs(20), || {
        r.peers(&mi.info_hash, Duration::from_secs(2))
            .unwrap_or_default()
            .iter()
            .any(|p| p.addr.port() != 0 && !p.outgoing)
    });
    assert!(b_joined, "B did not reach R");
    std::thread::sleep(Duration::from_millis(300));

    let dir_a = temp_dir("hp-three-a");
    let a = session_with(|c| c.transport = TransportPolicy::Utp);
    a.add(AddTorrent::new(mi.clone(), &dir_a).peers(vec![r.local_addr()]))
        .unwrap();
    // B's connection to A can only come from R's `connect`: B takes no
    // incoming connection, and R's next PEX to B is a minute away (checked:
    // without the rendezvous this fails).
    let met = wait_until(Duration::from_secs(30), || {
        b.peers(&mi.info_hash, Duration::from_secs(2))
            .unwrap_or_default()
            .iter()
            .any(|p| p.addr == a.local_addr() && p.outgoing && p.transport == Transport::Utp)
    });
    assert!(met, "B never dialled A over uTP");
    drop((a, b, r, x));
    for d in [dir_a, dir_b, seed_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
