//! Smart ban: finding the peer that sent the bad block of a piece that
//! failed its hash check, without punishing the others (libtorrent's
//! `smart_ban` plugin does the same).
//!
//! When a piece fails, the hasher also returns the SHA-1 of each 16 KiB
//! block as it is on disk; [`SmartBan::failed`] remembers, for each block,
//! who sent it and that hash. When the same piece later passes, the hasher
//! returns the good block hashes and [`SmartBan::passed`] names every
//! address whose remembered block differs from the verified one: those
//! sent bad data, and only those. A peer whose blocks all match is never
//! blamed. Pure state, owned by the torrent thread; every table is bounded.

use crate::proto::wire::{BlockRef, BLOCK_SIZE};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

/// Failed pieces remembered at once (the oldest is forgotten first).
pub const MAX_PIECES: usize = 512;
/// Records kept per piece (several failures of a piece add up).
pub const MAX_RECORDS_PER_PIECE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    block: u32,
    addr: SocketAddr,
    hash: [u8; 20],
}

/// Block hashes of failed pieces, by sender.
#[derive(Debug, Default)]
pub struct SmartBan {
    pieces: HashMap<u32, Vec<Record>>,
    order: VecDeque<u32>,
}

/// The SHA-1 of each `block_size` block of `piece` (the last may be shorter).
pub fn block_hashes(piece: &[u8], block_size: usize) -> Vec<[u8; 20]> {
    piece
        .chunks(block_size.max(1))
        .map(|c| sha1_smol::Sha1::from(c).digest().bytes())
        .collect()
}

impl SmartBan {
    /// An empty table.
    pub fn new() -> SmartBan {
        SmartBan::default()
    }

    /// Piece `piece` failed: block `b` was sent by `senders[b]` and hashes to
    /// `hashes[b]` on disk. Senders whose address is unknown are `None`.
    pub fn failed(&mut self, piece: u32, senders: &[Option<SocketAddr>], hashes: &[[u8; 20]]) {
        if !self.pieces.contains_key(&piece) {
            while self.order.len() >= MAX_PIECES {
                if let Some(old) = self.order.pop_front() {
                    self.pieces.remove(&old);
                }
            }
            self.order.push_back(piece);
        }
        let recs = self.pieces.entry(piece).or_default();
        for (b, (sender, hash)) in senders.iter().zip(hashes).enumerate() {
            let Some(addr) = sender else { continue };
            let r = Record {
                block: b as u32,
                addr: *addr,
                hash: *hash,
            };
            if recs.len() < MAX_RECORDS_PER_PIECE && !recs.contains(&r) {
                recs.push(r);
            }
        }
    }

    /// Whether `piece` failed before and its good block hashes are wanted
    /// when it passes.
    pub fn watching(&self, piece: u32) -> bool {
        self.pieces.contains_key(&piece)
    }

    /// Piece `piece` passed with these block hashes: the addresses that had
    /// sent a block differing from the verified data (each once). The
    /// piece's records are forgotten.
    pub fn passed(&mut self, piece: u32, good: &[[u8; 20]]) -> Vec<SocketAddr> {
        let Some(recs) = self.pieces.remove(&piece) else {
            return Vec::new();
        };
        self.order.retain(|&p| p != piece);
        let mut culprits = Vec::new();
        for r in recs {
            let bad = good.get(r.block as usize).is_some_and(|g| *g != r.hash);
            if bad && !culprits.contains(&r.addr) {
                culprits.push(r.addr);
            }
        }
        culprits
    }

    /// Forget everything about `addr` (it was banned by other means).
    pub fn forget_addr(&mut self, addr: SocketAddr) {
        for recs in self.pieces.values_mut() {
            recs.retain(|r| r.addr != addr);
        }
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// Pieces remembered.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    #[allow(dead_code)] // not used by the engine yet
    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// Blocks we asked a peer for and then gave up on (choke, timeout, an
/// endgame cancel): a late answer to one of them is still an answer, not an
/// unrequested block. Bounded: the oldest are forgotten first.
#[derive(Debug, Default)]
pub struct GivenUp {
    set: HashSet<BlockRef>,
    order: VecDeque<BlockRef>,
}

/// Blocks remembered per peer by [`GivenUp`] (twice the deepest pipeline).
pub const MAX_GIVEN_UP: usize = 2 * crate::engine::conn::pipeline::MAX_DEPTH;

impl GivenUp {
    /// Remember `b`.
    pub fn insert(&mut self, b: BlockRef) {
        if self.set.insert(b) {
            self.order.push_back(b);
        }
        while self.set.len() > MAX_GIVEN_UP {
            match self.order.pop_front() {
                Some(old) => {
                    self.set.remove(&old);
                }
                None => break,
            }
        }
        if self.order.len() > 2 * MAX_GIVEN_UP {
            let set = &self.set;
            self.order.retain(|x| set.contains(x));
        }
    }

    /// Whether `b` was given up on; it is forgotten (one answer each).
    pub fn take(&mut self, b: &BlockRef) -> bool {
        // The order queue keeps the entry until it ages out; harmless.
        self.set.remove(b)
    }
}

/// Every block ever requested on one connection, so that only data that
/// was *never* asked for counts against a peer (a late answer, a duplicate
/// answer to a request we made twice around a choke, or an answer to a
/// request the peer got just before it choked us is not an attack).
///
/// Two levels, both bounded: one bit per piece of the torrent ("some block
/// of this piece was requested here"), and an exact bit per block for the
/// `MAX_EXACT_PIECES` pieces requested most recently. A block of a piece
/// whose exact bits were forgotten falls back to the piece bit, so an honest
/// peer is never counted; a sprayer still is for every piece we never asked
/// it for.
#[derive(Debug, Default)]
pub struct EverRequested {
    /// One bit per piece (grown to the highest piece requested).
    pieces: Vec<u64>,
    /// Per recently requested piece, one bit per 16 KiB block.
    blocks: HashMap<u32, Vec<u64>>,
    /// The order `blocks` was filled in (the oldest is forgotten first).
    order: VecDeque<u32>,
}

/// Pieces whose blocks [`EverRequested`] remembers one by one.
pub const MAX_EXACT_PIECES: usize = 256;

impl EverRequested {
    /// Remember that `b` was requested on this connection.
    pub fn insert(&mut self, b: &BlockRef) {
        let (p, k) = (b.index as usize, (b.begin / BLOCK_SIZE) as usize);
        if self.pieces.len() <= p / 64 {
            self.pieces.resize(p / 64 + 1, 0);
        }
        self.pieces[p / 64] |= 1 << (p % 64);
        let bits = match self.blocks.entry(b.index) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                self.order.push_back(b.index);
                e.insert(Vec::new())
            }
        };
        if bits.len() <= k / 64 {
            bits.resize(k / 64 + 1, 0);
        }
        bits[k / 64] |= 1 << (k % 64);
        while self.order.len() > MAX_EXACT_PIECES {
            if let Some(old) = self.order.pop_front() {
                self.blocks.remove(&old);
            }
        }
    }

    /// Whether `b` was ever requested on this connection (exactly for
    /// recent pieces, by piece for older ones).
    pub fn contains(&self, b: &BlockRef) -> bool {
        let (p, k) = (b.index as usize, (b.begin / BLOCK_SIZE) as usize);
        if let Some(bits) = self.blocks.get(&b.index) {
            return bits.get(k / 64).is_some_and(|w| w & (1 << (k % 64)) != 0);
        }
        self.pieces
            .get(p / 64)
            .is_some_and(|w| w & (1 << (p % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 0, 0, 1], p)))
    }

    #[test]
    fn pins_only_the_sender_of_the_bad_block() {
        let good: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut bad = good.clone();
        bad[20_000] ^= 1; // block 1
        let gh = block_hashes(&good, 16384);
        let bh = block_hashes(&bad, 16384);
        assert_eq!(gh.len(), 3);
        assert_eq!(gh[0], bh[0]);
        assert_ne!(gh[1], bh[1]);
        let mut sb = SmartBan::new();
        // honest 1 sent blocks 0 and 2, attacker 2 sent block 1.
        sb.failed(7, &[a(1), a(2), a(1)], &bh);
        assert!(sb.watching(7));
        assert!(!sb.watching(8));
        assert_eq!(sb.passed(7, &gh), vec![a(2).unwrap()]);
        assert!(!sb.watching(7));
        assert!(sb.passed(7, &gh).is_empty());
    }

    #[test]
    fn honest_peers_are_never_named() {
        let good = vec![5u8; 32768];
        let gh = block_hashes(&good, 16384);
        let mut sb = SmartBan::new();
        // A failure caused by a third party's block that was overwritten by
        // nothing: every recorded block matches the good data.
        sb.failed(1, &[a(1), None], &gh);
        assert!(sb.passed(1, &gh).is_empty());
    }

    #[test]
    fn table_is_bounded() {
        let mut sb = SmartBan::new();
        let h = [[0u8; 20]; 1];
        for p in 0..(MAX_PIECES as u32 + 100) {
            sb.failed(p, &[a(1)], &h);
        }
        assert_eq!(sb.len(), MAX_PIECES);
        assert!(!sb.watching(0));
        assert!(sb.watching(MAX_PIECES as u32 + 99));
        for _ in 0..(MAX_RECORDS_PER_PIECE * 2) {
            sb.failed(1_000_000, &[a(1)], &[[7u8; 20]]);
        }
        sb.forget_addr(a(1).unwrap());
        assert!(sb.passed(1_000_000, &[[8u8; 20]]).is_empty());
    }

    #[test]
    fn given_up_is_bounded_and_answered_once() {
        let mut g = GivenUp::default();
        let b = |i: u32| BlockRef {
            index: i,
            begin: 0,
            length: 16384,
        };
        for i in 0..(MAX_GIVEN_UP as u32 + 10) {
            g.insert(b(i));
        }
        assert!(!g.take(&b(0)));
        assert!(g.take(&b(MAX_GIVEN_UP as u32 + 9)));
        assert!(!g.take(&b(MAX_GIVEN_UP as u32 + 9)));
        assert!(g.set.len() <= MAX_GIVEN_UP);
    }

    #[test]
    fn ever_requested_remembers_every_block_asked_for_and_nothing_else() {
        let b = |i: u32, k: u32| BlockRef {
            index: i,
            begin: k * BLOCK_SIZE,
            length: BLOCK_SIZE,
        };
        let mut r = EverRequested::default();
        r.insert(&b(3, 0));
        r.insert(&b(3, 70));
        assert!(r.contains(&b(3, 0)) && r.contains(&b(3, 70)));
        assert!(!r.contains(&b(3, 1)) && !r.contains(&b(4, 0)));
        assert!(!r.contains(&b(100_000, 0)));
        // Asked again (a re-request after a choke): still one entry.
        r.insert(&b(3, 0));
        assert_eq!(r.order.len(), 1);
        // Many pieces later the exact bits of piece 3 are forgotten, its
        // piece bit is not: a late answer is never held against the peer.
        for i in 10..(10 + MAX_EXACT_PIECES as u32) {
            r.insert(&b(i, 0));
        }
        assert!(r.blocks.len() <= MAX_EXACT_PIECES);
        assert!(r.contains(&b(3, 0)) && r.contains(&b(3, 1)));
        assert!(!r.contains(&b(5, 0)), "never asked for piece 5");
        assert!(r.contains(&b(10 + MAX_EXACT_PIECES as u32 - 1, 0)));
        assert!(!r.contains(&b(10 + MAX_EXACT_PIECES as u32 - 1, 1)));
    }
}
