//! What the session shows of a torrent: its phase and a status snapshot
//! (copied out, never waiting on the torrent's threads).

use crate::proto::metainfo::InfoHash;
use std::net::SocketAddr;
use std::time::Duration;

/// What a torrent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// A magnet link waiting for its info dictionary (BEP 9): peers are
    /// asked for it; the torrent's size and files are not known yet.
    Metadata,
    /// Verifying data found on disk.
    Checking,
    /// Fetching missing pieces.
    Downloading,
    /// Every piece verified; uploading only.
    Seeding,
    /// Stopped by an error (the text says which).
    Failed(String),
    /// Stopped by a condition that may clear by itself (the disk is full);
    /// retried every few seconds, then downloading goes on.
    Stalled(String),
    /// Complete and done seeding: the seeding goal ([`SeedGoal`]) was
    /// reached, so the torrent closed its connections and accepts none. It
    /// stays in the session; `Session::resume` seeds it again (with no goal).
    Finished,
}

/// When a complete torrent stops seeding (and becomes [`Phase::Finished`]):
/// as soon as either limit is reached. Both `None` (the default): never.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SeedGoal {
    /// Stop once the torrent has uploaded this many times its size (in
    /// this run: the counters start at zero when the torrent starts).
    pub ratio: Option<f64>,
    /// Stop after seeding this long (time spent complete and not paused,
    /// in this run).
    pub time: Option<Duration>,
    /// Stop after seeding this long without uploading anything (a
    /// torrent's own idle limit, else the session's).
    pub idle: Option<Duration>,
}

/// A torrent's own seeding limit: the session's, none, or its own value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum SeedLimit<T> {
    /// The session's default ([`Config::seed_ratio`](crate::Config::seed_ratio),
    /// [`Config::seed_idle`](crate::Config::seed_idle), changed by
    /// [`Session::set_seed_defaults`](crate::Session::set_seed_defaults)).
    #[default]
    Session,
    /// No limit for this torrent, whatever the session's.
    Unlimited,
    /// This torrent's own limit.
    Limit(T),
}

impl<T: Copy> SeedLimit<T> {
    /// The limit in force, given the session's.
    pub fn resolve(self, session: Option<T>) -> Option<T> {
        match self {
            SeedLimit::Session => session,
            SeedLimit::Unlimited => None,
            SeedLimit::Limit(v) => Some(v),
        }
    }
}

/// A torrent's own seeding limits, kept in the state directory
/// ([`Session::set_seed_limits`](crate::Session::set_seed_limits)).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SeedLimits {
    /// Ratio: stop once uploaded this many times the torrent's size.
    pub ratio: SeedLimit<f64>,
    /// Idle: stop after this long seeding without uploading anything
    /// (Transmission's "idle limit").
    pub idle: SeedLimit<Duration>,
}

impl SeedGoal {
    /// Whether a limit is set.
    pub fn is_set(&self) -> bool {
        self.ratio.is_some() || self.time.is_some() || self.idle.is_some()
    }

    /// Whether `uploaded` bytes of a `total`-byte torrent, after `seeded`
    /// of seeding, reach the goal.
    pub fn reached(&self, uploaded: u64, total: u64, seeded: Duration) -> bool {
        self.ratio
            .is_some_and(|r| uploaded as f64 >= r * total as f64)
            || self.time.is_some_and(|t| seeded >= t)
    }
}

/// How a torrent orders the pieces it fetches, beside rarest-first (issue
/// 24). Both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PieceOrderPrefs {
    /// Sequential download: a peer that has any of the next 16 wanted
    /// pieces after the first missing one (the *playhead*) is asked for
    /// new pieces in ascending order from the playhead on; a peer that
    /// has none of them still gets the rarest pieces it has. Pieces in
    /// progress are finished first either way, so pieces complete in
    /// nearly ascending order (a few pieces out of order at most, from
    /// the pipelines of several peers and failed hash checks).
    pub sequential: bool,
    /// First/last-piece priority: the first and the last piece of every
    /// wanted file are started before any other new piece (a player reads
    /// the header and often the index at the end first).
    pub first_last_piece: bool,
}

/// A snapshot of one torrent's state (cheap to copy; never waits on the
/// torrent thread).
#[derive(Debug, Clone)]
pub struct TorrentStatus {
    /// The info-hash.
    pub info_hash: InfoHash,
    /// The torrent's name.
    pub name: String,
    /// What it is doing.
    pub phase: Phase,
    /// Pieces verified.
    pub pieces_have: u32,
    /// Pieces in all.
    pub pieces_total: u32,
    /// Bytes verified.
    pub bytes_have: u64,
    /// Bytes in all.
    pub total_length: u64,
    /// Payload bytes received this session.
    pub downloaded: u64,
    /// Payload bytes sent this session.
    pub uploaded: u64,
    /// Receive rate, bytes per second.
    pub download_rate: u64,
    /// Send rate, bytes per second.
    pub upload_rate: u64,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers that are seeds.
    pub seeds: usize,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// Of the piece data uploaded, the bytes sent from verified pieces
    /// still in memory (the ones just downloaded), without a disk read.
    pub uploaded_from_memory: u64,
    /// The last tracker announce.
    pub tracker: TrackerStatus,
    /// Addresses learned from peer exchange (BEP 11) so far.
    pub peers_from_pex: usize,
    /// Addresses handed to the torrent (by a tracker, PEX, the DHT, LSD
    /// or the user) and refused as never worth a dial: port 0,
    /// unspecified, multicast, broadcast, IPv6 link-local,
    /// IPv4-compatible, our own (listening or external) address, or of a
    /// family the session sends nothing to (`--bind` of the other family).
    pub refused_addresses: usize,
    /// Pieces hashed by the start-up check (0 when resume data was trusted).
    pub checked_pieces: u32,
    /// Whether the start-up state came from resume data.
    pub resumed: bool,
    /// Paused by the user.
    pub paused: bool,
    /// The directory the torrent's files are in.
    pub save_path: std::path::PathBuf,
    /// Peers banned for bad data.
    pub banned: usize,
    /// Multi-piece files of a v2 or hybrid torrent whose piece layer is
    /// not known (BEP 52): a hybrid from a magnet link fetches them while
    /// it downloads (its pieces of such files are checked by SHA-1 alone
    /// until then); 0 when every layer is known.
    pub piece_layers_missing: u32,
    /// Piece layers fetched from peers and verified in this run.
    pub piece_layers_fetched: u32,
    /// A hybrid's pieces verified by SHA-1 alone before their file's piece
    /// layer came (fetched while it ran), checked again against it since:
    /// one that fails is missing again and counted in `hash_failures`.
    pub pieces_v2_rechecked: u32,
    /// Pieces holding bytes of wanted files (all pieces unless files are
    /// skipped).
    pub pieces_wanted: u32,
    /// Of those, the pieces verified. When it reaches `pieces_wanted` the
    /// torrent counts as finished downloading (phase `Seeding`) even if other files are not
    /// here.
    pub pieces_wanted_have: u32,
    /// Bytes of the wanted files.
    pub wanted_length: u64,
    /// The torrent's own download limit, bytes per second (0: none).
    pub max_download_rate: u64,
    /// The torrent's own upload limit, bytes per second (0: none).
    pub max_upload_rate: u64,
    /// Time spent seeding (complete, not paused) in this run.
    pub seeding_time: Duration,
    /// The seeding goal in force (none once `Session::resume` restarted a
    /// finished torrent).
    pub seed_goal: SeedGoal,
    /// The torrent's own seeding limits (what `seed_goal` was made of,
    /// with the session's defaults).
    pub seed_limits: SeedLimits,
    /// Sequential download is on ([`PieceOrderPrefs`]).
    pub sequential: bool,
    /// First/last-piece priority is on ([`PieceOrderPrefs`]).
    pub first_last_piece: bool,
    /// The disk is what holds the torrent back: its write queue is full
    /// (no block is requested until it drains), has not moved for a
    /// second, or verified pieces wait in memory for space on a full disk.
    /// Verified pieces count in `pieces_have` only once written.
    pub waiting_for_disk: bool,
    /// Bytes of verified pieces and spilled blocks waiting for the disk
    /// (queued for the torrent's disk writer, or kept while the disk is
    /// full); bounded by the write-queue limit (16 MiB) plus what was in
    /// flight.
    pub disk_queued: u64,
    /// Pieces that found the piece buffers spent while downloading in this
    /// run and were *spilled*: written block by block as they arrived and
    /// read back to be hashed (each costs a write and a read of the piece
    /// besides the usual write). Requests keep to the buffers' budget, so
    /// this stays 0 unless the session's budget is shared by several
    /// torrents downloading at once.
    pub pieces_spilled: u64,
    /// The torrent's web seeds (BEP 19 `url-list`), in the metainfo's
    /// order; empty when it has none or web seeds are off
    /// (`Config::web_seeds`).
    pub web_seeds: Vec<WebSeedStatus>,
}

/// One web seed of a torrent (BEP 19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSeedStatus {
    /// The `url-list` entry.
    pub url: String,
    /// What it is doing.
    pub state: WebSeedState,
    /// Bytes received from it (pieces that fail their hash included).
    pub downloaded: u64,
    /// Bytes per second received from it lately.
    pub download_rate: u64,
    /// The last error (a failed request, or why it was dropped).
    pub error: Option<String>,
}

/// What a web seed is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebSeedState {
    /// Nothing asked of it (nothing left to give it, or not downloading).
    Idle,
    /// A request for a run of pieces is in progress.
    Fetching,
    /// Its last request failed; asked again after a back-off.
    BackingOff,
    /// Not used any more: it sent a piece that failed its hash check, or
    /// its URL is not `http(s)://`, or the torrent is v2-only.
    Dropped,
}

impl WebSeedState {
    /// `idle`, `fetching`, `backing-off` or `dropped` (the control API's
    /// form).
    pub fn as_str(self) -> &'static str {
        match self {
            WebSeedState::Idle => "idle",
            WebSeedState::Fetching => "fetching",
            WebSeedState::BackingOff => "backing-off",
            WebSeedState::Dropped => "dropped",
        }
    }
}

impl TorrentStatus {
    /// The status of a torrent that has no metadata yet (a magnet link):
    /// phase [`Phase::Metadata`], every count zero.
    pub(crate) fn metadata(
        info_hash: InfoHash,
        name: String,
        save_path: std::path::PathBuf,
    ) -> Self {
        TorrentStatus {
            info_hash,
            name,
            phase: Phase::Metadata,
            pieces_have: 0,
            pieces_total: 0,
            bytes_have: 0,
            total_length: 0,
            downloaded: 0,
            uploaded: 0,
            download_rate: 0,
            upload_rate: 0,
            peers: 0,
            seeds: 0,
            hash_failures: 0,
            uploaded_from_memory: 0,
            tracker: TrackerStatus::default(),
            peers_from_pex: 0,
            refused_addresses: 0,
            checked_pieces: 0,
            resumed: false,
            paused: false,
            save_path,
            banned: 0,
            piece_layers_missing: 0,
            piece_layers_fetched: 0,
            pieces_v2_rechecked: 0,
            pieces_wanted: 0,
            pieces_wanted_have: 0,
            wanted_length: 0,
            max_download_rate: 0,
            max_upload_rate: 0,
            seeding_time: Duration::ZERO,
            seed_goal: SeedGoal::default(),
            seed_limits: SeedLimits::default(),
            sequential: false,
            first_last_piece: false,
            waiting_for_disk: false,
            disk_queued: 0,
            pieces_spilled: 0,
            web_seeds: Vec::new(),
        }
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.phase != Phase::Metadata && self.pieces_have == self.pieces_total
    }
    /// Whether every wanted file is complete (every piece, when no file
    /// is skipped).
    pub fn is_selection_complete(&self) -> bool {
        self.phase != Phase::Metadata && self.pieces_wanted_have >= self.pieces_wanted
    }
    /// Estimated seconds to completion at the current rate.
    pub fn eta(&self) -> Option<Duration> {
        if self.is_complete() || self.is_selection_complete() {
            return Some(Duration::ZERO);
        }
        if self.phase == Phase::Metadata {
            return None;
        }
        if self.download_rate == 0 {
            return None;
        }
        let left = if self.pieces_wanted < self.pieces_total {
            // Skipped files: about a piece's worth per wanted piece missing.
            let piece = self.total_length / u64::from(self.pieces_total.max(1));
            u64::from(self.pieces_wanted - self.pieces_wanted_have.min(self.pieces_wanted)) * piece
        } else {
            self.total_length - self.bytes_have
        };
        Some(Duration::from_secs(left / self.download_rate))
    }
}

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

/// One connected peer, as [`crate::Session::peers`] reports it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its address.
    pub addr: SocketAddr,
    /// Its peer id (the client is often encoded in it, e.g. `-qB4650-`).
    pub peer_id: [u8; 20],
    /// The client name from its extended handshake (`v`), if it sent one.
    pub client: Option<String>,
    /// We dialled it (false: it connected to us).
    pub outgoing: bool,
    /// Pieces it has.
    pub pieces: u32,
    /// Receive and send rates, bytes per second.
    pub download_rate: u64,
    /// Send rate, bytes per second.
    pub upload_rate: u64,
    /// Payload bytes received from it and sent to it.
    pub downloaded: u64,
    /// Payload bytes sent to it.
    pub uploaded: u64,
    /// We choke it.
    pub am_choking: bool,
    /// We want pieces it has.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It wants pieces we have.
    pub peer_interested: bool,
    /// It is our optimistic unchoke.
    pub optimistic: bool,
    /// It speaks `ut_pex`.
    pub pex: bool,
    /// The connection's transport (TCP or uTP).
    pub transport: crate::engine::net::transport::Transport,
    /// The connection speaks BitTorrent v2 (BEP 52): a v2-only torrent's,
    /// or a hybrid's under its v2 hash (dialled so, or upgraded).
    pub v2: bool,
}
