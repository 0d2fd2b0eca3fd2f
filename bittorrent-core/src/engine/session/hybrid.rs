//! Hybrid torrents (BEP 52 v1+v2) in the v2 swarm too.
//!
//! A hybrid torrent is transferred over the v1 wire under its v1 info-hash,
//! and it also joins the swarm of its v2 info-hash (SHA-256 truncated to 20
//! bytes, what trackers, the DHT and the handshake use): it is announced
//! under both to every tracker and on the DHT, our embedded tracker answers
//! for both, and a peer that dials us with the truncated v2 hash (libtorrent
//! does for peers it found in the v2 swarm) is accepted for the same torrent
//! and answered with the hash it sent. The pieces of a hybrid are the same
//! in both views (every file starts a piece), so the v1 wire serves both.

use crate::discovery::announcer::{AnnounceTarget, Progress};
use crate::discovery::tracker::TrackerList;
use crate::engine::session::shared::TorrentShared;
use crate::engine::torrent::status::TrackerStatus;
use crate::proto::metainfo::{Format, InfoHash};
use std::net::SocketAddr;
use std::sync::Arc;

/// The second info-hash of a hybrid torrent: its v2 hash truncated to 20
/// bytes. `None` for v1 and v2-only torrents.
pub(crate) fn v2_alias(t: &TorrentShared) -> Option<InfoHash> {
    let m = &t.metainfo;
    match (m.format(), m.info_hash_v2) {
        (Format::Hybrid, Some(v2)) => Some(v2.truncated()),
        _ => None,
    }
}

/// The announcer's view of a hybrid under its v2 hash: everything is the
/// torrent's, the peers found go to it; only the tracker status shown is
/// that of the v1 announces (so that one torrent shows one status).
pub(crate) struct V2Announce {
    pub(crate) torrent: Arc<TorrentShared>,
    pub(crate) alias: InfoHash,
}

impl AnnounceTarget for V2Announce {
    fn info_hash(&self) -> InfoHash {
        self.alias
    }
    fn name(&self) -> String {
        format!("{} (v2)", self.torrent.name())
    }
    fn private(&self) -> bool {
        self.torrent.private()
    }
    fn trackers(&self) -> TrackerList {
        self.torrent.trackers()
    }
    fn progress(&self) -> Option<Progress> {
        self.torrent.progress()
    }
    fn found(&self, peers: Vec<SocketAddr>) {
        self.torrent.found(peers)
    }
    fn tracker_result(&self, status: TrackerStatus) {
        log::debug!(
            "{} (v2 hash {}): {status:?}",
            self.torrent.name(),
            self.alias
        );
    }
    fn finished(&self) -> bool {
        self.torrent.finished()
    }
}
