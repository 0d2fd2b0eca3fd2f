//! A peer thread's BEP 52 hash messages: it answers `hash request`s
//! (id 21) itself, from the torrent's piece-layer trees
//! ([`crate::proto::piece_tree::PieceTrees`] in the `PeerContext`), with
//! `hashes` (22) or `hash reject` (23); nothing goes through the torrent
//! thread. This is what a v2 client that started from a magnet link asks
//! for once it has the info dictionary. A torrent thread's connections
//! send no requests (our own requests go out before the torrent thread
//! exists, from the metadata thread: `engine::torrent::layers`), so
//! `hashes` and `hash reject` arriving here are ignored.

use super::*;
use crate::proto::hash_msg::{HashMessage, HashRequest, HASH_REQUEST, HEADER_LEN};

/// Hash requests answered (or rejected) per connection in one second;
/// those over it are rejected without looking. A client fetching piece
/// layers asks one request per 512 pieces of each file.
pub(super) const HASH_REQUESTS_PER_SEC: u32 = 200;
/// Bytes queued for the peer past which a hash request is rejected (the
/// peer is not reading what we send).
const HASH_OUT_LIMIT: usize = 4 << 20;

/// A per-connection budget of hash requests: [`HASH_REQUESTS_PER_SEC`] in
/// each one-second window.
#[derive(Debug)]
pub(super) struct HashBudget {
    window: Instant,
    used: u32,
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
        }
        self.used = self.used.saturating_add(1);
        self.used <= HASH_REQUESTS_PER_SEC
    }
}

impl Connection<'_> {
    pub(super) fn on_hash_message(&mut self, id: u8, payload: &[u8]) -> Result<(), CloseReason> {
        if id != HASH_REQUEST {
            return Ok(()); // answers to requests we never send: ignored
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
            &self.ctx.hash_trees,
        ) {
            (true, Ok(HashMessage::Request(r)), Some(trees)) => trees.answer(&r),
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
