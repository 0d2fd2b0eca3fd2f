//! Helpers for integration tests: torrents built in memory, sessions on
//! loopback, bounded waits.
#![allow(dead_code, clippy::unwrap_used)]

use bittorrent_core::proto::bencode::OwnedValue;
use bittorrent_core::proto::metainfo::{FileEntry, Info, InfoHash, Metainfo};
use bittorrent_core::{Config, Phase, Session};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn temp_dir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("peer-it-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Build a metainfo (and its info bytes) for data laid out as `files`.
pub fn build_metainfo(
    name: &str,
    files: &[(String, u64)],
    all: &[u8],
    piece_length: u64,
    multi: bool,
) -> Metainfo {
    let pieces: Vec<[u8; 20]> = all
        .chunks(piece_length as usize)
        .map(|c| sha1_smol::Sha1::from(c).digest().bytes())
        .collect();
    let mut info = vec![
        (b"name".to_vec(), OwnedValue::bytes(name)),
        (
            b"piece length".to_vec(),
            OwnedValue::Int(piece_length as i64),
        ),
        (b"pieces".to_vec(), OwnedValue::Bytes(pieces.concat())),
    ];
    let mut entries = Vec::new();
    let mut off = 0;
    if multi {
        let list = files
            .iter()
            .map(|(p, l)| {
                OwnedValue::Dict(vec![
                    (b"length".to_vec(), OwnedValue::Int(*l as i64)),
                    (
                        b"path".to_vec(),
                        OwnedValue::List(p.split('/').map(OwnedValue::bytes).collect()),
                    ),
                ])
            })
            .collect();
        info.push((b"files".to_vec(), OwnedValue::List(list)));
        for (p, l) in files {
            let mut path = vec![name.to_string()];
            path.extend(p.split('/').map(String::from));
            entries.push(FileEntry {
                path: path.into(),
                length: *l,
                offset: off,
                pad: false,
            });
            off += l;
        }
    } else {
        info.push((b"length".to_vec(), OwnedValue::Int(all.len() as i64)));
        entries.push(FileEntry {
            path: vec![name.to_string()].into(),
            length: all.len() as u64,
            offset: 0,
            pad: false,
        });
    }
    let info_bytes = OwnedValue::Dict(info).to_bytes();
    Metainfo {
        info_hash_v2: None,
        v2: None,
        info_hash: InfoHash(sha1_smol::Sha1::from(&info_bytes).digest().bytes()),
        info: Info {
            name: name.to_string(),
            piece_length,
            pieces,
            files: entries,
            total_length: all.len() as u64,
            private: false,
            multi_file: multi,
        },
        info_bytes,
        announce: None,
        announce_list: Vec::new(),
        comment: None,
        created_by: None,
        creation_date: None,
        url_list: Vec::new(),
    }
}

/// A single-file torrent whose data is written into a fresh seed directory.
pub fn single_file_torrent(name: &str, data: &[u8], piece_length: u64) -> (Metainfo, PathBuf) {
    let dir = temp_dir(&format!("{name}-seed"));
    std::fs::write(dir.join(name), data).unwrap();
    (build_metainfo(name, &[], data, piece_length, false), dir)
}

/// A multi-file torrent whose data is written into a fresh seed directory.
pub fn multi_file_torrent(
    name: &str,
    files: &[(&str, Vec<u8>)],
    piece_length: u64,
) -> (Metainfo, PathBuf) {
    let dir = temp_dir(&format!("{name}-seed"));
    let mut all = Vec::new();
    let mut list = Vec::new();
    for (p, d) in files {
        let path = dir.join(name).join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, d).unwrap();
        all.extend_from_slice(d);
        list.push((p.to_string(), d.len() as u64));
    }
    (build_metainfo(name, &list, &all, piece_length, true), dir)
}

/// A loopback session with a configuration tweak.
pub fn session_with(tweak: impl FnOnce(&mut Config)) -> Session {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut c = Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        // Every test peer is 127.0.0.1: many may be in their handshake at
        // once (tests/listener.rs checks the default of 8 per address).
        max_handshakes_per_ip: 64,
        // Tests never contact the public DHT routers.
        dht_routers: Vec::new(),
        ..Config::default()
    };
    tweak(&mut c);
    Session::start(c).unwrap()
}

pub fn session() -> Session {
    let _ = env_logger::builder().is_test(true).try_init();
    Session::start(Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        // Every test peer is 127.0.0.1: many may be in their handshake at
        // once (tests/listener.rs checks the default of 8 per address).
        max_handshakes_per_ip: 64,
        // Tests never contact the public DHT routers.
        dht_routers: Vec::new(),
        ..Config::default()
    })
    .unwrap()
}

pub trait LocalAddr {
    fn local_addr_v4(&self) -> SocketAddr;
}

impl LocalAddr for Session {
    fn local_addr_v4(&self) -> SocketAddr {
        self.local_addr()
    }
}

pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

pub fn wait_phase(s: &Session, mi: &Metainfo, phase: Phase, timeout: Duration) {
    let ok = wait_until(timeout, || {
        s.status(&mi.info_hash).is_some_and(|st| st.phase == phase)
    });
    assert!(
        ok,
        "timed out waiting for {phase:?}: {:?}",
        s.status(&mi.info_hash)
    );
}

/// How a scripted peer misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// Claims every piece; answers every request with garbage.
    Corrupt,
    /// Claims every piece; serves `n` good blocks, then drops the connection.
    VanishAfter(usize),
    /// Has only pieces `0..n` and serves them correctly.
    FirstPieces(u32),
    /// Speaks the fast extension, never unchokes, allows pieces `0..n`
    /// while choked and serves (correctly) only those.
    ChokedAllowedFast(u32),
    /// Claims every piece and serves every request it ever got, correctly,
    /// duplicates included and cancels ignored (as libtorrent serves the
    /// requests it had queued when it choked); after every `n` blocks it
    /// sends `choke` and `unchoke` in one write (a choke storm).
    ChokeStorm(usize),
    /// Claims every piece; answers the first request for the start of a
    /// piece with a corrupted block, then chokes and serves nothing more.
    OneBadBlockThenChoke,
}

/// A raw-socket peer playing `script` for one torrent; accepts connections
/// until the returned guard is dropped. Returns its address.
pub struct ScriptedPeer {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

pub fn scripted_peer(mi: &Metainfo, data: Vec<u8>, script: Script) -> ScriptedPeer {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let connections = Arc::new(AtomicU32::new(0));
    let (s2, c2) = (stop.clone(), connections.clone());
    let info_hash = mi.info_hash.0;
    let layout = bittorrent_core::proto::layout::Layout::of(&mi.info);
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if s2.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            if let Err(e) = serve_script(stream, info_hash, layout, &data, script, &s2, &c2) {
                eprintln!("scripted peer: {e}");
            }
        }
    });
    ScriptedPeer {
        addr,
        stop,
        handle: Some(handle),
        connections,
    }
}

fn serve_script(
    mut stream: std::net::TcpStream,
    info_hash: [u8; 20],
    layout: bittorrent_core::proto::layout::Layout,
    data: &[u8],
    script: Script,
    stop: &std::sync::atomic::AtomicBool,
    connections: &std::sync::atomic::AtomicU32,
) -> std::io::Result<()> {
    use bittorrent_core::proto::bitfield::Bitfield;
    use bittorrent_core::proto::wire::{FrameDecoder, Handshake, Message, MAX_FRAME};
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut hs = [0u8; 68];
    stream.read_exact(&mut hs)?;
    // Like any plaintext-only client, close on anything else (an MSE
    // attempt): only BitTorrent handshakes count as connections.
    if hs[..20] != *b"\x13BitTorrent protocol" {
        return Ok(());
    }
    connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut id = *b"-XX0001-scriptedpeer";
    id[19] = b'0' + (Instant::now().elapsed().subsec_nanos() % 10) as u8;
    let mut plain = Handshake::new(info_hash, id);
    if !matches!(script, Script::ChokedAllowedFast(_)) {
        plain.reserved = [0; 8];
    }
    stream.write_all(&plain.encode())?;
    let n = layout.num_pieces as usize;
    let bf = match script {
        Script::FirstPieces(k) => {
            let mut b = Bitfield::new(n);
            for i in 0..k as usize {
                b.set(i);
            }
            b
        }
        _ => Bitfield::full(n),
    };
    let mut out = Vec::new();
    Message::Bitfield(bf.as_bytes().to_vec()).encode(&mut out);
    if let Script::ChokedAllowedFast(k) = script {
        for i in 0..k {
            Message::AllowedFast(i).encode(&mut out);
        }
    } else {
        Message::Unchoke.encode(&mut out);
    }
    stream.write_all(&out)?;
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut buf = vec![0u8; 65536];
    let mut served = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(k) => dec.feed(&buf[..k]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
        while let Ok(Some(m)) = dec.next_message() {
            let Message::Request(b) = m else { continue };
            let off = (layout.piece_offset(b.index) + u64::from(b.begin)) as usize;
            let mut block = data[off..off + b.length as usize].to_vec();
            match script {
                Script::Corrupt => block.iter_mut().for_each(|x| *x = !*x),
                Script::OneBadBlockThenChoke if served > 0 || b.begin != 0 => continue,
                Script::OneBadBlockThenChoke => {
                    block.iter_mut().for_each(|x| *x = !*x);
                    served += 1;
                    let mut out = Vec::new();
                    Message::Piece {
                        index: b.index,
                        begin: b.begin,
                        data: block,
                    }
                    .encode(&mut out);
                    Message::Choke.encode(&mut out);
                    stream.write_all(&out)?;
                    continue;
                }
                Script::VanishAfter(k) if served >= k => return Ok(()),
                Script::FirstPieces(k) if b.index >= k => continue,
                Script::ChokedAllowedFast(k) if b.index >= k => {
                    let mut out = Vec::new();
                    Message::Reject(b).encode(&mut out);
                    stream.write_all(&out)?;
                    continue;
                }
                _ => {}
            }
            served += 1;
            let mut out = Vec::new();
            Message::Piece {
                index: b.index,
                begin: b.begin,
                data: block,
            }
            .encode(&mut out);
            if let Script::ChokeStorm(k) = script {
                if served % k.max(1) == 0 {
                    Message::Choke.encode(&mut out);
                    Message::Unchoke.encode(&mut out);
                }
            }
            stream.write_all(&out)?;
        }
    }
    Ok(())
}

/// A connection to `to` on the v2 wire (BEP 52): our handshake names `ih`
/// (a v2 torrent's truncated hash, or a hybrid's) with the v2 bit set; the
/// reply's handshake is read and dropped. 5 s read timeout.
pub fn v2_connect(to: SocketAddr, ih: [u8; 20], peer_id: [u8; 20]) -> std::net::TcpStream {
    use bittorrent_core::proto::wire::{Handshake, HANDSHAKE_LEN, RESERVED_V2};
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = Handshake::new(ih, peer_id);
    hello.reserved[RESERVED_V2.0] |= RESERVED_V2.1;
    c.write_all(&hello.encode()).unwrap();
    let mut reply = [0u8; HANDSHAKE_LEN];
    c.read_exact(&mut reply).unwrap();
    c
}

/// Read messages from `c` until `n` BEP 52 hash messages (ids 22, 23)
/// came; other messages (bitfield, extended handshake...) are skipped.
pub fn hash_replies(
    c: &mut std::net::TcpStream,
    dec: &mut bittorrent_core::proto::wire::FrameDecoder,
    n: usize,
) -> Vec<bittorrent_core::proto::hash_msg::HashMessage> {
    use bittorrent_core::proto::hash_msg::{HashMessage, HashRequest};
    use bittorrent_core::proto::wire::Message;
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < n {
        while let Some(m) = dec.next_message().unwrap() {
            // A reject echoes the request's fields, valid or not.
            match m {
                Message::Hash { id: 23, payload } => {
                    got.push(HashMessage::Reject(HashRequest::header(&payload).unwrap()))
                }
                Message::Hash { id, payload } => {
                    got.push(HashMessage::decode(id, &payload).unwrap())
                }
                _ => {}
            }
        }
        if got.len() >= n {
            break;
        }
        let k = c.read(&mut buf).expect("a reply before the timeout");
        assert!(k > 0, "connection closed after {} replies", got.len());
        dec.feed(&buf[..k]);
    }
    got
}

/// Files written for a test torrent: path and contents.
pub type SeededFiles = Vec<(PathBuf, Vec<u8>)>;

/// A two-file hybrid (BEP 52) torrent of directory `top` in a fresh dir `name`, data from `seed`;
/// the torrent's bytes too.
pub fn hybrid_seeded(
    name: &str,
    top: &str,
    seed: u64,
) -> (Metainfo, PathBuf, SeededFiles, Vec<u8>) {
    use bittorrent_core::create::{create_torrent, CreateOptions, TorrentFormat};
    use bittorrent_core::proto::metainfo::Format;
    let dir = temp_dir(name);
    let top = dir.join(top);
    let files = vec![
        (top.join("a.bin"), pseudo_random(100_000, seed)),
        (top.join("b/c.bin"), pseudo_random(50_001, seed + 1)),
    ];
    for (p, d) in &files {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
    let opts = CreateOptions {
        piece_length: Some(16384),
        format: TorrentFormat::Hybrid,
        ..CreateOptions::default()
    };
    let bytes = create_torrent(&top, &opts, &|_, _| {}).unwrap();
    let mi = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(mi.format(), Format::Hybrid);
    (mi, dir, files, bytes)
}
