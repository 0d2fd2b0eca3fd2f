//! What the hostile cases share: the seeder, the hand-made wire peer
//! (`Attacker`), thread and memory counts, and the serialising lock.

use crate::harness::*;
use bittorrent_core::proto::extension::ExtHandshake;
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::proto::wire::{BlockRef, FrameDecoder, Handshake, Message, MAX_FRAME};
use bittorrent_core::{AddTorrent, Config, Phase, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) const PIECE: u64 = 32 * 1024;
/// 33 pieces: not a multiple of 8, so the bitfield has 7 spare bits.
pub(crate) const LEN: usize = 32 * 32 * 1024 + 777;
/// Threads allowed to linger above the baseline once connections closed.
pub(crate) const THREAD_SLACK: usize = 10;

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn proc_status(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

pub(crate) fn threads() -> usize {
    proc_status("Threads:")
}

pub(crate) fn rss_kib() -> usize {
    proc_status("VmRSS:")
}

/// Wait (threads end asynchronously) until the thread count is back near
/// `before`.
pub(crate) fn assert_threads_settle(before: usize) {
    let ok = wait_until(Duration::from_secs(20), || {
        threads() <= before + THREAD_SLACK
    });
    assert!(
        ok,
        "threads did not settle: {} now, {before} before",
        threads()
    );
}

pub(crate) struct Seed {
    pub(crate) s: Session,
    pub(crate) mi: Metainfo,
    pub(crate) data: Vec<u8>,
}

impl Seed {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.s.local_addr_v4()
    }
    pub(crate) fn ih(&self) -> [u8; 20] {
        self.mi.info_hash.0
    }
    pub(crate) fn peers(&self) -> usize {
        self.s.status(&self.mi.info_hash).unwrap().peers
    }
}

pub(crate) fn seed_with(name: &str, len: usize, tweak: impl FnOnce(&mut Config)) -> Seed {
    let data = pseudo_random(len, name.len() as u64 * 31 + len as u64);
    let (mi, dir) = single_file_torrent(name, &data, PIECE);
    let s = session_with(tweak);
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(20));
    Seed { s, mi, data }
}

pub(crate) fn seed(name: &str) -> Seed {
    seed_with(name, LEN, |_| {})
}

/// A normal leecher session downloads the torrent from `seeder` and gets
/// exactly `data`.
pub(crate) fn still_serves(seeder: &Session, mi: &Metainfo, data: &[u8]) {
    let dir = temp_dir(&format!("{}-check", mi.info.name));
    let leecher = session();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, mi, Phase::Seeding, Duration::from_secs(60));
    assert_eq!(
        std::fs::read(dir.join(&mi.info.name)).unwrap(),
        data,
        "leecher got different bytes"
    );
    drop(leecher);
    let _ = std::fs::remove_dir_all(dir);
}

/// Reads until EOF or a reset (true) or until `within` passes (false),
/// discarding whatever arrives.
pub(crate) fn is_disconnected(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(200))));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// A raw connection speaking the wire protocol by hand.
pub(crate) struct Attacker {
    pub(crate) s: TcpStream,
    pub(crate) dec: FrameDecoder,
    /// The allowed-fast set the seeder granted.
    pub(crate) allowed_fast: Vec<u32>,
    /// The `reqq` of the seeder's extended handshake.
    pub(crate) reqq: Option<u32>,
}

impl Attacker {
    /// The next message, or `None` on timeout, EOF, reset or a bad frame.
    pub(crate) fn next(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.dec.next_message() {
                Ok(Some(m)) => return Some(m),
                Ok(None) => {}
                Err(_) => return None,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self.s.set_read_timeout(Some(left));
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.dec.feed(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    pub(crate) fn send(&mut self, m: &Message) -> std::io::Result<()> {
        self.s.write_all(&m.to_bytes())
    }

    pub(crate) fn raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.write_all(b)
    }

    pub(crate) fn disconnected(&mut self, within: Duration) -> bool {
        is_disconnected(&mut self.s, within)
    }
}

pub(crate) fn peer_id(n: u32) -> [u8; 20] {
    let mut id = *b"-EV0001-000000000000";
    id[8..12].copy_from_slice(&n.to_be_bytes());
    id
}

/// Connect and exchange handshakes (extension + fast bits), then read the
/// seeder's opening messages (have-all, allowed-fast, extended handshake).
pub(crate) fn attacker(addr: SocketAddr, info_hash: [u8; 20]) -> Attacker {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&Handshake::new(info_hash, peer_id(n)).encode())
        .unwrap();
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).unwrap();
    let hs = Handshake::decode(&hs).unwrap();
    assert_eq!(hs.info_hash, info_hash);
    let mut a = Attacker {
        s,
        dec: FrameDecoder::new(MAX_FRAME),
        allowed_fast: Vec::new(),
        reqq: None,
    };
    // The extended handshake is the last of the opening messages.
    loop {
        match a.next(Duration::from_secs(5)) {
            Some(Message::AllowedFast(i)) => a.allowed_fast.push(i),
            Some(Message::Extended { id: 0, payload }) => {
                a.reqq = ExtHandshake::decode(&payload).ok().and_then(|h| h.reqq);
                break;
            }
            Some(_) => {}
            None => panic!("seeder's opening messages did not arrive"),
        }
    }
    a
}

pub(crate) fn req(index: u32, begin: u32, length: u32) -> Message {
    Message::Request(BlockRef {
        index,
        begin,
        length,
    })
}

/// Read messages until `f` matches one (true) or 5 s pass (false).
pub(crate) fn wait_for(a: &mut Attacker, f: impl Fn(&Message) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match a.next(deadline.saturating_duration_since(Instant::now())) {
            Some(m) if f(&m) => return true,
            Some(_) => {}
            None => return false,
        }
    }
    false
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
