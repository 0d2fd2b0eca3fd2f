//! A peer thread's BEP 52 hash messages: it answers `hash request`s
//! (id 21) itself, from the torrent's piece-layer trees
//! ([`crate::proto::piece_tree::PieceTrees`] in the `PeerContext`), with
//! `hashes` (22) or `hash reject` (23); nothing goes through the torrent
//! thread. This is what a v2 client that started from a magnet link asks
//! for once it has the info dictionary. Requests for the block layers
//! (below the piece layer) are answered from the data of pieces we have,
//! read and hashed here (`proto::block_layer`; at most 8 MiB a request and
//! [`BLOCK_BYTES_PER_SEC`] a second per connection, rejected past that):
//! only this peer's own connection waits meanwhile.
//!
//! The torrent thread asks a peer for a failed piece's block hashes
//! (`PeerCmd::HashRequest`, `torrent::block_verify`): the answer (or
//! reject) to a request sent is handed back as an event; `hashes` that
//! answer nothing we asked close the connection, an unasked `hash reject`
//! is ignored.

use super::*;
use crate::proto::hash_msg::{HashMessage, HashRequest, HASH_REJECT, HASH_REQUEST, HEADER_LEN};

/// Hash requests answered (or rejected) per connection in one second;
/// those over it are rejected without looking. A client fetching piece
/// layers asks one request per 512 pieces of each file.
pub(super) const HASH_REQUESTS_PER_SEC: u32 = 200;
/// Bytes queued for the peer past which a hash request is rejected (the
/// peer is not reading what we send).
const HASH_OUT_LIMIT: usize = 4 << 20;
/// Bytes of piece data read and hashed per connection in one second to
/// answer block-layer requests; requests past it are rejected.
pub(super) const BLOCK_BYTES_PER_SEC: u64 = 32 << 20;
/// Our own hash requests outstanding on one connection at most (the
/// torrent thread sends one per failed piece).
pub(super) const MAX_ASKED: usize = 8;

/// A per-connection budget of hash requests: [`HASH_REQUESTS_PER_SEC`] in
/// each one-second window.
#[derive(Debug)]
pub(super) struct HashBudget {
    window: Instant,
    used: u32,
    /// Bytes read for block-layer answers in this window.
    block_bytes: u64,
    /// Our requests sent and not answered yet.
    pub(super) asked: Vec<HashRequest>,
    /// Requests answered with hashes (logged at close).
    pub(super) answered: u64,
    /// Requests rejected.
    pub(super) rejected: u64,
}

impl Default for HashBudget {
    fn default() -> Self {
        HashBudget {
            window: Instant::now(),
            used: 0,
            block_bytes: 0,
            asked: Vec::new(),
            answered: 0,
            rejected: 0,
        }
    }
}

impl HashBudget {
    /// Take one request from this second's budget.
    fn take(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.used = 0;
            self.block_bytes = 0;
        }
        self.used = self.used.saturating_add(1);
        self.used <= HASH_REQUESTS_PER_SEC
    }
}

impl Connection<'_> {
    /// Send our request for hashes (the torrent thread's command).
    pub(super) fn ask_hashes(&mut self, r: HashRequest) {
        if self.hash_budget.asked.len() >= MAX_ASKED || self.hash_budget.asked.contains(&r) {
            return;
        }
        self.hash_budget.asked.push(r);
        self.send(&Message::Hash {
            id: HASH_REQUEST,
            payload: HashMessage::Request(r).payload(),
        });
    }

    /// A `hashes` or `hash reject`: to the torrent thread if it answers a
    /// request of ours; unasked `hashes` end the connection.
    fn on_hash_answer(&mut self, id: u8, payload: &[u8]) -> Result<(), CloseReason> {
        let msg = HashMessage::decode(id, payload);
        let (request, hashes) = match msg {
            Ok(HashMessage::Hashes { request, hashes }) => (request, Some(hashes)),
            Ok(HashMessage::Reject(request)) => (request, None),
            Ok(HashMessage::Request(_)) => return Ok(()),
            Err(e) if id == HASH_REJECT => {
                log::debug!("malformed hash reject: {e}");
                return Ok(());
            }
            Err(e) => return Err(CloseReason::Protocol(format!("hashes: {e}"))),
        };
        let Some(at) = self.hash_budget.asked.iter().position(|r| *r == request) else {
            if hashes.is_some() {
                return Err(CloseReason::Protocol("hashes we did not ask for".into()));
            }
            return Ok(());
        };
        self.hash_budget.asked.swap_remove(at);
        self.event(PeerEvent::Hashes { request, hashes })
    }

    /// The answer to a block-layer request (below the piece layer) from
    /// the pieces' data, within this second's byte budget.
    fn answer_blocks(&mut self, r: &HashRequest) -> Option<Vec<crate::proto::merkle::Hash256>> {
        let trees = self.ctx.hash_trees.read().clone()?;
        let trees = &*trees;
        let place = trees.place(&r.pieces_root)?;
        if r.base_layer >= place.piece_height {
            return trees.answer(r);
        }
        // What the request makes us read, at most (pieces it covers).
        let piece_len = crate::proto::merkle::BLOCK_LEN << place.piece_height;
        let pieces = (u64::from(r.length) >> (place.piece_height - r.base_layer)).max(1);
        let cost = pieces.saturating_mul(piece_len);
        if self.hash_budget.block_bytes.saturating_add(cost) > BLOCK_BYTES_PER_SEC {
            return None;
        }
        self.hash_budget.block_bytes += cost;
        let (ctx, layout) = (self.ctx, &self.ctx.layout);
        crate::proto::block_layer::answer(trees, r, |p| {
            let i = u32::try_from(p).ok()?;
            if i >= layout.num_pieces || !ctx.have.read().get(i as usize) {
                return None;
            }
            let mut buf = vec![0u8; layout.piece_len(i) as usize];
            ctx.storage.read(layout.piece_offset(i), &mut buf).ok()?;
            Some(buf)
        })
    }

    pub(super) fn on_hash_message(&mut self, id: u8, payload: &[u8]) -> Result<(), CloseReason> {
        if id != HASH_REQUEST {
            return self.on_hash_answer(id, payload);
        }
        if payload.len() != HEADER_LEN {
            return Err(CloseReason::Protocol(format!(
                "hash request of {} bytes",
                payload.len()
            )));
        }
        let Some(header) = HashRequest::header(payload) else {
            return Ok(()); // unreachable: the length was checked
        };
        let within = self.hash_budget.take() && self.out.len() < HASH_OUT_LIMIT;
        let answer = match (
            within,
            HashMessage::decode(id, payload),
            self.ctx.hash_trees.read().is_some(),
        ) {
            (true, Ok(HashMessage::Request(r)), true) => self.answer_blocks(&r),
            _ => None,
        };
        let reply = match answer {
            Some(hashes) => {
                self.hash_budget.answered += 1;
                HashMessage::Hashes {
                    request: header,
                    hashes,
                }
            }
            None => {
                self.hash_budget.rejected += 1;
                HashMessage::Reject(header)
            }
        };
        self.send(&Message::Hash {
            id: reply.id(),
            payload: reply.payload(),
        });
        Ok(())
    }
}
