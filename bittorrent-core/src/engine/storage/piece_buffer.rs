//! Pieces assembled in memory while they download.
//!
//! The torrent thread keeps the blocks of each piece in progress here, as
//! the `Vec`s the peer threads decoded them into (moved, never copied).
//! A complete piece goes to the hashing pool as its list of blocks, comes
//! back with the verdict and is written with one vectored write per file
//! (`Storage::write_blocks`); nothing is read back, and data that fails its
//! hash never reaches the disk.
//!
//! Memory is bounded: a piece takes its full length from the budget when
//! its first block arrives and gives it back once it is written or
//! dropped. A piece that finds the budget spent is *spilled*: its blocks
//! are written to disk as they arrive and it is hashed by reading it back,
//! as before this module existed. So a slow hasher or a disk that lags
//! never grows memory past the budget.
//!
//! Two budgets apply: the torrent's own (so one torrent cannot take all
//! the memory) and the session's [`MemoryBudget`], shared by every torrent
//! (so a session downloading a hundred torrents at once holds at most the
//! session budget, not a hundred torrent budgets).

use crate::proto::layout::Layout;
use crate::proto::wire::{BlockRef, BLOCK_SIZE};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of piece data all the torrents of a session may hold in memory
/// together, shared by their [`PieceBuffers`].
#[derive(Debug)]
pub struct MemoryBudget {
    cap: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `cap` bytes, none of it used.
    pub fn new(cap: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            cap,
            used: AtomicU64::new(0),
        })
    }

    /// Take `n` bytes if that stays within the cap.
    pub(crate) fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.cap).then_some(u + n)
            })
            .is_ok()
    }

    /// Take `n` bytes even past the cap (bytes already in memory that must
    /// be accounted for: spilled blocks queued for the disk writer, bounded
    /// by its own queue limit).
    pub(crate) fn charge(&self, n: u64) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Give back `n` bytes taken before.
    pub(crate) fn give(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Bytes in use now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Bytes still free.
    fn free(&self) -> u64 {
        self.cap.saturating_sub(self.used())
    }
}

/// Where a received block went.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Kept in memory with its piece.
    Memory,
    /// The piece is spilled: write these bytes to disk now.
    Disk(Vec<u8>),
}

/// A complete piece, taken out for hashing.
#[derive(Debug, PartialEq, Eq)]
pub enum Complete {
    /// Its blocks in order.
    Memory(Vec<Vec<u8>>),
    /// It is on disk (it was spilled): hash it by reading it back.
    Disk,
    /// Blocks are missing from memory (the picker and this buffer
    /// disagree): fetch the piece again.
    Incomplete,
}

/// The pieces in memory of one torrent.
#[derive(Debug)]
pub struct PieceBuffers {
    layout: Layout,
    budget: u64,
    /// The session's budget; `reserved` is taken from it too.
    session: Arc<MemoryBudget>,
    /// Bytes reserved: pieces assembling, hashing or waiting to be written.
    reserved: u64,
    assembling: HashMap<u32, Vec<Option<Vec<u8>>>>,
    /// Pieces holding a reservation (assembling, hashing or waiting to be
    /// written), so that each gives its bytes back once.
    held: HashSet<u32>,
    spilled: HashSet<u32>,
    /// Pieces spilled so far (diagnostics: each costs a read-back).
    spills: u64,
    /// Bytes reserved by the pieces still assembling (the rest of
    /// `reserved` is hashing or waiting to be written).
    assembling_bytes: u64,
}

impl PieceBuffers {
    /// Buffers for a torrent of this geometry holding at most `budget`
    /// bytes (at least two pieces' worth, so that one piece can assemble
    /// while another is hashed), and no more than `session` has free.
    pub fn new(layout: Layout, budget: u64, session: Arc<MemoryBudget>) -> PieceBuffers {
        PieceBuffers {
            layout,
            budget: budget.max(2 * layout.piece_length),
            session,
            reserved: 0,
            assembling: HashMap::new(),
            held: HashSet::new(),
            spilled: HashSet::new(),
            spills: 0,
            assembling_bytes: 0,
        }
    }

    /// Bytes currently reserved.
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Pieces spilled to disk so far.
    pub fn spills(&self) -> u64 {
        self.spills
    }

    /// A one-line account of what the budget holds (diagnostics: logged
    /// when a piece spills).
    pub fn describe(&self) -> String {
        format!(
            "budget {} KiB, reserved {} KiB ({} pieces assembling, {} KiB; {} KiB hashing or unwritten), session {} of {} KiB",
            self.budget >> 10,
            self.reserved >> 10,
            self.assembling.len(),
            self.assembling_bytes >> 10,
            self.reserved.saturating_sub(self.assembling_bytes) >> 10,
            self.session.used() >> 10,
            self.session.cap() >> 10,
        )
    }

    /// A new block (accepted by the picker) arrived.
    pub fn insert(&mut self, block: &BlockRef, data: Vec<u8>) -> Stored {
        let i = block.index;
        if self.spilled.contains(&i) {
            return Stored::Disk(data);
        }
        let len = u64::from(self.layout.piece_len(i));
        if !self.assembling.contains_key(&i) {
            if self.reserved + len > self.budget || !self.session.try_take(len) {
                self.spills += 1;
                self.spilled.insert(i);
                return Stored::Disk(data);
            }
            self.reserved += len;
            self.held.insert(i);
            self.assembling_bytes += len;
            let n = self.layout.piece_len(i).div_ceil(BLOCK_SIZE) as usize;
            self.assembling.insert(i, vec![None; n]);
        }
        let slots = self.assembling.entry(i).or_default();
        let b = (block.begin / BLOCK_SIZE) as usize;
        if let Some(slot) = slots.get_mut(b) {
            *slot = Some(data);
        }
        Stored::Memory
    }

    /// The picker says piece `i` is complete: take it out for hashing. Its
    /// reservation stays until [`PieceBuffers::release`].
    pub fn take_complete(&mut self, i: u32) -> Complete {
        if self.spilled.remove(&i) {
            return Complete::Disk;
        }
        let Some(slots) = self.assembling.remove(&i) else {
            return Complete::Incomplete;
        };
        self.assembling_bytes = self
            .assembling_bytes
            .saturating_sub(u64::from(self.layout.piece_len(i)));
        if slots.iter().any(Option::is_none) {
            self.release(i);
            return Complete::Incomplete;
        }
        Complete::Memory(slots.into_iter().flatten().collect())
    }

    /// Piece `i`, taken by `take_complete` and still holding its
    /// reservation, assembles again with `slots` (its good blocks; the
    /// others come again through [`PieceBuffers::insert`]).
    pub fn restore(&mut self, i: u32, slots: Vec<Option<Vec<u8>>>) {
        if !self.held.contains(&i) || self.assembling.contains_key(&i) {
            return;
        }
        self.assembling_bytes += u64::from(self.layout.piece_len(i));
        self.assembling.insert(i, slots);
    }

    /// The blocks of piece `i` taken by `take_complete` were written or
    /// dropped: give its bytes back to the budget.
    pub fn release(&mut self, i: u32) {
        if !self.held.remove(&i) {
            return;
        }
        let n = u64::from(self.layout.piece_len(i)).min(self.reserved);
        self.reserved -= n;
        self.session.give(n);
    }

    /// Bytes of complete pieces held for their hash or their write.
    fn waiting(&self) -> u64 {
        self.reserved.saturating_sub(self.assembling_bytes)
    }

    /// How many more pieces requests may *touch* (start) now, given that
    /// `touched` pieces are in progress (the picker's: some block requested
    /// or received, not complete; each holds, or will hold once its first
    /// block arrives, a whole piece of the budget).
    ///
    /// This is what the budget really needs to know (issue 31): a piece
    /// takes its bytes when its first block arrives and keeps them until it
    /// is written, so the memory a torrent can come to hold is the pieces
    /// waiting for their hash or write plus one piece per piece in
    /// progress, however many blocks are requested within them. Requests
    /// inside pieces already in progress cost nothing more; a new piece is
    /// started only while all of that fits. So no piece spills while the
    /// picker keeps to it (the check in [`PieceBuffers::insert`] stays, for
    /// the session's budget that other torrents share).
    ///
    /// The session's budget bounds it too: what the other torrents leave
    /// free, less this torrent's pieces in progress that do not hold their
    /// bytes yet.
    pub fn pieces_room(&self, touched: usize) -> usize {
        let plen = self.layout.piece_length.max(1);
        let touched = touched as u64 * plen;
        let own = self.budget.saturating_sub(self.waiting() + touched);
        let not_yet_held = touched.saturating_sub(self.assembling_bytes);
        let shared = self.session.free().saturating_sub(not_yet_held);
        usize::try_from(own.min(shared) / plen).unwrap_or(usize::MAX)
    }

    /// Blocks each of `peers` peers may keep requested as its fair share of
    /// the budget (what the pieces waiting for their hash or write leave of
    /// it, shared evenly), so that one deep pipeline does not take the
    /// pieces the others need. When the hashers or the disk fall behind
    /// this shrinks, so downloading slows to their pace.
    pub fn fair_share(&self, peers: usize) -> usize {
        let free = self.budget.saturating_sub(self.waiting());
        let per_peer = free / peers.max(1) as u64;
        usize::try_from(per_peer / u64::from(BLOCK_SIZE)).unwrap_or(usize::MAX)
    }

    /// Forget everything (the torrent stops downloading).
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub fn clear(&mut self) {
        self.assembling.clear();
        self.spilled.clear();
        self.held.clear();
        self.session.give(self.reserved);
        self.reserved = 0;
        self.assembling_bytes = 0;
    }
}

impl Drop for PieceBuffers {
    /// A torrent that goes away gives its bytes back to the session.
    fn drop(&mut self) {
        self.session.give(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(piece: u64, total: u64) -> Layout {
        Layout {
            piece_length: piece,
            total_length: total,
            num_pieces: total.div_ceil(piece) as u32,
        }
    }

    fn blk(index: u32, n: u32, len: u32) -> BlockRef {
        BlockRef {
            index,
            begin: n * BLOCK_SIZE,
            length: len,
        }
    }

    #[test]
    fn blocks_out_of_order_come_out_in_order() {
        let l = layout(3 * 16384, 5 * 16384); // pieces of 3 and 2 blocks
        let mut pb = PieceBuffers::new(l, 1 << 20, MemoryBudget::new(1 << 30));
        assert_eq!(pb.insert(&blk(1, 1, 16384), vec![2; 16384]), Stored::Memory);
        assert_eq!(pb.insert(&blk(1, 0, 16384), vec![1; 16384]), Stored::Memory);
        assert_eq!(pb.reserved(), 2 * 16384);
        match pb.take_complete(1) {
            Complete::Memory(b) => assert_eq!(b, vec![vec![1; 16384], vec![2; 16384]]),
            other => panic!("{other:?}"),
        }
        assert_eq!(pb.reserved(), 2 * 16384, "held until written");
        pb.release(1);
        assert_eq!(pb.reserved(), 0);
        assert_eq!(pb.take_complete(0), Complete::Incomplete);
    }

    #[test]
    fn over_budget_pieces_spill_to_disk_whole() {
        let l = layout(16384, 10 * 16384);
        let mut pb = PieceBuffers::new(l, 2 * 16384, MemoryBudget::new(1 << 30));
        assert_eq!(pb.insert(&blk(0, 0, 16384), vec![0; 16384]), Stored::Memory);
        assert_eq!(pb.insert(&blk(1, 0, 16384), vec![1; 16384]), Stored::Memory);
        assert_eq!(
            pb.insert(&blk(2, 0, 16384), vec![2; 16384]),
            Stored::Disk(vec![2; 16384])
        );
        assert_eq!(pb.take_complete(2), Complete::Disk);
        assert!(matches!(pb.take_complete(0), Complete::Memory(_)));
        pb.release(0);
        // Room again: the next new piece is kept in memory.
        assert_eq!(pb.insert(&blk(3, 0, 16384), vec![3; 16384]), Stored::Memory);
        assert!(pb.reserved() <= 2 * 16384);
    }

    #[test]
    fn incomplete_piece_gives_its_reservation_back() {
        let l = layout(2 * 16384, 4 * 16384);
        let mut pb = PieceBuffers::new(l, 1 << 20, MemoryBudget::new(1 << 30));
        pb.insert(&blk(0, 0, 16384), vec![0; 16384]);
        assert_eq!(pb.take_complete(0), Complete::Incomplete);
        assert_eq!(pb.reserved(), 0);
    }

    #[test]
    fn pieces_room_counts_the_pieces_in_progress_not_the_blocks() {
        let b = u64::from(BLOCK_SIZE);
        let l = layout(4 * b, 100 * 4 * b); // pieces of 4 blocks
        let mut pb = PieceBuffers::new(l, 40 * b, MemoryBudget::new(1 << 30));
        // Empty: ten pieces may be started, however many blocks each gets.
        assert_eq!(pb.pieces_room(0), 10);
        // Pieces in progress take a whole piece each, whether their first
        // block arrived (assembling) or not (only requested).
        assert_eq!(pb.pieces_room(3), 7);
        pb.insert(&blk(0, 0, BLOCK_SIZE), vec![0; BLOCK_SIZE as usize]);
        assert_eq!(pb.pieces_room(3), 7, "an assembling piece is one of them");
        for n in 1..4 {
            pb.insert(&blk(0, n, BLOCK_SIZE), vec![0; BLOCK_SIZE as usize]);
        }
        // Complete (no longer in progress) and waiting for its hash and
        // write: it still holds its piece.
        assert!(matches!(pb.take_complete(0), Complete::Memory(_)));
        assert_eq!(pb.pieces_room(2), 7);
        // Written: its bytes are free again.
        pb.release(0);
        assert_eq!(pb.pieces_room(2), 8);
        // More in progress than the budget: no room, never an underflow.
        assert_eq!(pb.pieces_room(1000), 0);
        assert_eq!(pb.spills(), 0);
    }

    #[test]
    fn keeping_to_pieces_room_never_spills() {
        // The picker starts a piece only while `pieces_room` allows it:
        // whatever order the blocks of the started pieces arrive in, and
        // however long complete pieces wait for their hash or write, no
        // piece finds the budget spent.
        let b = u64::from(BLOCK_SIZE);
        let l = layout(4 * b, 64 * 4 * b);
        let mut pb = PieceBuffers::new(l, 5 * 4 * b, MemoryBudget::new(1 << 30));
        let mut started: Vec<u32> = Vec::new(); // in progress
        let mut waiting: Vec<u32> = Vec::new(); // complete, not written
        let mut next = 0u32;
        let mut got = vec![0u32; 64];
        let mut rng = crate::util::rng::Rng::seeded(31);
        for _ in 0..2000 {
            match rng.next_u64() % 4 {
                0 if next < 64 && pb.pieces_room(started.len()) > 0 => {
                    started.push(next);
                    next += 1;
                }
                1 if !waiting.is_empty() => {
                    let i = waiting.remove((rng.next_u64() % waiting.len() as u64) as usize);
                    pb.release(i);
                }
                _ if !started.is_empty() => {
                    let k = (rng.next_u64() % started.len() as u64) as usize;
                    let i = started[k];
                    let stored =
                        pb.insert(&blk(i, got[i as usize], BLOCK_SIZE), vec![0; b as usize]);
                    assert_eq!(stored, Stored::Memory, "piece {i} spilled");
                    got[i as usize] += 1;
                    if got[i as usize] == 4 {
                        started.remove(k);
                        assert!(matches!(pb.take_complete(i), Complete::Memory(_)));
                        waiting.push(i);
                    }
                }
                _ => {}
            }
            assert!(pb.reserved() <= 5 * 4 * b);
        }
        assert_eq!(pb.spills(), 0);
    }

    #[test]
    fn the_fair_share_splits_what_waiting_pieces_leave() {
        let b = u64::from(BLOCK_SIZE);
        let l = layout(4 * b, 100 * 4 * b);
        let mut pb = PieceBuffers::new(l, 40 * b, MemoryBudget::new(1 << 30));
        assert_eq!(pb.fair_share(1), 40);
        assert_eq!(pb.fair_share(4), 10);
        assert_eq!(pb.fair_share(0), 40, "no peers: no division by zero");
        for n in 0..4 {
            pb.insert(&blk(0, n, BLOCK_SIZE), vec![0; BLOCK_SIZE as usize]);
        }
        assert_eq!(pb.fair_share(4), 10, "assembling: shared like requests");
        assert!(matches!(pb.take_complete(0), Complete::Memory(_)));
        assert_eq!(pb.fair_share(4), 9, "waiting for its write: taken off");
        assert_eq!(pb.fair_share(1000), 0);
    }

    #[test]
    fn the_session_budget_is_shared_by_every_torrent() {
        let b = u64::from(BLOCK_SIZE);
        let l = layout(b, 100 * b); // pieces of one block
        let session = MemoryBudget::new(3 * b);
        let mut one = PieceBuffers::new(l, 40 * b, session.clone());
        let mut two = PieceBuffers::new(l, 40 * b, session.clone());
        assert_eq!(
            one.insert(&blk(0, 0, BLOCK_SIZE), vec![0; b as usize]),
            Stored::Memory
        );
        assert_eq!(
            one.insert(&blk(1, 0, BLOCK_SIZE), vec![1; b as usize]),
            Stored::Memory
        );
        assert_eq!(
            two.insert(&blk(0, 0, BLOCK_SIZE), vec![2; b as usize]),
            Stored::Memory
        );
        assert_eq!(session.used(), 3 * b);
        // The session is full: the next piece of either torrent spills,
        // although each is far below its own budget.
        assert!(matches!(
            two.insert(&blk(1, 0, BLOCK_SIZE), vec![3; b as usize]),
            Stored::Disk(_)
        ));
        assert_eq!(two.spills(), 1);
        // Room for new pieces: the other torrent's pieces count against it.
        assert_eq!(
            two.pieces_room(1),
            0,
            "its own piece assembling fits, no more"
        );
        assert_eq!(two.pieces_room(2), 0);
        // Written pieces give their bytes back, once each.
        assert!(matches!(one.take_complete(0), Complete::Memory(_)));
        one.release(0);
        one.release(0);
        assert_eq!(session.used(), 2 * b);
        // A torrent that goes away gives back what it held.
        drop(one);
        assert_eq!(session.used(), b);
        drop(two);
        assert_eq!(session.used(), 0);
    }
}
