//! A hybrid torrent's missing piece layers, fetched while it downloads
//! (BEP 52; a hybrid added from a magnet link, or from a `.torrent` without
//! `piece layers`).
//!
//! A v2-only torrent cannot check a piece without its file's layer, so it
//! fetches them before it starts (`torrent::metadata`). A hybrid can: its
//! SHA-1 `pieces` check every piece, and its v1 peers may never answer a
//! hash request. So it starts at once and one `hybrid layers` thread
//! fetches the layers beside it, with the same requests, proof checks and
//! connections as the metadata thread's `layers` stage
//! (`torrent::layers::from_peer`: the truncated v2 hash with the v2 bit, a
//! peer of the v1 swarm only refuses the hash and is tried again later
//! with back-off), one peer at a time, under a peer id of its own (so the
//! peer does not take it for a second connection of the torrent's own).
//! Peers to ask: those the torrent started with (the magnet link's), then
//! the torrent's connected peers that we dialled, those whose connection
//! speaks v2 first (`PeerInfo::v2`: upgraded, BEP 52).
//!
//! As each file's layer is complete and verified against its `pieces
//! root`, the torrent thread gets the v2 view with it
//! ([`Command::PieceLayers`]) and checks every piece hashed from then on
//! against both views (as for a hybrid `.torrent` with its layers); once
//! all are there the `.torrent` in the state directory is replaced by one
//! carrying them, so a restart fetches nothing.
//!
//! **Give-up rule**: the download never waits for the layers. The thread
//! ends when every layer is verified, when the torrent is removed or the
//! session stops, or after [`GIVE_UP`] (paused time not counted) without
//! any verified answer (a
//! swarm of v1-only peers): the rest of the torrent is then checked by
//! SHA-1 alone, as before, and the next start (the saved `.torrent` still
//! lacks the layers) tries again. A peer that sends hashes that do not
//! prove against the root is never asked again (logged; its torrent
//! connection is left to the SHA-1 checks, which it passes or fails as
//! any v1 peer's).

use super::saved;
use super::shared::{Command, Shared, TorrentShared};
use crate::engine::torrent::candidates::Candidates;
use crate::engine::torrent::layers;
use crate::proto::hash_msg::HashRequest;
use crate::proto::layer_plan::LayerPlan;
use crate::proto::merkle::Hash256;
use crate::proto::metainfo::{InfoHash, V2Info};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Without a verified answer for this long, the thread gives up.
pub(crate) const GIVE_UP: Duration = Duration::from_secs(120);
/// Time given to one peer.
const PER_PEER: Duration = Duration::from_secs(20);
/// How often the torrent's connected peers are looked at.
const REFRESH: Duration = Duration::from_secs(2);
/// Addresses kept.
const MAX_CANDIDATES: usize = 200;

/// Start the thread for `t` when it is a hybrid lacking piece layers.
pub(crate) fn spawn_if_needed(
    shared: &Arc<Shared>,
    t: &Arc<TorrentShared>,
    peers: Vec<SocketAddr>,
    state_dir: Option<PathBuf>,
) {
    let (Some(alias), Some(v2)) = (super::hybrid::v2_alias(t), t.metainfo.v2.as_deref()) else {
        return;
    };
    let Some(plan) = LayerPlan::of(v2) else {
        return;
    };
    let job = Job {
        shared: shared.clone(),
        torrent: Arc::downgrade(t),
        ih: t.metainfo.info_hash,
        alias,
        name: t.metainfo.info.name.clone(),
        v2: v2.clone(),
        plan,
        state_dir,
    };
    let short = t.metainfo.info_hash.to_hex();
    let r = std::thread::Builder::new()
        .name(format!("hybrid layers {}", &short[..8]))
        .spawn(move || job.run(peers));
    if let Err(e) = r {
        log::warn!(
            "{}: no thread to fetch piece layers: {e}",
            t.metainfo.info.name
        );
    }
}

struct Job {
    shared: Arc<Shared>,
    torrent: Weak<TorrentShared>,
    ih: InfoHash,
    alias: InfoHash,
    name: String,
    v2: V2Info,
    plan: LayerPlan,
    state_dir: Option<PathBuf>,
}

impl Job {
    /// The torrent, while it is still the one registered under its hash.
    fn torrent(&self) -> Option<Arc<TorrentShared>> {
        let t = self.torrent.upgrade()?;
        let reg = self.shared.registry.read();
        let now = reg.get(&self.ih.0)?;
        Arc::ptr_eq(now, &t).then_some(t)
    }

    /// The torrent's connected peers we dialled (so their address takes
    /// connections), v2 connections first.
    fn connected(&self) -> Vec<SocketAddr> {
        let Some(t) = self.torrent() else {
            return Vec::new();
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        if t.commands.send(Command::Peers(tx)).is_err() {
            return Vec::new();
        }
        drop(t);
        let mut peers = rx.recv_timeout(REFRESH).unwrap_or_default();
        peers.retain(|p| p.outgoing);
        peers.sort_by_key(|p| !p.v2);
        peers.into_iter().map(|p| p.addr).collect()
    }

    fn run(mut self, peers: Vec<SocketAddr>) {
        let total = self.v2.missing_layers();
        log::info!(
            "{}: fetching {total} piece layers from v2 peers while downloading",
            self.name
        );
        let mut candidates = Candidates::new(MAX_CANDIDATES);
        let now = Instant::now();
        candidates.add(
            peers.into_iter().filter_map(|a| self.shared.dialable(a)),
            now,
        );
        // A peer id of its own (the session's client prefix, the rest
        // random): not taken for a second connection of the torrent's.
        let mut peer_id = self.shared.peer_id;
        let mut rng = crate::util::rng::Rng::new();
        for b in peer_id.iter_mut().skip(8) {
            *b = b'a' + rng.below(26) as u8;
        }
        // A fetch in flight ends within 250 ms of the session's shutdown.
        let stop = self.shared.shutting_down.clone();
        let mut got: HashMap<HashRequest, Vec<Hash256>> = HashMap::new();
        let mut refused: HashSet<SocketAddr> = HashSet::new();
        let mut last_progress = Instant::now();
        let mut next_refresh = Instant::now();
        let mut turn = 0usize;
        loop {
            if self.shared.is_shutting_down() || self.torrent().is_none() {
                return;
            }
            let now = Instant::now();
            if self.torrent().is_some_and(|t| t.status.lock().paused) {
                // Paused: no connections, and no count towards giving up.
                last_progress = now;
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
            if now.duration_since(last_progress) > GIVE_UP {
                log::info!(
                    "{}: no peer gave a piece layer for {} s: the rest is checked by SHA-1 \
                     alone ({} of {total} layers missing)",
                    self.name,
                    GIVE_UP.as_secs(),
                    self.v2.missing_layers()
                );
                return;
            }
            if now >= next_refresh {
                let found = self.connected();
                candidates.add(
                    found.into_iter().filter_map(|a| self.shared.dialable(a)),
                    now,
                );
                next_refresh = now + REFRESH;
            }
            let Some(addr) = candidates
                .ready(now, 1, |a| !refused.contains(a))
                .into_iter()
                .next()
            else {
                std::thread::sleep(Duration::from_millis(250));
                continue;
            };
            candidates.set_busy(&addr);
            let mut want: Vec<HashRequest> = (self.plan.requests().into_iter())
                .filter(|r| !got.contains_key(r))
                .collect();
            let by = turn % want.len().max(1);
            want.rotate_left(by);
            turn = turn.wrapping_add(1);
            let haul = layers::from_peer(
                addr,
                (self.alias, peer_id),
                (self.shared.config.encryption, &self.shared.dialer),
                (Instant::now() + PER_PEER, &stop),
                &self.plan,
                want,
            );
            let now = Instant::now();
            let haul = match haul {
                Ok(h) => h,
                Err(e) => {
                    log::debug!("{}: layers from {addr}: {e}", self.name);
                    candidates.failed(&addr, now);
                    continue;
                }
            };
            let gave = haul.got.len();
            got.extend(haul.got);
            if let Some(why) = haul.lied {
                log::warn!("{}: {addr} refused for piece layers: {why}", self.name);
                refused.insert(addr);
                candidates.hold_off(&addr, now);
            } else if gave > 0 {
                last_progress = now;
                candidates.release(&addr, now);
            } else {
                candidates.failed(&addr, now);
            }
            if gave > 0 && self.install(&got, total) {
                return;
            }
        }
    }

    /// Fill the layers `got` completes; hand the torrent the new view when
    /// a file's layer was completed. True once every layer is there.
    fn install(&mut self, got: &HashMap<HashRequest, Vec<Hash256>>, total: usize) -> bool {
        let before = self.v2.missing_layers();
        let left = self.plan.fill(got, &mut self.v2);
        let missing = self.v2.missing_layers();
        if missing == before {
            return false;
        }
        let Some(t) = self.torrent() else {
            return true;
        };
        {
            let mut s = t.status.lock();
            s.piece_layers_missing = missing as u32;
            s.piece_layers_fetched = (total - missing) as u32;
        }
        let _ = t
            .commands
            .send(Command::PieceLayers(Arc::new(self.v2.clone())));
        log::info!(
            "{}: {} of {total} piece layers verified; pieces are checked against them too",
            self.name,
            total - missing
        );
        if left > 0 || missing > 0 {
            return false;
        }
        log::info!("{}: every piece layer verified", self.name);
        if let Some(dir) = &self.state_dir {
            let mut mi = t.metainfo.clone();
            mi.v2 = Some(Box::new(self.v2.clone()));
            let bytes = saved::torrent_file_bytes(&mi);
            if let Err(e) = saved::replace_torrent(dir, &self.ih, &bytes) {
                log::warn!("{}: cannot save the piece layers: {e}", self.name);
            }
        }
        true
    }
}
