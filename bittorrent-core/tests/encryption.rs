//! Message Stream Encryption between our own sessions: every policy pair
//! that should connect does and moves the data, byte for byte; a `require`
//! peer refuses plaintext; and a recording relay between two peers shows
//! what crosses the wire (the handshake is always obfuscated; the payload is
//! in clear between two `prefer` peers and RC4 with a `require` peer).
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Encryption, Phase};
use harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BT_PROTOCOL: &[u8] = b"\x13BitTorrent protocol";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A TCP relay on loopback that forwards every connection to `target` and
/// keeps (up to 16 MiB of) the bytes each side sent.
struct Relay {
    addr: SocketAddr,
    /// Bytes from the dialling side, from the target side.
    seen: Arc<Mutex<(Vec<u8>, Vec<u8>)>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(a) = c else { continue };
                let Ok(b) = TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to, upstream) in [
                    (a.try_clone().unwrap(), b.try_clone().unwrap(), true),
                    (b, a, false),
                ] {
                    let (seen, stop) = (seen2.clone(), stop2.clone());
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut buf = [0u8; 16384];
                        while !stop.load(Ordering::SeqCst) {
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    {
                                        let mut s = seen.lock().unwrap();
                                        let v = if upstream { &mut s.0 } else { &mut s.1 };
                                        if v.len() < 16 << 20 {
                                            v.extend_from_slice(&buf[..n]);
                                        }
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, seen, stop }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A seeder with policy `seed` and a leecher with policy `leech` that dials
/// it through a recording relay; returns the bytes seen each way.
fn transfer(tag: &str, seed: Encryption, leech: Encryption) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let data = pseudo_random(1024 * 1024 + 777, 40);
    let (mi, seed_dir) = single_file_torrent(tag, &data, 32 * 1024);
    let seeder = session_with(|c| c.encryption = seed);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let relay = Relay::start(seeder.local_addr_v4());
    let dir = temp_dir(&format!("{tag}-leech"));
    let leecher = session_with(|c| c.encryption = leech);
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![relay.addr]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(
        std::fs::read(dir.join(tag)).unwrap(),
        data,
        "{seed} <- {leech}"
    );
    let seen = relay.seen.lock().unwrap().clone();
    (data, seen.0, seen.1)
}

#[test]
fn prefer_to_prefer_obfuscates_the_handshake_and_sends_data_in_clear() {
    let (data, up, down) = transfer("enc-pp", Encryption::Prefer, Encryption::Prefer);
    // MSE: the leecher's handshake went encrypted, as the initial payload...
    assert!(!contains(&up, BT_PROTOCOL));
    // ...and everything after the MSE handshake in clear (both offered
    // plaintext): the seeder's handshake and the data.
    assert!(contains(&down, BT_PROTOCOL));
    assert!(contains(&down, &data[500_000..500_064]));
}

#[test]
fn require_seeder_and_prefer_leecher_use_rc4() {
    let (data, up, down) = transfer("enc-rp", Encryption::Require, Encryption::Prefer);
    assert!(!contains(&up, BT_PROTOCOL) && !contains(&down, BT_PROTOCOL));
    assert!(down.len() > data.len(), "the data went through the relay");
    assert!(
        !contains(&down, &data[500_000..500_064]),
        "payload in clear"
    );
}

#[test]
fn prefer_seeder_and_require_leecher_use_rc4() {
    let (data, up, down) = transfer("enc-pr", Encryption::Prefer, Encryption::Require);
    assert!(!contains(&up, BT_PROTOCOL) && !contains(&down, BT_PROTOCOL));
    assert!(
        !contains(&down, &data[500_000..500_064]),
        "payload in clear"
    );
}

#[test]
fn prefer_leecher_falls_back_to_plaintext_with_an_off_seeder() {
    let (data, up, down) = transfer("enc-op", Encryption::Off, Encryption::Prefer);
    // The MSE attempt was refused, the redial went in clear.
    assert!(contains(&up, BT_PROTOCOL) && contains(&down, BT_PROTOCOL));
    assert!(contains(&down, &data[500_000..500_064]));
}

#[test]
fn require_seeder_closes_plaintext_handshakes_unanswered() {
    let data = pseudo_random(256 * 1024, 41);
    let (mi, seed_dir) = single_file_torrent("enc-refuse", &data, 32 * 1024);
    let seeder = session_with(|c| c.encryption = Encryption::Require);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));

    // A raw plaintext handshake gets no answer: the connection is closed.
    let mut s = TcpStream::connect(seeder.local_addr_v4()).unwrap();
    let hs = bittorrent_core::proto::wire::Handshake::new(mi.info_hash.0, *b"-XX0001-plaintextpee");
    s.write_all(&hs.encode()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 68];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a require peer answered a plaintext handshake");
    assert!(t.elapsed() < Duration::from_secs(4), "not closed at once");

    // An `off` leecher gets nothing from it.
    let dir = temp_dir("enc-refuse-leech");
    let leecher = session_with(|c| c.encryption = Encryption::Off);
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let st = leecher.status(&mi.info_hash).unwrap();
    assert_eq!(st.pieces_have, 0, "{st:?}");
    assert_eq!(st.peers, 0, "{st:?}");

    // And a `require` leecher refuses an `off` seeder.
    let off_seeder = session_with(|c| c.encryption = Encryption::Off);
    off_seeder
        .add(AddTorrent::new(mi.clone(), &seed_dir))
        .unwrap();
    wait_phase(&off_seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let dir2 = temp_dir("enc-refuse-leech2");
    let strict = session_with(|c| c.encryption = Encryption::Require);
    strict
        .add(AddTorrent::new(mi.clone(), &dir2).peers(vec![off_seeder.local_addr_v4()]))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let st = strict.status(&mi.info_hash).unwrap();
    assert_eq!((st.pieces_have, st.peers), (0, 0), "{st:?}");
}

#[test]
fn one_session_answers_mse_for_each_of_its_torrents() {
    // The responder finds the torrent among several by HASH('req2', SKEY).
    let seeder = session_with(|c| c.encryption = Encryption::Require);
    let mut torrents = Vec::new();
    for i in 0..3 {
        let data = pseudo_random(200 * 1024 + i * 1000, 50 + i as u64);
        let name = format!("enc-multi{i}");
        let (mi, dir) = single_file_torrent(&name, &data, 16 * 1024);
        seeder.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
        wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
        torrents.push((mi, data, name));
    }
    let leecher = session_with(|c| c.encryption = Encryption::Require);
    let dir = temp_dir("enc-multi-leech");
    for (mi, _, _) in &torrents {
        leecher
            .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
            .unwrap();
    }
    for (mi, data, name) in &torrents {
        wait_phase(&leecher, mi, Phase::Seeding, Duration::from_secs(60));
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), data);
    }
}

#[test]
fn magnet_metadata_comes_through_mse_from_a_require_seeder() {
    // The metadata fetch of a magnet link dials like any peer connection:
    // a seeder that refuses plaintext still serves the info dictionary.
    let data = pseudo_random(300 * 1024, 42);
    let (mi, seed_dir) = single_file_torrent("enc-magnet", &data, 16 * 1024);
    let seeder = session_with(|c| c.encryption = Encryption::Require);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(20));
    let link = format!(
        "magnet:?xt=urn:btih:{}&x.pe={}",
        mi.info_hash,
        seeder.local_addr_v4()
    );
    let magnet = bittorrent_core::Magnet::parse(&link).unwrap();
    let dir = temp_dir("enc-magnet-leech");
    let leecher = session();
    leecher.add(AddTorrent::magnet(magnet, &dir)).unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(std::fs::read(dir.join("enc-magnet")).unwrap(), data);
}
