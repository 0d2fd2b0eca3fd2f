//! The torrent thread (the design card's piece-picker thread): one per
//! torrent. It alone owns the [`Picker`], the writes to [`Storage`](crate::engine::storage::Storage), the
//! choker state, the table of connected peers and the candidate addresses.
//!
//! It waits for its peers' events, the hashing pool's verdicts, commands
//! from the session, its disk writer's completions and a 1 s tick, all at
//! once on one [`Doorbell`] (every sender rings it; each wake-up takes
//! everything queued, see `util::doorbell`). Sends to peer
//! threads use `try_send`: a peer whose inbox is full is closed, so this
//! thread never waits on anyone, not even the disk: its writes, syncs and
//! resume saves go to a disk writer thread it owns (`disk.rs`), whose
//! completions are one more inbox.

// The rest of this room.
pub(crate) mod candidates;
pub mod choker;
mod disk;
mod fetch_conn;
pub(crate) mod layers;
pub mod metadata;
pub mod picker;
pub(crate) mod recent_pieces;
pub mod seeding;
pub mod selection;
pub mod sequence;
pub mod smart_ban;
pub(crate) mod status;

// The rest of this type's methods, by what they handle.
mod block_verify;
mod checking;
mod choking;
mod haves;
mod holepunch;
mod inboxes;
mod peers;
mod pieces;
mod v2_recheck;
mod wanted;
mod web_seeds;

use crate::engine::conn::block_pool;
use crate::engine::conn::peer::{
    self, Blocks, CloseReason, FromPeers, PeerCmd, PeerContext, PeerCounters, PeerEvent,
};
use crate::engine::conn::pipeline::{budget_floor, Pipeline, MIN_BATCH};
use crate::engine::conn::waker::Inbox;
use crate::engine::net::rate_limit::{Direction, RatePair, Throttle};
use crate::engine::session::events::Event;
use crate::engine::session::shared::{Command, Shared, StatusCell, TorrentShared};
use crate::engine::storage::hasher::{HashDone, HashJob, PieceData};
use crate::engine::storage::piece_buffer::{Complete, MemoryBudget, PieceBuffers, Stored};
use crate::engine::torrent::candidates::Candidates;
use crate::engine::torrent::choker::ChokeCandidate;
use crate::engine::torrent::picker::{PeerKey, Picker, Received};
use crate::engine::torrent::recent_pieces::{RecentPieces, KEEP_MEMORY};
use crate::engine::torrent::selection::FilePriority;
use crate::engine::torrent::smart_ban::{EverRequested, GivenUp, SmartBan};
use crate::engine::torrent::status::{PeerInfo, Phase, PieceOrderPrefs, SeedGoal, TorrentStatus};
use crate::proto::bitfield::Bitfield;
use crate::proto::layout::Layout;
use crate::proto::metainfo::Metainfo;
use crate::proto::resume::ResumeData;
use crate::util::doorbell::{Doorbell, Rung};
use crossbeam_channel::Receiver;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Conn {
    addr: SocketAddr,
    inbox: Inbox<PeerCmd>,
    closer: crate::engine::net::transport::Closer,
    /// TCP or uTP.
    transport: crate::engine::net::transport::Transport,
    peer_id: [u8; 20],
    outgoing: bool,
    /// The connection speaks v2 (hash requests may be sent on it).
    v2: bool,
    bitfield: Bitfield,
    /// Pieces the peer has that we lack.
    wanted: u32,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    outstanding: HashSet<crate::proto::wire::BlockRef>,
    counters: Arc<PeerCounters>,
    last_down: u64,
    last_up: u64,
    down_rate: u64,
    up_rate: u64,
    last_block: Instant,
    /// How many blocks to keep requested from it.
    pipeline: Pipeline,
    /// Where the peer accepts connections (outgoing: the address we
    /// dialled; incoming: its IP with the `p` of its extended handshake).
    listen_addr: Option<SocketAddr>,
    /// It speaks `ut_pex`.
    pex: bool,
    /// It speaks `ut_holepunch` (BEP 55).
    holepunch: bool,
    /// The client name of its extended handshake.
    client: Option<String>,
    /// What our PEX messages have told it is connected.
    pex_sent: HashSet<SocketAddr>,
    next_pex: Instant,
    /// Pieces the peer lets us request while it chokes us (BEP 6).
    allowed_fast: Vec<u32>,
    joined_at: Instant,
    /// Requests we gave up on (choke, timeout, endgame cancel): a late
    /// answer to one of them is accepted.
    given_up: GivenUp,
    /// Every block ever requested on this connection: only a block never
    /// asked for counts against the peer.
    requested: EverRequested,
    /// `ChokedUs(true)` events seen: requests are sent tagged with it, and
    /// the peer thread drops those it gets after a later choke (the ones
    /// this thread gave up on when that choke arrived).
    chokes: u32,
    /// Blocks it sent that we never asked it for (dropped).
    unrequested: u32,
    /// Pieces it rejected while unchoking us, not asked again for a while.
    refused: seeding::Refused,
    /// Our `have`s waiting to go out together (`haves.rs`).
    haves: haves::PendingHaves,
}

const TICK: Duration = Duration::from_secs(1);
/// The longest the thread naps while hash verdicts or disk completions are
/// due (they do not ring it then: `util::doorbell`'s lazy senders).
const LAZY_WAIT: Duration = Duration::from_millis(5);
/// Stack size of a torrent thread (its state is on the heap).
const TORRENT_STACK: usize = 256 * 1024;
/// Addresses kept as candidates (more are ignored).
const MAX_CANDIDATES: usize = 2000;
const CHOKE_INTERVAL: Duration = Duration::from_secs(10);
const OPTIMISTIC_INTERVAL: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A full peer table evicts a peer useless for at least this long.
const IDLE_EVICT_AFTER: Duration = Duration::from_secs(5);
/// How long a torrent stalled on a full disk waits before it probes for
/// space again (doubled after each stall that follows a retry, up to
/// [`STALL_RETRY_CAP`], until a piece is written).
const STALL_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two probes of a full disk.
const STALL_RETRY_CAP: Duration = Duration::from_secs(300);
/// Resume data is saved at most this often while pieces arrive (and at
/// completion and shutdown).
const RESUME_SAVE_INTERVAL: Duration = Duration::from_secs(30);
/// Between PEX messages to one peer (BEP 11: at most one a minute).
const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// Bytes of pieces a torrent assembles in memory at once (pieces past it are
/// written block by block and read back to be hashed): three quarters of
/// the session's budget (48 MiB of the default 64 MiB, room for one
/// connection's largest pipeline, `pipeline::MAX_PIPELINE_BYTES`, so that a
/// long fat link is not held back by it), at least 16 MiB.
fn piece_buffer_budget(session: &MemoryBudget) -> u64 {
    (session.cap() / 4 * 3).max(16 << 20)
}
/// Strikes (pieces failing their hash with this peer's data alone) before a ban.
const BAN_STRIKES: u32 = 2;
/// Blocks a peer may send that we never asked it for before it is banned
/// (each is dropped unread by the picker).
const MAX_UNREQUESTED_BLOCKS: u32 = 16;
/// Addresses of departed peers remembered for blaming their blocks later.
const MAX_DEPARTED: usize = 1024;

/// The torrent thread's state.
pub(crate) struct Torrent {
    shared: Arc<Shared>,
    me: Arc<TorrentShared>,
    layout: Layout,
    picker: Picker,
    /// Pieces assembling in memory (bounded), hashed and written from there.
    buffers: PieceBuffers,
    /// The disk writer thread and what is queued with it (`disk.rs`).
    disk: disk::DiskSide,
    conns: HashMap<PeerKey, Conn>,
    /// Outgoing connection attempts not yet joined.
    dialing: HashMap<PeerKey, SocketAddr>,
    /// Addresses we may dial, with the one back-off rule (`candidates.rs`).
    candidates: Candidates,
    strikes: HashMap<SocketAddr, u32>,
    banned: HashSet<SocketAddr>,
    banned_ips: HashSet<IpAddr>,
    /// Block hashes of failed pieces by sender (smart ban).
    smart_ban: SmartBan,
    /// A hybrid's v2 view with the piece layers fetched since it started
    /// (`session::hybrid_layers`); pieces are checked against it instead
    /// of the metainfo's.
    late_v2: Option<Arc<crate::proto::metainfo::V2Info>>,
    /// Pieces verified before their layer came, checked again (`v2_recheck.rs`).
    recheck: v2_recheck::Recheck,
    /// Failed v2 pieces waiting for their block hashes (`block_verify.rs`).
    block_checks: Vec<block_verify::BlockCheck>,
    /// Addresses on parole (contributed to a failed piece with others).
    parole: HashSet<SocketAddr>,
    /// Addresses of peers that left, for blaming blocks they sent.
    departed: HashMap<PeerKey, SocketAddr>,
    departed_order: std::collections::VecDeque<PeerKey>,
    phase: Phase,
    /// What this thread waits on: every sender to it rings it.
    bell: Arc<Doorbell>,
    hash_tx: Rung<HashDone>,
    /// Hash jobs sent and not answered (their verdicts are lazy).
    hash_jobs: std::cell::Cell<u32>,
    hash_rx: Receiver<HashDone>,
    /// Peer threads' control events (served first) and blocks.
    from_peers: FromPeers,
    commands_rx: Receiver<Command>,
    check_next: u32,
    check_in_flight: u32,
    downloaded: u64,
    uploaded_closed: u64,
    hash_failures: u32,
    /// A peer got fewer requests than it had room for because the piece
    /// buffers could take no new piece: refill the peers once a written
    /// piece gives its bytes back (`disk.rs`), not only at the next tick.
    budget_starved: bool,
    pex_learned: usize,
    /// BEP 55: relays, rendezvous asked, the `connect` rate, counters.
    holepunch: holepunch::HolepunchState,
    /// Addresses refused by `Shared::dialable` (status).
    refused_addresses: usize,
    checked_pieces: u32,
    resumed: bool,
    resume_dirty: bool,
    last_resume_save: Instant,
    stalled_at: Instant,
    /// The wait before the next probe of a full disk (see [`STALL_RETRY`]);
    /// zero once a piece was written after the last stall.
    stall_retry: Duration,
    paused: bool,
    last_choke: Instant,
    last_optimistic: Instant,
    optimistic: Option<PeerKey>,
    rng: crate::util::rng::Rng,
    /// `downloaded` at the previous tick (stall diagnostics).
    downloaded_last_tick: u64,
    /// One priority per entry of `info.files`.
    priorities: Vec<FilePriority>,
    /// The pieces to download (those holding bytes of wanted files).
    wanted: Bitfield,
    /// Whether `wanted` is every piece (no mask needed).
    all_wanted: bool,
    /// Wanted pieces not verified yet.
    wanted_missing: u32,
    /// When to stop seeding.
    seed_goal: SeedGoal,
    /// Time spent seeding (complete, not paused).
    seeding_time: Duration,
    /// Since when the torrent seeds without uploading (for the idle limit).
    idle_since: Instant,
    /// The upload count when `idle_since` was last reset.
    idle_uploaded: u64,
    /// The previous tick (to add up `seeding_time`).
    last_tick: Instant,
    /// Sequential download and first/last-piece priority.
    order: PieceOrderPrefs,
    /// Its web seeds (BEP 19, `web_seeds.rs`).
    web: web_seeds::WebSeeds,
    /// When the `have`s waiting in `Conn::haves` must go (`haves.rs`).
    have_clock: haves::HaveClock,
}

/// Start a torrent thread. Returns the shared part (registered with the
/// session) and the thread's handle.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn(
    shared: Arc<Shared>,
    metainfo: Metainfo,
    storage: Arc<crate::engine::storage::Storage>,
    peers: Vec<SocketAddr>,
    paused: bool,
    priorities: Vec<FilePriority>,
    rates: Arc<RatePair>,
    seed_goal: SeedGoal,
    order: PieceOrderPrefs,
) -> std::io::Result<(Arc<TorrentShared>, std::thread::JoinHandle<()>)> {
    let layout = Layout::of(&metainfo.info);
    let wanted = selection::wanted_pieces(&metainfo.info, &priorities);
    let wanted_length = wanted_length(&metainfo.info, &priorities);
    let n = layout.num_pieces as usize;
    let have = Arc::new(RwLock::new(Bitfield::new(n)));
    // Two bounded channels from the peer threads: control events and blocks
    // (`peer::outbox`); small, because a bounded channel allocates every
    // slot up front (a seed of 10,000 torrents has 10,000 pairs).
    let bell = Doorbell::new();
    let (to_torrent, from_peers) = peer::channels(&bell);
    let (cmd_tx, commands_rx) = crossbeam_channel::unbounded();
    let cmd_tx = Rung::new(cmd_tx, bell.clone());
    let (hash_tx, hash_rx) = crossbeam_channel::unbounded();
    let hash_tx = Rung::new(hash_tx, bell.clone());
    let peer_ctx = Arc::new(PeerContext {
        info_hash: metainfo.info_hash.0,
        our_id: shared.peer_id,
        layout,
        storage,
        have,
        recent: RecentPieces::new(KEEP_MEMORY, shared.kept_memory.clone()),
        limits: shared.config.peer_limits,
        listen_port: shared.local_port(),
        private: metainfo.info.private,
        v2: metainfo.format() == crate::proto::metainfo::Format::V2,
        v2_alias: match (metainfo.format(), metainfo.info_hash_v2) {
            (crate::proto::metainfo::Format::Hybrid, Some(v2)) => Some(v2.truncated().0),
            _ => None,
        },
        info_bytes: Arc::new(metainfo.info_bytes.clone()),
        dht: shared.dht.clone(),
        dht6: shared.dht6.clone(),
        encryption: shared.config.encryption,
        dialer: shared.dialer.clone(),
        throttle: Throttle {
            session: shared.rates.clone(),
            torrent: rates.clone(),
        },
        spread: seeding::Spread::new(layout.num_pieces as usize),
        own_v6: shared.own_v6,
        hash_trees: RwLock::new(v2_recheck::trees_of(metainfo.v2.as_deref())),
    });
    let status = TorrentStatus {
        info_hash: metainfo.info_hash,
        name: metainfo.info.name.clone(),
        phase: Phase::Checking,
        pieces_have: 0,
        pieces_total: layout.num_pieces,
        bytes_have: 0,
        total_length: layout.total_length,
        downloaded: 0,
        uploaded: 0,
        download_rate: 0,
        upload_rate: 0,
        peers: 0,
        seeds: 0,
        hash_failures: 0,
        uploaded_from_memory: 0,
        tracker: Default::default(),
        peers_from_pex: 0,
        refused_addresses: 0,
        checked_pieces: 0,
        resumed: false,
        paused,
        save_path: peer_ctx.storage.root().to_path_buf(),
        banned: 0,
        piece_layers_missing: metainfo
            .v2
            .as_deref()
            .map_or(0, |v2| v2.missing_layers() as u32),
        piece_layers_fetched: 0,
        pieces_v2_rechecked: 0,
        pieces_wanted: wanted.count() as u32,
        pieces_wanted_have: 0,
        wanted_length,
        max_download_rate: rates.download.rate(),
        max_upload_rate: rates.upload.rate(),
        seeding_time: Duration::ZERO,
        seed_goal,
        seed_limits: Default::default(),
        sequential: order.sequential,
        first_last_piece: order.first_last_piece,
        waiting_for_disk: false,
        disk_queued: 0,
        pieces_spilled: 0,
        web_seeds: Vec::new(),
    };
    let me = Arc::new(TorrentShared {
        metainfo,
        status: StatusCell::new(status, shared.status_changes.clone()),
        commands: cmd_tx,
        peer_ctx,
        to_torrent,
        tracker: Mutex::new(Default::default()),
        rates,
        priorities: Mutex::new(priorities.clone()),
        piece_order: Mutex::new(order),
        readers: Mutex::new(Default::default()),
    });
    let now = Instant::now();
    let buffers = PieceBuffers::new(
        layout,
        piece_buffer_budget(&shared.piece_memory),
        shared.piece_memory.clone(),
    );
    let short = me.metainfo.info_hash.to_hex();
    let disk = disk::DiskSide::new(
        &short[..8],
        me.peer_ctx.storage.clone(),
        n,
        shared.piece_memory.clone(),
        &bell,
    )?;
    let web = web_seeds::WebSeeds::new(&me.metainfo, shared.config.web_seeds);
    let mut t = Torrent {
        web,
        shared,
        me: me.clone(),
        layout,
        picker: Picker::new(layout, Bitfield::new(n)),
        buffers,
        disk,
        conns: HashMap::new(),
        dialing: HashMap::new(),
        candidates: Candidates::new(MAX_CANDIDATES),
        strikes: HashMap::new(),
        banned: HashSet::new(),
        banned_ips: HashSet::new(),
        smart_ban: SmartBan::new(),
        late_v2: None,
        recheck: Default::default(),
        block_checks: Vec::new(),
        parole: HashSet::new(),
        departed: HashMap::new(),
        departed_order: std::collections::VecDeque::new(),
        phase: Phase::Checking,
        bell,
        hash_tx,
        hash_jobs: std::cell::Cell::new(0),
        hash_rx,
        from_peers,
        commands_rx,
        check_next: 0,
        check_in_flight: 0,
        downloaded: 0,
        uploaded_closed: 0,
        hash_failures: 0,
        budget_starved: false,
        pex_learned: 0,
        holepunch: holepunch::HolepunchState::default(),
        refused_addresses: 0,
        checked_pieces: 0,
        resumed: false,
        resume_dirty: false,
        last_resume_save: now,
        stalled_at: now,
        stall_retry: Duration::ZERO,
        paused,
        last_choke: now,
        last_optimistic: now,
        optimistic: None,
        rng: crate::util::rng::Rng::new(),
        downloaded_last_tick: 0,
        all_wanted: wanted.is_full(),
        wanted_missing: wanted.count() as u32,
        wanted,
        priorities,
        seed_goal,
        seeding_time: Duration::ZERO,
        idle_since: now,
        idle_uploaded: 0,
        last_tick: now,
        have_clock: haves::HaveClock::default(),
        order: PieceOrderPrefs::default(),
    };
    t.set_order(order);
    t.add_candidates(peers);
    let handle = std::thread::Builder::new()
        .name(format!("torrent {}", &short[..8]))
        .stack_size(TORRENT_STACK)
        .spawn(move || t.run())?;
    Ok((me, handle))
}

impl Torrent {
    fn run(mut self) {
        self.bell.bind_current();
        if !self.load_resume() {
            log::info!("{}: checking existing data", self.me.metainfo.info.name);
        }
        self.feed_checks();
        let mut next_tick = Instant::now() + TICK;
        loop {
            // Busy: a tick every second. Idle (no peers, nothing dialling,
            // nothing to check): asleep until an event or the next thing due.
            let wake = self.next_wake(next_tick);
            // Everything queued now, in one wake-up: control events first
            // (they never wait behind blocks), then blocks, verdicts, disk
            // completions and commands.
            let Some(mut took) = self.take_control() else {
                return;
            };
            took |= self.take_blocks();
            if took {
                self.wake_held();
            }
            took |= self.take_hashed();
            took |= self.take_disk_done();
            took |= self.take_web();
            match self.take_commands() {
                Some(t) => took |= t,
                None => return,
            }
            if !took {
                let (p, h, d, c, w) = (
                    &self.from_peers,
                    &self.hash_rx,
                    &self.disk.done,
                    &self.commands_rx,
                    &self.web.events,
                );
                let has_work = || {
                    !(p.control.is_empty()
                        && p.data.is_empty()
                        && h.is_empty()
                        && d.is_empty()
                        && c.is_empty()
                        && w.is_empty())
                };
                // Verdicts or completions due: a short nap, so that they come
                // with the next blocks instead of a wake-up of their own
                // (not while checking: there the verdicts are all there is).
                let due = self.hash_jobs.get() > 0 || self.disk.has_jobs();
                // `have`s waiting: wake to send them.
                let until = match (wake, self.have_clock.due()) {
                    (Some(w), Some(h)) => Some(w.min(h)),
                    (w, h) => w.or(h),
                };
                if due && self.phase != Phase::Checking {
                    let nap = Instant::now() + LAZY_WAIT;
                    self.bell.nap(until.map_or(nap, |w| w.min(nap)), has_work);
                } else {
                    self.bell.wait(until, has_work);
                }
            }
            self.disk.retire_idle_writer();
            let now = Instant::now();
            self.send_due_haves(now);
            if now >= next_tick || wake.is_some_and(|w| now >= w) {
                self.on_tick();
                next_tick = now + TICK;
            }
        }
    }

    /// The blocks of one socket read of peer `key`.
    fn on_blocks(&mut self, key: PeerKey, blocks: Blocks) {
        if !self.conns.contains_key(&key) {
            // Gone (closed by us): its requests went back to the picker.
            block_pool::global().give_back(blocks.into_iter().map(|(_, d)| d));
            return;
        }
        for (block, data) in blocks {
            self.on_block(key, block, data);
        }
        self.fill_requests(key);
    }

    /// When the loop must wake up by itself: the next tick while anything is
    /// going on, else the next candidate to dial, resume data to save or
    /// stall to retry; `None` when nothing is due (a seed nobody talks to
    /// costs no CPU at all).
    fn next_wake(&self, next_tick: Instant) -> Option<Instant> {
        let busy = !self.conns.is_empty()
            || !self.dialing.is_empty()
            || self.phase == Phase::Checking
            || self.check_in_flight > 0
            || (self.phase == Phase::Downloading && self.web.active());
        // A seeding goal counts seeding time (and may already be reached):
        // the tick must run while one is pending.
        let goal_pending = self.phase == Phase::Seeding && !self.paused && self.seed_goal.is_set();
        if busy || goal_pending {
            return Some(next_tick);
        }
        let mut due: Option<Instant> = None;
        let mut at = |t: Instant| due = Some(due.map_or(t, |d: Instant| d.min(t)));
        if !self.paused && matches!(self.phase, Phase::Downloading | Phase::Seeding) {
            if let Some(t) = self.candidates.next_due(|a| !self.is_banned(a)) {
                at(t.max(next_tick));
            }
        }
        if self.resume_dirty {
            at(self.last_resume_save + RESUME_SAVE_INTERVAL);
        }
        if let Some(t) = self.disk.writer_idle_deadline() {
            at(t);
        }
        if matches!(self.phase, Phase::Stalled(_)) {
            at(self.stalled_at + self.stall_retry);
        }
        due
    }

    // ---- checking ---------------------------------------------------------

    /// Tell the session's event subscribers.
    fn emit(&self, event: Event) {
        self.shared.events.publish(event);
    }

    // ---- peers -------------------------------------------------------------

    // ---- candidates ----------------------------------------------------------

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::AddPeers(addrs) => {
                self.add_candidates(addrs);
                self.connect_candidates();
            }
            Command::Pause => {
                if !self.paused {
                    self.paused = true;
                    log::info!("{}: paused", self.me.metainfo.info.name);
                    let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
                    for k in keys {
                        self.close(k, CloseReason::Shutdown);
                    }
                    self.stop_web_seeds();
                    if self.phase != Phase::Checking {
                        self.save_resume();
                    }
                    self.publish_status();
                    self.emit(Event::Paused {
                        info_hash: self.me.metainfo.info_hash,
                    });
                }
            }
            Command::Resume if !self.paused && self.phase == Phase::Finished => {
                // Seed again, with no goal this time.
                self.phase = Phase::Seeding;
                self.seed_goal = SeedGoal::default();
                log::info!("{}: seeding again", self.me.metainfo.info.name);
                self.candidates.retry_all(Instant::now());
                self.connect_candidates();
                self.publish_status();
            }
            Command::Resume => {
                if self.paused {
                    self.paused = false;
                    log::info!("{}: resumed", self.me.metainfo.info.name);
                    let now = Instant::now();
                    self.candidates.retry_all(now);
                    self.connect_candidates();
                    self.publish_status();
                    self.emit(Event::Resumed {
                        info_hash: self.me.metainfo.info_hash,
                    });
                }
            }
            Command::SetFilePriorities(p) => self.set_priorities(p),
            // Served to peers, and pieces verified without them checked.
            Command::PieceLayers(v2) => self.on_piece_layers(v2),
            Command::SetSeedGoal(goal) => {
                self.seed_goal = goal;
                self.check_seed_goal();
                self.publish_status();
            }
            Command::SetPieceOrder(order) => {
                self.set_order(order);
                let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
                for k in keys {
                    self.fill_requests(k);
                }
                self.publish_status();
            }
            Command::SetReaders(pieces) => {
                self.picker.order_mut().set_readers(pieces);
                let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
                for k in keys {
                    self.fill_requests(k);
                }
            }
            Command::Peers(reply) => {
                let peers = self
                    .conns
                    .iter()
                    .map(|(k, c)| PeerInfo {
                        addr: c.addr,
                        peer_id: c.peer_id,
                        client: c.client.clone(),
                        outgoing: c.outgoing,
                        pieces: c.bitfield.count() as u32,
                        download_rate: c.down_rate,
                        upload_rate: c.up_rate,
                        downloaded: c.counters.downloaded.load(Ordering::Relaxed),
                        uploaded: c.counters.uploaded.load(Ordering::Relaxed),
                        am_choking: c.am_choking,
                        am_interested: c.am_interested,
                        peer_choking: c.peer_choking,
                        peer_interested: c.peer_interested,
                        optimistic: self.optimistic == Some(*k),
                        pex: c.pex,
                        transport: c.transport,
                        v2: c.v2,
                    })
                    .collect();
                let _ = reply.try_send(peers);
            }
            Command::Shutdown(_) | Command::Remove(_) => {}
        }
    }

    // ---- the tick --------------------------------------------------------------

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.me.peer_ctx.recent.expire(now);
        self.block_checks_tick(now);
        if self.phase == Phase::Seeding && !self.paused {
            self.seeding_time += now.saturating_duration_since(self.last_tick);
        }
        self.last_tick = now;
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for &k in &keys {
            let Some(c) = self.conns.get_mut(&k) else {
                continue;
            };
            let d = c.counters.downloaded.load(Ordering::Relaxed);
            let u = c.counters.uploaded.load(Ordering::Relaxed);
            // Exponential moving average over a few seconds.
            let delta = d - c.last_down;
            c.down_rate = (c.down_rate + delta) / 2;
            c.up_rate = (c.up_rate + (u - c.last_up)) / 2;
            c.last_down = d;
            c.last_up = u;
            c.pipeline.on_tick(delta, c.down_rate, now);
            c.refused.expire(now);
            // Requests that went unanswered for too long go back to the picker.
            if !c.outstanding.is_empty() && now - c.last_block > REQUEST_TIMEOUT {
                let lost: Vec<_> = c.outstanding.drain().collect();
                c.last_block = now;
                for b in lost {
                    c.given_up.insert(b);
                    self.picker.request_failed(k, &b);
                }
            }
            self.fill_requests(k);
        }
        // Streaming readers' windows follow the download rate (`sequence.rs`).
        let rate = self.conns.values().map(|c| c.down_rate).sum::<u64>() + self.web.download_rate();
        self.picker
            .order_mut()
            .set_rate(rate, self.layout.piece_length);
        let (conns, web) = (&self.conns, &self.web);
        let lost = self.picker.reconcile(|k, b| {
            conns.get(&k).is_some_and(|c| c.outstanding.contains(b)) || web.is_fetching(k)
        });
        if lost > 0 {
            log::debug!(
                "{}: reopened {lost} orphaned requests",
                self.me.metainfo.info.name
            );
            for k in keys.clone() {
                self.fill_requests(k);
            }
        }
        let moved = self.downloaded != self.downloaded_last_tick;
        self.downloaded_last_tick = self.downloaded;
        if self.phase == Phase::Downloading && !moved {
            log::debug!(
                "{}: no progress; missing {}; peers {:?}",
                self.me.metainfo.info.name,
                self.picker.describe_missing(),
                self.conns
                    .values()
                    .map(|c| (
                        c.addr,
                        c.am_interested,
                        c.peer_choking,
                        c.wanted,
                        c.outstanding.len()
                    ))
                    .collect::<Vec<_>>()
            );
        }
        if matches!(self.phase, Phase::Stalled(_)) && now - self.stalled_at >= self.stall_retry {
            // The writer answers with `statvfs` (disk.rs: `unstall`).
            self.probe_disk();
        }
        self.send_pex(now);
        if self.resume_dirty && now - self.last_resume_save >= RESUME_SAVE_INTERVAL {
            self.save_resume();
        }
        if now - self.last_choke >= CHOKE_INTERVAL {
            self.choke_round(now);
        }
        self.web.on_tick();
        self.feed_web_seeds();
        self.update_steering();
        self.check_seed_goal();
        self.connect_candidates();
        self.publish_status();
    }

    fn publish_status(&mut self) {
        // Only what is written counts (disk.rs).
        let (pieces_have, bytes_have) = self.written_counts();
        let uploaded = self.uploaded();
        let mut s = self.me.status.lock();
        s.phase = self.phase.clone();
        s.pieces_have = pieces_have;
        s.bytes_have = bytes_have.min(self.layout.total_length);
        s.downloaded = self.downloaded;
        s.uploaded = uploaded;
        s.download_rate =
            self.conns.values().map(|c| c.down_rate).sum::<u64>() + self.web.download_rate();
        s.web_seeds = self.web.status();
        s.upload_rate = self.conns.values().map(|c| c.up_rate).sum();
        s.peers = self.conns.len();
        s.seeds = self.conns.values().filter(|c| c.bitfield.is_full()).count();
        s.hash_failures = self.hash_failures;
        s.pieces_v2_rechecked = self.recheck.checked;
        s.uploaded_from_memory = self.me.peer_ctx.recent.sent();
        s.peers_from_pex = self.pex_learned;
        s.refused_addresses = self.refused_addresses;
        s.checked_pieces = self.checked_pieces;
        // `paused` is not written here: the session owns it (set at add and by
        // `Session::pause`/`resume` the moment they are called), so a snapshot
        // published before this thread has seen a pause never flips it back.
        s.resumed = self.resumed;
        s.banned = self.banned.len();
        s.seeding_time = self.seeding_time;
        s.seed_goal = self.seed_goal;
        s.sequential = self.order.sequential;
        s.first_last_piece = self.order.first_last_piece;
        s.tracker = self.me.tracker.lock().clone();
        s.pieces_wanted = self.wanted.count() as u32;
        s.pieces_wanted_have = s.pieces_wanted.saturating_sub(self.wanted_missing);
        s.wanted_length = wanted_length(&self.me.metainfo.info, &self.priorities);
        s.max_download_rate = self.me.rates.download.rate();
        s.max_upload_rate = self.me.rates.upload.rate();
        s.waiting_for_disk = self.disk.waiting();
        s.disk_queued = self.disk.bytes_waiting();
        s.pieces_spilled = self.buffers.spills();
    }

    fn shutdown(&mut self) {
        self.close_all();
        self.stop_web_seeds();
        // An interrupted check proves nothing: keep the old resume data.
        let save = self.phase != Phase::Checking;
        self.finish_disk(save);
        self.publish_status();
    }

    // ---- file selection ------------------------------------------------------------

    // ---- resume data ------------------------------------------------------------
}

/// `bf` restricted to the pieces in `keep` (same length).
fn mask(bf: &Bitfield, keep: &Bitfield) -> Bitfield {
    let bytes: Vec<u8> = bf
        .as_bytes()
        .iter()
        .zip(keep.as_bytes())
        .map(|(a, b)| a & b)
        .collect();
    Bitfield::from_bytes(&bytes, bf.len()).unwrap_or_else(|_| Bitfield::new(bf.len()))
}

/// Bytes of the files `priorities` wants (pad files excluded).
fn wanted_length(info: &crate::proto::metainfo::Info, priorities: &[FilePriority]) -> u64 {
    info.files
        .iter()
        .enumerate()
        .filter(|(i, f)| !f.pad && priorities.get(*i).is_none_or(|p| p.is_wanted()))
        .map(|(_, f)| f.length)
        .sum()
}
