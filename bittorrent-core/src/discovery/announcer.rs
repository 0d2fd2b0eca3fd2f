//! The announcer: one thread per session, for all its torrents. It talks to
//! the torrents' trackers (BEP 3, 12, 15; a bare `IP:PORT` announce is our
//! own embedded tracker on another peer), to the DHT and to this session's
//! embedded tracker, and hands every address it learns to the torrent
//! thread as [`Command::AddPeers`].
//!
//! The thread keeps a schedule: each torrent has the time of its next
//! check, and the thread sleeps until the earliest one or until a message
//! (a torrent added or removed, a finished network round) arrives. A
//! session of idle torrents with nothing due never wakes it. Network
//! rounds (a tracker announce across all tiers, a DHT lookup) run on
//! short-lived worker threads, at most [`MAX_WORKERS`] at once, so one dead
//! tracker delays only its own torrent; each round is bounded in time.
//! Network waits never happen on a torrent thread: a tracker that is down,
//! hangs or answers garbage only delays discovery, it never stops a
//! download from known peers.

use crate::discovery::tracker::{
    AnnounceEvent, AnnounceOptions, AnnounceRequest, AnnounceResponse, TrackerError, TrackerList,
};
use crate::engine::session::Shared;
use crate::engine::torrent::{Command, Phase, TorrentShared};
use crate::InfoHash;
use crossbeam_channel::{select, Receiver, Sender};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the embedded tracker's swarms are looked at for newcomers
/// (only when it recorded announces since the last look).
const LOCAL_POLL: Duration = Duration::from_secs(2);
/// Between DHT lookups and announces for one torrent.
const DHT_INTERVAL: Duration = Duration::from_secs(300);
/// Between DHT lookups while the DHT finds nothing.
const DHT_RETRY: Duration = Duration::from_secs(30);
/// Upper bound for one announce round (all tiers).
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);
/// While a torrent checks its data, or downloads with trackers to tell of
/// its completion, its phase is looked at this often.
const PHASE_POLL: Duration = Duration::from_secs(1);
/// Network rounds running at once (each on its own short-lived thread).
pub const MAX_WORKERS: usize = 8;
/// Stack of the announcer thread and of its workers (HTTP, UDP, name
/// resolution: small, but glibc's resolver wants some room).
const STACK: usize = 512 * 1024;

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

enum Msg {
    Add(Arc<TorrentShared>),
    /// Forget a torrent (announcing `stopped`), then reply.
    Remove(InfoHash, Sender<()>),
    /// Announce `stopped` for every torrent and end the thread.
    Stop,
    /// A worker's result.
    Done(Box<Done>),
}

// Always boxed inside `Msg::Done`.
#[allow(clippy::large_enum_variant)]
enum Done {
    Tracker {
        ih: InfoHash,
        list: TrackerList,
        event: AnnounceEvent,
        result: Result<(String, AnnounceResponse), TrackerError>,
    },
    Dht {
        ih: InfoHash,
        found: Vec<SocketAddr>,
    },
}

/// The session's handle on its announcer thread.
pub(crate) struct Announcer {
    tx: Sender<Msg>,
    handle: Option<JoinHandle<()>>,
}

impl Announcer {
    /// Start the thread.
    pub(crate) fn start(shared: Arc<Shared>) -> std::io::Result<Announcer> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let me = tx.clone();
        let handle = std::thread::Builder::new()
            .name("announcer".into())
            .stack_size(STACK)
            .spawn(move || State::new(shared, me).run(&rx))?;
        Ok(Announcer {
            tx,
            handle: Some(handle),
        })
    }

    /// Announce a new torrent from now on.
    pub(crate) fn add(&self, t: Arc<TorrentShared>) {
        let _ = self.tx.send(Msg::Add(t));
    }

    /// Stop announcing a torrent; returns once `stopped` went out (a few
    /// seconds at most).
    pub(crate) fn remove(&self, ih: InfoHash) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Msg::Remove(ih, tx)).is_ok() {
            let _ = rx.recv_timeout(ROUND_TIMEOUT + Duration::from_secs(5));
        }
    }

    /// Ask the thread to stop (it announces `stopped` first); `join` waits.
    pub(crate) fn request_stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// Wait for the thread to end.
    pub(crate) fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One torrent's announce state.
struct Entry {
    torrent: Arc<TorrentShared>,
    /// `None` while a worker runs a round with it.
    list: Option<TrackerList>,
    has_trackers: bool,
    known: HashSet<SocketAddr>,
    ready: bool,
    started: bool,
    completed_sent: bool,
    completed_tried: bool,
    last_dht: Option<Instant>,
    dht_found_none: bool,
    dht_busy: bool,
    /// When to look at this torrent next (`None`: only when told).
    next: Option<Instant>,
}

struct State {
    shared: Arc<Shared>,
    me: Sender<Msg>,
    entries: HashMap<InfoHash, Entry>,
    workers: usize,
    /// The embedded tracker's change count at the last look.
    local_seen: u64,
    next_local: Instant,
    key: u32,
}

fn opts() -> AnnounceOptions {
    AnnounceOptions {
        timeout: Duration::from_secs(10),
        udp_base_timeout: Duration::from_secs(3),
        udp_max_retries: 2,
    }
}

impl State {
    fn new(shared: Arc<Shared>, me: Sender<Msg>) -> State {
        let id = shared.peer_id;
        let key = u32::from_le_bytes([id[16], id[17], id[18], id[19]]);
        State {
            shared,
            me,
            entries: HashMap::new(),
            workers: 0,
            local_seen: 0,
            next_local: Instant::now(),
            key,
        }
    }

    fn run(mut self, rx: &Receiver<Msg>) {
        loop {
            let now = Instant::now();
            self.step_all(now);
            let next = self
                .entries
                .values()
                .filter_map(|e| e.next)
                .chain((!self.entries.is_empty()).then_some(self.next_local))
                .min();
            let wake = match next {
                Some(t) => crossbeam_channel::at(t),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(rx) -> m => match m {
                    Ok(Msg::Add(t)) => self.add(t),
                    Ok(Msg::Remove(ih, reply)) => {
                        if let Some(e) = self.entries.remove(&ih) {
                            self.send_stopped(vec![e], rx);
                        }
                        let _ = reply.send(());
                    }
                    Ok(Msg::Done(d)) => self.done(*d),
                    Ok(Msg::Stop) | Err(_) => {
                        let all: Vec<Entry> = self.entries.drain().map(|(_, e)| e).collect();
                        self.send_stopped(all, rx);
                        return;
                    }
                },
                recv(wake) -> _ => {}
            }
        }
    }

    fn add(&mut self, t: Arc<TorrentShared>) {
        let list = TrackerList::from_metainfo(&t.metainfo);
        let ih = t.metainfo.info_hash;
        self.entries.insert(
            ih,
            Entry {
                has_trackers: !list.is_empty(),
                list: Some(list),
                torrent: t,
                known: HashSet::new(),
                ready: false,
                started: false,
                completed_sent: false,
                completed_tried: false,
                last_dht: None,
                dht_found_none: false,
                dht_busy: false,
                next: Some(Instant::now()),
            },
        );
    }

    fn step_all(&mut self, now: Instant) {
        // Newcomers registered with our own embedded tracker: looked at only
        // when it recorded announces since the last look.
        if now >= self.next_local {
            self.next_local = now + LOCAL_POLL;
            let changes = self.shared.tracker.changes();
            if changes != self.local_seen {
                self.local_seen = changes;
                for e in self.entries.values_mut().filter(|e| e.ready) {
                    let local = self.shared.tracker.peers(&e.torrent.metainfo.info_hash);
                    send_new(&e.torrent, &mut e.known, local);
                }
            }
        }
        let due: Vec<InfoHash> = self
            .entries
            .iter()
            .filter(|(_, e)| e.next.is_some_and(|t| t <= now))
            .map(|(ih, _)| *ih)
            .collect();
        for ih in due {
            self.step(ih, now);
        }
    }

    fn request(&self, e: &Entry, event: AnnounceEvent) -> AnnounceRequest {
        let st = e.torrent.status.lock().clone();
        AnnounceRequest {
            info_hash: e.torrent.metainfo.info_hash,
            peer_id: self.shared.peer_id,
            port: self.shared.local_port(),
            uploaded: st.uploaded,
            downloaded: st.downloaded,
            left: st.total_length - st.bytes_have,
            event,
            numwant: 50,
            key: self.key,
        }
    }

    /// Look at one torrent: start what is due, and schedule its next look.
    fn step(&mut self, ih: InfoHash, now: Instant) {
        let dht = self.shared.dht.clone();
        let workers_free = self.workers < MAX_WORKERS;
        let Some(e) = self.entries.get_mut(&ih) else {
            return;
        };
        let phase = e.torrent.status.lock().phase.clone();
        let ready = matches!(phase, Phase::Downloading | Phase::Seeding);
        if !ready {
            e.next = Some(now + PHASE_POLL);
            return;
        }
        if !e.ready {
            // Just ready: whoever announced to our own tracker meanwhile.
            e.ready = true;
            let local = self.shared.tracker.peers(&ih);
            send_new(&e.torrent, &mut e.known, local);
        }
        let mut next: Option<Instant> = None;
        let mut soon = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        let mut tracker_job = None;
        if let Some(list) = e.list.as_ref().filter(|_| e.has_trackers) {
            let event = if !e.started {
                AnnounceEvent::Started
            } else if phase == Phase::Seeding && !e.completed_sent {
                AnnounceEvent::Completed
            } else {
                AnnounceEvent::None
            };
            // `completed` goes out at once; everything else (including a
            // `started` that has not got through yet) follows the schedule,
            // which backs off after failures.
            let completed_now = event == AnnounceEvent::Completed && !e.completed_tried;
            if completed_now || list.is_due(now) {
                if workers_free {
                    e.completed_tried |= event == AnnounceEvent::Completed;
                    tracker_job = Some(event);
                } else {
                    soon(now + PHASE_POLL);
                }
            } else {
                soon(list.next_announce());
                if !e.completed_sent {
                    // To send `completed` as soon as the download is done.
                    soon(now + PHASE_POLL);
                }
            }
        }
        let mut dht_job = false;
        if let Some(dht) = dht.as_ref().filter(|_| !e.torrent.metainfo.info.private) {
            if !e.dht_busy {
                // Every 5 minutes; every 30 s while the DHT finds nothing
                // (or knows nobody yet).
                let every = if e.dht_found_none || dht.routing_table_nodes().is_empty() {
                    DHT_RETRY
                } else {
                    DHT_INTERVAL
                };
                let due_at = e.last_dht.map_or(now, |t| t + every);
                if due_at <= now {
                    if workers_free {
                        dht_job = true;
                    } else {
                        soon(now + PHASE_POLL);
                    }
                } else {
                    soon(due_at);
                }
            }
        }
        e.next = next;
        if let Some(event) = tracker_job {
            let req = self.request(&self.entries[&ih], event);
            let Some(e) = self.entries.get_mut(&ih) else {
                return;
            };
            if let Some(mut list) = e.list.take() {
                let me = self.me.clone();
                let spawned = std::thread::Builder::new()
                    .name("announce-worker".into())
                    .stack_size(STACK)
                    .spawn(move || {
                        let result = list.announce(&req, &opts(), ROUND_TIMEOUT);
                        let _ = me.send(Msg::Done(Box::new(Done::Tracker {
                            ih,
                            list,
                            event,
                            result,
                        })));
                    });
                match spawned {
                    Ok(_) => self.workers += 1,
                    Err(err) => {
                        log::warn!("cannot start an announce worker: {err}");
                        e.next = Some(now + PHASE_POLL);
                    }
                }
            }
        }
        if dht_job {
            let Some(e) = self.entries.get_mut(&ih) else {
                return;
            };
            let (Some(dht), me, port) = (dht, self.me.clone(), self.shared.local_port()) else {
                return;
            };
            e.last_dht = Some(now);
            let spawned = std::thread::Builder::new()
                .name("announce-worker".into())
                .stack_size(STACK)
                .spawn(move || {
                    let found = dht.get_peers(ih, Duration::from_secs(10));
                    dht.announce(ih, port);
                    let _ = me.send(Msg::Done(Box::new(Done::Dht { ih, found })));
                });
            match spawned {
                Ok(_) => {
                    self.workers += 1;
                    e.dht_busy = true;
                }
                Err(err) => log::warn!("cannot start an announce worker: {err}"),
            }
        }
    }

    fn done(&mut self, d: Done) {
        self.workers = self.workers.saturating_sub(1);
        match d {
            Done::Tracker {
                ih,
                list,
                event,
                result,
            } => {
                let Some(e) = self.entries.get_mut(&ih) else {
                    // Removed meanwhile: `stopped` only if it had started.
                    if event != AnnounceEvent::Started || result.is_ok() {
                        stopped_round(list, self.stopped_request(ih));
                    }
                    return;
                };
                e.list = Some(list);
                let name = &e.torrent.metainfo.info.name;
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
                        e.started = true;
                        if event == AnnounceEvent::Completed {
                            e.completed_sent = true;
                        }
                        ts.url = Some(url);
                        ts.peers_returned = resp.peers.len();
                        send_new(&e.torrent, &mut e.known, resp.peers);
                    }
                    Err(err) => {
                        log::warn!("{name}: announce failed: {err}");
                        ts.error = Some(err.to_string());
                    }
                }
                // Into the status snapshot too: an idle torrent thread does
                // not republish it.
                e.torrent.status.lock().tracker = ts.clone();
                *e.torrent.tracker.lock() = ts;
                e.next = Some(Instant::now());
            }
            Done::Dht { ih, found } => {
                let Some(e) = self.entries.get_mut(&ih) else {
                    return;
                };
                e.dht_busy = false;
                e.dht_found_none = found.is_empty();
                log::debug!(
                    "{}: DHT: {} peers",
                    e.torrent.metainfo.info.name,
                    found.len()
                );
                send_new(&e.torrent, &mut e.known, found);
                e.next = Some(Instant::now());
            }
        }
    }

    /// A `stopped` request needs no status: what we report no longer matters.
    fn stopped_request(&self, ih: InfoHash) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: ih,
            peer_id: self.shared.peer_id,
            port: self.shared.local_port(),
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: AnnounceEvent::Stopped,
            numwant: 0,
            key: self.key,
        }
    }

    /// Announce `stopped` for these torrents (those that announced
    /// `started`), several at once, each bounded by a few seconds. Rounds
    /// still running on workers are waited for (bounded) to get their lists
    /// back.
    fn send_stopped(&mut self, mut entries: Vec<Entry>, rx: &Receiver<Msg>) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.workers > 0 && entries.iter().any(|e| e.list.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Msg::Done(d)) => {
                    let mine = match &*d {
                        Done::Tracker { ih, .. } => entries
                            .iter()
                            .position(|e| e.torrent.metainfo.info_hash == *ih),
                        Done::Dht { .. } => None,
                    };
                    match (mine, *d) {
                        (Some(i), Done::Tracker { list, result, .. }) => {
                            self.workers = self.workers.saturating_sub(1);
                            entries[i].started |= result.is_ok();
                            entries[i].list = Some(list);
                        }
                        (_, d) => self.done(d),
                    }
                }
                Ok(Msg::Add(t)) => self.add(t),
                Ok(Msg::Remove(ih, reply)) => {
                    if let Some(e) = self.entries.remove(&ih) {
                        entries.push(e);
                    }
                    let _ = reply.send(());
                }
                Ok(Msg::Stop) => {
                    // Stopping anyway once these are done.
                    let _ = self.me.send(Msg::Stop);
                    let rest: Vec<Entry> = self.entries.drain().map(|(_, e)| e).collect();
                    entries.extend(rest);
                }
                Err(_) => break,
            }
        }
        let jobs: Vec<(TrackerList, AnnounceRequest)> = entries
            .iter_mut()
            .filter(|e| e.started)
            .filter_map(|e| {
                let ih = e.torrent.metainfo.info_hash;
                e.list.take().map(|l| (l, self.stopped_request(ih)))
            })
            .collect();
        for chunk in jobs.chunks(MAX_WORKERS * 2) {
            std::thread::scope(|s| {
                for (list, req) in chunk {
                    let (list, req) = (list.clone(), req.clone());
                    let _ = std::thread::Builder::new()
                        .name("announce-worker".into())
                        .stack_size(STACK)
                        .spawn_scoped(s, move || stopped_round(list, req));
                }
            });
        }
    }
}

fn stopped_round(mut list: TrackerList, req: AnnounceRequest) {
    let _ = list.announce(
        &req,
        &AnnounceOptions {
            timeout: Duration::from_secs(2),
            udp_base_timeout: Duration::from_secs(1),
            udp_max_retries: 0,
        },
        Duration::from_secs(3),
    );
}

fn send_new(torrent: &TorrentShared, known: &mut HashSet<SocketAddr>, peers: Vec<SocketAddr>) {
    let fresh: Vec<SocketAddr> = peers.into_iter().filter(|p| known.insert(*p)).collect();
    if !fresh.is_empty() {
        let _ = torrent.commands.send(Command::AddPeers(fresh));
    }
}
