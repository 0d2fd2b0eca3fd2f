//! Exact blame for a failed v2 piece (BEP 52): when a piece of a file with
//! a piece layer (v2-only, or a hybrid with layers) fails its hash check
//! and its blocks came from more than one peer, a peer that has the piece
//! (one that sent none of its blocks first, then the one that sent most)
//! is asked for the piece's 16 KiB block hashes (`hash request`, base
//! layer 0, one piece's blocks; `proto::block_layer`). The answer must hash
//! up to the piece-layer hash we hold, else its sender lied and is banned
//! and another peer is asked. Each block received is then hashed: the
//! good ones stay (not fetched again), the bad ones are fetched again and
//! exactly their senders are banned. Without an answer (reject, no reply
//! in [`ANSWER_TIMEOUT`], no peer to ask, [`MAX_TRIES`] peers tried) the
//! piece falls back to the piece-level attribution (`peers.rs`: strikes,
//! parole, smart ban).
//!
//! The piece's blocks stay in memory meanwhile (at most [`MAX_PENDING`]
//! pieces; more failures at once take the piece-level way).

use super::*;
use crate::proto::block_layer;
use crate::proto::hash_msg::HashRequest;
use crate::proto::merkle::{self, Hash256};

/// Failed pieces waiting for block hashes at once.
pub(super) const MAX_PENDING: usize = 4;
/// How long a peer has to answer a hash request.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Peers asked for one piece's block hashes at most.
pub(super) const MAX_TRIES: usize = 3;

/// A failed piece waiting for its block hashes.
pub(super) struct BlockCheck {
    piece: u32,
    /// The piece's blocks as received.
    blocks: Vec<Vec<u8>>,
    /// Their SHA-1s (for the piece-level fallback's smart ban).
    sha1: Vec<[u8; 20]>,
    request: HashRequest,
    /// The piece-layer hash the block hashes must give.
    piece_hash: Hash256,
    /// Bytes of the piece that are file data.
    real_len: u64,
    /// The peer asked and when.
    asked: Option<(PeerKey, Instant)>,
    /// Peers asked so far.
    tried: Vec<PeerKey>,
}

impl Torrent {
    /// Piece `piece` (its `blocks` in memory) failed: start an exact check
    /// if it qualifies, taking the blocks; else hand them back.
    pub(super) fn try_block_check(
        &mut self,
        piece: u32,
        blocks: Vec<Vec<u8>>,
        sha1: &[[u8; 20]],
    ) -> Option<Vec<Vec<u8>>> {
        let check = (|| {
            if self.phase != Phase::Downloading || self.block_checks.len() >= MAX_PENDING {
                return None;
            }
            let v2 = self.v2_view()?;
            let pc = v2.piece_check(u64::from(piece))?;
            if pc.whole_file {
                return None;
            }
            let contributors = self.picker.contributors(piece)?;
            let first = *contributors.first()?;
            if contributors.iter().all(|&k| k == first) || contributors.len() != blocks.len() {
                return None;
            }
            let after = v2
                .files
                .partition_point(|f| f.first_piece <= u64::from(piece));
            let f = v2.files.get(after.checked_sub(1)?)?;
            let height = merkle::piece_height(v2.piece_length);
            let request = block_layer::piece_request(
                f.pieces_root?,
                height,
                u64::from(piece) - f.first_piece,
            )?;
            (blocks.len() <= request.length as usize).then_some((request, pc))
        })();
        let Some((request, pc)) = check else {
            return Some(blocks);
        };
        self.hash_failures += 1;
        log::info!(
            "{}: piece {piece} failed its hash check; asking for its block hashes",
            self.me.metainfo.info.name
        );
        self.block_checks.push(BlockCheck {
            piece,
            blocks,
            sha1: sha1.to_vec(),
            request,
            piece_hash: pc.expected,
            real_len: pc.real_len,
            asked: None,
            tried: Vec::new(),
        });
        self.ask_block_hashes(piece);
        None
    }

    /// Ask the next peer for piece `piece`'s block hashes, or give up.
    fn ask_block_hashes(&mut self, piece: u32) {
        let Some(bc) = self.block_checks.iter().find(|b| b.piece == piece) else {
            return;
        };
        let sent_by = |k: PeerKey| {
            self.picker
                .contributors(piece)
                .map_or(0, |c| c.iter().filter(|&&x| x == k).count())
        };
        let best = self
            .conns
            .iter()
            .filter(|(k, c)| {
                c.bitfield.get(piece as usize) && !bc.tried.contains(k) && !self.is_banned(&c.addr)
            })
            .map(|(&k, _)| k)
            .min_by_key(|&k| (sent_by(k) > 0, std::cmp::Reverse(sent_by(k)), k));
        let (request, tries) = (bc.request, bc.tried.len());
        match best {
            Some(k) if tries < MAX_TRIES => {
                if let Some(bc) = self.block_checks.iter_mut().find(|b| b.piece == piece) {
                    bc.asked = Some((k, Instant::now()));
                    bc.tried.push(k);
                }
                self.send(k, PeerCmd::HashRequest(request));
            }
            _ => self.block_check_fallback(piece),
        }
    }

    /// The answer of `key` to a hash request of ours.
    pub(super) fn on_block_hashes(
        &mut self,
        key: PeerKey,
        request: HashRequest,
        hashes: Option<Vec<Hash256>>,
    ) {
        let Some(at) = self
            .block_checks
            .iter()
            .position(|b| b.request == request && b.asked.is_some_and(|(k, _)| k == key))
        else {
            return; // an answer that came after its time: nothing waits for it
        };
        let piece = self.block_checks[at].piece;
        self.block_checks[at].asked = None;
        let Some(hashes) = hashes else {
            self.ask_block_hashes(piece);
            return;
        };
        let good =
            block_layer::verify_piece_blocks(&request, &hashes, &self.block_checks[at].piece_hash);
        let Some(good) = good else {
            if let Some(addr) = self.addr_of(key) {
                self.ban(
                    addr,
                    "sent block hashes that do not add up to the piece hash",
                );
            }
            self.ask_block_hashes(piece);
            return;
        };
        self.block_check_resolve(at, &good);
    }

    /// With the piece's verified block hashes: ban the senders of bad
    /// blocks, keep the good ones, fetch the rest again.
    fn block_check_resolve(&mut self, at: usize, good: &[Hash256]) {
        let bc = self.block_checks.swap_remove(at);
        let leaves = block_layer::leaves_of_blocks(&bc.blocks, bc.real_len);
        let bad: Vec<bool> = leaves
            .iter()
            .enumerate()
            .map(|(b, l)| good.get(b) != Some(l))
            .collect();
        let contributors = self
            .picker
            .contributors(bc.piece)
            .map(<[PeerKey]>::to_vec)
            .unwrap_or_default();
        if !bad.contains(&true)
            || contributors.len() != bad.len()
            || self.phase != Phase::Downloading
        {
            // Nothing to pin on a block (say a hybrid's pad bytes made the
            // SHA-1 fail): the piece-level way.
            let piece = bc.piece;
            self.block_checks.push(bc);
            self.block_check_fallback(piece);
            return;
        }
        let mut culprits: Vec<PeerKey> = Vec::new();
        let mut keep = Vec::with_capacity(bad.len());
        let mut slots = Vec::with_capacity(bad.len());
        for ((&k, is_bad), data) in contributors.iter().zip(&bad).zip(bc.blocks) {
            if *is_bad {
                if !culprits.contains(&k) {
                    culprits.push(k);
                }
                keep.push(None);
                slots.push(None);
                block_pool::global().give_back(vec![data]);
            } else {
                keep.push(Some(k));
                slots.push(Some(data));
            }
        }
        log::warn!(
            "{}: piece {}: {} bad block(s) of {}, fetched again",
            self.me.metainfo.info.name,
            bc.piece,
            culprits.len(),
            bad.len()
        );
        if self.picker.restore_partial(bc.piece, &keep) {
            self.buffers.restore(bc.piece, slots);
        } else {
            self.picker.piece_hashed(bc.piece, false);
            self.buffers.release(bc.piece);
        }
        for k in culprits {
            match self.addr_of(k) {
                Some(addr) => self.ban(addr, "sent a block that fails its v2 block hash"),
                None => self.web_seed_hash_failed(&[k]),
            }
        }
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.fill_requests(k);
        }
    }

    /// No usable answer: the piece is fetched again whole and blamed as a
    /// v1 piece is.
    fn block_check_fallback(&mut self, piece: u32) {
        let Some(at) = self.block_checks.iter().position(|b| b.piece == piece) else {
            return;
        };
        let bc = self.block_checks.swap_remove(at);
        log::info!(
            "{}: no block hashes for piece {piece}; blaming it whole",
            self.me.metainfo.info.name
        );
        self.buffers.release(piece);
        block_pool::global().give_back(bc.blocks);
        let contributors = self.picker.piece_hashed(piece, false);
        self.web_seed_hash_failed(&contributors);
        self.blame(piece, contributors, &bc.sha1);
    }

    /// From the tick: a peer that did not answer in time is passed over.
    pub(super) fn block_checks_tick(&mut self, now: Instant) {
        let late: Vec<u32> = self
            .block_checks
            .iter()
            .filter(|b| {
                b.asked
                    .is_none_or(|(_, t)| now.saturating_duration_since(t) > ANSWER_TIMEOUT)
            })
            .map(|b| b.piece)
            .collect();
        for piece in late {
            self.ask_block_hashes(piece);
        }
    }
}
