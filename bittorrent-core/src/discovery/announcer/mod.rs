//! The announcer thread: one per torrent, and one per magnet link still
//! looking for its metadata. It talks to the trackers (BEP 3, 12, 15; a
//! bare `IP:PORT` announce is our own embedded tracker on another peer),
//! the DHT and this session's embedded tracker, and hands every address it
//! learns to its [`AnnounceTarget`] (the torrent thread as
//! `Command::AddPeers`, or the magnet's metadata thread). Network waits
//! happen here, never on the torrent or metadata thread; a tracker that is
//! down, hangs or answers garbage only delays discovery, it never stops a
//! download from known peers.

use crate::discovery::tracker::{
    AnnounceEvent, AnnounceOptions, AnnounceRequest, AnnounceResponse, TrackerError, TrackerList,
};
use crate::engine::session::events::Event;
use crate::engine::session::shared::{Command, Shared, TorrentShared};
use crate::engine::torrent::status::{Phase, TrackerStatus};
use crate::proto::metainfo::InfoHash;
use crate::util::source::SourceAddrs;
use crossbeam_channel::{select, Receiver, Sender};
use std::collections::HashMap;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod magnet;
pub(crate) use magnet::run;

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
        // Into the status snapshot too: an idle torrent thread (no peers)
        // does not republish it.
        self.status.lock().tracker = status.clone();
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

/// The event of the next announce of a torrent in the swarm: `started`
/// until one got through; then `completed` once, and only after a download
/// seen here (`leeched`: the torrent was seen incomplete; one that started
/// complete never sends it, it downloaded nothing); else none.
fn next_event(started: bool, complete: bool, leeched: bool, completed_sent: bool) -> AnnounceEvent {
    if !started {
        AnnounceEvent::Started
    } else if complete && leeched && !completed_sent {
        AnnounceEvent::Completed
    } else {
        AnnounceEvent::None
    }
}

// ---- the session's announcer ---------------------------------------------
//
// One thread for every torrent of the session (a magnet link looking for
// its metadata still runs `run` above, on a thread of its own). It keeps a
// schedule: each torrent has the time of its next look, and the thread
// sleeps until the earliest one or a message (a torrent added or removed, a
// finished network round). A session of idle torrents with nothing due
// never wakes it. Network rounds (a tracker announce across all tiers, a
// DHT lookup) run on short-lived worker threads, at most [`MAX_WORKERS`] at
// once, so one dead tracker delays only its own torrent.

/// While a torrent checks its data, or downloads with trackers to tell of
/// its completion, its progress is looked at this often.
const PHASE_POLL: Duration = Duration::from_secs(1);
/// Network rounds running at once (each on its own short-lived thread).
pub const MAX_WORKERS: usize = 8;
/// Between two manual announces of one torrent (sooner ones are ignored).
pub const MANUAL_MIN: Duration = Duration::from_secs(10);
/// Stack of the announcer thread and of its workers (HTTP, TLS, UDP, name
/// resolution).
const STACK: usize = 1024 * 1024;

enum Msg {
    Add(Arc<dyn AnnounceTarget>),
    /// Forget a torrent (announcing `stopped`), then reply.
    Remove(InfoHash, Sender<()>),
    /// Announce a torrent as soon as its trackers allow, and look it up
    /// on the DHT (a manual announce; at most once per `MANUAL_MIN`).
    Reannounce(InfoHash),
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

    /// A handle to talk to the thread (cheap to clone).
    pub(crate) fn client(&self) -> AnnouncerClient {
        AnnouncerClient(self.tx.clone())
    }

    /// Wait for the thread to end.
    pub(crate) fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Messages to the announcer thread.
#[derive(Clone)]
pub(crate) struct AnnouncerClient(Sender<Msg>);

impl AnnouncerClient {
    /// Announce a new torrent from now on.
    pub(crate) fn add(&self, t: Arc<dyn AnnounceTarget>) {
        let _ = self.0.send(Msg::Add(t));
    }

    /// Stop announcing a torrent; returns once `stopped` went out (a few
    /// seconds at most).
    pub(crate) fn remove(&self, ih: InfoHash) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.0.send(Msg::Remove(ih, tx)).is_ok() {
            let _ = rx.recv_timeout(ROUND_TIMEOUT + Duration::from_secs(5));
        }
    }

    /// Announce a torrent as soon as its trackers' `min interval` allows
    /// and look it up on the DHT at once; ignored within `MANUAL_MIN` of
    /// the last manual announce of that torrent.
    pub(crate) fn reannounce(&self, ih: InfoHash) {
        let _ = self.0.send(Msg::Reannounce(ih));
    }

    /// Ask the thread to stop (it announces `stopped` first); `join` waits.
    pub(crate) fn request_stop(&self) {
        let _ = self.0.send(Msg::Stop);
    }
}

/// One torrent's announce state.
struct Entry {
    target: Arc<dyn AnnounceTarget>,
    ih: InfoHash,
    name: String,
    private: bool,
    /// The last progress seen (for the `stopped` announce).
    last_progress: Option<Progress>,
    /// `None` while a worker runs a round with it.
    list: Option<TrackerList>,
    has_trackers: bool,
    known: HashSet<SocketAddr>,
    ready: bool,
    started: bool,
    completed_sent: bool,
    completed_tried: bool,
    /// Seen incomplete: `completed` is due once it is complete.
    leeched: bool,
    next_dht: Instant,
    dht_empty: u32,
    dht_busy: bool,
    /// When to look at this torrent next (`None`: only when told).
    next: Option<Instant>,
    /// The last manual announce (`Msg::Reannounce`).
    last_manual: Option<Instant>,
    /// A manual announce asked while a worker had the tracker list.
    manual_pending: bool,
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

fn opts(source: SourceAddrs) -> AnnounceOptions {
    AnnounceOptions {
        timeout: Duration::from_secs(10),
        udp_base_timeout: Duration::from_secs(3),
        udp_max_retries: 2,
        source,
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
                    Ok(Msg::Reannounce(ih)) => self.reannounce(ih),
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

    fn add(&mut self, t: Arc<dyn AnnounceTarget>) {
        let list = t.trackers();
        let ih = t.info_hash();
        self.entries.insert(
            ih,
            Entry {
                has_trackers: !list.is_empty(),
                list: Some(list),
                ih,
                name: t.name(),
                private: t.private(),
                last_progress: None,
                target: t,
                known: HashSet::new(),
                ready: false,
                started: false,
                completed_sent: false,
                completed_tried: false,
                leeched: false,
                next_dht: Instant::now(),
                dht_empty: 0,
                dht_busy: false,
                next: Some(Instant::now()),
                last_manual: None,
                manual_pending: false,
            },
        );
    }

    /// A manual announce (`Msg::Reannounce`), rate-limited per torrent.
    fn reannounce(&mut self, ih: InfoHash) {
        let now = Instant::now();
        let Some(e) = self.entries.get_mut(&ih) else {
            return;
        };
        if e.last_manual.is_some_and(|t| now < t + MANUAL_MIN) {
            log::debug!("{}: manual announce ignored (too soon)", e.name);
            return;
        }
        e.last_manual = Some(now);
        match e.list.as_mut() {
            Some(list) => list.announce_soon(),
            None => e.manual_pending = true,
        }
        if !e.dht_busy {
            e.next_dht = now;
        }
        e.next = Some(now);
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
                    let local = self.shared.tracker.peers(&e.ih);
                    send_new(&*e.target, &mut e.known, local);
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

    fn request(&self, ih: InfoHash, p: Progress, event: AnnounceEvent) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: ih,
            peer_id: self.shared.peer_id,
            port: self.shared.local_port(),
            uploaded: p.uploaded,
            downloaded: p.downloaded,
            left: p.left,
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
        let Some(progress) = e.target.progress() else {
            e.next = Some(now + PHASE_POLL);
            return;
        };
        e.last_progress = Some(progress);
        e.leeched |= !progress.complete;
        if !e.ready {
            // Just ready: whoever announced to our own tracker meanwhile.
            e.ready = true;
            let local = self.shared.tracker.peers(&ih);
            send_new(&*e.target, &mut e.known, local);
        }
        let mut next: Option<Instant> = None;
        let mut soon = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        let mut tracker_job = None;
        if let Some(list) = e.list.as_ref().filter(|_| e.has_trackers) {
            // A torrent that reached its seeding goal leaves the swarm; if it
            // is resumed later, it starts over with `started`.
            let leave = e.started && e.target.finished();
            let event = if leave {
                AnnounceEvent::Stopped
            } else {
                next_event(e.started, progress.complete, e.leeched, e.completed_sent)
            };
            // `completed` goes out at once; everything else (including a
            // `started` that has not got through yet) follows the schedule,
            // which backs off after failures.
            let completed_now = event == AnnounceEvent::Completed && !e.completed_tried;
            if leave || completed_now || list.is_due(now) {
                if workers_free {
                    e.completed_tried |= event == AnnounceEvent::Completed;
                    tracker_job = Some(event);
                } else {
                    soon(now + PHASE_POLL);
                }
            } else {
                soon(list.next_announce());
                if e.leeched && !e.completed_sent {
                    // To send `completed` as soon as the download is done.
                    soon(now + PHASE_POLL);
                }
            }
        }
        let mut dht_job = false;
        if dht.is_some() && !e.private && !e.dht_busy {
            {
                // At once, then every 5 minutes; sooner while the DHT finds
                // nobody (`dht_retry`).
                let due_at = e.next_dht;
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
            let req = self.request(ih, progress, event);
            let Some(e) = self.entries.get_mut(&ih) else {
                return;
            };
            if let Some(mut list) = e.list.take() {
                let me = self.me.clone();
                let source = self.shared.dialer.source;
                let spawned = std::thread::Builder::new()
                    .name("announce-worker".into())
                    .stack_size(STACK)
                    .spawn(move || {
                        let result = list.announce(&req, &opts(source), ROUND_TIMEOUT);
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
            // BEP 32: the IPv6 DHT too, in parallel.
            let dht6 = self.shared.dht6.clone();
            let spawned = std::thread::Builder::new()
                .name("announce-worker".into())
                .stack_size(STACK)
                .spawn(move || {
                    let dhts: Vec<&crate::discovery::dht::Dht> = [Some(&*dht), dht6.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect();
                    let found = crate::discovery::dht::lookup_all(
                        &dhts,
                        ih,
                        Duration::from_secs(10),
                        Some(port),
                    );
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
                        stopped_round(list, self.stopped_request(ih), self.shared.dialer.source);
                    }
                    return;
                };
                e.list = Some(list);
                if std::mem::take(&mut e.manual_pending) {
                    if let Some(l) = e.list.as_mut() {
                        l.announce_soon();
                    }
                }
                let name = &e.name;
                let mut ts = announced_now();
                match result {
                    Ok(_) if event == AnnounceEvent::Stopped => e.started = false,
                    Ok((url, resp)) => {
                        log::info!("{name}: tracker {url}: {} peers", resp.peers.len());
                        tracker_saw_us(&self.shared, &url, resp.external_ip);
                        e.started = true;
                        if event == AnnounceEvent::Completed {
                            e.completed_sent = true;
                        }
                        ts.url = Some(url);
                        ts.peers_returned = resp.peers.len();
                        send_new(&*e.target, &mut e.known, resp.peers);
                    }
                    Err(err) => {
                        log::warn!("{name}: announce failed: {err}");
                        ts.error = Some(err.to_string());
                    }
                }
                self.shared.events.publish(Event::TrackerAnnounce {
                    info_hash: ih,
                    url: ts.url.clone(),
                    peers: ts.peers_returned,
                    error: ts.error.clone(),
                });
                e.target.tracker_result(ts);
                e.next = Some(Instant::now());
            }
            Done::Dht { ih, found } => {
                let Some(e) = self.entries.get_mut(&ih) else {
                    return;
                };
                e.dht_busy = false;
                e.dht_empty = if found.is_empty() { e.dht_empty + 1 } else { 0 };
                e.next_dht = Instant::now()
                    + if e.dht_empty > 0 {
                        dht_retry(e.dht_empty)
                    } else {
                        DHT_INTERVAL
                    };
                log::debug!("{}: DHT: {} peers", e.name, found.len());
                send_new(&*e.target, &mut e.known, found);
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
                        Done::Tracker { ih, .. } => entries.iter().position(|e| e.ih == *ih),
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
                Ok(Msg::Reannounce(ih)) => self.reannounce(ih),
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
            .filter(|e| e.started && e.has_trackers)
            .filter_map(|e| {
                let p = e.last_progress?;
                let req = self.request(e.ih, p, AnnounceEvent::Stopped);
                e.list.take().map(|l| (l, req))
            })
            .collect();
        for chunk in jobs.chunks(MAX_WORKERS * 2) {
            std::thread::scope(|s| {
                let source = self.shared.dialer.source;
                for (list, req) in chunk {
                    let (list, req) = (list.clone(), req.clone());
                    let _ = std::thread::Builder::new()
                        .name("announce-worker".into())
                        .stack_size(STACK)
                        .spawn_scoped(s, move || stopped_round(list, req, source));
                }
            });
        }
    }
}

fn stopped_round(mut list: TrackerList, req: AnnounceRequest, source: SourceAddrs) {
    let _ = list.announce(
        &req,
        &AnnounceOptions {
            timeout: Duration::from_secs(2),
            udp_base_timeout: Duration::from_secs(1),
            udp_max_retries: 0,
            source,
        },
        Duration::from_secs(3),
    );
}

fn send_new(target: &dyn AnnounceTarget, known: &mut HashSet<SocketAddr>, peers: Vec<SocketAddr>) {
    let fresh: Vec<SocketAddr> = peers.into_iter().filter(|p| known.insert(*p)).collect();
    if !fresh.is_empty() {
        target.found(fresh);
    }
}

/// A tracker's `external ip` (BEP 24): our address as it sees it, one vote
/// per tracker URL.
fn tracker_saw_us(shared: &Shared, url: &str, ip: Option<std::net::IpAddr>) {
    if let Some(ip) = ip {
        use crate::engine::session::external::Reporter;
        shared.record_external(ip, Reporter::tracker(url));
    }
}

/// A tracker's status as of an announce made now (its time in Unix seconds).
fn announced_now() -> TrackerStatus {
    TrackerStatus {
        last_announce: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
        ..TrackerStatus::default()
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

    #[test]
    fn completed_only_after_a_download_seen_here() {
        use AnnounceEvent::{Completed, None as Nothing, Started};
        // A seeder from the start: started, then nothing, ever.
        assert_eq!(next_event(false, true, false, false), Started);
        assert_eq!(next_event(true, true, false, false), Nothing);
        // A download: started, nothing while it runs, completed once done,
        // then nothing.
        assert_eq!(next_event(false, false, true, false), Started);
        assert_eq!(next_event(true, false, true, false), Nothing);
        assert_eq!(next_event(true, true, true, false), Completed);
        assert_eq!(next_event(true, true, true, true), Nothing);
        // Finished before the first announce got through: started first.
        assert_eq!(next_event(false, true, true, false), Started);
    }
}
