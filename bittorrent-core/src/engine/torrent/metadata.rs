//! The metadata phase of a magnet link (BEP 9 `ut_metadata` over the BEP 10
//! extension protocol): one `metadata` thread per magnet link fetches the
//! info dictionary from peers, checks it against the info-hash and hands
//! the torrent back to the session, which adds it like a `.torrent`.
//!
//! The thread owns the magnet's [`Candidates`] (the torrent thread's table
//! and back-off rule: 1 s, 2 s, 4 s, ... capped). Addresses come, in this
//! order, from the magnet's `x.pe`, the caller's peers, and then as they
//! are found from the magnet's announcer thread (its `tr` trackers, the
//! DHT, our embedded tracker) and from LSD (the session's `lsd-router`).
//! Up to [`PARALLEL_FETCHES`] short-lived `metadata IP:PORT` threads each
//! ask one peer for every 16 KiB piece of the info dictionary (20 s at
//! most); a peer that lies, stalls or refuses is backed off and the others
//! are tried. It keeps trying until it has the metadata or is stopped.
//!
//! A v2-only link (`btmh` alone) names the torrent by its v2 hash
//! truncated to 20 bytes, with BEP 52's v2 bit in the handshake, and its
//! info dictionary is checked against the whole SHA-256 hash. A v2-only
//! torrent whose piece layers are not all known (from such a link, or a
//! `.torrent` without `piece layers`, given in [`MagnetShared::known`]) then
//! goes through a second stage in the same thread: `layers IP:PORT`
//! threads fetch the missing piece layers with hash requests
//! (`layers.rs`), and only when every layer is verified is the torrent
//! handed to the session.

use super::fetch_conn::{open, pump};
use super::layers::{self, Haul};
use crate::discovery::announcer::{self, AnnounceTarget, Progress};
use crate::discovery::tracker::TrackerList;
use crate::engine::conn::peer::OUR_METADATA_ID;
use crate::engine::net::mse::Encryption;
use crate::engine::net::transport::Dialer;
use crate::engine::session::shared::{MagnetShared, Shared};
use crate::engine::torrent::candidates::Candidates;
use crate::engine::torrent::status::TrackerStatus;
use crate::proto::extension::{
    ExtHandshake, MetadataMessage, HANDSHAKE_EXT_ID, METADATA_PIECE_SIZE,
};
use crate::proto::hash_msg::HashRequest;
use crate::proto::layer_plan::LayerPlan;
use crate::proto::merkle::{self, Hash256};
use crate::proto::metainfo::{Format, InfoHash, Metainfo, V2Info};
use crate::proto::wire::Message;
use crossbeam_channel::{select, Receiver, Sender};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest info dictionary we accept (libtorrent's default limit is similar).
pub const MAX_METADATA_SIZE: u64 = 16 * 1024 * 1024;
/// Time given to one peer.
const PER_PEER: Duration = Duration::from_secs(20);
/// Peers asked at the same time.
pub(crate) const PARALLEL_FETCHES: usize = 4;
/// Addresses kept per magnet link.
const MAX_CANDIDATES: usize = 500;
/// How often the thread looks at its candidates (back-off resolution).
const TICK: Duration = Duration::from_millis(250);

/// What the session does with a checked info dictionary: add the torrent
/// (with these peers to dial first). Given at spawn, so this module needs
/// nothing from the session.
pub(crate) type OnResolved = Box<dyn FnOnce(Metainfo, Vec<SocketAddr>) + Send>;

/// Start the metadata thread of `me` (registered by the caller).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    me: Arc<MagnetShared>,
    found: Receiver<Vec<SocketAddr>>,
    peers: Vec<SocketAddr>,
    on_resolved: OnResolved,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let short = me.magnet.info_hash.to_hex();
    std::thread::Builder::new()
        .name(format!("metadata {}", &short[..8]))
        .spawn(move || run(shared, me, found, peers, on_resolved))
}

/// What a fetch thread is asked for.
enum Job {
    /// The info dictionary (`ut_metadata`).
    Info,
    /// Answers to these hash requests, checked against the plan.
    Layers(Arc<LayerPlan>, Vec<HashRequest>),
}

/// What a fetch thread brought back.
enum Got {
    Info(Vec<u8>),
    Layers(Haul),
}

/// One fetch's outcome, from a `metadata IP:PORT` or `layers IP:PORT`
/// thread.
type Fetched = (SocketAddr, Result<Got, String>);

/// What the thread is looking for.
enum Stage {
    /// The info dictionary.
    Info,
    /// The piece layers of a v2-only torrent whose info dictionary is
    /// known: the plan and the verified answers so far.
    Layers {
        mi: Box<Metainfo>,
        plan: Arc<LayerPlan>,
        got: HashMap<HashRequest, Vec<Hash256>>,
        /// Layers missing when the stage began.
        total: usize,
    },
}

/// The stage after the info dictionary `mi` is known: its missing piece
/// layers (a v2-only torrent), or `Err(mi)` when it is complete.
fn after_info(me: &MagnetShared, mi: Metainfo) -> Result<Stage, Box<Metainfo>> {
    let plan = match (mi.format(), mi.v2.as_deref()) {
        (Format::V2, Some(v2)) => LayerPlan::of(v2),
        _ => None,
    };
    match plan {
        Some(plan) => {
            let total = mi.v2.as_deref().map_or(0, V2Info::missing_layers);
            me.status.lock().piece_layers_missing = total as u32;
            log::info!(
                "{}: fetching {total} missing piece layers from peers",
                mi.info.name,
            );
            Ok(Stage::Layers {
                mi: Box::new(mi),
                plan: Arc::new(plan),
                got: HashMap::new(),
                total,
            })
        }
        None => Err(Box::new(mi)),
    }
}

fn run(
    shared: Arc<Shared>,
    me: Arc<MagnetShared>,
    found: Receiver<Vec<SocketAddr>>,
    peers: Vec<SocketAddr>,
    on_resolved: OnResolved,
) {
    let ih = me.magnet.info_hash;
    let now = Instant::now();
    let mut candidates = Candidates::new(MAX_CANDIDATES);
    // x.pe first, then the caller's peers.
    let xpe = me
        .magnet
        .peers
        .iter()
        .filter_map(|p| p.to_socket_addrs().ok()?.next());
    let first: Vec<SocketAddr> = xpe.chain(peers).collect();
    candidates.add(first.into_iter().filter_map(|a| shared.dialable(a)), now);
    let mut resolved = None;
    // A `.torrent` without its piece layers starts at the layers.
    let mut stage = match me.known.lock().take() {
        None => Stage::Info,
        Some(mi) => match after_info(&me, *mi) {
            Ok(stage) => stage,
            Err(mi) => {
                resolved = Some(mi);
                Stage::Info
            }
        },
    };
    let stop_announcer = Arc::new(AtomicBool::new(false));
    let announcer = {
        let (s, t, st) = (shared.clone(), me.clone(), stop_announcer.clone());
        let target: Arc<dyn AnnounceTarget> = t;
        std::thread::Builder::new()
            .name(format!("announcer {}", &ih.to_hex()[..8]))
            .spawn(move || announcer::run(s, target, st))
    };
    if let Err(e) = &announcer {
        log::warn!("{ih}: no announcer thread: {e}");
    }
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Fetched>();
    let mut asking: HashSet<SocketAddr> = HashSet::new();
    // Peers that sent wrong hashes: never asked again, not handed over.
    let mut refused: HashSet<SocketAddr> = HashSet::new();
    let mut best: Option<SocketAddr> = None;
    let mut turn = 0usize;
    let tick = crossbeam_channel::tick(TICK);
    while resolved.is_none() && !me.stop.load(Ordering::SeqCst) && !shared.is_shutting_down() {
        let now = Instant::now();
        let room = PARALLEL_FETCHES.saturating_sub(asking.len());
        for addr in candidates.ready(now, room, |a| !refused.contains(a)) {
            candidates.set_busy(&addr);
            let job = match &stage {
                Stage::Info => Job::Info,
                Stage::Layers { plan, got, .. } => {
                    let mut want: Vec<HashRequest> = plan
                        .requests()
                        .into_iter()
                        .filter(|r| !got.contains_key(r))
                        .collect();
                    let by = turn % want.len().max(1);
                    want.rotate_left(by);
                    turn = turn.wrapping_add(1);
                    Job::Layers(plan.clone(), want)
                }
            };
            let fetch = Fetch {
                addr,
                target: (ih, me.magnet.is_v2_only()),
                peer_id: shared.peer_id,
                encryption: shared.config.encryption,
                dialer: shared.dialer.clone(),
                stop: me.stop.clone(),
            };
            if fetch.start(job, done_tx.clone()) {
                asking.insert(addr);
            } else {
                candidates.failed(&addr, now);
            }
        }
        me.status.lock().peers = asking.len();
        select! {
            recv(found) -> m => if let Ok(addrs) = m {
                let n = candidates.add(
                    addrs.into_iter().filter_map(|a| shared.dialable(a)),
                    Instant::now(),
                );
                if n > 0 {
                    log::debug!("{ih}: {n} new peers to ask for the metadata");
                }
            },
            recv(done_rx) -> m => if let Ok((addr, result)) = m {
                asking.remove(&addr);
                let now = Instant::now();
                let mut complete = false;
                match (result, &mut stage) {
                    (Ok(Got::Info(bytes)), Stage::Info) => match check(&me, &bytes) {
                        Ok(mi) => {
                            log::info!("{}: metadata from {addr}", mi.info.name);
                            best = Some(addr);
                            candidates.release(&addr, now);
                            match after_info(&me, mi) {
                                Ok(next) => stage = next,
                                Err(mi) => resolved = Some(mi),
                            }
                        }
                        Err(e) => {
                            // Refused metadata (not the info-hash's, or
                            // over a limit): drop the peer for a long
                            // while and go on looking.
                            log::warn!("{ih}: metadata from {addr} refused: {e}");
                            candidates.hold_off(&addr, now);
                        }
                    },
                    (Ok(Got::Layers(haul)), Stage::Layers { mi, plan, got, total }) => {
                        let gave = haul.got.len();
                        got.extend(haul.got);
                        if let Some(why) = haul.lied {
                            log::warn!("{}: {addr} refused: {why}", mi.info.name);
                            refused.insert(addr);
                            candidates.hold_off(&addr, now);
                            me.status.lock().banned += 1;
                        } else if gave > 0 {
                            best = Some(addr);
                            candidates.release(&addr, now);
                        } else {
                            log::debug!(
                                "{}: {addr} gave no piece layer ({} rejected)",
                                mi.info.name,
                                haul.rejected
                            );
                            candidates.failed(&addr, now);
                        }
                        if let Some(v2) = mi.v2.as_deref_mut() {
                            let left = plan.fill(got, v2);
                            let missing = v2.missing_layers();
                            let mut st = me.status.lock();
                            st.piece_layers_missing = missing as u32;
                            st.piece_layers_fetched = total.saturating_sub(missing) as u32;
                            drop(st);
                            if left == 0 && missing == 0 {
                                log::info!("{}: every piece layer verified", mi.info.name);
                                complete = true;
                            }
                        }
                    }
                    // A result of the stage before: ask the peer again soon.
                    (Ok(_), _) => candidates.release(&addr, now),
                    (Err(e), _) => {
                        log::debug!("{ih}: {addr}: {e}");
                        candidates.failed(&addr, now);
                    }
                }
                if complete {
                    if let Stage::Layers { mi, .. } = std::mem::replace(&mut stage, Stage::Info) {
                        resolved = Some(mi);
                    }
                }
            },
            recv(tick) -> _ => {}
        }
    }
    stop_announcer.store(true, Ordering::SeqCst);
    if let Ok(h) = announcer {
        let _ = h.join();
    }
    if let Some(mi) = resolved {
        // The peer that gave most recently first, then everyone else we
        // know of but those that lied.
        let mut peers: Vec<SocketAddr> = best.into_iter().collect();
        peers.extend(
            candidates
                .addrs()
                .copied()
                .filter(|a| Some(*a) != best && !refused.contains(a)),
        );
        on_resolved(*mi, peers);
    }
}

/// Parse and check fetched info bytes against the magnet's info-hash.
///
/// The hash is checked first, on the bytes alone: data that is not the
/// torrent's costs one SHA-1 (SHA-256 for a v2-only link), never a parse.
/// Bytes that are the torrent's still go through every metainfo limit
/// (path depth and length, pieces, ...) before anything is accepted.
fn check(me: &MagnetShared, bytes: &[u8]) -> Result<Metainfo, String> {
    let matches = match (me.magnet.is_v2_only(), me.magnet.info_hash_v2) {
        (true, Some(v2)) => merkle::sha256(bytes) == v2.0,
        _ => sha1_smol::Sha1::from(bytes).digest().bytes() == me.magnet.info_hash.0,
    };
    if !matches {
        return Err("the metadata does not match the info-hash".into());
    }
    let mut m = Metainfo::from_info_bytes(bytes).map_err(|e| e.to_string())?;
    if m.info_hash != me.magnet.info_hash {
        // The bytes hash right but hold more than one value.
        return Err("the metadata does not match the info-hash".into());
    }
    if me.magnet.info_hash_v2.is_some() && m.info_hash_v2 != me.magnet.info_hash_v2 {
        // A hybrid link: the v2 hash (SHA-256 of the same bytes) must agree.
        return Err("the metadata does not match the v2 info-hash".into());
    }
    m.announce_list = me.magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
    m.announce = me.magnet.trackers.first().cloned();
    Ok(m)
}

/// One peer to ask, and how.
struct Fetch {
    addr: SocketAddr,
    /// The info-hash to name, and whether to set the v2 bit.
    target: (InfoHash, bool),
    peer_id: [u8; 20],
    encryption: Encryption,
    dialer: Arc<Dialer>,
    stop: Arc<AtomicBool>,
}

impl Fetch {
    /// Ask on a thread of its own; false when no thread could start.
    fn start(self, job: Job, done: Sender<Fetched>) -> bool {
        let kind = match job {
            Job::Info => "metadata",
            Job::Layers(..) => "layers",
        };
        std::thread::Builder::new()
            .name(format!("{kind} {}", self.addr))
            .spawn(move || {
                let deadline = Instant::now() + PER_PEER;
                let net = (self.encryption, &*self.dialer);
                let got = match job {
                    Job::Info => from_peer(
                        self.addr,
                        self.target,
                        self.peer_id,
                        net,
                        deadline,
                        &self.stop,
                    )
                    .map(Got::Info),
                    Job::Layers(plan, want) => layers::from_peer(
                        self.addr,
                        (self.target.0, self.peer_id),
                        net,
                        (deadline, &self.stop),
                        &plan,
                        want,
                    )
                    .map(Got::Layers),
                };
                let _ = done.send((self.addr, got));
            })
            .is_ok()
    }
}

impl AnnounceTarget for MagnetShared {
    fn info_hash(&self) -> InfoHash {
        self.magnet.info_hash
    }
    fn name(&self) -> String {
        self.status.lock().name.clone()
    }
    fn private(&self) -> bool {
        false // unknown until the metadata is here; the `tr` trackers and the DHT are how it is found
    }
    fn trackers(&self) -> TrackerList {
        TrackerList::new(
            self.magnet
                .trackers
                .iter()
                .map(|t| vec![t.clone()])
                .collect(),
        )
    }
    fn progress(&self) -> Option<Progress> {
        // The size is unknown: announce as a leecher that lacks something,
        // so that trackers return seeders.
        Some(Progress {
            uploaded: 0,
            downloaded: 0,
            left: 1,
            complete: false,
        })
    }
    fn found(&self, peers: Vec<SocketAddr>) {
        let _ = self.found.try_send(peers);
    }
    fn tracker_result(&self, status: TrackerStatus) {
        self.status.lock().tracker = status;
    }
}

/// Ask one peer for the whole info dictionary.
fn from_peer(
    addr: SocketAddr,
    target: (InfoHash, bool),
    peer_id: [u8; 20],
    net: (Encryption, &Dialer),
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Vec<u8>, String> {
    let (mut s, mut dec, hs) = open(addr, target, peer_id, net, deadline)?;
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
    s.write_all(&out)
        .and_then(|()| s.flush())
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut their_id: Option<u8> = None;
    let mut pieces: Vec<Option<Vec<u8>>> = Vec::new();
    let mut size = 0u64;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        while let Some(m) = dec.next_message().map_err(|e| e.to_string())? {
            let Message::Extended { id, payload } = m else {
                continue;
            };
            if id == HANDSHAKE_EXT_ID && their_id.is_none() {
                let h = ExtHandshake::decode(&payload).map_err(|e| e.to_string())?;
                let theirs = h.id_of("ut_metadata").ok_or("peer has no ut_metadata")?;
                their_id = Some(theirs);
                size = h.metadata_size.ok_or("peer did not say metadata_size")?;
                if size == 0 || size > MAX_METADATA_SIZE {
                    return Err(format!("metadata_size {size} out of range"));
                }
                let n = size.div_ceil(METADATA_PIECE_SIZE as u64) as usize;
                pieces = vec![None; n];
                let mut out = Vec::new();
                for piece in 0..n as u32 {
                    Message::Extended {
                        id: theirs,
                        payload: MetadataMessage::Request { piece }.encode(),
                    }
                    .encode(&mut out);
                }
                s.write_all(&out)
                    .and_then(|()| s.flush())
                    .map_err(|e| e.to_string())?;
            } else if id == OUR_METADATA_ID {
                match MetadataMessage::decode(&payload).map_err(|e| e.to_string())? {
                    MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    } if total_size == size => {
                        let i = piece as usize;
                        let expect = (size as usize)
                            .saturating_sub(i * METADATA_PIECE_SIZE)
                            .min(METADATA_PIECE_SIZE);
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
        pump(&mut s, &mut dec, &mut buf, deadline)?;
    }
    Err("timed out".into())
}
