//! The torrent thread (the design card's piece-picker thread): one per
//! torrent. It alone owns the [`Picker`], the writes to [`Storage`](crate::engine::storage::Storage), the
//! choker state, the table of connected peers and the candidate addresses.
//!
//! It blocks on `select!` over its peers' events, the hashing pool's
//! verdicts, commands from the session, and a 1 s tick. Sends to peer
//! threads use `try_send`: a peer whose inbox is full is closed, so this
//! thread never waits on anyone, not even the disk: its writes, syncs and
//! resume saves go to a disk writer thread it owns (`disk.rs`), whose
//! completions are one more arm of the `select!`.

// The rest of this room.
pub(crate) mod candidates;
pub mod choker;
mod disk;
pub mod metadata;
pub mod picker;
pub(crate) mod recent_pieces;
pub mod seeding;
pub mod selection;
pub mod smart_ban;
pub(crate) mod status;

use crate::engine::conn::block_pool;
use crate::engine::conn::peer::{self, CloseReason, PeerCmd, PeerContext, PeerCounters, PeerEvent};
use crate::engine::conn::pipeline::{Pipeline, MIN_DEPTH};
use crate::engine::conn::waker::Inbox;
use crate::engine::net::rate_limit::{Direction, RatePair, Throttle};
use crate::engine::session::events::Event;
use crate::engine::session::shared::{Command, Shared, TorrentShared};
use crate::engine::storage::hasher::{HashDone, HashJob, PieceData};
use crate::engine::storage::piece_buffer::{Complete, PieceBuffers, Stored};
use crate::engine::torrent::candidates::Candidates;
use crate::engine::torrent::choker::ChokeCandidate;
use crate::engine::torrent::picker::{PeerKey, Picker, Received};
use crate::engine::torrent::recent_pieces::{RecentPieces, KEEP_MEMORY};
use crate::engine::torrent::selection::FilePriority;
use crate::engine::torrent::smart_ban::{EverRequested, GivenUp, SmartBan};
use crate::engine::torrent::status::{PeerInfo, Phase, SeedGoal, TorrentStatus};
use crate::proto::bitfield::Bitfield;
use crate::proto::layout::Layout;
use crate::proto::metainfo::Metainfo;
use crate::proto::resume::ResumeData;
use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Conn {
    addr: SocketAddr,
    inbox: Inbox<PeerCmd>,
    closer: TcpStream,
    peer_id: [u8; 20],
    outgoing: bool,
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
}

const TICK: Duration = Duration::from_secs(1);
/// Capacity of a torrent's peer-event channel.
const EVENTS_CAPACITY: usize = 64;
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
/// written block by block and read back to be hashed).
const PIECE_BUFFER_BUDGET: u64 = 16 << 20;
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
    /// Addresses on parole (contributed to a failed piece with others).
    parole: HashSet<SocketAddr>,
    /// Addresses of peers that left, for blaming blocks they sent.
    departed: HashMap<PeerKey, SocketAddr>,
    departed_order: std::collections::VecDeque<PeerKey>,
    phase: Phase,
    hash_tx: Sender<HashDone>,
    hash_rx: Receiver<HashDone>,
    events_rx: Receiver<(PeerKey, PeerEvent)>,
    commands_rx: Receiver<Command>,
    check_next: u32,
    check_in_flight: u32,
    downloaded: u64,
    uploaded_closed: u64,
    hash_failures: u32,
    pex_learned: usize,
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
    /// The previous tick (to add up `seeding_time`).
    last_tick: Instant,
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
) -> std::io::Result<(Arc<TorrentShared>, std::thread::JoinHandle<()>)> {
    let layout = Layout::of(&metainfo.info);
    let wanted = selection::wanted_pieces(&metainfo.info, &priorities);
    let wanted_length = wanted_length(&metainfo.info, &priorities);
    let n = layout.num_pieces as usize;
    let have = Arc::new(RwLock::new(Bitfield::new(n)));
    // Bounded for backpressure; small, because a bounded channel allocates
    // every slot up front (a seed of 10,000 torrents has 10,000 of these)
    // and blocks arrive batched (`PeerEvent::Blocks`).
    let (events_tx, events_rx) = crossbeam_channel::bounded(EVENTS_CAPACITY);
    let (cmd_tx, commands_rx) = crossbeam_channel::unbounded();
    let (hash_tx, hash_rx) = crossbeam_channel::unbounded();
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
        info_bytes: Arc::new(metainfo.info_bytes.clone()),
        dht: shared.dht.clone(),
        encryption: shared.config.encryption,
        throttle: Throttle {
            session: shared.rates.clone(),
            torrent: rates.clone(),
        },
        spread: seeding::Spread::new(layout.num_pieces as usize),
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
        checked_pieces: 0,
        resumed: false,
        paused,
        save_path: peer_ctx.storage.root().to_path_buf(),
        banned: 0,
        pieces_wanted: wanted.count() as u32,
        pieces_wanted_have: 0,
        wanted_length,
        max_download_rate: rates.download.rate(),
        max_upload_rate: rates.upload.rate(),
        seeding_time: Duration::ZERO,
        seed_goal,
        waiting_for_disk: false,
        disk_queued: 0,
    };
    let me = Arc::new(TorrentShared {
        metainfo,
        status: Mutex::new(status),
        commands: cmd_tx,
        peer_ctx,
        events: events_tx,
        tracker: Mutex::new(Default::default()),
        rates,
        priorities: Mutex::new(priorities.clone()),
    });
    let now = Instant::now();
    let buffers = PieceBuffers::new(layout, PIECE_BUFFER_BUDGET, shared.piece_memory.clone());
    let short = me.metainfo.info_hash.to_hex();
    let disk = disk::DiskSide::new(
        &short[..8],
        me.peer_ctx.storage.clone(),
        n,
        shared.piece_memory.clone(),
    )?;
    let mut t = Torrent {
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
        parole: HashSet::new(),
        departed: HashMap::new(),
        departed_order: std::collections::VecDeque::new(),
        phase: Phase::Checking,
        hash_tx,
        hash_rx,
        events_rx,
        commands_rx,
        check_next: 0,
        check_in_flight: 0,
        downloaded: 0,
        uploaded_closed: 0,
        hash_failures: 0,
        pex_learned: 0,
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
        last_tick: now,
    };
    t.add_candidates(peers);
    let handle = std::thread::Builder::new()
        .name(format!("torrent {}", &short[..8]))
        .stack_size(TORRENT_STACK)
        .spawn(move || t.run())?;
    Ok((me, handle))
}

impl Torrent {
    fn run(mut self) {
        if !self.load_resume() {
            log::info!("{}: checking existing data", self.me.metainfo.info.name);
        }
        self.feed_checks();
        let mut next_tick = Instant::now() + TICK;
        loop {
            // Busy: a tick every second. Idle (no peers, nothing dialling,
            // nothing to check): asleep until an event or the next thing due.
            let wake = self.next_wake(next_tick);
            let timer = match wake {
                Some(t) => crossbeam_channel::at(t),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(self.events_rx) -> m => match m {
                    Ok((key, ev)) => self.on_event(key, ev),
                    Err(_) => break,
                },
                recv(self.hash_rx) -> m => if let Ok(done) = m { self.on_hashed(done) },
                recv(self.disk.done) -> m => if let Ok(done) = m { self.on_disk_done(done) },
                recv(self.commands_rx) -> m => match m {
                    Ok(Command::Shutdown(done)) => {
                        self.shutdown();
                        let _ = done.send(());
                        return;
                    }
                    Ok(Command::Remove(done)) => {
                        // Removed: answer at once; the writer drops what is
                        // queued and closes the files in the background.
                        self.abandon_disk();
                        self.close_all();
                        let _ = done.send(());
                        return;
                    }
                    Ok(cmd) => self.on_command(cmd),
                    Err(_) => { self.shutdown(); return; }
                },
                recv(timer) -> _ => {}
            }
            let now = Instant::now();
            if now >= next_tick || wake.is_some_and(|w| now >= w) {
                self.on_tick();
                next_tick = now + TICK;
            }
        }
    }

    /// When the loop must wake up by itself: the next tick while anything is
    /// going on, else the next candidate to dial, resume data to save or
    /// stall to retry; `None` when nothing is due (a seed nobody talks to
    /// costs no CPU at all).
    fn next_wake(&self, next_tick: Instant) -> Option<Instant> {
        let busy = !self.conns.is_empty()
            || !self.dialing.is_empty()
            || self.phase == Phase::Checking
            || self.check_in_flight > 0;
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
        if matches!(self.phase, Phase::Stalled(_)) {
            at(self.stalled_at + self.stall_retry);
        }
        due
    }

    // ---- checking ---------------------------------------------------------

    fn feed_checks(&mut self) {
        let limit = 2 * self.shared.config.hasher_threads as u32 + 2;
        while self.phase == Phase::Checking
            && self.check_in_flight < limit
            && self.check_next < self.layout.num_pieces
        {
            let i = self.check_next;
            self.check_next += 1;
            let off = self.layout.piece_offset(i);
            let len = self.layout.piece_len(i);
            if !self.me.peer_ctx.storage.has_data(off, u64::from(len)) {
                continue;
            }
            self.submit_hash(i);
            self.check_in_flight += 1;
            self.checked_pieces += 1;
        }
        if self.phase == Phase::Checking
            && self.check_in_flight == 0
            && self.check_next >= self.layout.num_pieces
        {
            self.recount_wanted();
            self.phase = if self.is_finished() {
                Phase::Seeding
            } else {
                Phase::Downloading
            };
            log::info!(
                "{}: {} of {} pieces present; {:?}",
                self.me.metainfo.info.name,
                self.picker.have().count(),
                self.layout.num_pieces,
                self.phase
            );
            self.publish_status();
            self.emit(Event::Checked {
                info_hash: self.me.metainfo.info_hash,
                pieces_have: self.picker.have().count() as u32,
                pieces_total: self.layout.num_pieces,
            });
            self.connect_candidates();
        }
    }

    /// Tell the session's event subscribers.
    fn emit(&self, event: Event) {
        self.shared.events.publish(event);
    }

    /// Hash piece `i` by reading it back from disk.
    fn submit_hash(&self, i: u32) {
        self.submit_hash_of(
            i,
            PieceData::Disk {
                storage: self.me.peer_ctx.storage.clone(),
                offset: self.layout.piece_offset(i),
                len: self.layout.piece_len(i),
            },
        );
    }

    fn submit_hash_of(&self, i: u32, data: PieceData) {
        let job = HashJob {
            piece: i,
            data,
            expected: self.me.metainfo.info.pieces[i as usize],
            block_hashes: self.smart_ban.watching(i),
            reply: self.hash_tx.clone(),
        };
        let _ = self.shared.hasher.send(job);
    }

    /// Every block of piece `i` is in: hash it from memory, or from disk if
    /// it was spilled.
    fn piece_complete(&mut self, i: u32) {
        match self.buffers.take_complete(i) {
            Complete::Memory(blocks) => self.submit_hash_of(i, PieceData::Memory(blocks)),
            // Hashed once its queued block writes are done.
            Complete::Disk => self.spilled_complete(i),
            Complete::Incomplete => {
                log::warn!(
                    "{}: piece {i} incomplete in memory; fetching it again",
                    self.me.metainfo.info.name
                );
                self.picker.piece_hashed(i, false);
            }
        }
    }

    fn on_hashed(&mut self, mut done: HashDone) {
        if let Some(e) = &done.error {
            log::warn!(
                "{}: reading piece {}: {e}",
                self.me.metainfo.info.name,
                done.piece
            );
        }
        if self.phase == Phase::Checking {
            self.check_in_flight = self.check_in_flight.saturating_sub(1);
            if done.ok {
                self.picker.mark_have(done.piece);
                // Peers that joined while we were checking learn of it too.
                self.piece_verified(done.piece);
            }
            self.feed_checks();
            return;
        }
        if let Some(blocks) = done.blocks.take() {
            // A piece hashed from memory: only now, verified, is it written,
            // by the disk writer; it is announced once written (disk.rs).
            if done.ok && matches!(self.phase, Phase::Downloading | Phase::Stalled(_)) {
                let contributors = self.picker.piece_hashed(done.piece, true);
                self.acquit(done.piece, &contributors, &done.block_hashes);
                self.write_verified(done.piece, blocks);
                return;
            }
            self.buffers.release(done.piece);
            block_pool::global().give_back(blocks);
            if done.ok {
                // Stopped meanwhile (failed): not written, so not verified
                // either.
                self.picker.piece_hashed(done.piece, false);
                return;
            }
        }
        let contributors = self.picker.piece_hashed(done.piece, done.ok);
        if done.ok {
            self.piece_verified(done.piece);
            self.acquit(done.piece, &contributors, &done.block_hashes);
        } else {
            self.hash_failures += 1;
            log::warn!(
                "{}: piece {} failed its hash check",
                self.me.metainfo.info.name,
                done.piece
            );
            self.blame(done.piece, contributors, &done.block_hashes);
        }
    }

    fn piece_verified(&mut self, i: u32) {
        let newly = self.me.peer_ctx.have.write().set(i as usize);
        if newly && self.wanted.get(i as usize) {
            self.wanted_missing = self.wanted_missing.saturating_sub(1);
            if self.wanted_missing == 0 {
                self.recount_wanted(); // cheap insurance, once
            }
        }
        self.resume_dirty = true;
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        let wanted = self.wanted.get(i as usize);
        for k in keys {
            self.send(k, PeerCmd::Have(i));
            if let Some(c) = self.conns.get_mut(&k) {
                if wanted && c.bitfield.get(i as usize) {
                    c.wanted = c.wanted.saturating_sub(1);
                }
            }
            self.update_interest(k);
        }
        if self.is_finished() && self.phase == Phase::Downloading {
            self.phase = Phase::Seeding;
            if self.picker.is_complete() {
                log::info!("{}: download complete, seeding", self.me.metainfo.info.name);
                log::debug!(
                    "{}: {} pieces spilled to disk (piece buffers full)",
                    self.me.metainfo.info.name,
                    self.buffers.spills()
                );
                let memory = self.me.peer_ctx.recent.sent();
                log::debug!(
                    "{}: uploaded {memory} bytes from kept pieces, {} read from disk",
                    self.me.metainfo.info.name,
                    self.uploaded().saturating_sub(memory),
                );
            } else {
                log::info!(
                    "{}: the selected files are complete, seeding them",
                    self.me.metainfo.info.name
                );
            }
            self.save_resume();
            let seeds: Vec<PeerKey> = self
                .conns
                .iter()
                .filter(|(_, c)| c.bitfield.is_full())
                .map(|(k, _)| *k)
                .collect();
            for k in seeds {
                self.close(k, CloseReason::BothSeeds);
            }
            self.publish_status();
            self.emit(Event::Completed {
                info_hash: self.me.metainfo.info_hash,
            });
            return;
        }
        self.publish_status();
    }

    /// The address of a connected or recently departed peer.
    fn addr_of(&self, k: PeerKey) -> Option<SocketAddr> {
        self.conns
            .get(&k)
            .map(|c| c.addr)
            .or_else(|| self.departed.get(&k).copied())
    }

    /// A piece failed its hash check; `contributors[b]` sent block `b` and
    /// `hashes[b]` is that block's SHA-1 on disk. The block hashes are kept
    /// (smart ban). A peer that sent the whole piece alone sent bad data: it
    /// gets a strike. With several contributors nobody is blamed yet: they
    /// are put on parole (whole pieces to themselves) until the culprit is
    /// found, by smart ban when the piece passes or by a strike when a
    /// piece of its own fails.
    fn blame(&mut self, piece: u32, contributors: Vec<PeerKey>, hashes: &[[u8; 20]]) {
        let senders: Vec<Option<SocketAddr>> =
            contributors.iter().map(|&k| self.addr_of(k)).collect();
        if hashes.len() == senders.len() {
            self.smart_ban.failed(piece, &senders, hashes);
        }
        let mut distinct: Vec<PeerKey> = Vec::new();
        for &k in &contributors {
            if !distinct.contains(&k) {
                distinct.push(k);
            }
        }
        if let [k] = distinct[..] {
            let Some(addr) = self.addr_of(k) else {
                return;
            };
            let s = self.strikes.entry(addr).or_insert(0);
            *s += 1;
            if *s >= BAN_STRIKES {
                self.ban(addr, "sent pieces that failed their hash check");
            }
            return;
        }
        for k in distinct {
            if let Some(addr) = self.addr_of(k) {
                self.parole.insert(addr);
            }
            self.picker.set_parole(k, true);
        }
    }

    /// A piece passed. With block hashes of an earlier failure of it
    /// (smart ban), whoever had sent a block that differs from the verified
    /// one is banned. A parole peer that sent the whole piece alone is off
    /// parole.
    fn acquit(&mut self, piece: u32, contributors: &[PeerKey], good: &[[u8; 20]]) {
        if !good.is_empty() {
            for addr in self.smart_ban.passed(piece, good) {
                self.ban(addr, "sent a block that differs from the verified piece");
            }
        }
        if let Some(&k) = contributors.first() {
            if contributors.iter().all(|&c| c == k) && self.picker.on_parole(k) {
                self.picker.set_parole(k, false);
                if let Some(addr) = self.addr_of(k) {
                    self.parole.remove(&addr);
                }
            }
        }
    }

    /// Ban `addr` (by IP, or by IP:port on loopback) and close its
    /// connections.
    fn ban(&mut self, addr: SocketAddr, why: &str) {
        if self.is_banned(&addr) {
            return;
        }
        log::warn!("{}: banning {addr}: {why}", self.me.metainfo.info.name);
        self.banned.insert(addr);
        if !addr.ip().is_loopback() {
            self.banned_ips.insert(addr.ip());
        }
        self.smart_ban.forget_addr(addr);
        self.parole.remove(&addr);
        let victims: Vec<PeerKey> = self
            .conns
            .iter()
            .filter(|(_, c)| self.is_banned(&c.addr))
            .map(|(k, _)| *k)
            .collect();
        for k in victims {
            self.close(k, CloseReason::Banned);
        }
    }

    fn is_banned(&self, addr: &SocketAddr) -> bool {
        self.banned.contains(addr) || self.banned_ips.contains(&addr.ip())
    }

    // ---- peers -------------------------------------------------------------

    fn send(&mut self, key: PeerKey, cmd: PeerCmd) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        // The inbox is unbounded so that an idle connection holds no
        // preallocated slots; its bound is enforced here.
        if c.inbox.len() >= peer::INBOX_LIMIT {
            self.close(key, CloseReason::TooSlow);
            return;
        }
        match c.inbox.try_send(cmd) {
            Ok(()) => {}
            // Its thread has ended; its `Left` event is on the way.
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
            Err(crossbeam_channel::TrySendError::Full(_)) => self.close(key, CloseReason::TooSlow),
        }
    }

    /// Close a connection now: tell its thread, wake its blocked read, and
    /// give its requests back to the picker.
    fn close(&mut self, key: PeerKey, reason: CloseReason) {
        if let Some(c) = self.conns.remove(&key) {
            log::debug!("closing {}: {reason}", c.addr);
            let _ = c.inbox.try_send(PeerCmd::Close(reason.clone()));
            let _ = c.closer.shutdown(Shutdown::Both);
            self.forget(key, c, &reason);
        }
    }

    fn forget(&mut self, key: PeerKey, c: Conn, reason: &CloseReason) {
        self.picker.remove_peer(key, &c.bitfield);
        // Its blocks may still be in pieces not yet hashed.
        self.departed.insert(key, c.addr);
        self.departed_order.push_back(key);
        while self.departed_order.len() > MAX_DEPARTED {
            if let Some(old) = self.departed_order.pop_front() {
                self.departed.remove(&old);
            }
        }
        self.uploaded_closed += c.counters.uploaded.load(Ordering::Relaxed);
        let now = Instant::now();
        for addr in std::iter::once(c.addr).chain(c.listen_addr) {
            match reason {
                // Nothing to gain soon from a seed (we are one) or a cheat.
                CloseReason::BothSeeds | CloseReason::Banned | CloseReason::Duplicate => {
                    self.candidates.hold_off(&addr, now)
                }
                // A connection that ended quickly (refused for lack of room,
                // say) backs off; a long one starts the count again.
                _ => self.candidates.ended(&addr, now - c.joined_at, now),
            }
        }
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
        if self.conns.is_empty() {
            // Nobody left to upload kept pieces to.
            self.me.peer_ctx.recent.clear();
        }
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }

    fn on_event(&mut self, key: PeerKey, ev: PeerEvent) {
        match ev {
            PeerEvent::Joined {
                inbox,
                closer,
                addr,
                peer_id,
                fast: _,
                outgoing,
                counters,
            } => self.on_joined(key, inbox, closer, addr, peer_id, outgoing, counters),
            PeerEvent::Left(reason) => {
                if let Some(addr) = self.dialing.remove(&key) {
                    self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                    self.candidates.failed(&addr, Instant::now());
                    log::debug!("dial {addr} failed: {reason}");
                } else if let Some(c) = self.conns.remove(&key) {
                    log::debug!("peer {} left: {reason}", c.addr);
                    self.forget(key, c, &reason);
                }
                self.publish_status();
            }
            other => {
                if self.conns.contains_key(&key) {
                    self.on_peer_message(key, other);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_joined(
        &mut self,
        key: PeerKey,
        inbox: Inbox<PeerCmd>,
        closer: TcpStream,
        addr: SocketAddr,
        peer_id: [u8; 20],
        outgoing: bool,
        counters: Arc<PeerCounters>,
    ) {
        let was_dialing = self.dialing.remove(&key).is_some();
        if !was_dialing {
            // Incoming: count it now (outgoing ones were counted at dial).
            self.shared.connections.fetch_add(1, Ordering::Relaxed);
        }
        let refuse = |reason: CloseReason| {
            let _ = inbox.try_send(PeerCmd::Close(reason));
            let _ = closer.shutdown(Shutdown::Both);
        };
        if self.is_banned(&addr) {
            refuse(CloseReason::Banned);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if self.paused || matches!(self.phase, Phase::Failed(_) | Phase::Finished) {
            refuse(CloseReason::Shutdown);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        // Two connections to one peer (both sides dialled): keep the one
        // dialled by the side with the smaller peer id; both sides agree.
        if let Some((&other, oc)) = self.conns.iter().find(|(_, c)| c.peer_id == peer_id) {
            let keep_outgoing = self.shared.peer_id < peer_id;
            let new_wins = outgoing == keep_outgoing && oc.outgoing != keep_outgoing;
            if new_wins {
                self.close(other, CloseReason::Duplicate);
            } else {
                refuse(CloseReason::Duplicate);
                self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
        if self.conns.len() >= self.shared.config.max_peers_per_torrent {
            // Full: make room by evicting a peer that has been useless for a
            // while (no interest either way, nothing exchanged), so that
            // idle connections cannot lock useful peers out.
            match self.idlest_peer() {
                Some(victim) => self.close(victim, CloseReason::TooManyPeers),
                None => {
                    refuse(CloseReason::TooManyPeers);
                    self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        log::debug!(
            "peer {addr} joined ({})",
            if outgoing { "out" } else { "in" }
        );
        // The peer thread waits for this before it sends anything.
        if inbox
            .try_send(PeerCmd::Start(self.picker.have().clone()))
            .is_err()
        {
            let _ = closer.shutdown(Shutdown::Both);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.candidates.connected(&addr);
        let n = self.layout.num_pieces as usize;
        self.conns.insert(
            key,
            Conn {
                addr,
                inbox,
                closer,
                peer_id,
                outgoing,
                bitfield: Bitfield::new(n),
                wanted: 0,
                am_choking: true,
                am_interested: false,
                peer_choking: true,
                peer_interested: false,
                outstanding: HashSet::new(),
                counters,
                last_down: 0,
                last_up: 0,
                down_rate: 0,
                up_rate: 0,
                last_block: Instant::now(),
                pipeline: Pipeline::default(),
                listen_addr: if outgoing { Some(addr) } else { None },
                pex: false,
                client: None,
                pex_sent: HashSet::new(),
                next_pex: Instant::now(),
                allowed_fast: Vec::new(),
                joined_at: Instant::now(),
                given_up: GivenUp::default(),
                requested: EverRequested::default(),
                chokes: 0,
                unrequested: 0,
                refused: seeding::Refused::default(),
            },
        );
        if self.parole.contains(&addr) {
            self.picker.set_parole(key, true);
        }
        self.publish_status();
    }

    /// The connection that has been useless longest (joined over
    /// `IDLE_EVICT_AFTER` ago, no interest either way, no payload moved).
    fn idlest_peer(&self) -> Option<PeerKey> {
        let now = Instant::now();
        self.conns
            .iter()
            .filter(|(_, c)| {
                now - c.joined_at >= IDLE_EVICT_AFTER
                    && !c.peer_interested
                    && !c.am_interested
                    && c.counters.downloaded.load(Ordering::Relaxed) == 0
                    && c.counters.uploaded.load(Ordering::Relaxed) == 0
            })
            .min_by_key(|(_, c)| c.joined_at)
            .map(|(k, _)| *k)
    }

    fn on_peer_message(&mut self, key: PeerKey, ev: PeerEvent) {
        match ev {
            PeerEvent::Bitfield(bf) => {
                // A bitfield, have-all or have-none replaces what the peer
                // had (a late one too, as aria2 sends): its old pieces leave
                // the availability counts, the new ones enter them.
                let Some(c) = self.conns.get_mut(&key) else {
                    return;
                };
                if bf.len() != c.bitfield.len() {
                    return;
                }
                self.picker.remove_availability(&c.bitfield);
                self.picker.add_availability(&bf);
                let have = self.picker.have();
                c.wanted = bf
                    .ones()
                    .filter(|&i| !have.get(i) && self.wanted.get(i))
                    .count() as u32;
                let spread = &self.me.peer_ctx.spread;
                for i in bf.ones() {
                    spread.seen(i as u32, self.picker.availability(i as u32));
                }
                c.bitfield = bf;
                self.after_availability(key);
            }
            PeerEvent::Have(i) => {
                let we_need = !self.picker.have().get(i as usize) && self.wanted.get(i as usize);
                let Some(c) = self.conns.get_mut(&key) else {
                    return;
                };
                if c.bitfield.set(i as usize) {
                    if we_need {
                        c.wanted += 1;
                    }
                    self.picker.add_have(i);
                    let spread = &self.me.peer_ctx.spread;
                    spread.seen(i, self.picker.availability(i));
                    let recent = &self.me.peer_ctx.recent;
                    if recent.contains(i) && self.conns.values().all(|c| c.bitfield.get(i as usize))
                    {
                        recent.forget(i);
                    }
                }
                self.after_availability(key);
            }
            PeerEvent::Interested(v) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.peer_interested = v;
                }
                if v {
                    self.unchoke_if_free_slot(key);
                }
                self.update_steering();
            }
            PeerEvent::ChokedUs(v) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.peer_choking = v;
                    if v {
                        c.chokes = c.chokes.wrapping_add(1);
                        let lost: Vec<_> = c.outstanding.drain().collect();
                        for b in lost {
                            c.given_up.insert(b);
                            self.picker.request_failed(key, &b);
                        }
                    } else {
                        c.last_block = Instant::now();
                    }
                }
                self.fill_requests(key);
            }
            PeerEvent::Rejected(b) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.outstanding.remove(&b);
                    if c.peer_choking {
                        // BEP 6: no longer allowed fast (libtorrent does so too).
                        c.allowed_fast.retain(|&i| i != b.index);
                    } else {
                        // A seeder steering us elsewhere (`seeding.rs`).
                        c.refused.insert(b.index, Instant::now());
                    }
                }
                self.picker.request_failed(key, &b);
            }
            PeerEvent::Blocks(blocks) => {
                for (block, data) in blocks {
                    self.on_block(key, block, data);
                }
                self.fill_requests(key);
            }
            PeerEvent::ExtHandshake {
                listen_port,
                pex,
                client,
            } => {
                let Some(c) = self.conns.get_mut(&key) else {
                    return;
                };
                c.pex = pex;
                c.client = client;
                c.next_pex = Instant::now();
                if let (None, Some(p)) = (c.listen_addr, listen_port) {
                    let la = SocketAddr::new(c.addr.ip(), p);
                    c.listen_addr = Some(la);
                    self.candidates.set_busy(&la);
                }
                // A newcomer hears of the swarm at once, and the others hear
                // of it in their next message (at most one a minute each).
                self.send_pex(Instant::now());
            }
            PeerEvent::AllowedFast(i) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.allowed_fast.len() < 64 && !c.allowed_fast.contains(&i) {
                        c.allowed_fast.push(i);
                    }
                }
                self.fill_requests(key);
            }
            PeerEvent::Pex(addrs) => {
                self.pex_learned += addrs.len();
                self.add_candidates(addrs);
                self.connect_candidates();
            }
            PeerEvent::Joined { .. } | PeerEvent::Left(_) => {}
        }
    }

    fn after_availability(&mut self, key: PeerKey) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if self.phase == Phase::Seeding && c.bitfield.is_full() {
            self.close(key, CloseReason::BothSeeds);
            return;
        }
        self.update_interest(key);
        self.fill_requests(key);
    }

    fn update_interest(&mut self, key: PeerKey) {
        let downloading = self.phase == Phase::Downloading;
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let want = downloading && c.wanted > 0;
        if want != c.am_interested {
            c.am_interested = want;
            self.send(key, PeerCmd::Interested(want));
        }
    }

    fn unchoke_if_free_slot(&mut self, key: PeerKey) {
        let unchoked = self.conns.values().filter(|c| !c.am_choking).count();
        if unchoked < self.shared.config.upload_slots + 1 {
            self.set_choke(key, false);
        }
    }

    /// Seeding once: steer requests to the least spread pieces while we
    /// seed and our upload is the bottleneck (`seeding::saturated`).
    fn update_steering(&mut self) {
        let interested = self
            .conns
            .values()
            .filter(|c| c.peer_interested && !c.bitfield.is_full())
            .count();
        let up_rate: u64 = self.conns.values().map(|c| c.up_rate).sum();
        let ctx = &self.me.peer_ctx;
        let on = seeding::saturated(
            self.phase == Phase::Seeding && !self.paused,
            ctx.throttle.limit(Direction::Upload),
            up_rate,
            interested,
            self.shared.config.upload_slots,
        );
        if on != ctx.spread.active() {
            log::debug!(
                "{}: seeding once {}",
                self.me.metainfo.info.name,
                if on { "on" } else { "off" }
            );
            ctx.spread.set_active(on);
        }
        if on {
            ctx.spread.recount();
        }
    }

    fn set_choke(&mut self, key: PeerKey, choke: bool) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.am_choking != choke {
            c.am_choking = choke;
            self.send(key, PeerCmd::Choke(choke));
        }
    }

    fn fill_requests(&mut self, key: PeerKey) {
        if self.paused || self.phase != Phase::Downloading || self.disk.behind() {
            return;
        }
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.am_interested || (c.peer_choking && c.allowed_fast.is_empty()) {
            return;
        }
        let depth = c.pipeline.depth();
        let room = depth.saturating_sub(c.outstanding.len());
        if room == 0 || (room < depth / 8 && !c.outstanding.is_empty()) {
            return;
        }
        // All peers together keep only as many blocks requested as the
        // piece buffers can take (past them, pieces spill to disk and are
        // read back to be hashed); every peer may still have MIN_DEPTH.
        let in_flight: usize = self.conns.values().map(|c| c.outstanding.len()).sum();
        let cap = self.buffers.request_room(self.conns.len());
        let own = MIN_DEPTH.saturating_sub(c.outstanding.len());
        let room = room.min(cap.saturating_sub(in_flight).max(own));
        if room == 0 {
            return;
        }
        let blocks = if c.peer_choking {
            // Choked: only the pieces it allows us while choked (BEP 6).
            let mut allowed = Bitfield::new(c.bitfield.len());
            for &i in &c.allowed_fast {
                if c.bitfield.get(i as usize) && self.wanted.get(i as usize) {
                    allowed.set(i as usize);
                }
            }
            self.picker.pick(key, &allowed, room)
        } else {
            // Not the pieces it refused lately (`seeding::Refused`).
            let refused = c.refused.mask(&c.bitfield);
            let theirs = refused.as_ref().unwrap_or(&c.bitfield);
            if self.all_wanted {
                self.picker.pick(key, theirs, room)
            } else {
                // Skipped files: only the pieces of wanted files.
                let masked = mask(theirs, &self.wanted);
                self.picker.pick(key, &masked, room)
            }
        };
        if blocks.is_empty() {
            return;
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        for b in &blocks {
            c.outstanding.insert(*b);
            c.requested.insert(b);
        }
        let chokes = c.chokes;
        self.send(key, PeerCmd::Request { chokes, blocks });
    }

    /// Take one block from a peer (the caller refills its pipeline).
    fn on_block(&mut self, key: PeerKey, block: crate::proto::wire::BlockRef, data: Vec<u8>) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        // Only a block we asked this very peer for is taken (endgame
        // duplicates and late answers to requests we gave up on included).
        // Anything else is dropped unread: a peer with no data must not
        // plant blocks in pieces that honest peers are filling. Only a
        // block never requested on this connection counts against the
        // sender (a second answer to a block asked for twice around a
        // choke is waste, not an attack).
        if !c.outstanding.remove(&block) && !c.given_up.take(&block) {
            if c.requested.contains(&block) {
                return;
            }
            c.unrequested += 1;
            let (addr, n) = (c.addr, c.unrequested);
            log::debug!("{addr} sent unrequested block {block:?} ({n})");
            if n > MAX_UNREQUESTED_BLOCKS {
                self.ban(addr, "sent blocks we never asked it for");
            }
            return;
        }
        c.last_block = Instant::now();
        c.pipeline.on_block();
        if self.phase != Phase::Downloading {
            return;
        }
        if !self.wanted.get(block.index as usize) {
            // Its file was deselected after the request: not stored.
            self.picker.request_failed(key, &block);
            return;
        }
        match self.picker.block_received(key, &block) {
            Received::New {
                cancel,
                piece_complete,
            } => {
                let len = data.len() as u64;
                if let Stored::Disk(data) = self.buffers.insert(&block, data) {
                    self.write_spilled(block, data);
                }
                self.downloaded += len;
                for other in cancel {
                    if let Some(c) = self.conns.get_mut(&other) {
                        if c.outstanding.remove(&block) {
                            c.given_up.insert(block);
                        }
                    }
                    self.send(other, PeerCmd::Cancel(block));
                }
                if piece_complete {
                    self.piece_complete(block.index);
                }
            }
            Received::Unwanted => {}
        }
    }

    /// Pause downloading until the disk has room again (probed from the
    /// tick); verified data and the resume data stay as they are.
    /// Connections stay open and uploads go on, but nothing more is asked
    /// of the swarm: every outstanding request is cancelled (blocks that
    /// arrive anyway are dropped unstored) and peers are told we are not
    /// interested. So a full disk costs at most the requests and pieces in
    /// flight, once, not a refetch every few seconds.
    fn stall(&mut self, reason: String) {
        // The first stall since a piece was written waits STALL_RETRY; each
        // further one twice as long as the last.
        self.stall_retry = if self.stall_retry.is_zero() {
            STALL_RETRY
        } else {
            (self.stall_retry * 2).min(STALL_RETRY_CAP)
        };
        log::error!(
            "{}: stopped: {reason}; retrying in {}s",
            self.me.metainfo.info.name,
            self.stall_retry.as_secs()
        );
        self.save_resume();
        self.phase = Phase::Stalled(reason.clone());
        self.stalled_at = Instant::now();
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            let blocks: Vec<crate::proto::wire::BlockRef> = match self.conns.get_mut(&k) {
                Some(c) => {
                    let blocks: Vec<_> = c.outstanding.drain().collect();
                    for b in &blocks {
                        c.given_up.insert(*b);
                    }
                    blocks
                }
                None => continue,
            };
            for b in blocks {
                self.picker.request_failed(k, &b);
                self.send(k, PeerCmd::Cancel(b));
            }
            self.update_interest(k);
        }
        self.publish_status();
        self.emit(Event::Error {
            info_hash: self.me.metainfo.info_hash,
            message: reason,
            stalled: true,
        });
    }

    /// Stop the torrent on an error that makes progress impossible.
    fn fail(&mut self, reason: String) {
        log::error!("{}: stopped: {reason}", self.me.metainfo.info.name);
        self.phase = Phase::Failed(reason.clone());
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
        self.publish_status();
        self.emit(Event::Error {
            info_hash: self.me.metainfo.info_hash,
            message: reason,
            stalled: false,
        });
    }

    // ---- candidates ----------------------------------------------------------

    fn add_candidates(&mut self, addrs: Vec<SocketAddr>) {
        let shared = &self.shared;
        let fresh = addrs.into_iter().filter_map(|a| shared.dialable(a));
        self.candidates.add(fresh, Instant::now());
    }

    fn connect_candidates(&mut self) {
        if self.paused || !matches!(self.phase, Phase::Downloading | Phase::Seeding) {
            return;
        }
        let now = Instant::now();
        let cfg = &self.shared.config;
        let room = cfg
            .max_peers_per_torrent
            .saturating_sub(self.conns.len() + self.dialing.len());
        let connected: HashSet<SocketAddr> = self
            .conns
            .values()
            .flat_map(|c| [Some(c.addr), c.listen_addr])
            .flatten()
            .collect();
        let dialing: HashSet<SocketAddr> = self.dialing.values().copied().collect();
        let ready = self.candidates.ready(now, room, |a| {
            !connected.contains(a) && !dialing.contains(a) && !self.is_banned(a)
        });
        for addr in ready {
            if self.shared.connections.load(Ordering::Relaxed) >= cfg.max_connections {
                break;
            }
            let key = self.shared.next_key();
            self.shared.connections.fetch_add(1, Ordering::Relaxed);
            self.dialing.insert(key, addr);
            self.candidates.set_busy(&addr);
            let ctx = self.me.peer_ctx.clone();
            let tx = self.me.events.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("peer {addr}"))
                .stack_size(peer::PEER_STACK)
                .spawn(move || peer::run_outgoing(addr, key, ctx, tx));
            if spawned.is_err() {
                self.dialing.remove(&key);
                self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                self.candidates.failed(&addr, now);
            }
        }
    }

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
            c.pipeline.on_tick(delta, c.down_rate);
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
        let conns = &self.conns;
        let lost = self
            .picker
            .reconcile(|k, b| conns.get(&k).is_some_and(|c| c.outstanding.contains(b)));
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
        self.update_steering();
        self.check_seed_goal();
        self.connect_candidates();
        self.publish_status();
    }

    /// Bytes uploaded in this run (closed connections and open ones).
    fn uploaded(&self) -> u64 {
        self.uploaded_closed
            + self
                .conns
                .values()
                .map(|c| c.counters.uploaded.load(Ordering::Relaxed))
                .sum::<u64>()
    }

    /// Stop seeding once the seeding goal is reached: every connection is
    /// closed, none is accepted or dialled, the announcer says `stopped`.
    fn check_seed_goal(&mut self) {
        if self.phase != Phase::Seeding
            || self.paused
            || !self.seed_goal.is_set()
            || !self
                .seed_goal
                .reached(self.uploaded(), self.layout.total_length, self.seeding_time)
        {
            return;
        }
        log::info!(
            "{}: seeding goal reached (uploaded {} bytes, seeded {} s); stopped seeding",
            self.me.metainfo.info.name,
            self.uploaded(),
            self.seeding_time.as_secs()
        );
        self.phase = Phase::Finished;
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
        self.save_resume();
    }

    /// BEP 11: tell each PEX-speaking peer which peers joined and left
    /// since our last message to it (at most once a minute, 50 of each).
    fn send_pex(&mut self, now: Instant) {
        if self.me.metainfo.info.private {
            return;
        }
        let listening: Vec<(PeerKey, SocketAddr)> = self
            .conns
            .iter()
            .filter_map(|(k, c)| c.listen_addr.map(|a| (*k, a)))
            .collect();
        let due: Vec<PeerKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.pex && now >= c.next_pex)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let Some(c) = self.conns.get_mut(&k) else {
                continue;
            };
            let current: HashSet<SocketAddr> = listening
                .iter()
                .filter(|(other, _)| *other != k)
                .map(|(_, a)| *a)
                .collect();
            let added: Vec<SocketAddr> = current
                .difference(&c.pex_sent)
                .copied()
                .take(crate::proto::extension::PEX_MAX_PER_MESSAGE)
                .collect();
            let dropped: Vec<SocketAddr> = c
                .pex_sent
                .difference(&current)
                .copied()
                .take(crate::proto::extension::PEX_MAX_PER_MESSAGE)
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            c.next_pex = now + PEX_INTERVAL;
            for a in &added {
                c.pex_sent.insert(*a);
            }
            for d in &dropped {
                c.pex_sent.remove(d);
            }
            let msg = crate::proto::extension::PexMessage {
                added_flags: vec![crate::proto::extension::PEX_FLAG_REACHABLE; added.len()],
                added,
                dropped,
            };
            self.send(k, PeerCmd::Pex(msg));
        }
    }

    fn choke_round(&mut self, now: Instant) {
        self.last_choke = now;
        let cands: Vec<ChokeCandidate> = self
            .conns
            .iter()
            .map(|(k, c)| ChokeCandidate {
                key: *k,
                interested: c.peer_interested,
                download_rate: c.down_rate,
                upload_rate: c.up_rate,
                is_seed: c.bitfield.is_full(),
            })
            .collect();
        let seeding = self.phase == Phase::Seeding;
        let slots = self.shared.config.upload_slots;
        let regular = choker::unchoke_set(&cands, slots, seeding, None);
        if now - self.last_optimistic >= OPTIMISTIC_INTERVAL || self.optimistic.is_none() {
            self.last_optimistic = now;
            let r = self.rng.next_u64();
            self.optimistic = choker::next_optimistic(&cands, &regular, self.optimistic, r);
        }
        let unchoke = choker::unchoke_set(&cands, slots, seeding, self.optimistic);
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.set_choke(k, !unchoke.contains(&k));
        }
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
        s.download_rate = self.conns.values().map(|c| c.down_rate).sum();
        s.upload_rate = self.conns.values().map(|c| c.up_rate).sum();
        s.peers = self.conns.len();
        s.seeds = self.conns.values().filter(|c| c.bitfield.is_full()).count();
        s.hash_failures = self.hash_failures;
        s.uploaded_from_memory = self.me.peer_ctx.recent.sent();
        s.peers_from_pex = self.pex_learned;
        s.checked_pieces = self.checked_pieces;
        // `paused` is not written here: the session owns it (set at add and by
        // `Session::pause`/`resume` the moment they are called), so a snapshot
        // published before this thread has seen a pause never flips it back.
        s.resumed = self.resumed;
        s.banned = self.banned.len();
        s.seeding_time = self.seeding_time;
        s.seed_goal = self.seed_goal;
        s.tracker = self.me.tracker.lock().clone();
        s.pieces_wanted = self.wanted.count() as u32;
        s.pieces_wanted_have = s.pieces_wanted.saturating_sub(self.wanted_missing);
        s.wanted_length = wanted_length(&self.me.metainfo.info, &self.priorities);
        s.max_download_rate = self.me.rates.download.rate();
        s.max_upload_rate = self.me.rates.upload.rate();
        s.waiting_for_disk = self.disk.waiting();
        s.disk_queued = self.disk.bytes_waiting();
    }

    fn shutdown(&mut self) {
        self.close_all();
        // An interrupted check proves nothing: keep the old resume data.
        let save = self.phase != Phase::Checking;
        self.finish_disk(save);
        self.publish_status();
    }

    fn close_all(&mut self) {
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
    }

    // ---- file selection ------------------------------------------------------------

    /// Whether every wanted piece is verified.
    fn is_finished(&self) -> bool {
        self.wanted_missing == 0
    }

    fn all_wanted_files(&self) -> bool {
        selection::all_wanted(&self.me.metainfo.info, &self.priorities)
    }

    fn recount_wanted(&mut self) {
        let have = self.picker.have();
        self.wanted_missing = self.wanted.ones().filter(|&i| !have.get(i)).count() as u32;
    }

    /// A new selection: create the files now wanted, recompute the wanted
    /// pieces, each peer's usefulness and our interest, and go back to
    /// downloading (or on to seeding).
    fn set_priorities(&mut self, priorities: Vec<FilePriority>) {
        let info = &self.me.metainfo.info;
        if priorities.len() != info.files.len() {
            return; // checked by the session
        }
        let name = info.name.clone();
        self.wanted = selection::wanted_pieces(info, &priorities);
        self.all_wanted = self.wanted.is_full();
        self.priorities = priorities;
        *self.me.priorities.lock() = self.priorities.clone();
        if let Err(e) = self.me.peer_ctx.storage.want_files(&self.priorities) {
            match e {
                crate::engine::storage::StorageError::DiskFull { .. } => self.stall(e.to_string()),
                other => self.fail(other.to_string()),
            }
            return;
        }
        self.recount_wanted();
        log::info!(
            "{name}: file selection changed: {} of {} pieces wanted, {} missing",
            self.wanted.count(),
            self.layout.num_pieces,
            self.wanted_missing
        );
        let have = self.picker.have().clone();
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for &k in &keys {
            if let Some(c) = self.conns.get_mut(&k) {
                c.wanted = c
                    .bitfield
                    .ones()
                    .filter(|&i| !have.get(i) && self.wanted.get(i))
                    .count() as u32;
            }
        }
        match self.phase {
            Phase::Seeding if !self.is_finished() => {
                self.phase = Phase::Downloading;
                // Seeds we dropped while finished are worth dialling again.
                self.candidates.retry_all(Instant::now());
            }
            Phase::Downloading if self.is_finished() => self.phase = Phase::Seeding,
            _ => {}
        }
        for &k in &keys {
            self.update_interest(k);
            self.fill_requests(k);
        }
        if self.phase != Phase::Checking {
            self.save_resume();
        }
        self.connect_candidates();
        self.publish_status();
    }

    // ---- resume data ------------------------------------------------------------

    fn resume_path(&self) -> Option<std::path::PathBuf> {
        let dir = self.shared.config.state_dir.as_ref()?;
        Some(
            dir.join("torrents")
                .join(format!("{}.resume", self.me.metainfo.info_hash)),
        )
    }

    /// Trust saved resume data if every file still matches it. Returns
    /// whether it was used (then no check is needed).
    fn load_resume(&mut self) -> bool {
        let Some(path) = self.resume_path() else {
            return false;
        };
        let name = self.me.metainfo.info.name.clone();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(e) => {
                log::warn!(
                    "{name}: cannot read resume data {}: {e}; rechecking",
                    path.display()
                );
                return false;
            }
        };
        let r = match ResumeData::decode(&bytes) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("{name}: {e}; rechecking");
                return false;
            }
        };
        let storage = &self.me.peer_ctx.storage;
        let why_not = if r.info_hash != self.me.metainfo.info_hash {
            Some("it is for another torrent")
        } else if r.num_pieces != self.layout.num_pieces {
            Some("the piece count differs")
        } else if r.save_path != storage.root().to_string_lossy() {
            Some("the save path differs")
        } else if r.files != storage.stamps() {
            Some("a file changed since it was saved (size or modification time)")
        } else if r.part_file != storage.part_stamp() {
            Some("the part file changed since it was saved")
        } else {
            None
        };
        if let Some(why) = why_not {
            log::info!("{name}: resume data not used: {why}; rechecking");
            return false;
        }
        let Ok(bf) = Bitfield::from_bytes(&r.pieces, self.layout.num_pieces as usize) else {
            return false;
        };
        for i in bf.ones() {
            self.picker.mark_have(i as u32);
            self.me.peer_ctx.have.write().set(i);
        }
        self.check_next = self.layout.num_pieces;
        self.resumed = true;
        self.recount_wanted();
        log::info!(
            "{name}: resumed from {}: {} of {} pieces",
            path.display(),
            bf.count(),
            self.layout.num_pieces
        );
        true
    }
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
