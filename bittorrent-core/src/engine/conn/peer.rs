//! The peer thread: one OS thread per peer socket.
//!
//! It owns the socket (a TCP or uTP `PeerSocket` inside a `PeerStream`), a [`FrameDecoder`], the set of requests it has
//! sent and the queue of requests the peer sent us. It reports what the
//! peer says to its torrent thread as [`PeerEvent`]s and blocks, over two
//! channels it never blocks on while it runs (`outbox`: control first; what
//! does not fit is held, and past a bound the thread stops reading its
//! socket, so memory stays flat and uploads go on) and executes
//! the [`PeerCmd`]s the torrent thread sends it (never blocking the sender).
//! Uploads are served here, straight from the shared read-only storage,
//! and only for pieces the shared "have" bitfield says are verified.

use crate::engine::conn::block_pool;
use crate::engine::conn::out_queue::{OutQueue, Source};
use crate::engine::conn::request_queue::RequestQueue;
use crate::engine::conn::waker::{Inbox, Waker, Woken};
use crate::engine::net::lowat::ReceiveMark;
use crate::engine::net::mse::{self, Encryption, PeerStream};
use crate::engine::net::rate_limit::{Credit, Direction};
use crate::engine::storage::Storage;
use crate::engine::torrent::picker::PeerKey;
use crate::engine::torrent::recent_pieces::RecentPieces;
use crate::engine::torrent::seeding::{Spread, UploadSteer, Verdict};
use crate::proto::bitfield::Bitfield;
use crate::proto::layout::Layout;
use crate::proto::wire::{BlockRef, FrameDecoder, Handshake, Message, HANDSHAKE_LEN, MAX_FRAME};
use crossbeam_channel::{Receiver, TryRecvError};
use parking_lot::RwLock;
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// The rest of this type's methods, by what they handle.
mod commands;
mod event_loop;
mod handshake;
mod hashes;
mod inbound;
mod outbox;
mod uploads;
pub(crate) use handshake::{
    answer_hash, dial_with, our_handshake, read_handshake, read_some, run_connected, run_outgoing,
    speaks_v2,
};
pub use outbox::{channels, Blocks, FromPeers, ToTorrent, CONTROL_CAPACITY, DATA_CAPACITY};

/// Why a connection ended. Every disconnect has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The TCP connect failed or timed out.
    ConnectFailed(String),
    /// The handshake was malformed, for another torrent, or timed out.
    BadHandshake(String),
    /// The peer closed the connection.
    PeerClosed,
    /// A socket error.
    Io(String),
    /// The peer broke the protocol (the text says how).
    Protocol(String),
    /// Nothing received for too long.
    Timeout,
    /// We are connected to this peer already (or it is ourselves).
    Duplicate,
    /// Connection limit reached.
    TooManyPeers,
    /// The peer sent data that failed the hash check too often.
    Banned,
    /// Both sides are seeds.
    BothSeeds,
    /// The peer did not keep up with our commands.
    TooSlow,
    /// The torrent or session is shutting down.
    Shutdown,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Byte counters shared between a peer thread and its torrent thread.
#[derive(Debug, Default)]
pub struct PeerCounters {
    /// Payload bytes received from the peer.
    pub downloaded: AtomicU64,
    /// Payload bytes sent to the peer.
    pub uploaded: AtomicU64,
    /// The peer thread holds events its torrent thread's channels had no
    /// room for and waits: the torrent thread wakes it once it has taken
    /// some (`Torrent::wake_held`), instead of the thread retrying on a
    /// short timer (issue 31: in a 50-peer flash crowd, 5 ms retries were
    /// nine in ten of the peer threads' sleeps).
    pub held: std::sync::atomic::AtomicBool,
}

/// Peer thread to torrent thread.
#[derive(Debug)]
pub enum PeerEvent {
    /// The handshake is done; the torrent now knows how to reach the thread.
    Joined {
        /// Commands for the peer thread (sending one wakes it).
        inbox: Inbox<PeerCmd>,
        /// A clone of the socket, used only to shut it down.
        closer: crate::engine::net::transport::Closer,
        /// The connection's transport.
        transport: crate::engine::net::transport::Transport,
        /// The remote address.
        addr: SocketAddr,
        /// The remote peer id.
        peer_id: [u8; 20],
        #[allow(dead_code)] // not used by the engine yet
        /// Whether the peer supports the fast extension.
        fast: bool,
        /// Whether we dialled it.
        outgoing: bool,
        /// The connection speaks v2 (a v2-only torrent, or a hybrid's
        /// connection under its v2 hash, upgraded or dialled so): BEP 52
        /// hash requests may be sent on it.
        v2: bool,
        /// Shared byte counters.
        counters: Arc<PeerCounters>,
    },
    /// The peer's bitfield (or have-all / have-none as a bitfield).
    Bitfield(Bitfield),
    /// The peer has a new piece.
    Have(u32),
    /// The peer has these new pieces: the `have`s of one socket read (or
    /// up to `MAX_HAVE_BATCH` of them), one event instead of one each.
    Haves(Vec<u32>),
    /// The peer is interested in us or not.
    Interested(bool),
    /// The peer choked (true) or unchoked (false) us.
    ChokedUs(bool),
    /// The peer rejected a request (BEP 6).
    Rejected(BlockRef),
    /// The peer's extended handshake (BEP 10).
    ExtHandshake {
        /// Its listening port (`p`), if it said.
        listen_port: Option<u16>,
        /// Whether it speaks `ut_pex`.
        pex: bool,
        /// Whether it speaks `ut_holepunch` (BEP 55).
        holepunch: bool,
        /// Its client name (`v`), if it said.
        client: Option<String>,
        /// How many outstanding requests it accepts (`reqq`), if it said.
        reqq: Option<u32>,
        /// Our address as it sees it (`yourip`), if it said.
        yourip: Option<std::net::IpAddr>,
    },
    /// Addresses the peer told us of with `ut_pex` (BEP 11), each with its flags.
    Pex(Vec<(SocketAddr, u8)>),
    /// A well-formed `ut_holepunch` message (BEP 55) from a peer that
    /// advertised the extension, within the per-connection rate.
    Holepunch(crate::proto::holepunch::HolepunchMessage),
    /// The peer lets us request this piece while it chokes us (BEP 6).
    AllowedFast(u32),
    /// The answer to our `hash request` (BEP 52): the hashes as sent
    /// (not checked yet), or `None` for a `hash reject`.
    Hashes {
        /// What we had asked.
        request: crate::proto::hash_msg::HashRequest,
        /// The base hashes and uncles, or `None`: rejected.
        hashes: Option<Vec<crate::proto::merkle::Hash256>>,
    },
    /// The connection is over.
    Left(CloseReason),
}

/// Torrent thread to peer thread (always sent with `try_send`).
#[derive(Debug, Clone)]
pub enum PeerCmd {
    /// The first command: we are registered; here are our verified pieces,
    /// to send as the bitfield.
    Start(Bitfield),
    /// Send these requests, unless the peer choked us since the torrent
    /// thread saw its `chokes`-th choke: the torrent thread gave them up
    /// when that choke reached it (so no request is written after a choke
    /// that voided it).
    Request {
        /// `ChokedUs(true)` events the torrent thread had seen.
        chokes: u32,
        /// The blocks.
        blocks: Vec<BlockRef>,
    },
    /// Cancel a request.
    Cancel(BlockRef),
    /// We verified a piece.
    Have(u32),
    /// We verified these pieces (announced together, `torrent::haves`).
    Haves(Vec<u32>),
    /// Choke (true) or unchoke (false) the peer.
    Choke(bool),
    /// Tell the peer we are interested or not.
    Interested(bool),
    /// Send a `ut_pex` message (only if the peer speaks it).
    Pex(crate::proto::extension::PexMessage),
    /// Send a `ut_holepunch` message (only if the peer speaks it).
    Holepunch(crate::proto::holepunch::HolepunchMessage),
    /// Send a BEP 52 `hash request` (its answer comes back as
    /// [`PeerEvent::Hashes`]).
    HashRequest(crate::proto::hash_msg::HashRequest),
    /// Close the connection.
    Close(CloseReason),
}

/// What a peer thread needs to know about its torrent.
pub struct PeerContext {
    /// The info-hash.
    pub info_hash: [u8; 20],
    /// Our peer id.
    pub our_id: [u8; 20],
    /// The torrent's geometry.
    pub layout: Layout,
    /// Where uploads are read from.
    pub storage: Arc<Storage>,
    /// The verified pieces (written only by the torrent thread).
    pub have: Arc<RwLock<Bitfield>>,
    /// Verified pieces kept in memory, uploaded without a disk read.
    pub recent: RecentPieces,
    /// Limits and timeouts.
    pub limits: PeerLimits,
    /// Our listening port (sent in the extended handshake).
    pub listen_port: u16,
    /// A private torrent (BEP 27): no peer exchange.
    pub private: bool,
    /// A v2-only torrent (BEP 52): our handshake sets the v2 bit.
    pub v2: bool,
    /// A hybrid's v2 info-hash truncated to 20 bytes: our handshake under
    /// the v1 hash sets the v2 bit (BEP 52's upgrade path), and a
    /// connection whose handshakes name this hash speaks v2.
    pub v2_alias: Option<[u8; 20]>,
    /// The session's DHT node, if any: peers' `port` messages feed it, and
    /// peers that support the DHT get ours.
    pub dht: Option<Arc<crate::discovery::dht::Dht>>,
    /// The session's IPv6 DHT node (BEP 32), beside a dual-stack listener:
    /// a `port` message over IPv6 names a node of the IPv6 DHT.
    pub dht6: Option<Arc<crate::discovery::dht::Dht>>,
    /// The torrent's info dictionary, served to peers with `ut_metadata`
    /// (BEP 9) so that they can start from a magnet link.
    pub info_bytes: Arc<Vec<u8>>,
    /// The session's and the torrent's rate limits: socket reads wait on
    /// the download buckets, piece data sent on the upload buckets.
    pub throttle: crate::engine::net::rate_limit::Throttle,
    /// Whether outgoing connections use MSE (and fall back to plaintext).
    pub encryption: Encryption,
    /// How outgoing connections are opened (TCP, uTP, or uTP then TCP).
    pub dialer: Arc<crate::engine::net::transport::Dialer>,
    /// Copies of each piece sent, and whether requests are steered to the
    /// least spread pieces (`torrent::seeding`).
    pub spread: Spread,
    /// Our own IPv6 address, if we have a usable one (sent as `ipv6`).
    pub own_v6: Option<std::net::Ipv6Addr>,
    /// The files' piece-layer trees (v2 and hybrid torrents with piece
    /// layers), answering peers' `hash request`s (`peer/hashes.rs`). A
    /// hybrid fetching its layers while it runs gets them here when they
    /// arrive (`torrent/v2_recheck.rs`): every peer thread, running or
    /// started later, answers from them from then on.
    pub hash_trees: RwLock<Option<Arc<crate::proto::piece_tree::PieceTrees>>>,
}

impl PeerContext {
    /// Our DHT node that speaks `peer`'s family: the IPv6 node for an IPv6
    /// peer beside a dual-stack listener, else the main node when its
    /// socket is of that family.
    pub fn dht_for(&self, peer: SocketAddr) -> Option<&Arc<crate::discovery::dht::Dht>> {
        let peer_v6 = peer.ip().to_canonical().is_ipv6();
        [&self.dht, &self.dht6]
            .into_iter()
            .flatten()
            .find(|d| d.local_addr().is_ipv6() == peer_v6)
    }
}

/// Limits a peer thread enforces.
#[derive(Debug, Clone, Copy)]
pub struct PeerLimits {
    /// Time to establish TCP.
    pub connect_timeout: Duration,
    /// Time to receive the handshake.
    pub handshake_timeout: Duration,
    /// Close when nothing arrives for this long.
    pub idle_timeout: Duration,
    /// Socket write timeout (a peer that never reads is dropped).
    pub write_timeout: Duration,
    /// Most requests from the peer queued at once, and the `reqq` we
    /// advertise (default 4,096 blocks, 64 MiB: a 1 Gbit/s peer 300 ms away
    /// needs 2,300 in flight, and our own leecher keeps up to
    /// `pipeline::MAX_DEPTH`, 3,072). Only the requests are queued (about 40
    /// bytes each); their data is read as the socket drains
    /// (`conn::request_queue`).
    pub max_upload_queue: usize,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// TCP congestion control set on the sockets we dial (`None`, the
    /// default: the system's). [`Session::start`](crate::Session::start)
    /// sets it from [`Config::tcp_congestion`](crate::Config::tcp_congestion),
    /// whatever it was.
    pub tcp_congestion: Option<crate::engine::net::congestion::TcpCongestion>,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(30),
            max_upload_queue: DEFAULT_UPLOAD_QUEUE,
            max_frame: MAX_FRAME,
            tcp_congestion: None,
        }
    }
}

struct Connection<'a> {
    /// The socket, in clear or RC4 (MSE); all reads and writes go through it.
    stream: PeerStream,
    key: PeerKey,
    ctx: &'a PeerContext,
    torrent: &'a ToTorrent,
    /// Events and blocks the torrent thread's channels did not take yet.
    outbox: outbox::Outbox,
    inbox: Receiver<PeerCmd>,
    /// Woken by the torrent thread's `Inbox` when a command is queued.
    waker: Arc<Waker>,
    decoder: FrameDecoder,
    out: OutQueue,
    fast: bool,
    am_choking: bool,
    peer_choking: bool,
    /// `choke` messages received (each sent `ChokedUs(true)`).
    chokes: u32,
    sent_requests: HashSet<BlockRef>,
    upload_queue: RequestQueue,
    counters: Arc<PeerCounters>,
    last_recv: Instant,
    last_send: Instant,
    /// Blocks received that we had not requested (or no longer had
    /// outstanding, e.g. after a choke); past `MAX_UNREQUESTED` they are
    /// dropped instead of being handed to the torrent thread.
    unrequested: u32,
    /// The peer speaks BEP 10.
    ext: bool,
    /// The id the peer wants `ut_pex` messages sent with.
    their_pex: Option<u8>,
    last_pex_in: Option<Instant>,
    /// The id the peer wants `ut_holepunch` messages sent with.
    their_holepunch: Option<u8>,
    /// Holepunch messages taken this second (`HOLEPUNCH_PER_SECOND`).
    holepunch_budget: (Instant, u32),
    /// Pieces this peer may request while we choke it (BEP 6).
    allowed_fast: Vec<u32>,
    /// The id the peer wants `ut_metadata` messages sent with.
    their_metadata: Option<u8>,
    /// Metadata pieces served on this connection.
    metadata_served: u32,
    /// BEP 52 hash requests answered, and this second's budget.
    hash_budget: hashes::HashBudget,
    /// Blocks decoded from the current read, sent as one `Blocks` event.
    pending_blocks: Vec<(BlockRef, Vec<u8>)>,
    /// `have`s decoded from the current read, handed over as one event
    /// (before any other event, so the order the peer said them in holds).
    pending_haves: Vec<u32>,
    /// Bytes asked of the next socket read: grows while reads come back
    /// full, back to the minimum when the connection goes quiet.
    read_size: usize,
    /// Uploads: the part of a piece read last (piece, offset in the piece,
    /// bytes), so that a piece is read from disk once, not once per block.
    /// Shared with the piece messages queued in `out` until they are sent.
    upload_cache: Option<(u32, u32, Rc<Vec<u8>>)>,
    /// Rate limits: bytes reserved (paid in advance) for reads and for
    /// uploads, and when they are due (`rate_limit::Credit`).
    down_credit: Credit,
    up_credit: Credit,
    /// Seeding once: pieces started here, blocks refused (`seeding.rs`).
    steer: UploadSteer,
    /// The socket's receive low-water mark, sized from the receive rate.
    mark: ReceiveMark,
    /// What woke this thread, for the debug log at close.
    pub(crate) wakes: WakeCounts,
}

/// Counts of a peer thread's waits and reads (logged at close, debug).
#[derive(Debug, Default)]
pub(crate) struct WakeCounts {
    socket: u64,
    inbox: u64,
    queued: u64,
    timeout: u64,
    reads: u64,
    bytes: u64,
    events: u64,
    /// Reads after a socket wake-up that found less than the mark.
    early: u64,
    /// Reads that filled what was asked.
    full: u64,
}

/// Default [`PeerLimits::max_upload_queue`].
pub const DEFAULT_UPLOAD_QUEUE: usize = 4096;
/// `have`s of one read handed over as one event at most (a peer-sent
/// count: past it, another event).
const MAX_HAVE_BATCH: usize = 512;
/// Size of the allowed-fast set we grant (BEP 6 suggests 10).
const ALLOWED_FAST_K: usize = 10;
/// The id we ask peers to use for `ut_metadata` messages to us.
pub const OUR_METADATA_ID: u8 = 2;
/// Metadata pieces served per connection at most (a 10 MiB info dict is 640).
const MAX_METADATA_REQUESTS: u32 = 1024;
/// The id we ask peers to use for `ut_pex` messages to us.
const OUR_PEX_ID: u8 = 1;
/// The id we ask peers to use for `ut_holepunch` messages to us (BEP 55).
pub(crate) const OUR_HOLEPUNCH_ID: u8 = 4;
/// `ut_holepunch` messages taken from one connection per second; more are
/// dropped unread (a relay answers each rendezvous with up to two messages).
const HOLEPUNCH_PER_SECOND: u32 = 2;
/// PEX messages closer together than this are ignored (BEP 11: one a minute).
const PEX_MIN_GAP: Duration = Duration::from_secs(20);
/// Most addresses taken from one PEX message.
const PEX_MAX_ADDED: usize = 100;
/// How long a new connection waits for its torrent thread to register it.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of piece messages queued per loop turn.
const UPLOAD_BURST: usize = 128 * 1024;
const WRITE_SLICE: Duration = Duration::from_millis(10);
/// A read's timeout: a safety net only, since a thread reads once `poll`
/// says the socket has bytes (`waker`), or without blocking.
const LONG_READ: Duration = Duration::from_millis(100);
const KEEPALIVE: Duration = Duration::from_secs(90);
/// Unrequested blocks handed to the torrent thread per connection at most
/// (libtorrent counts such blocks as waste and keeps the connection; so do
/// we, but past this many we drop them unread by the picker).
const MAX_UNREQUESTED: u32 = 256;
/// Commands queued in a peer's inbox before the torrent thread closes it
/// as too slow.
pub const INBOX_LIMIT: usize = 4096;
/// Socket reads: from 16 KiB on an idle connection up to 256 KiB while
/// data streams in.
const MIN_READ: usize = 16 * 1024;
/// Silence after which a connection gives its read buffer back.
const QUIET: Duration = Duration::from_secs(1);
/// One block message (header and payload): a read of block payloads into
/// their buffers holds whole ones.
const READ_SLOT: usize = crate::proto::wire::PIECE_HEAD + crate::proto::wire::BLOCK_SIZE as usize;
/// The largest read: 16 whole block messages (the most the low-water
/// mark waits for, `lowat::MAX`, in one read, not one read and a block).
const MAX_READ: usize = 16 * READ_SLOT + 4096;
/// While requests are outstanding, a wait ends after this at the latest:
/// lazy commands (`waker::Inbox::try_send_lazy`) wait no longer.
const STREAMING_WAIT: Duration = Duration::from_millis(250);
/// With a receive low-water mark set, a wait ends after this at the latest
/// and reads what arrived below the mark (a `choke`, a `have`).
const LOWAT_WAIT: Duration = Duration::from_millis(40);
/// Uploads read pieces in chunks of at most this (the run of requested
/// blocks that starts with the one to send, `requested_run`).
const UPLOAD_CHUNK: u32 = 256 * 1024;

/// Bytes from the start of block `b` to the end of the run of requests
/// queued right after it in `queue` (the same piece, each beginning where the
/// one before ends), at least `b`'s own length, at most `max` unless `b`
/// alone is longer.
fn requested_run<'q>(b: &BlockRef, queue: impl IntoIterator<Item = &'q BlockRef>, max: u32) -> u32 {
    let mut end = b.begin.saturating_add(b.length);
    for q in queue {
        let next = q.begin.saturating_add(q.length);
        if q.index != b.index || q.begin != end || next - b.begin > max {
            break;
        }
        end = next;
    }
    end - b.begin
}

/// Stack size of a peer thread (connection and handshake threads too). The
/// thread's buffers are on the heap; measured need is well below this.
pub const PEER_STACK: usize = 256 * 1024;
/// Longest sleep waiting for a download reservation before the loop goes
/// on (the inbox and the other direction are served in between).
const THROTTLE_SLICE: Duration = Duration::from_millis(50);

impl<'a> Connection<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        stream: PeerStream,
        addr: SocketAddr,
        outgoing: bool,
        hs: Handshake,
        leftover: Vec<u8>,
        key: PeerKey,
        ctx: &'a PeerContext,
        torrent: &'a ToTorrent,
    ) -> Result<Connection<'a>, CloseReason> {
        if hs.peer_id == ctx.our_id {
            return Err(CloseReason::Duplicate);
        }
        let closer = (stream.socket().closer()).map_err(|e| CloseReason::Io(e.to_string()))?;
        let transport = stream.transport();
        if let Some(tcp) = stream.tcp() {
            let _ = tcp.set_nodelay(true);
        }
        let _ = stream.set_write_timeout(Some(WRITE_SLICE));
        let _ = stream.set_read_timeout(Some(LONG_READ));
        // Unbounded (memory only for what is queued); the torrent thread
        // closes a peer whose inbox holds `INBOX_LIMIT` commands.
        let (tx, inbox) = crossbeam_channel::unbounded();
        let waker = Waker::new();
        let counters = Arc::new(PeerCounters::default());
        let fast = hs.supports_fast();
        let v2 = speaks_v2(ctx, &hs, outgoing);
        torrent.send_control(
            key,
            PeerEvent::Joined {
                inbox: Inbox::new(tx, waker.clone()),
                closer,
                transport,
                addr,
                peer_id: hs.peer_id,
                fast,
                outgoing,
                v2,
                counters: counters.clone(),
            },
        )?;
        let mut decoder = FrameDecoder::new(ctx.limits.max_frame);
        decoder.feed(&leftover);
        let now = Instant::now();
        let mut c = Connection {
            stream,
            key,
            ctx,
            torrent,
            outbox: outbox::Outbox::default(),
            inbox,
            waker,
            decoder,
            out: OutQueue::default(),
            fast,
            am_choking: true,
            peer_choking: true,
            chokes: 0,
            sent_requests: HashSet::new(),
            upload_queue: RequestQueue::default(),
            counters,
            last_recv: now,
            last_send: now,
            unrequested: 0,
            ext: hs.supports_extensions(),
            their_pex: None,
            last_pex_in: None,
            their_holepunch: None,
            holepunch_budget: (Instant::now(), 0),
            allowed_fast: Vec::new(),
            their_metadata: None,
            metadata_served: 0,
            hash_budget: hashes::HashBudget::default(),
            pending_blocks: Vec::new(),
            pending_haves: Vec::new(),
            read_size: MIN_READ,
            upload_cache: None,
            down_credit: Credit::default(),
            up_credit: Credit::default(),
            steer: UploadSteer::default(),
            mark: ReceiveMark::new(now),
            wakes: WakeCounts::default(),
        };
        // Our bitfield goes first (after the handshake, before anything
        // else). The torrent thread sends it as the first command when it
        // registers us: every `have` after it then comes through the inbox,
        // so no piece verified meanwhile can be missed.
        let deadline = Instant::now() + START_TIMEOUT;
        let have = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match c.inbox.recv_timeout(left) {
                Ok(PeerCmd::Start(have)) => break have,
                Ok(PeerCmd::Close(r)) => return Err(r),
                Ok(_) => {}
                Err(_) => return Err(CloseReason::Shutdown),
            }
        };
        if fast && have.is_full() {
            c.send(&Message::HaveAll);
        } else if fast && have.count() == 0 {
            c.send(&Message::HaveNone);
        } else if have.count() > 0 {
            c.send(&Message::Bitfield(have.as_bytes().to_vec()));
        }
        // BEP 6: a fast peer may fetch a few pieces before we unchoke it.
        if let (true, std::net::IpAddr::V4(v4)) = (fast, addr.ip()) {
            c.allowed_fast = crate::proto::wire::allowed_fast_set(
                ALLOWED_FAST_K,
                ctx.layout.num_pieces,
                &ctx.info_hash,
                v4,
            );
            for i in c.allowed_fast.clone() {
                c.send(&Message::AllowedFast(i));
            }
        }
        // BEP 5: tell a DHT-capable peer where our DHT node of the
        // connection's family listens (BEP 32).
        let dht_peer = hs.reserved[7] & 0x01 != 0 && !ctx.private;
        if let (Some(dht), true) = (ctx.dht_for(addr), dht_peer) {
            c.send(&Message::Port(dht.local_addr().port()));
        }
        if c.ext {
            let mut m = vec![("ut_metadata".to_string(), OUR_METADATA_ID)];
            if !ctx.private {
                m.push(("ut_pex".to_string(), OUR_PEX_ID));
                m.push((
                    crate::proto::holepunch::HOLEPUNCH_EXTENSION.to_string(),
                    OUR_HOLEPUNCH_ID,
                ));
            }
            let h = crate::proto::extension::ExtHandshake {
                m,
                p: Some(ctx.listen_port),
                v: Some(format!("peer {}", env!("CARGO_PKG_VERSION"))),
                yourip: Some(addr.ip()),
                ipv6: ctx.own_v6,
                reqq: Some(ctx.limits.max_upload_queue as u32),
                metadata_size: Some(ctx.info_bytes.len() as u64),
                ..Default::default()
            };
            c.send(&Message::Extended {
                id: crate::proto::extension::HANDSHAKE_EXT_ID,
                payload: h.encode(),
            });
        }
        Ok(c)
    }

    fn send(&mut self, m: &Message) {
        self.out.push(m);
    }

    /// Write as much of the output buffer as the socket takes without
    /// waiting longer than `WRITE_SLICE`; the rest stays queued. Reading and
    /// writing alternate on this one thread, so two peers that both send at
    /// once can never deadlock on full socket buffers.
    fn flush(&mut self) -> Result<(), CloseReason> {
        while !self.out.is_empty() {
            match self.out.write_to(&mut self.stream) {
                Ok(0) => return Err(CloseReason::PeerClosed),
                Ok(_) => self.last_send = Instant::now(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e.to_string())),
            }
        }
        // With RC4 the stream may hold up to one encrypted chunk the socket
        // has not taken yet: push it too (plaintext streams never have any).
        if self.out.is_empty() && self.stream.has_pending() {
            match self.stream.push_pending() {
                Ok(()) => self.last_send = Instant::now(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(CloseReason::Io(e.to_string())),
            }
        }
        // A burst may have grown the buffer to a few MiB; don't keep that
        // per idle connection.
        self.out.shrink(256 * 1024);
        let queued = !self.out.is_empty() || self.stream.has_pending();
        if queued && self.last_send.elapsed() > self.ctx.limits.write_timeout {
            // The peer has not read anything for too long.
            return Err(CloseReason::TooSlow);
        }
        Ok(())
    }

    /// Write everything queued, waiting up to the write timeout (at close).
    fn flush_all(&mut self) -> Result<(), CloseReason> {
        let _ = self.stream.set_write_timeout(Some(
            self.ctx.limits.write_timeout.min(Duration::from_secs(2)),
        ));
        let out = self.out.take_all();
        self.stream
            .write_all(&out)
            .and_then(|()| self.stream.flush())
            .map_err(|e| CloseReason::Io(e.to_string()))
    }

    /// Hand a control event over (never waiting: what the channel does not
    /// take now is held in the outbox and handed over on a later turn).
    fn event(&mut self, e: PeerEvent) -> Result<(), CloseReason> {
        // Blocks and `have`s decoded before this message are queued first.
        self.pending_blocks_to_outbox();
        self.haves_to_outbox();
        self.outbox.push_control(e);
        self.outbox.pump(self.key, self.torrent)
    }

    /// The blocks decoded so far become one batch in the outbox.
    fn pending_blocks_to_outbox(&mut self) {
        if !self.pending_blocks.is_empty() {
            self.outbox
                .push_data(std::mem::take(&mut self.pending_blocks));
        }
    }

    /// A `have` the peer sent: handed over with the read's others.
    fn peer_has(&mut self, i: u32) -> Result<(), CloseReason> {
        self.pending_haves.push(i);
        if self.pending_haves.len() >= MAX_HAVE_BATCH {
            self.pending_blocks_to_outbox();
            self.haves_to_outbox();
            return self.outbox.pump(self.key, self.torrent);
        }
        Ok(())
    }

    /// The `have`s decoded so far become one event in the outbox.
    fn haves_to_outbox(&mut self) {
        if let Some(e) = haves_event(&mut self.pending_haves) {
            self.outbox.push_control(e);
        }
    }

    /// Hand over the blocks and `have`s decoded so far, and whatever the
    /// outbox still holds (never waiting).
    fn flush_blocks(&mut self) -> Result<(), CloseReason> {
        self.pending_blocks_to_outbox();
        self.haves_to_outbox();
        if self.outbox.is_empty() {
            return Ok(());
        }
        self.wakes.events += 1;
        self.outbox.pump(self.key, self.torrent)
    }
}

/// The event for the `have`s in `pending` (emptied): one `Have`, or one
/// `Haves` for several; `None` for none.
fn haves_event(pending: &mut Vec<u32>) -> Option<PeerEvent> {
    match pending.len() {
        0 => None,
        1 => pending.pop().map(PeerEvent::Have),
        _ => Some(PeerEvent::Haves(std::mem::take(pending))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn haves_of_a_read_become_one_event() {
        let mut p = Vec::new();
        assert!(haves_event(&mut p).is_none());
        p.push(7);
        assert!(matches!(haves_event(&mut p), Some(PeerEvent::Have(7))));
        assert!(p.is_empty());
        p.extend([3, 9, 1]);
        match haves_event(&mut p) {
            Some(PeerEvent::Haves(v)) => assert_eq!(v, vec![3, 9, 1]),
            other => panic!("expected Haves, got {other:?}"),
        }
        assert!(p.is_empty());
    }

    fn blk(index: u32, begin: u32, length: u32) -> BlockRef {
        BlockRef {
            index,
            begin,
            length,
        }
    }

    #[test]
    fn upload_reads_cover_only_the_requested_run() {
        const K16: u32 = 16 * 1024;
        let q = |v: &[BlockRef]| v.iter().copied().collect::<VecDeque<_>>();
        // alone: just the block
        assert_eq!(
            requested_run(&blk(3, 5 * K16, K16), &q(&[]), UPLOAD_CHUNK),
            K16
        );
        // the blocks queued behind it, in order
        let run = q(&[
            blk(3, 6 * K16, K16),
            blk(3, 7 * K16, K16),
            blk(3, 9 * K16, K16),
        ]);
        assert_eq!(
            requested_run(&blk(3, 5 * K16, K16), &run, UPLOAD_CHUNK),
            3 * K16
        );
        // another piece, or a gap, ends the run
        let other = q(&[blk(4, 6 * K16, K16)]);
        assert_eq!(
            requested_run(&blk(3, 5 * K16, K16), &other, UPLOAD_CHUNK),
            K16
        );
        // never more than the chunk, whatever is queued
        let many: Vec<BlockRef> = (1..64).map(|i| blk(0, i * K16, K16)).collect();
        assert_eq!(
            requested_run(&blk(0, 0, K16), &q(&many), UPLOAD_CHUNK),
            UPLOAD_CHUNK
        );
        // short blocks (the end of a torrent) join the run too
        let short = q(&[blk(2, K16, 100)]);
        assert_eq!(
            requested_run(&blk(2, 0, K16), &short, UPLOAD_CHUNK),
            K16 + 100
        );
    }
}
