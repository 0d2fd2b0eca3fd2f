//! The web-seed thread (BEP 19): one per web seed of a torrent, a source
//! beside the peers. It talks to its torrent thread as a peer thread does:
//! the torrent thread picks pieces for it (`WebSeedCmd::Fetch`, a run of
//! consecutive pieces, `try_send`), and it hands each piece back whole, as
//! blocks, to be hashed like any peer's (`WebSeedEvent::Piece`), then says
//! the run is over (`Done`) or why it stopped (`Failed`: the pieces it did
//! not deliver go back to the picker).
//!
//! HTTP: ranged `GET`s with `ureq` (the trackers' TLS set-up: `rustls` and
//! the system roots), one connection at a time, kept alive between
//! requests; at most [`MAX_REDIRECTS`] redirects; a deadline per request
//! (and a shorter one for the response's head);
//! the body read is exactly the bytes asked for (a larger answer is cut, a
//! shorter one is an error). A run that spans files is one request per
//! file (`proto::web_seed::segments`); pad files are zeros, not fetched.
//! Downloads count against the session's and the torrent's download rate
//! limits.

use crate::engine::net::rate_limit::{Direction, Throttle};
use crate::proto::layout::Layout;
use crate::proto::metainfo::Info;
use crate::proto::web_seed::{self, WebSeedError};
use crate::util::doorbell::Rung;
use crossbeam_channel::{Receiver, Sender};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::torrent::picker::PeerKey;

/// Redirects followed per request.
pub const MAX_REDIRECTS: u32 = 3;
/// The deadline of one request (connect, headers and body): a run is at
/// most [`MAX_RUN_BYTES`], so this allows about 70 KiB/s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a web seed may take to send a response's head: one that
/// accepts and never answers gives its run back after this, not after
/// [`REQUEST_TIMEOUT`] (the other sources wait for those pieces).
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes asked of a web seed in one run.
pub const MAX_RUN_BYTES: u64 = 4 << 20;
/// Stack of a web-seed thread.
const STACK: usize = 256 * 1024;
/// Bytes read from the body at once.
const READ_CHUNK: usize = 16 * 1024;

/// Torrent thread → web-seed thread (`try_send`; the torrent thread sends
/// one `Fetch` at a time and waits for its `Done` or `Failed`).
#[derive(Debug)]
pub(crate) enum WebSeedCmd {
    /// Fetch these pieces (consecutive, ascending).
    Fetch(Vec<u32>),
}

/// Web-seed thread → torrent thread (blocking sends on a small bounded
/// channel: backpressure; the torrent thread never waits on a web seed).
#[derive(Debug)]
pub(crate) enum WebSeedEvent {
    /// One piece of the run, whole, as 16 KiB blocks (not verified yet).
    Piece {
        /// The piece.
        index: u32,
        /// Its blocks, in order.
        blocks: Vec<Vec<u8>>,
    },
    /// Every piece of the run was delivered.
    Done,
    /// The run stopped; the pieces not delivered were not fetched.
    Failed {
        /// Why.
        error: String,
        /// The server said 404 or 410.
        not_found: bool,
    },
}

/// What a web-seed thread reads.
pub(crate) struct WebSeedContext {
    pub(crate) url: String,
    pub(crate) info: Arc<Info>,
    pub(crate) layout: Layout,
    pub(crate) throttle: Throttle,
    /// Where the connections leave from (`--bind`).
    pub(crate) source: crate::util::source::SourceAddrs,
}

/// A running web-seed thread, as the torrent thread holds it. Dropping it
/// stops the thread (its inbox disconnects; a fetch in progress stops at
/// its next read).
pub(crate) struct WebSeedHandle {
    pub(crate) inbox: Sender<WebSeedCmd>,
    stop: Arc<AtomicBool>,
}

impl Drop for WebSeedHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Start the thread of web seed `key`.
pub(crate) fn spawn(
    key: PeerKey,
    ctx: WebSeedContext,
    events: Rung<(PeerKey, WebSeedEvent)>,
) -> std::io::Result<WebSeedHandle> {
    let (tx, rx) = crossbeam_channel::bounded(2);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::Builder::new()
        .name("web-seed".into())
        .stack_size(STACK)
        .spawn(move || run(key, ctx, rx, events, stop2))?;
    Ok(WebSeedHandle { inbox: tx, stop })
}

fn run(
    key: PeerKey,
    ctx: WebSeedContext,
    inbox: Receiver<WebSeedCmd>,
    events: Rung<(PeerKey, WebSeedEvent)>,
    stop: Arc<AtomicBool>,
) {
    while let Ok(WebSeedCmd::Fetch(pieces)) = inbox.recv() {
        let end = match fetch_run(&ctx, &pieces, &stop, |index, blocks| {
            events
                .send((key, WebSeedEvent::Piece { index, blocks }))
                .is_ok()
        }) {
            Ok(()) => WebSeedEvent::Done,
            Err(e) => {
                log::debug!("web seed {}: {e}", ctx.url);
                WebSeedEvent::Failed {
                    not_found: matches!(e, FetchError::Http(WebSeedError::Status(404 | 410))),
                    error: e.to_string(),
                }
            }
        };
        if stop.load(Ordering::Relaxed) || events.send((key, end)).is_err() {
            return;
        }
    }
}

/// Why a run stopped.
#[derive(Debug)]
enum FetchError {
    /// The answer was refused.
    Http(WebSeedError),
    /// The request failed (connect, TLS, timeout, redirects...).
    Transport(String),
    /// The torrent thread stopped us.
    Stopped,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Http(e) => write!(f, "{e}"),
            FetchError::Transport(e) => write!(f, "{e}"),
            FetchError::Stopped => write!(f, "stopped"),
        }
    }
}

/// Fetch the consecutive `pieces` and hand each one to `deliver` as soon
/// as its bytes are in.
fn fetch_run(
    ctx: &WebSeedContext,
    pieces: &[u32],
    stop: &AtomicBool,
    mut deliver: impl FnMut(u32, Vec<Vec<u8>>) -> bool,
) -> Result<(), FetchError> {
    let (Some(&first), Some(&last)) = (pieces.first(), pieces.last()) else {
        return Ok(());
    };
    let start = ctx.layout.piece_offset(first);
    let end = ctx.layout.piece_offset(last) + u64::from(ctx.layout.piece_len(last));
    let mut next_piece = first;
    let mut piece = Vec::with_capacity(ctx.layout.piece_len(first) as usize);
    for seg in web_seed::segments(&ctx.info, start, end - start) {
        let mut feed = |bytes: &[u8]| -> bool {
            let mut bytes = bytes;
            while !bytes.is_empty() {
                let want = ctx.layout.piece_len(next_piece) as usize - piece.len();
                let n = want.min(bytes.len());
                piece.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if piece.len() == ctx.layout.piece_len(next_piece) as usize {
                    // Recycled block buffers, handed back to the pool once written.
                    let blocks: Vec<Vec<u8>> = piece
                        .chunks(crate::proto::wire::BLOCK_SIZE as usize)
                        .map(|c| {
                            let mut b = super::block_pool::global().take_block();
                            b.truncate(c.len());
                            b.copy_from_slice(c);
                            b
                        })
                        .collect();
                    if !deliver(next_piece, blocks) {
                        return false;
                    }
                    piece.clear();
                    if next_piece == last {
                        return true;
                    }
                    next_piece += 1;
                }
            }
            true
        };
        if seg.pad {
            let zeros = vec![0u8; READ_CHUNK];
            let mut left = seg.len;
            while left > 0 {
                let n = left.min(READ_CHUNK as u64) as usize;
                if !feed(&zeros[..n]) {
                    return Err(FetchError::Stopped);
                }
                left -= n as u64;
            }
            continue;
        }
        let url = web_seed::file_url(&ctx.url, &ctx.info, seg.file);
        get_range(ctx, &url, seg.file_offset, seg.len, stop, &mut feed)?;
    }
    Ok(())
}

/// `GET url` for `len` bytes from `start`, fed to `feed` as they arrive.
fn get_range(
    ctx: &WebSeedContext,
    url: &str,
    start: u64,
    len: u64,
    stop: &AtomicBool,
    feed: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<(), FetchError> {
    let mut resp = agent(ctx.source)
        .get(url)
        .header("Range", web_seed::range_header(start, len))
        .header("Accept-Encoding", "identity")
        .config()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .call()
        .map_err(|e| FetchError::Transport(transport_error(e)))?;
    let status = resp.status().as_u16();
    let range = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    web_seed::check_response(status, range.as_deref(), start, len).map_err(FetchError::Http)?;
    // Exactly the bytes asked for, whatever the server sends after them.
    let mut body = resp.body_mut().as_reader().take(len);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut got = 0u64;
    while got < len {
        if stop.load(Ordering::Relaxed) {
            return Err(FetchError::Stopped);
        }
        let want = (len - got).min(READ_CHUNK as u64) as usize;
        let n = match body.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FetchError::Transport(e.to_string())),
        };
        let wait = ctx.throttle.reserve(Direction::Download, n as u64);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        got += n as u64;
        if !feed(&buf[..n]) {
            return Err(FetchError::Stopped);
        }
    }
    if got < len {
        return Err(FetchError::Http(WebSeedError::Short { asked: len, got }));
    }
    Ok(())
}

fn transport_error(e: ureq::Error) -> String {
    match e {
        ureq::Error::TooManyRedirects => format!("more than {MAX_REDIRECTS} redirects"),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    }
}

/// The web seeds' agent: the trackers' TLS set-up, redirects bounded, a
/// few idle connections kept (one per web seed).
fn agent(source: crate::util::source::SourceAddrs) -> ureq::Agent {
    crate::discovery::tracker::http::shared_agent("web seeds", source, || web_seed_config().build())
}

fn web_seed_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    crate::discovery::tracker::http::agent_config(MAX_REDIRECTS)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(RESPONSE_HEAD_TIMEOUT))
        .max_idle_connections(16)
        .max_idle_connections_per_host(2)
}
