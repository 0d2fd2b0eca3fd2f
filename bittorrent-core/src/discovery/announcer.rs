//! The announcer thread: one per torrent. It talks to the torrent's
//! trackers (BEP 3, 12, 15; a bare `IP:PORT` announce is our own embedded
//! tracker on another peer) and to this session's embedded tracker, and
//! hands every address it learns to the torrent thread as
//! [`Command::AddPeers`]. Network waits happen here, never on the torrent
//! thread; a tracker that is down, hangs or answers garbage only delays
//! discovery, it never stops a download from known peers.

use crate::discovery::tracker::{AnnounceEvent, AnnounceOptions, AnnounceRequest, TrackerList};
use crate::engine::session::Shared;
use crate::engine::torrent::{Command, Phase, TorrentShared};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the embedded tracker's swarm is polled for newcomers.
const LOCAL_POLL: Duration = Duration::from_secs(2);
/// Between DHT lookups and announces for one torrent.
const DHT_INTERVAL: Duration = Duration::from_secs(300);
/// Between DHT lookups while the DHT finds nothing.
const DHT_RETRY: Duration = Duration::from_secs(30);
/// Upper bound for one announce round (all tiers).
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);

/// Last tracker outcome, shown in status lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStatus {
    /// The URL that answered last (or was tried last).
    pub url: Option<String>,
    /// Seconds since the epoch of the last announce attempt.
    pub last_announce: Option<u64>,
    /// Peers returned by the last successful announce.
    pub peers_returned: usize,
    /// The last error, if the last round failed.
    pub error: Option<String>,
}

/// Run until `stop` is set; announces `stopped` (briefly) on the way out.
pub(crate) fn run(shared: Arc<Shared>, torrent: Arc<TorrentShared>, stop: Arc<AtomicBool>) {
    let mi = &torrent.metainfo;
    let mut list = TrackerList::from_metainfo(mi);
    let key = (u64::from_le_bytes([
        shared.peer_id[12],
        shared.peer_id[13],
        shared.peer_id[14],
        shared.peer_id[15],
        shared.peer_id[16],
        shared.peer_id[17],
        shared.peer_id[18],
        shared.peer_id[19],
    ]) & 0xffff_ffff) as u32;
    let mut known: HashSet<SocketAddr> = HashSet::new();
    let mut started = false;
    let mut completed_sent = false;
    let mut completed_tried = false;
    let mut last_poll = Instant::now() - LOCAL_POLL;
    let mut last_dht: Option<Instant> = None;
    let mut dht_found_none = false;
    let opts = AnnounceOptions {
        timeout: Duration::from_secs(10),
        udp_base_timeout: Duration::from_secs(3),
        udp_max_retries: 2,
    };
    let request = |event: AnnounceEvent| {
        let st = torrent.status.lock().clone();
        AnnounceRequest {
            info_hash: mi.info_hash,
            peer_id: shared.peer_id,
            port: shared.local_port(),
            uploaded: st.uploaded,
            downloaded: st.downloaded,
            left: st.total_length - st.bytes_have,
            event,
            numwant: 50,
            key,
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let phase = torrent.status.lock().phase.clone();
        let ready = matches!(phase, Phase::Downloading | Phase::Seeding);
        if ready && !list.is_empty() {
            let event = if !started {
                AnnounceEvent::Started
            } else if phase == Phase::Seeding && !completed_sent {
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
                let result = list.announce(&request(event), &opts, ROUND_TIMEOUT);
                let mut ts = TrackerStatus {
                    last_announce: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs()),
                    ..TrackerStatus::default()
                };
                match result {
                    Ok((url, resp)) => {
                        log::info!(
                            "{}: tracker {url}: {} peers",
                            mi.info.name,
                            resp.peers.len()
                        );
                        started = true;
                        if event == AnnounceEvent::Completed {
                            completed_sent = true;
                        }
                        ts.url = Some(url);
                        ts.peers_returned = resp.peers.len();
                        send_new(&torrent, &mut known, resp.peers);
                    }
                    Err(e) => {
                        log::warn!("{}: announce failed: {e}", mi.info.name);
                        ts.error = Some(e.to_string());
                    }
                }
                *torrent.tracker.lock() = ts;
            }
        }
        // The DHT (BEP 5): look for peers and announce ourselves, at once
        // and then every `DHT_INTERVAL` (never for private torrents).
        if let Some(dht) = shared.dht.as_ref().filter(|_| !mi.info.private) {
            // Every 5 minutes; every 30 s while the DHT finds nothing (or
            // knows nobody yet).
            let due = |every: Duration| last_dht.is_none_or(|t| now - t >= every);
            if ready
                && due(DHT_RETRY)
                && (due(DHT_INTERVAL) || dht_found_none || dht.routing_table_nodes().is_empty())
            {
                last_dht = Some(now);
                let found = dht.get_peers(mi.info_hash, Duration::from_secs(10));
                dht_found_none = found.is_empty();
                log::debug!("{}: DHT: {} peers", mi.info.name, found.len());
                send_new(&torrent, &mut known, found);
                dht.announce(mi.info_hash, shared.local_port());
            }
        }
        // Newcomers registered with our own embedded tracker.
        if ready && now - last_poll >= LOCAL_POLL {
            last_poll = now;
            let local = shared.tracker.peers(&mi.info_hash);
            send_new(&torrent, &mut known, local);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if started && !list.is_empty() {
        let _ = list.announce(
            &request(AnnounceEvent::Stopped),
            &AnnounceOptions {
                timeout: Duration::from_secs(2),
                udp_base_timeout: Duration::from_secs(1),
                udp_max_retries: 0,
            },
            Duration::from_secs(3),
        );
    }
}

fn send_new(torrent: &TorrentShared, known: &mut HashSet<SocketAddr>, peers: Vec<SocketAddr>) {
    let fresh: Vec<SocketAddr> = peers.into_iter().filter(|p| known.insert(*p)).collect();
    if !fresh.is_empty() {
        let _ = torrent.commands.send(Command::AddPeers(fresh));
    }
}
