//! Fetching a torrent's info dictionary from peers (BEP 9 `ut_metadata`
//! over the BEP 10 extension protocol), so that a magnet link is enough to
//! start a download.
//!
//! [`fetch_metainfo`] finds peers from the magnet's `x.pe` addresses, the
//! caller's extra peers and the magnet's trackers (`tr`), then asks one peer
//! at a time for every 16 KiB piece of the info dictionary, checks the
//! SHA-1 of the whole against the info-hash, and returns the torrent. Every
//! wait is bounded; a peer that lies, stalls or refuses is simply skipped.

use crate::discovery::tracker::{AnnounceEvent, AnnounceOptions, AnnounceRequest, TrackerList};
use crate::engine::peer::read_handshake;
use crate::proto::extension::{
    ExtHandshake, MetadataMessage, HANDSHAKE_EXT_ID, METADATA_PIECE_SIZE,
};
use crate::proto::magnet::Magnet;
use crate::proto::metainfo::Metainfo;
use crate::proto::wire::{FrameDecoder, Handshake, Message, MAX_FRAME};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest info dictionary we accept (libtorrent's default limit is similar).
pub const MAX_METADATA_SIZE: u64 = 16 * 1024 * 1024;
/// The id we ask peers to use for `ut_metadata` messages to us.
const OUR_METADATA_ID: u8 = crate::engine::peer::OUR_METADATA_ID;
/// Time given to one peer.
const PER_PEER: Duration = Duration::from_secs(20);

/// Why the metadata could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// No peer was found (no `x.pe`, no peers given, trackers gave none).
    NoPeers,
    /// Every peer failed or the time ran out; the text says what happened last.
    Failed(String),
}

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataError::NoPeers => {
                f.write_str("metadata: no peer to ask (give --peer, x.pe or tr)")
            }
            MetadataError::Failed(s) => write!(f, "metadata: {s}"),
        }
    }
}

impl std::error::Error for MetadataError {}

/// Fetch the torrent named by `magnet`. `peers` are extra addresses to
/// try; `peer_id` and `port` are used in the handshake and in announces.
/// Gives up after `timeout`.
pub fn fetch_metainfo(
    magnet: &Magnet,
    peers: &[SocketAddr],
    peer_id: [u8; 20],
    port: u16,
    timeout: Duration,
) -> Result<Metainfo, MetadataError> {
    let deadline = Instant::now() + timeout;
    let mut candidates: Vec<SocketAddr> = peers.to_vec();
    for p in &magnet.peers {
        if let Ok(addrs) = p.to_socket_addrs() {
            candidates.extend(addrs.take(1));
        }
    }
    if !magnet.trackers.is_empty() {
        let mut list = TrackerList::new(magnet.trackers.iter().map(|t| vec![t.clone()]).collect());
        let req = AnnounceRequest {
            info_hash: magnet.info_hash,
            peer_id,
            port,
            left: 1,
            event: AnnounceEvent::Started,
            numwant: 50,
            ..AnnounceRequest::default()
        };
        let opts = AnnounceOptions::with_timeout(Duration::from_secs(10));
        match list.announce(&req, &opts, Duration::from_secs(20)) {
            Ok((_, resp)) => candidates.extend(resp.peers),
            Err(e) => log::warn!("metadata: trackers: {e}"),
        }
    }
    candidates.dedup();
    if candidates.is_empty() {
        return Err(MetadataError::NoPeers);
    }
    let mut last = String::from("no peer answered");
    for addr in candidates.iter().cycle().take(candidates.len() * 3) {
        if Instant::now() >= deadline {
            break;
        }
        let until = (Instant::now() + PER_PEER).min(deadline);
        match from_peer(*addr, magnet, peer_id, until) {
            Ok(bytes) => match Metainfo::from_info_bytes(&bytes) {
                Ok(mut m) if m.info_hash == magnet.info_hash => {
                    m.announce_list = magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
                    m.announce = magnet.trackers.first().cloned();
                    return Ok(m);
                }
                Ok(_) => last = format!("{addr}: metadata does not match the info-hash"),
                Err(e) => last = format!("{addr}: {e}"),
            },
            Err(e) => {
                log::debug!("metadata from {addr}: {e}");
                last = format!("{addr}: {e}");
            }
        }
    }
    Err(MetadataError::Failed(last))
}

/// Ask one peer for the whole info dictionary.
fn from_peer(
    addr: SocketAddr,
    magnet: &Magnet,
    peer_id: [u8; 20],
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let left = |d: Instant| d.saturating_duration_since(Instant::now());
    let mut s = TcpStream::connect_timeout(&addr, left(deadline).min(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    s.write_all(&Handshake::new(magnet.info_hash.0, peer_id).encode())
        .map_err(|e| e.to_string())?;
    let (hs, rest) =
        read_handshake(&mut s, Vec::new(), left(deadline)).map_err(|e| e.to_string())?;
    if hs.info_hash != magnet.info_hash.0 {
        return Err("wrong info-hash".into());
    }
    if !hs.supports_extensions() {
        return Err("no extension protocol".into());
    }
    let ours = ExtHandshake {
        m: vec![("ut_metadata".into(), OUR_METADATA_ID)],
        ..Default::default()
    };
    let mut out = Vec::new();
    Message::Extended {
        id: HANDSHAKE_EXT_ID,
        payload: ours.encode(),
    }
    .encode(&mut out);
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut dec = FrameDecoder::new(MAX_FRAME);
    dec.feed(&rest);
    let mut buf = vec![0u8; 64 * 1024];
    let mut their_id: Option<u8> = None;
    let mut pieces: Vec<Option<Vec<u8>>> = Vec::new();
    let mut size = 0u64;
    while Instant::now() < deadline {
        while let Some(m) = dec.next_message().map_err(|e| e.to_string())? {
            let Message::Extended { id, payload } = m else {
                continue;
            };
            if id == HANDSHAKE_EXT_ID && their_id.is_none() {
                let h = ExtHandshake::decode(&payload).map_err(|e| e.to_string())?;
                their_id = Some(h.id_of("ut_metadata").ok_or("peer has no ut_metadata")?);
                size = h.metadata_size.ok_or("peer did not say metadata_size")?;
                if size == 0 || size > MAX_METADATA_SIZE {
                    return Err(format!("metadata_size {size} out of range"));
                }
                let n = size.div_ceil(METADATA_PIECE_SIZE as u64) as usize;
                pieces = vec![None; n];
                let mut out = Vec::new();
                for piece in 0..n as u32 {
                    Message::Extended {
                        id: their_id.unwrap_or(0),
                        payload: MetadataMessage::Request { piece }.encode(),
                    }
                    .encode(&mut out);
                }
                s.write_all(&out).map_err(|e| e.to_string())?;
            } else if id == OUR_METADATA_ID {
                match MetadataMessage::decode(&payload).map_err(|e| e.to_string())? {
                    MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    } if total_size == size => {
                        let i = piece as usize;
                        let expect =
                            (size as usize - i * METADATA_PIECE_SIZE).min(METADATA_PIECE_SIZE);
                        if i < pieces.len() && data.len() == expect {
                            pieces[i] = Some(data);
                        }
                    }
                    MetadataMessage::Reject { piece } => {
                        return Err(format!("rejected piece {piece}"))
                    }
                    _ => {}
                }
                if !pieces.is_empty() && pieces.iter().all(Option::is_some) {
                    return Ok(pieces.into_iter().flatten().flatten().collect());
                }
            }
        }
        let _ = s.set_read_timeout(Some(
            left(deadline).clamp(Duration::from_millis(1), Duration::from_millis(250)),
        ));
        match s.read(&mut buf) {
            Ok(0) => return Err("peer closed".into()),
            Ok(n) => dec.feed(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("timed out".into())
}
