//! The announcer thread: one per torrent, and one per magnet link still
//! looking for its metadata. It talks to the trackers (BEP 3, 12, 15; a
//! bare `IP:PORT` announce is our own embedded tracker on another peer),
//! the DHT and this session's embedded tracker, and hands every address it
//! learns to its [`AnnounceTarget`] (the torrent thread as
//! `Command::AddPeers`, or the magnet's metadata thread). Network waits
//! happen here, never on the torrent or metadata thread; a tracker that is
//! down, hangs or answers garbage only delays discovery, it never stops a
//! download from known peers.

use crate::discovery::tracker::{AnnounceEvent, AnnounceOptions, AnnounceRequest, TrackerList};
use crate::engine::events::Event;
use crate::engine::shared::{Command, Shared, TorrentShared};
use crate::engine::status::{Phase, TrackerStatus};
use crate::proto::metainfo::InfoHash;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the embedded tracker's swarm is polled for newcomers.
const LOCAL_POLL: Duration = Duration::from_secs(2);
/// Between DHT lookups and announces for one torrent.
const DHT_INTERVAL: Duration = Duration::from_secs(300);
/// Between DHT lookups while the DHT finds nothing: 5 s, 10 s, 20 s, then
/// every `DHT_RETRY_CAP` (the first ones come fast while the node
/// bootstraps).
const DHT_RETRY_FIRST: Duration = Duration::from_secs(5);
const DHT_RETRY_CAP: Duration = Duration::from_secs(30);
/// Upper bound for one announce round (all tiers).
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);

/// What an announce reports about the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) uploaded: u64,
    pub(crate) downloaded: u64,
    pub(crate) left: u64,
    /// Every piece verified (`completed` is announced once).
    pub(crate) complete: bool,
}

/// What an announcer works for: a torrent or a magnet link.
pub(crate) trait AnnounceTarget: Send + Sync {
    fn info_hash(&self) -> InfoHash;
    fn name(&self) -> String;
    /// Never announced on the DHT (BEP 27).
    fn private(&self) -> bool;
    fn trackers(&self) -> TrackerList;
    /// `None` while nothing should be announced (checking, paused, failed).
    fn progress(&self) -> Option<Progress>;
    /// Addresses learned (each address once).
    fn found(&self, peers: Vec<SocketAddr>);
    /// The outcome of an announce round.
    fn tracker_result(&self, status: TrackerStatus);
    /// Done seeding (the seeding goal was reached): leave the swarm.
    fn finished(&self) -> bool {
        false
    }
}

impl AnnounceTarget for TorrentShared {
    fn info_hash(&self) -> InfoHash {
        self.metainfo.info_hash
    }
    fn name(&self) -> String {
        self.metainfo.info.name.clone()
    }
    fn private(&self) -> bool {
        self.metainfo.info.private
    }
    fn trackers(&self) -> TrackerList {
        TrackerList::from_metainfo(&self.metainfo)
    }
    fn progress(&self) -> Option<Progress> {
        let st = self.status.lock();
        matches!(st.phase, Phase::Downloading | Phase::Seeding).then(|| Progress {
            uploaded: st.uploaded,
            downloaded: st.downloaded,
            left: st.total_length - st.bytes_have,
            complete: st.phase == Phase::Seeding,
        })
    }
    fn found(&self, peers: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::AddPeers(peers));
    }
    fn tracker_result(&self, status: TrackerStatus) {
        *self.tracker.lock() = status;
    }
    fn finished(&self) -> bool {
        self.status.lock().phase == Phase::Finished
    }
}

/// The wait before the next DHT lookup after `empty` lookups in a row
/// that found nobody.
fn dht_retry(empty: u32) -> Duration {
    DHT_RETRY_FIRST
        .saturating_mul(1u32 << empty.saturating_sub(1).min(8))
        .min(DHT_RETRY_CAP)
}

/// Run until `stop` is set; announces `stopped` (briefly) on the way out.
pub(crate) fn run(shared: Arc<Shared>, target: Arc<dyn AnnounceTarget>, stop: Arc<AtomicBool>) {
    let ih = target.info_hash();
    let name = target.name();
    let private = target.private();
    let mut list = target.trackers();
    let key = u32::from_le_bytes([
        shared.peer_id[16],
        shared.peer_id[17],
        shared.peer_id[18],
        shared.peer_id[19],
    ]);
    let mut known: HashSet<SocketAddr> = HashSet::new();
    let mut started = false;
    let mut completed_sent = false;
    let mut completed_tried = false;
    let mut last_poll = Instant::now() - LOCAL_POLL;
    let mut next_dht = Instant::now();
    let mut dht_empty = 0u32;
    let opts = AnnounceOptions {
        timeout: Duration::from_secs(10),
        udp_base_timeout: Duration::from_secs(3),
        udp_max_retries: 2,
    };
    let request = |event: AnnounceEvent, p: Progress| AnnounceRequest {
        info_hash: ih,
        peer_id: shared.peer_id,
        port: shared.local_port(),
        uploaded: p.uploaded,
        downloaded: p.downloaded,
        left: p.left,
        event,
        numwant: 50,
        key,
    };
    let mut send_new = |peers: Vec<SocketAddr>| {
        let fresh: Vec<SocketAddr> = peers.into_iter().filter(|p| known.insert(*p)).collect();
        if !fresh.is_empty() {
            target.found(fresh);
        }
    };
    let mut last_progress = None;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let progress = target.progress();
        if progress.is_some() {
            last_progress = progress;
        }
        if let (Some(p), false) = (progress, list.is_empty()) {
            let event = if !started {
                AnnounceEvent::Started
            } else if p.complete && !completed_sent {
                AnnounceEvent::Completed
            } else {
                AnnounceEvent::None
            };
            // `completed` goes out at once; everything else (including a
            // `started` that has not got through yet) follows the schedule,
            // which backs off after failures.
            let completed_now = event == AnnounceEvent::Completed && !completed_tried;
            if completed_now || list.is_due(now) {
                completed_tried |= event == AnnounceEvent::Completed;
                let result = list.announce(&request(event, p), &opts, ROUND_TIMEOUT);
                let mut ts = TrackerStatus {
                    last_announce: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs()),
                    ..TrackerStatus::default()
                };
                match result {
                    Ok((url, resp)) => {
                        log::info!("{name}: tracker {url}: {} peers", resp.peers.len());
                        started = true;
                        if event == AnnounceEvent::Completed {
                            completed_sent = true;
                        }
                        ts.url = Some(url);
                        ts.peers_returned = resp.peers.len();
                        send_new(resp.peers);
                    }
                    Err(e) => {
                        log::warn!("{name}: announce failed: {e}");
                        ts.error = Some(e.to_string());
                    }
                }
                shared.events.publish(Event::TrackerAnnounce {
                    info_hash: ih,
                    url: ts.url.clone(),
                    peers: ts.peers_returned,
                    error: ts.error.clone(),
                });
                target.tracker_result(ts);
            }
        }
        // A torrent that reached its seeding goal leaves the swarm; if it is
        // resumed later, it starts over with `started`.
        if let (true, false, Some(p)) = (started, list.is_empty(), last_progress) {
            if target.finished() {
                let _ = list.announce(
                    &request(AnnounceEvent::Stopped, p),
                    &stop_opts(),
                    STOP_TIMEOUT,
                );
                started = false;
            }
        }
        // The DHT (BEP 5): look for peers and announce ourselves, at once
        // and then every `DHT_INTERVAL`, sooner while it finds nobody
        // (never for private torrents).
        if let Some(dht) = shared.dht.as_ref().filter(|_| !private) {
            if progress.is_some() && now >= next_dht {
                let found = dht.get_peers(ih, Duration::from_secs(10));
                dht_empty = if found.is_empty() { dht_empty + 1 } else { 0 };
                next_dht = Instant::now()
                    + if dht_empty > 0 {
                        dht_retry(dht_empty)
                    } else {
                        DHT_INTERVAL
                    };
                log::debug!("{name}: DHT: {} peers", found.len());
                send_new(found);
                dht.announce(ih, shared.local_port());
            }
        }
        // Newcomers registered with our own embedded tracker.
        if progress.is_some() && now - last_poll >= LOCAL_POLL {
            last_poll = now;
            send_new(shared.tracker.peers(&ih));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let (true, false, Some(p)) = (started, list.is_empty(), last_progress) {
        let _ = list.announce(
            &request(AnnounceEvent::Stopped, p),
            &stop_opts(),
            STOP_TIMEOUT,
        );
    }
}

/// Upper bound for a `stopped` announce (all tiers).
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Per tracker, for a `stopped` announce.
fn stop_opts() -> AnnounceOptions {
    AnnounceOptions {
        timeout: Duration::from_secs(2),
        udp_base_timeout: Duration::from_secs(1),
        udp_max_retries: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dht_retries_come_fast_then_level_off() {
        let s = |n| dht_retry(n).as_secs();
        assert_eq!((s(1), s(2), s(3), s(4), s(20)), (5, 10, 20, 30, 30));
    }
}
