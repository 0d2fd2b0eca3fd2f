//! Verified pieces kept in memory to be uploaded.
//!
//! In a swarm that downloads together, what the other peers ask us for is
//! mostly what we verified a moment ago: our `have` told them, and a piece
//! that few peers have is the rarest they can fetch from us. Without this,
//! each such upload reads the piece back from the page cache (`pread`), a
//! copy the piece's own buffers make unnecessary: they hold exactly the
//! verified bytes that were hashed and written.
//!
//! So after writing a verified piece, the torrent thread keeps its blocks
//! here if a connected peer lacks the piece, and the peer threads send
//! block requests from them (shared, not copied); anything else is read
//! from disk as before.
//!
//! Ownership: one per torrent, in the `PeerContext` every peer thread of
//! the torrent shares; the torrent thread keeps and evicts pieces, peer
//! threads look them up (a mutex held only for that). Memory is bounded:
//! at most [`KEEP_MEMORY`] bytes per torrent and [`SESSION_KEEP_MEMORY`]
//! over the session (a budget of its own, so kept pieces never take room
//! from pieces being assembled), oldest piece evicted first. A piece is
//! also dropped once every connected peer has it, after [`KEEP_FOR`], and
//! when the torrent's last connection closes. Each block is shared on its
//! own: a peer thread holds only the blocks queued on its socket (a few,
//! bounded by its output queue), never a whole piece, so a peer that stops
//! reading cannot pin evicted pieces. A block goes back to the block pool
//! when its last holder lets go of it.

use crate::engine::conn::block_pool;
use crate::engine::storage::piece_buffer::MemoryBudget;
use crate::proto::wire::BLOCK_SIZE;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of verified pieces one torrent keeps at most.
pub const KEEP_MEMORY: u64 = 16 * 1024 * 1024;
/// Bytes of verified pieces all the torrents of a session keep at most.
pub const SESSION_KEEP_MEMORY: u64 = 32 * 1024 * 1024;
/// How long a verified piece is kept at most: the requests it is kept for
/// follow our `have` within moments.
pub const KEEP_FOR: Duration = Duration::from_secs(5);

/// One block of a kept piece, shared with the output queues sending it.
pub type KeptBlock = Arc<Vec<u8>>;

/// Give a block back to the block pool if nobody else holds it.
pub fn release(block: KeptBlock) {
    if let Ok(v) = Arc::try_unwrap(block) {
        block_pool::global().give_back([v]);
    }
}

/// The blocks of one verified piece, in order.
#[derive(Debug)]
struct KeptPiece {
    blocks: Vec<KeptBlock>,
}

impl KeptPiece {
    /// Where the `length` bytes at `begin` in the piece are, if they lie
    /// within one block (each 16 KiB, the last one possibly shorter): that
    /// block and the offset in it.
    fn locate(&self, begin: u32, length: u32) -> Option<(usize, usize)> {
        let k = (begin / BLOCK_SIZE) as usize;
        let at = (begin % BLOCK_SIZE) as usize;
        let end = at.checked_add(length as usize)?;
        (end <= self.blocks.get(k)?.len()).then_some((k, at))
    }
}

impl Drop for KeptPiece {
    fn drop(&mut self) {
        for b in std::mem::take(&mut self.blocks) {
            release(b);
        }
    }
}

#[derive(Debug, Default)]
struct Kept {
    /// Oldest first: (piece, bytes, blocks, when kept).
    pieces: VecDeque<(u32, u64, KeptPiece, Instant)>,
    bytes: u64,
}

/// The verified pieces one torrent keeps (see the module docs).
#[derive(Debug)]
pub struct RecentPieces {
    kept: Mutex<Kept>,
    cap: u64,
    session: Arc<MemoryBudget>,
    /// Upload bytes sent from kept pieces (the rest of the torrent's
    /// uploads were read from disk).
    from_memory: AtomicU64,
}

impl RecentPieces {
    /// Keep at most `cap` bytes, each also taken from `session` (the
    /// session's budget for kept pieces).
    pub fn new(cap: u64, session: Arc<MemoryBudget>) -> RecentPieces {
        RecentPieces {
            kept: Mutex::new(Kept::default()),
            cap,
            session,
            from_memory: AtomicU64::new(0),
        }
    }

    /// Keep verified piece `i`, evicting the oldest pieces to make room. The
    /// blocks go back to the block pool instead if the piece is larger than
    /// the cap or the session's budget has no room.
    pub fn keep(&self, i: u32, blocks: Vec<Vec<u8>>, now: Instant) {
        let len: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let piece = KeptPiece {
            blocks: blocks.into_iter().map(Arc::new).collect(),
        };
        if len > self.cap {
            return;
        }
        let mut k = self.kept.lock();
        if k.pieces.iter().any(|(p, ..)| *p == i) {
            return;
        }
        while k.bytes + len > self.cap {
            if !self.evict_front(&mut k) {
                break;
            }
        }
        if !self.session.try_take(len) {
            return;
        }
        k.bytes += len;
        k.pieces.push_back((i, len, piece, now));
    }

    /// The block holding the `length` bytes at `begin` in piece `i`, and
    /// where in it they start, if the piece is kept and they lie within one
    /// of its blocks.
    pub fn block(&self, i: u32, begin: u32, length: u32) -> Option<(KeptBlock, usize)> {
        let k = self.kept.lock();
        let (_, _, piece, _) = k.pieces.iter().find(|(p, ..)| *p == i)?;
        let (b, at) = piece.locate(begin, length)?;
        Some((piece.blocks[b].clone(), at))
    }

    /// Whether piece `i` is kept.
    pub fn contains(&self, i: u32) -> bool {
        self.kept.lock().pieces.iter().any(|(p, ..)| *p == i)
    }

    /// Stop keeping piece `i` (every connected peer has it now).
    pub fn forget(&self, i: u32) {
        let mut k = self.kept.lock();
        if let Some(at) = k.pieces.iter().position(|(p, ..)| *p == i) {
            if let Some((_, len, ..)) = k.pieces.remove(at) {
                k.bytes -= len;
                self.session.give(len);
            }
        }
    }

    /// Stop keeping the pieces kept for `KEEP_FOR` or longer.
    pub fn expire(&self, now: Instant) {
        let mut k = self.kept.lock();
        while k
            .pieces
            .front()
            .is_some_and(|(.., at)| now.saturating_duration_since(*at) >= KEEP_FOR)
        {
            self.evict_front(&mut k);
        }
    }

    /// Stop keeping anything (no peer is connected to upload to).
    pub fn clear(&self) {
        let mut k = self.kept.lock();
        while self.evict_front(&mut k) {}
    }

    /// Bytes kept now.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.kept.lock().bytes
    }

    /// Count `n` upload bytes sent from a kept piece.
    pub fn count_sent(&self, n: u64) {
        self.from_memory.fetch_add(n, Ordering::Relaxed);
    }

    /// Upload bytes sent from kept pieces so far.
    pub fn sent(&self) -> u64 {
        self.from_memory.load(Ordering::Relaxed)
    }

    fn evict_front(&self, k: &mut Kept) -> bool {
        let Some((_, len, ..)) = k.pieces.pop_front() else {
            return false;
        };
        k.bytes -= len;
        self.session.give(len);
        true
    }
}

impl Drop for RecentPieces {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(byte: u8, blocks: usize) -> Vec<Vec<u8>> {
        vec![vec![byte; 16384]; blocks]
    }

    #[test]
    fn oldest_pieces_are_evicted_within_the_cap() {
        let session = MemoryBudget::new(1 << 30);
        let r = RecentPieces::new(3 * 65536, session.clone());
        let now = Instant::now();
        for i in 0..5u32 {
            r.keep(i, piece(i as u8, 4), now);
        }
        assert_eq!(r.bytes(), 3 * 65536);
        assert_eq!(session.used(), 3 * 65536);
        assert!(r.block(0, 0, 16384).is_none() && r.block(1, 0, 16384).is_none());
        let (b, at) = r.block(4, 3 * 16384, 16384).expect("newest kept");
        assert_eq!((&b[..], at), (&[4u8; 16384][..], 0));
        assert!(r.block(4, 4 * 16384, 1).is_none());
        r.forget(3);
        assert!(!r.contains(3) && r.contains(2));
        assert_eq!(session.used(), 2 * 65536);
        drop(r);
        assert_eq!(session.used(), 0, "everything given back");
        // A block still held by an uploader stays valid after eviction,
        // and it alone: the rest of its piece is gone.
        assert_eq!(&b[..], &[4u8; 16384][..]);
        assert_eq!(Arc::strong_count(&b), 1);
    }

    #[test]
    fn nothing_is_kept_past_the_session_budget_or_the_cap() {
        let session = MemoryBudget::new(65536);
        let r = RecentPieces::new(1 << 20, session.clone());
        let now = Instant::now();
        r.keep(0, piece(0, 4), now);
        r.keep(1, piece(1, 4), now);
        assert!(r.contains(0) && !r.contains(1));
        assert_eq!(session.used(), 65536);
        let small = RecentPieces::new(16384, MemoryBudget::new(1 << 30));
        small.keep(7, piece(7, 2), now);
        assert!(!small.contains(7));
        r.clear();
        assert_eq!((r.bytes(), session.used()), (0, 0));
    }

    #[test]
    fn requests_are_located_within_one_block() {
        // Two whole blocks and a short last one.
        let blocks = vec![vec![0; 16384], vec![1; 16384], vec![2; 100]];
        let p = KeptPiece {
            blocks: blocks.into_iter().map(Arc::new).collect(),
        };
        assert_eq!(p.locate(0, 16384), Some((0, 0)));
        assert_eq!(p.locate(16384, 16384), Some((1, 0)));
        assert_eq!(p.locate(16384 + 10, 100), Some((1, 10)));
        assert_eq!(p.locate(32768, 100), Some((2, 0)));
        // Across two blocks, past the short block, past the piece.
        assert_eq!(p.locate(16000, 1000), None);
        assert_eq!(p.locate(32768, 101), None);
        assert_eq!(p.locate(49152, 1), None);
        assert_eq!(p.locate(u32::MAX, u32::MAX), None);
    }

    #[test]
    fn pieces_expire_after_keep_for() {
        let session = MemoryBudget::new(1 << 30);
        let r = RecentPieces::new(1 << 20, session.clone());
        let t0 = Instant::now();
        r.keep(0, piece(0, 1), t0);
        r.keep(1, piece(1, 1), t0 + KEEP_FOR / 2);
        r.expire(t0 + KEEP_FOR - Duration::from_millis(1));
        assert!(r.contains(0) && r.contains(1));
        r.expire(t0 + KEEP_FOR);
        assert!(!r.contains(0) && r.contains(1));
        r.expire(t0 + 2 * KEEP_FOR);
        assert_eq!((r.bytes(), session.used()), (0, 0));
    }
}
