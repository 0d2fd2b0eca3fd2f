//! A magnet link's own announcer thread (its metadata thread spawns and
//! joins it): the same trackers, DHT and embedded-tracker look-ups as the
//! session's announcer (`super`), for one target, in one loop.

use super::*;
use crate::util::source::SourceAddrs;

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
    let mut leeched = false;
    let mut last_poll = Instant::now() - LOCAL_POLL;
    let mut next_dht = Instant::now();
    let mut dht_empty = 0u32;
    let opts = AnnounceOptions {
        timeout: Duration::from_secs(10),
        udp_base_timeout: Duration::from_secs(3),
        udp_max_retries: 2,
        source: shared.dialer.source,
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
        leeched |= progress.is_some_and(|p| !p.complete);
        if let (Some(p), false) = (progress, list.is_empty()) {
            let event = next_event(started, p.complete, leeched, completed_sent);
            // `completed` goes out at once; everything else (including a
            // `started` that has not got through yet) follows the schedule,
            // which backs off after failures.
            let completed_now = event == AnnounceEvent::Completed && !completed_tried;
            if completed_now || list.is_due(now) {
                completed_tried |= event == AnnounceEvent::Completed;
                let result = list.announce(&request(event, p), &opts, ROUND_TIMEOUT);
                let mut ts = announced_now();
                match result {
                    Ok((url, resp)) => {
                        log::info!("{name}: tracker {url}: {} peers", resp.peers.len());
                        tracker_saw_us(&shared, &url, resp.external_ip);
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
                    &stop_opts(shared.dialer.source),
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
                let dhts: Vec<&crate::discovery::dht::Dht> = [Some(&**dht), shared.dht6.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                let found = crate::discovery::dht::lookup_all(
                    &dhts,
                    ih,
                    Duration::from_secs(10),
                    Some(shared.local_port()),
                );
                dht_empty = if found.is_empty() { dht_empty + 1 } else { 0 };
                next_dht = Instant::now()
                    + if dht_empty > 0 {
                        dht_retry(dht_empty)
                    } else {
                        DHT_INTERVAL
                    };
                log::debug!("{name}: DHT: {} peers", found.len());
                send_new(found);
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
            &stop_opts(shared.dialer.source),
            STOP_TIMEOUT,
        );
    }
}

/// Upper bound for a `stopped` announce (all tiers).
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Per tracker, for a `stopped` announce.
fn stop_opts(source: SourceAddrs) -> AnnounceOptions {
    AnnounceOptions {
        timeout: Duration::from_secs(2),
        udp_base_timeout: Duration::from_secs(1),
        udp_max_retries: 0,
        source,
    }
}
