//! The piece picker: which block to ask which peer for.
//!
//! Pure state, no I/O; owned by the torrent thread. Policy:
//! * finish partial pieces first (fewer pieces open at once, sooner `have`s);
//! * then rarest first, ties broken at random;
//! * endgame: once every block is requested, a block may be requested
//!   from a second peer; when it arrives the others are cancelled;
//! * parole: a peer that contributed to a piece that failed its hash check
//!   (with other contributors, so the culprit is unknown) only gets whole
//!   pieces to itself, and nobody else gets blocks of those. Its next piece
//!   then either passes (and it leaves parole) or fails with it as the only
//!   contributor (and the torrent strikes it). A parole peer that gives up
//!   on its piece (choke, reject, timeout, departure) loses it: the piece
//!   starts again from nothing.
//!
//! Invariants (checked by the tests): a block is open, requested (by one or
//! more peers) or received, never two of these; a piece being hashed or
//! verified is never requested; a verified piece never changes again.

#[cfg(test)]
mod pick_within_tests;
mod restore;
mod web_seed;

use super::sequence::PieceOrder;
use crate::proto::bitfield::Bitfield;
use crate::proto::layout::Layout;
use crate::proto::wire::BlockRef;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Identifies a connection within a torrent.
pub type PeerKey = u64;

/// How many peers may be asked for the same block in endgame.
const MAX_ENDGAME_REQUESTERS: usize = 2;
/// How often the rarest-first order is rebuilt at most.
const ORDER_REFRESH: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq)]
enum BlockState {
    Open,
    Requested(Vec<PeerKey>),
    Received(PeerKey),
}

#[derive(Debug)]
struct Partial {
    blocks: Vec<BlockState>,
    received: u32,
    /// The parole peer this piece belongs to (nobody else gets its blocks).
    owner: Option<PeerKey>,
}

#[derive(Debug)]
enum PieceState {
    Missing,
    InProgress(Partial),
    /// All blocks written; waiting for the hasher. Holds the contributors.
    Hashing(Vec<PeerKey>),
    Have,
}

/// What [`Picker::block_received`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A block we wanted. `cancel` lists other peers that were asked for
    /// it too (endgame); `piece_complete` says every block of the piece is
    /// now in and it must be hashed.
    New {
        /// Other peers to send `cancel` to.
        cancel: Vec<PeerKey>,
        /// Whether the piece is complete and must be hashed now.
        piece_complete: bool,
    },
    /// A block we did not ask for, or already have: drop it.
    Unwanted,
}

/// Rarest-first piece picker with partial-first and endgame.
#[derive(Debug)]
pub struct Picker {
    layout: Layout,
    have: Bitfield,
    pieces: Vec<PieceState>,
    availability: Vec<u32>,
    in_progress: Vec<u32>,
    order: Vec<u32>,
    cursor: usize,
    order_dirty: bool,
    order_force: bool,
    order_built: Option<Instant>,
    rng: crate::util::rng::Rng,
    /// Peers on parole (see the module docs).
    parole: HashSet<PeerKey>,
    /// Sequential mode and first/last-piece priority (`sequence.rs`).
    order_pref: PieceOrder,
    /// Pieces the pick under way may still start (`pick_within`).
    new_pieces: usize,
}

impl Picker {
    /// A picker for `layout`, given the pieces already verified.
    pub fn new(layout: Layout, have: Bitfield) -> Picker {
        let n = layout.num_pieces as usize;
        let pieces = (0..n)
            .map(|i| {
                if have.get(i) {
                    PieceState::Have
                } else {
                    PieceState::Missing
                }
            })
            .collect();
        let rng = crate::util::rng::Rng::new();
        Picker {
            layout,
            have,
            pieces,
            availability: vec![0; n],
            in_progress: Vec::new(),
            order: Vec::new(),
            cursor: 0,
            order_dirty: true,
            order_force: true,
            order_built: None,
            rng,
            parole: HashSet::new(),
            order_pref: PieceOrder::default(),
            new_pieces: 0,
        }
    }

    /// The order preferences (sequential, first/last pieces), to change.
    pub fn order_mut(&mut self) -> &mut PieceOrder {
        &mut self.order_pref
    }

    /// Pieces before this one are near the playhead (sequential mode: the
    /// playhead plus twice the window; otherwise every piece).
    pub fn near_playhead(&mut self) -> u32 {
        self.order_pref.near_playhead(&self.have)
    }

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.have.is_full()
    }

    #[allow(dead_code)] // not used by the engine yet
    /// Whether a peer with `theirs` has a piece we still need.
    pub fn is_interesting(&self, theirs: &Bitfield) -> bool {
        theirs.ones().any(|i| !self.have.get(i))
    }

    /// How many connected peers have piece `i`.
    pub fn availability(&self, i: u32) -> u32 {
        self.availability.get(i as usize).copied().unwrap_or(0)
    }

    /// Record that a peer has every piece in `bf` (bitfield or have-all).
    pub fn add_availability(&mut self, bf: &Bitfield) {
        for i in bf.ones() {
            self.availability[i] += 1;
        }
        self.order_dirty = true;
    }

    /// Forget that a peer has every piece in `bf` (its piece set was
    /// replaced by a later bitfield, have-all or have-none).
    pub fn remove_availability(&mut self, bf: &Bitfield) {
        for i in bf.ones() {
            if let Some(a) = self.availability.get_mut(i) {
                *a = a.saturating_sub(1);
            }
        }
        self.order_dirty = true;
    }

    /// Record that a peer has piece `i`.
    pub fn add_have(&mut self, i: u32) {
        if let Some(a) = self.availability.get_mut(i as usize) {
            *a += 1;
            self.order_dirty = true;
        }
    }

    /// Forget a departed peer: its availability, its requests, its parole
    /// and the pieces it owned.
    pub fn remove_peer(&mut self, peer: PeerKey, bf: &Bitfield) {
        for i in bf.ones() {
            self.availability[i] = self.availability[i].saturating_sub(1);
        }
        self.order_dirty = true;
        let prog = self.in_progress.clone();
        for p in prog {
            if let PieceState::InProgress(part) = &mut self.pieces[p as usize] {
                for b in &mut part.blocks {
                    drop_requester(b, peer);
                }
            }
            self.release_if_abandoned(p, peer);
        }
        self.parole.remove(&peer);
    }

    /// Put `peer` on parole (`true`) or take it off.
    pub fn set_parole(&mut self, peer: PeerKey, on: bool) {
        if on {
            self.parole.insert(peer);
        } else {
            self.parole.remove(&peer);
        }
    }

    /// Whether `peer` is on parole.
    pub fn on_parole(&self, peer: PeerKey) -> bool {
        self.parole.contains(&peer)
    }

    /// A piece owned by `peer` with nothing requested any more is given up:
    /// it starts again from nothing (its blocks came from a parole peer
    /// only, and must not mix with anybody else's).
    fn release_if_abandoned(&mut self, p: u32, peer: PeerKey) {
        let Some(PieceState::InProgress(part)) = self.pieces.get(p as usize) else {
            return;
        };
        if part.owner != Some(peer)
            || part
                .blocks
                .iter()
                .any(|b| matches!(b, BlockState::Requested(_)))
        {
            return;
        }
        self.pieces[p as usize] = PieceState::Missing;
        self.in_progress.retain(|&q| q != p);
        self.order_force = true;
    }

    /// A request to `peer` will not be answered (choke, reject, timeout).
    pub fn request_failed(&mut self, peer: PeerKey, block: &BlockRef) {
        if let Some(PieceState::InProgress(part)) = self.pieces.get_mut(block.index as usize) {
            if let Some(b) = part
                .blocks
                .get_mut((block.begin / crate::proto::wire::BLOCK_SIZE) as usize)
            {
                drop_requester(b, peer);
            }
        }
        self.release_if_abandoned(block.index, peer);
    }

    fn rebuild_order(&mut self) {
        let now = Instant::now();
        let recent = self.order_built.is_some_and(|t| now - t < ORDER_REFRESH);
        let exhausted = self.cursor >= self.order.len();
        if !(self.order_force || (self.order_dirty && (!recent || exhausted))) {
            return;
        }
        self.order_force = false;
        let mut keyed: Vec<(u32, u64, u32)> = Vec::new();
        for i in 0..self.pieces.len() {
            if matches!(self.pieces[i], PieceState::Missing) && self.availability[i] > 0 {
                let r = self.rng.next_u64();
                keyed.push((self.availability[i], r, i as u32));
            }
        }
        keyed.sort_unstable();
        self.order = keyed.into_iter().map(|(_, _, i)| i).collect();
        self.cursor = 0;
        self.order_dirty = false;
        self.order_built = Some(now);
    }

    /// Choose up to `max` blocks to request from `peer`, who has `theirs`.
    #[cfg(test)]
    pub fn pick(&mut self, peer: PeerKey, theirs: &Bitfield, max: usize) -> Vec<BlockRef> {
        self.pick_within(peer, theirs, max, usize::MAX)
    }

    /// [`Picker::pick`], starting at most `new_pieces` pieces not yet in
    /// progress (the piece buffers' room, `PieceBuffers::pieces_room`):
    /// blocks of pieces already in progress and endgame duplicates touch no
    /// new piece.
    pub fn pick_within(
        &mut self,
        peer: PeerKey,
        theirs: &Bitfield,
        max: usize,
        new_pieces: usize,
    ) -> Vec<BlockRef> {
        self.new_pieces = new_pieces;
        let out = self.pick_blocks(peer, theirs, max);
        self.new_pieces = 0;
        out
    }

    fn pick_blocks(&mut self, peer: PeerKey, theirs: &Bitfield, max: usize) -> Vec<BlockRef> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        let parole = self.parole.contains(&peer);
        // 1. Open blocks of pieces already in progress (a parole peer: only
        //    its own; the others: none owned by a parole peer).
        for idx in 0..self.in_progress.len() {
            let p = self.in_progress[idx];
            if !theirs.get(p as usize) || !self.may_take(p, peer, parole) {
                continue;
            }
            self.take_open(p, peer, max, &mut out);
            if out.len() >= max {
                return out;
            }
        }
        // 1b. First/last pieces of the wanted files, then (sequential) the
        //     pieces from the playhead on, in order, for a peer that has
        //     one in the window (`sequence.rs`).
        for idx in 0..self.order_pref.urgent().len() {
            let p = self.order_pref.urgent()[idx];
            if out.len() >= max {
                return out;
            }
            self.start_piece(p, peer, theirs, parole, max, &mut out);
        }
        let have = &self.have;
        if let Some(run) = self
            .order_pref
            .playhead_run(have, theirs, |i| !have.get(i as usize))
        {
            for p in run.pieces() {
                if out.len() >= max {
                    return out;
                }
                self.start_piece(p, peer, theirs, parole, max, &mut out);
            }
        }
        if out.len() >= max {
            return out;
        }
        // 2. New pieces, rarest first.
        self.rebuild_order();
        while self.cursor < self.order.len()
            && !matches!(
                self.pieces[self.order[self.cursor] as usize],
                PieceState::Missing
            )
        {
            self.cursor += 1;
        }
        let mut k = self.cursor;
        while out.len() < max && k < self.order.len() && self.new_pieces > 0 {
            let p = self.order[k];
            k += 1;
            self.start_piece(p, peer, theirs, parole, max, &mut out);
        }
        if !out.is_empty() {
            return out;
        }
        // 3. Endgame: nothing open anywhere this peer can serve; share
        //    outstanding blocks with a second peer (never a parole peer's,
        //    never with one).
        if parole {
            return out;
        }
        if self.order.iter().skip(self.cursor).any(|&p| {
            theirs.get(p as usize) && matches!(self.pieces[p as usize], PieceState::Missing)
        }) {
            return out;
        }
        for idx in 0..self.in_progress.len() {
            let p = self.in_progress[idx];
            if !theirs.get(p as usize) {
                continue;
            }
            if let PieceState::InProgress(part) = &mut self.pieces[p as usize] {
                if part.owner.is_some() {
                    continue;
                }
                for (b, st) in part.blocks.iter_mut().enumerate() {
                    if let BlockState::Requested(peers) = st {
                        if peers.len() < MAX_ENDGAME_REQUESTERS && !peers.contains(&peer) {
                            peers.push(peer);
                            out.push(self.layout.block(p, b as u32));
                            if out.len() >= max {
                                return out;
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Start piece `p` for `peer` if it is missing and the peer has it
    /// (wanted pieces only: `theirs` is masked by the caller).
    fn start_piece(
        &mut self,
        p: u32,
        peer: PeerKey,
        theirs: &Bitfield,
        parole: bool,
        max: usize,
        out: &mut Vec<BlockRef>,
    ) {
        if self.new_pieces == 0
            || !theirs.get(p as usize)
            || !matches!(self.pieces[p as usize], PieceState::Missing)
        {
            return;
        }
        self.new_pieces -= 1;
        let n = self.layout.blocks_in_piece(p) as usize;
        self.pieces[p as usize] = PieceState::InProgress(Partial {
            blocks: vec![BlockState::Open; n],
            received: 0,
            owner: parole.then_some(peer),
        });
        self.in_progress.push(p);
        self.take_open(p, peer, max, out);
    }

    /// Whether `peer` (on parole or not) may get blocks of piece `p` in progress.
    fn may_take(&self, p: u32, peer: PeerKey, parole: bool) -> bool {
        match &self.pieces[p as usize] {
            PieceState::InProgress(part) => match part.owner {
                Some(o) => o == peer,
                None => !parole,
            },
            _ => false,
        }
    }

    fn take_open(&mut self, p: u32, peer: PeerKey, max: usize, out: &mut Vec<BlockRef>) {
        if let PieceState::InProgress(part) = &mut self.pieces[p as usize] {
            for (b, st) in part.blocks.iter_mut().enumerate() {
                if out.len() >= max {
                    return;
                }
                if *st == BlockState::Open {
                    *st = BlockState::Requested(vec![peer]);
                    out.push(self.layout.block(p, b as u32));
                }
            }
        }
    }

    /// A block arrived from `peer`, already checked to be a real block of
    /// the torrent ([`Layout::is_block`]) that we asked this peer for (the
    /// torrent thread drops every other block before it gets here).
    pub fn block_received(&mut self, peer: PeerKey, block: &BlockRef) -> Received {
        let Some(PieceState::InProgress(part)) = self.pieces.get_mut(block.index as usize) else {
            return Received::Unwanted;
        };
        let b = (block.begin / crate::proto::wire::BLOCK_SIZE) as usize;
        let Some(st) = part.blocks.get_mut(b) else {
            return Received::Unwanted;
        };
        let cancel = match st {
            BlockState::Received(_) => return Received::Unwanted,
            // Asked of this peer, given up on (choke, timeout) and still
            // needed: a late answer is welcome.
            BlockState::Open => Vec::new(),
            BlockState::Requested(peers) => peers.iter().copied().filter(|&p| p != peer).collect(),
        };
        *st = BlockState::Received(peer);
        part.received += 1;
        let complete = part.received as usize == part.blocks.len();
        if complete {
            let contributors = part
                .blocks
                .iter()
                .filter_map(|s| match s {
                    BlockState::Received(p) => Some(*p),
                    _ => None,
                })
                .collect();
            self.pieces[block.index as usize] = PieceState::Hashing(contributors);
            self.in_progress.retain(|&p| p != block.index);
        }
        Received::New {
            cancel,
            piece_complete: complete,
        }
    }

    /// A block accepted by [`Picker::block_received`] could not be written
    /// (disk full): it is wanted again. If it completed its piece, the whole
    /// piece is fetched again.
    pub fn write_failed(&mut self, block: &BlockRef) {
        let Some(st) = self.pieces.get_mut(block.index as usize) else {
            return;
        };
        match st {
            PieceState::InProgress(part) => {
                let b = (block.begin / crate::proto::wire::BLOCK_SIZE) as usize;
                if let Some(bs @ BlockState::Received(_)) = part.blocks.get_mut(b) {
                    *bs = BlockState::Open;
                    part.received -= 1;
                }
            }
            PieceState::Hashing(_) => {
                *st = PieceState::Missing;
                self.order_force = true;
            }
            PieceState::Missing | PieceState::Have => {}
        }
    }

    /// A piece found complete on disk at start (or after a recheck).
    pub fn mark_have(&mut self, i: u32) {
        if let Some(st) = self.pieces.get_mut(i as usize) {
            if !matches!(st, PieceState::Have) {
                *st = PieceState::Have;
                self.have.set(i as usize);
                self.in_progress.retain(|&p| p != i);
                self.order_dirty = true;
            }
        }
    }

    /// Whether piece `i` waits for the hasher's verdict.
    pub fn is_hashing(&self, i: u32) -> bool {
        matches!(self.pieces.get(i as usize), Some(PieceState::Hashing(_)))
    }

    /// A piece we had that proved bad after all: missing again.
    pub fn forget(&mut self, i: u32) {
        if let Some(st) = self.pieces.get_mut(i as usize) {
            if matches!(st, PieceState::Have) {
                *st = PieceState::Missing;
                self.have.clear(i as usize);
                self.order_force = true;
            }
        }
    }

    /// The hasher's verdict on a piece that was `Hashing`. Returns the
    /// peers that contributed blocks to it (to blame on failure).
    pub fn piece_hashed(&mut self, i: u32, ok: bool) -> Vec<PeerKey> {
        let Some(st) = self.pieces.get_mut(i as usize) else {
            return Vec::new();
        };
        let contributors = match st {
            PieceState::Hashing(c) => std::mem::take(c),
            _ => return Vec::new(),
        };
        if ok {
            *st = PieceState::Have;
            self.have.set(i as usize);
        } else {
            *st = PieceState::Missing;
            self.order_force = true;
        }
        contributors
    }

    /// Drop every request for which `keep(peer, block)` is false (the peer
    /// is gone, or no longer has the request outstanding): such blocks are
    /// open again. A safety net run from the torrent's tick, so that no block
    /// can stay requested from a peer that will never send it.
    pub fn reconcile(&mut self, mut keep: impl FnMut(PeerKey, &BlockRef) -> bool) -> usize {
        let mut dropped = 0;
        let mut owned = Vec::new();
        for idx in 0..self.in_progress.len() {
            let p = self.in_progress[idx];
            let layout = self.layout;
            if let PieceState::InProgress(part) = &mut self.pieces[p as usize] {
                let before_piece = dropped;
                for (b, st) in part.blocks.iter_mut().enumerate() {
                    if let BlockState::Requested(peers) = st {
                        let blk = layout.block(p, b as u32);
                        let before = peers.len();
                        peers.retain(|k| keep(*k, &blk));
                        dropped += before - peers.len();
                        if peers.is_empty() {
                            *st = BlockState::Open;
                        }
                    }
                }
                if let (Some(o), true) = (part.owner, dropped > before_piece) {
                    owned.push((p, o));
                }
            }
        }
        for (p, o) in owned {
            self.release_if_abandoned(p, o);
        }
        dropped
    }

    /// A one-line description of every piece not yet verified (for stall
    /// diagnostics in the log).
    pub fn describe_missing(&self) -> String {
        let mut out = Vec::new();
        for (i, st) in self.pieces.iter().enumerate() {
            let d = match st {
                PieceState::Have => continue,
                PieceState::Missing => format!("{i}:missing(avail {})", self.availability[i]),
                PieceState::Hashing(_) => format!("{i}:hashing"),
                PieceState::InProgress(p) => format!("{i}:partial{:?}", p.blocks),
            };
            out.push(d);
            if out.len() >= 8 {
                out.push("...".into());
                break;
            }
        }
        format!(
            "{} (order len {}, cursor {})",
            out.join(" "),
            self.order.len(),
            self.cursor
        )
    }

    /// Number of pieces currently being downloaded.
    pub fn pieces_in_progress(&self) -> usize {
        self.in_progress.len()
    }
}

fn drop_requester(b: &mut BlockState, peer: PeerKey) {
    if let BlockState::Requested(peers) = b {
        peers.retain(|&p| p != peer);
        if peers.is_empty() {
            *b = BlockState::Open;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(pieces: u32) -> Layout {
        Layout {
            piece_length: 32768,
            total_length: 32768 * u64::from(pieces) - 1000,
            num_pieces: pieces,
        }
    }

    #[test]
    fn rarest_first_and_partial_first() {
        let l = layout(4);
        let mut p = Picker::new(l, Bitfield::new(4));
        let all = Bitfield::full(4);
        let mut only2 = Bitfield::new(4);
        only2.set(2);
        p.add_availability(&all);
        p.add_availability(&all);
        p.add_availability(&only2);
        // piece 2 is the only one with availability 3: others are rarer.
        let got = p.pick(1, &all, 1);
        assert_ne!(got[0].index, 2);
        // partial first: the next pick continues the same piece.
        let next = p.pick(1, &all, 1);
        assert_eq!(next[0].index, got[0].index);
        assert_eq!(next[0].begin, 16384);
    }

    #[test]
    fn replaced_piece_set_recounts_availability() {
        // aria2: have-none, then a bitfield, then a second bitfield.
        let mut p = Picker::new(layout(4), Bitfield::new(4));
        let none = Bitfield::new(4);
        let mut first = Bitfield::new(4);
        first.set(1);
        first.set(3);
        let mut second = Bitfield::new(4);
        second.set(2);
        p.add_availability(&none);
        p.remove_availability(&none);
        p.add_availability(&first);
        p.remove_availability(&first);
        p.add_availability(&second);
        // Only piece 2 is available now: pieces 1 and 3 were counted out.
        let all = Bitfield::full(4);
        let got = p.pick(1, &all, 100);
        assert!(!got.is_empty());
        assert!(got.iter().all(|b| b.index == 2), "{got:?}");
        // Removing more than was added never underflows.
        p.remove_availability(&all);
        p.remove_availability(&all);
        assert!(p.pick(2, &all, 100).iter().all(|b| b.index == 2));
    }

    #[test]
    fn full_download_with_endgame_and_failures() {
        let l = layout(3);
        let mut p = Picker::new(l, Bitfield::new(3));
        let all = Bitfield::full(3);
        p.add_availability(&all);
        p.add_availability(&all);
        let a = p.pick(1, &all, 100);
        assert_eq!(a.len(), 6);
        // Everything requested from peer 1: peer 2 gets endgame duplicates.
        let b = p.pick(2, &all, 100);
        assert_eq!(b.len(), 6);
        assert!(p.pick(3, &all, 100).is_empty());
        assert!(p.pick(2, &all, 100).is_empty());
        for blk in &a {
            match p.block_received(1, blk) {
                Received::New { cancel, .. } => assert_eq!(cancel, vec![2]),
                Received::Unwanted => panic!(),
            }
            assert_eq!(p.block_received(2, blk), Received::Unwanted);
        }
        assert_eq!(p.piece_hashed(0, true), vec![1, 1]);
        assert_eq!(p.piece_hashed(1, false), vec![1, 1]);
        p.piece_hashed(2, true);
        assert!(!p.is_complete());
        // The failed piece is fetched again.
        let again = p.pick(2, &all, 100);
        assert_eq!(
            again.iter().map(|b| b.index).collect::<Vec<_>>(),
            vec![1, 1]
        );
        for blk in &again {
            p.block_received(2, blk);
        }
        p.piece_hashed(1, true);
        assert!(p.is_complete());
        assert!(p.pick(2, &all, 100).is_empty());
    }

    #[test]
    fn departed_peer_requests_reopen() {
        let l = layout(2);
        let mut p = Picker::new(l, Bitfield::new(2));
        let all = Bitfield::full(2);
        p.add_availability(&all);
        let a = p.pick(1, &all, 2);
        p.remove_peer(1, &all);
        p.add_availability(&all);
        let b = p.pick(2, &all, 2);
        assert_eq!(a, b);
    }

    #[test]
    fn parole_peer_gets_whole_pieces_alone() {
        let l = layout(3);
        let mut p = Picker::new(l, Bitfield::new(3));
        let all = Bitfield::full(3);
        p.add_availability(&all);
        p.add_availability(&all);
        p.set_parole(1, true);
        assert!(p.on_parole(1));
        // Peer 1 takes one block of a piece; the piece is its own.
        let a = p.pick(1, &all, 1);
        assert_eq!(a.len(), 1);
        // Peer 2 never gets a block of peer 1's piece, even in endgame.
        let b = p.pick(2, &all, 100);
        assert!(b.iter().all(|x| x.index != a[0].index));
        assert_eq!(b.len(), 4);
        assert!(p.pick(2, &all, 100).is_empty());
        // Peer 1 continues its own piece, gets no endgame duplicates.
        let a2 = p.pick(1, &all, 100);
        assert_eq!(a2, vec![l.block(a[0].index, 1)]);
        // It receives one block, then gives up on the other: the piece
        // starts again from nothing and peer 2 may take it.
        assert!(matches!(p.block_received(1, &a[0]), Received::New { .. }));
        p.request_failed(1, &a2[0]);
        let b2 = p.pick(2, &all, 100);
        assert_eq!(b2.len(), 2);
        assert!(b2.iter().all(|x| x.index == a[0].index));
        // Off parole, peer 1 shares again.
        p.set_parole(1, false);
        assert!(!p.pick(1, &all, 100).is_empty());
    }

    #[test]
    fn departed_parole_owner_releases_its_piece() {
        let l = layout(1);
        let mut p = Picker::new(l, Bitfield::new(1));
        let all = Bitfield::full(1);
        p.add_availability(&all);
        p.add_availability(&all);
        p.set_parole(1, true);
        let a = p.pick(1, &all, 1);
        assert!(matches!(p.block_received(1, &a[0]), Received::New { .. }));
        assert!(p.pick(2, &all, 100).is_empty());
        p.remove_peer(1, &all);
        assert!(!p.on_parole(1));
        assert_eq!(p.pick(2, &all, 100).len(), 2);
    }

    /// Random event sequences never break the block-state invariants.
    #[test]
    fn random_sequences_complete() {
        let mut seed = 0x1234_5678_u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50 {
            let n = 1 + (rnd() % 20) as u32;
            let l = Layout {
                piece_length: 65536,
                total_length: 65536 * u64::from(n) - (rnd() % 65535),
                num_pieces: n,
            };
            let mut p = Picker::new(l, Bitfield::new(n as usize));
            let all = Bitfield::full(n as usize);
            for _ in 0..3 {
                p.add_availability(&all);
            }
            let mut outstanding: Vec<(PeerKey, BlockRef)> = Vec::new();
            for _ in 0..100_000 {
                if p.is_complete() {
                    break;
                }
                let peer = rnd() % 3;
                if rnd() % 50 == 0 {
                    p.set_parole(peer, rnd() % 2 == 0);
                }
                match rnd() % 4 {
                    0 | 1 => {
                        for b in p.pick(peer, &all, (rnd() % 8) as usize) {
                            outstanding.push((peer, b));
                        }
                    }
                    2 if !outstanding.is_empty() => {
                        let k = (rnd() as usize) % outstanding.len();
                        let (pr, b) = outstanding.swap_remove(k);
                        if let Received::New {
                            piece_complete: true,
                            ..
                        } = p.block_received(pr, &b)
                        {
                            let ok = rnd() % 5 != 0;
                            p.piece_hashed(b.index, ok);
                        }
                    }
                    _ if !outstanding.is_empty() => {
                        let k = (rnd() as usize) % outstanding.len();
                        let (pr, b) = outstanding.swap_remove(k);
                        p.request_failed(pr, &b);
                    }
                    _ => {}
                }
            }
            assert!(p.is_complete());
        }
    }
}
