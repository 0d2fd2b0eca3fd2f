//! Seeding once: while our upload is the swarm's bottleneck, each piece
//! goes out about once before any goes out twice.
//!
//! Three parts, all pure state:
//!
//! * [`Spread`], shared by the torrent thread and the peer threads (atomics
//!   only): per piece, how many copies we know of in the swarm (the
//!   connections we started sending it to, raised to the number of peers
//!   that announced it), the *floor* (the least spread of any piece) and
//!   whether steering is on. The torrent thread turns it on while we seed
//!   under an upload limit with more interested leechers than we can serve
//!   at once ([`saturated`]) and feeds it the peers' `have`s.
//! * [`UploadSteer`], one per connection in its peer thread: on a request
//!   for a piece not yet started on this connection, it asks `Spread` to
//!   admit it (spread at the floor: the copy is counted and the piece is
//!   served). A piece above the floor (sent already this round, or held by
//!   other peers) is refused once per block with the fast extension's
//!   `reject`: the leecher asks for another piece, or for this one from a
//!   peer that has it. A request for a block refused before is served (a
//!   leecher that asks again has nowhere else to go), and so is every
//!   request of a peer without the fast extension: nobody is starved, and
//!   refusals per connection are bounded ([`MAX_REFUSALS`]). Once every
//!   piece is out ([`STEERED_ROUNDS`]), the swarm holds the whole torrent
//!   and nothing more is refused: the leechers trade, and a leecher
//!   missing its last pieces is not made to wait.
//! * [`Refused`], one per connection in the torrent thread, the leecher's
//!   side: pieces an unchoking peer rejected are not asked of it again for
//!   [`REFUSED_FOR`], so that our own leechers take the hint instead of
//!   asking again at once (which would be served).

use crate::proto::bitfield::Bitfield;
use crate::proto::wire::BlockRef;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Rounds steered: once every piece is out this many times, the swarm
/// holds the whole torrent and the seeder serves whatever is asked (a
/// leecher missing its last pieces is not made to wait on refusals).
pub const STEERED_ROUNDS: u32 = 1;
/// Blocks refused per connection at most (past it, every request is served).
pub const MAX_REFUSALS: usize = 8192;
/// Pieces a leecher remembers as refused per peer at most (only rejects of
/// requests it made count, so this is bounded by its own requests anyway).
pub const MAX_REFUSED_PIECES: usize = 1024;
/// How long a leecher leaves a piece alone at a peer that rejected it while
/// unchoking us.
pub const REFUSED_FOR: Duration = Duration::from_secs(4);

/// Copies of each piece in the swarm, as the seeder knows them (shared).
#[derive(Debug)]
pub struct Spread {
    active: AtomicBool,
    /// The least spread of any piece.
    floor: AtomicU32,
    /// Pieces whose spread is the floor (approximate between recounts).
    at_floor: AtomicUsize,
    spread: Box<[AtomicU16]>,
}

impl Spread {
    /// No copies of any of `pieces` pieces known; steering off.
    pub fn new(pieces: usize) -> Spread {
        Spread {
            active: AtomicBool::new(false),
            floor: AtomicU32::new(0),
            at_floor: AtomicUsize::new(pieces),
            spread: (0..pieces).map(|_| AtomicU16::new(0)).collect(),
        }
    }

    /// Whether requests are steered now.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Turn steering on or off (torrent thread).
    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
    }

    /// The least spread of any piece.
    pub fn floor(&self) -> u32 {
        self.floor.load(Ordering::Relaxed)
    }

    /// Copies of piece `i` known.
    #[cfg(test)]
    pub fn get(&self, i: u32) -> u32 {
        self.spread
            .get(i as usize)
            .map_or(0, |s| u32::from(s.load(Ordering::Relaxed)))
    }

    /// A connection is about to send piece `i` for the first time: admit
    /// it if steering is off or the piece is at the floor, and count the
    /// copy. `false`: the piece is above the floor (not counted).
    pub fn admit(&self, i: u32) -> bool {
        let Some(s) = self.spread.get(i as usize) else {
            return false;
        };
        let active = self.active();
        let mut cur = s.load(Ordering::Relaxed);
        loop {
            let floor = self.floor();
            if active && floor < STEERED_ROUNDS && u32::from(cur) > floor {
                return false;
            }
            let next = cur.saturating_add(1);
            match s.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    if u32::from(cur) == floor {
                        self.left_floor();
                    }
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Count a copy of piece `i` sent regardless of the floor.
    pub fn count(&self, i: u32) {
        if let Some(s) = self.spread.get(i as usize) {
            let before = s
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_add(1))
                })
                .unwrap_or(u16::MAX);
            if u32::from(before) == self.floor() {
                self.left_floor();
            }
        }
    }

    /// `peers` peers are known to have piece `i` (torrent thread, on a
    /// `have` or bitfield): the spread is at least that.
    pub fn seen(&self, i: u32, peers: u32) {
        if let Some(s) = self.spread.get(i as usize) {
            let peers = u16::try_from(peers).unwrap_or(u16::MAX);
            let before = s.fetch_max(peers, Ordering::Relaxed);
            if before < peers && u32::from(before) == self.floor() {
                self.left_floor();
            }
        }
    }

    /// A piece left the floor: when it was the last one, the floor rises.
    fn left_floor(&self) {
        let prev = self
            .at_floor
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        if prev <= 1 {
            self.recount();
        }
    }

    /// Recompute the floor and how many pieces are at it (one pass over
    /// the pieces: once per round, and on the torrent thread's tick).
    pub fn recount(&self) {
        let mut floor = u16::MAX;
        let mut n = 0usize;
        for s in self.spread.iter() {
            let v = s.load(Ordering::Relaxed);
            match v.cmp(&floor) {
                std::cmp::Ordering::Less => {
                    floor = v;
                    n = 1;
                }
                std::cmp::Ordering::Equal => n += 1,
                std::cmp::Ordering::Greater => {}
            }
        }
        if self.spread.is_empty() {
            floor = 0;
        }
        self.at_floor.store(n, Ordering::Relaxed);
        self.floor.store(u32::from(floor), Ordering::Relaxed);
    }
}

/// Whether our upload is the bottleneck worth steering for: we seed under
/// an upload limit (`limit` bytes/s, 0 = none), at least two leechers want
/// data, and either we send at half the limit or more, or more leechers
/// want data than we unchoke at once (`slots` + the optimistic one).
/// Without a limit we never steer: a seeder whose upload is not capped is
/// not known to be the bottleneck (a flash crowd on loopback must not wait
/// for rejects).
pub fn saturated(seeding: bool, limit: u64, up_rate: u64, interested: usize, slots: usize) -> bool {
    seeding && limit > 0 && interested >= 2 && (up_rate >= limit / 2 || interested > slots + 1)
}

/// What to do with a request (peer thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Queue it.
    Serve,
    /// Reject it (fast extension): another peer has the piece, or we sent
    /// it already this round.
    Refuse,
}

/// One connection's part of the steering (peer thread).
#[derive(Debug, Default)]
pub struct UploadSteer {
    /// Pieces we started sending on this connection (admitted once).
    started: HashSet<u32>,
    /// Blocks refused once (served if asked again).
    refused: HashSet<(u32, u32)>,
}

impl UploadSteer {
    /// Decide on a valid request for a piece we have, from a peer we may
    /// serve. `fast`: the peer understands `reject`.
    pub fn on_request(&mut self, spread: &Spread, b: &BlockRef, fast: bool) -> Verdict {
        if self.started.contains(&b.index) {
            return Verdict::Serve;
        }
        if spread.admit(b.index) {
            self.started.insert(b.index);
            return Verdict::Serve;
        }
        if fast && self.refused.len() < MAX_REFUSALS && self.refused.insert((b.index, b.begin)) {
            return Verdict::Refuse;
        }
        // Asked again, or no way to say no: served, and counted.
        spread.count(b.index);
        self.started.insert(b.index);
        Verdict::Serve
    }

    /// Blocks refused so far on this connection.
    #[cfg(test)]
    pub fn refusals(&self) -> usize {
        self.refused.len()
    }
}

/// The leecher's side: pieces a peer rejected while unchoking us, left
/// alone at that peer for [`REFUSED_FOR`] (torrent thread, one per peer).
#[derive(Debug, Default)]
pub struct Refused {
    pieces: Vec<(u32, Instant)>,
}

impl Refused {
    /// The peer rejected a block of piece `i` at `now`.
    pub fn insert(&mut self, i: u32, now: Instant) {
        if let Some(e) = self.pieces.iter_mut().find(|(p, _)| *p == i) {
            e.1 = now;
        } else if self.pieces.len() < MAX_REFUSED_PIECES {
            self.pieces.push((i, now));
        }
    }

    /// Forget refusals older than [`REFUSED_FOR`].
    pub fn expire(&mut self, now: Instant) {
        self.pieces
            .retain(|(_, t)| now.saturating_duration_since(*t) < REFUSED_FOR);
    }

    /// `theirs` without the pieces refused recently, or `None` when
    /// nothing is refused (use `theirs` as it is).
    pub fn mask(&self, theirs: &Bitfield) -> Option<Bitfield> {
        if self.pieces.is_empty() {
            return None;
        }
        let mut bf = theirs.clone();
        for &(i, _) in &self.pieces {
            bf.clear(i as usize);
        }
        Some(bf)
    }

    /// Whether any refusal is remembered.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blk(index: u32, begin: u32) -> BlockRef {
        BlockRef {
            index,
            begin,
            length: 16384,
        }
    }

    #[test]
    fn each_piece_once_before_any_twice() {
        let s = Spread::new(3);
        s.set_active(true);
        let (mut a, mut b) = (UploadSteer::default(), UploadSteer::default());
        assert_eq!(a.on_request(&s, &blk(0, 0), true), Verdict::Serve);
        // The rest of a started piece is served.
        assert_eq!(a.on_request(&s, &blk(0, 16384), true), Verdict::Serve);
        // Another peer asking for it is refused once per block...
        assert_eq!(b.on_request(&s, &blk(0, 0), true), Verdict::Refuse);
        assert_eq!(b.on_request(&s, &blk(0, 16384), true), Verdict::Refuse);
        assert_eq!(s.get(0), 1);
        // ...and gets pieces nobody has.
        assert_eq!(b.on_request(&s, &blk(1, 0), true), Verdict::Serve);
        assert_eq!(s.floor(), 0);
        assert_eq!(a.on_request(&s, &blk(2, 0), true), Verdict::Serve);
        // Every piece went out once: the second round opens.
        assert_eq!(s.floor(), 1);
        assert_eq!(b.on_request(&s, &blk(2, 16384), true), Verdict::Serve);
        assert_eq!(s.get(2), 2);
        assert_eq!(b.refusals(), 2);
    }

    #[test]
    fn asked_again_or_not_fast_is_served() {
        let s = Spread::new(2);
        s.set_active(true);
        let (mut a, mut b, mut c) = (
            UploadSteer::default(),
            UploadSteer::default(),
            UploadSteer::default(),
        );
        assert_eq!(a.on_request(&s, &blk(0, 0), true), Verdict::Serve);
        assert_eq!(b.on_request(&s, &blk(0, 0), true), Verdict::Refuse);
        // The same block again: it has nowhere else to go.
        assert_eq!(b.on_request(&s, &blk(0, 0), true), Verdict::Serve);
        assert_eq!(s.get(0), 2);
        // No fast extension: no way to refuse, served.
        assert_eq!(c.on_request(&s, &blk(0, 0), false), Verdict::Serve);
        assert_eq!(s.get(0), 3);
    }

    #[test]
    fn inactive_serves_everything_and_counts() {
        let s = Spread::new(2);
        let (mut a, mut b) = (UploadSteer::default(), UploadSteer::default());
        assert_eq!(a.on_request(&s, &blk(0, 0), true), Verdict::Serve);
        assert_eq!(b.on_request(&s, &blk(0, 0), true), Verdict::Serve);
        assert_eq!(s.get(0), 2);
        assert_eq!(s.floor(), 0);
        s.recount();
        assert_eq!(s.floor(), 0);
    }

    #[test]
    fn peers_haves_raise_the_spread() {
        let s = Spread::new(2);
        s.set_active(true);
        // Two peers have piece 0 (from elsewhere): piece 1 goes first.
        s.seen(0, 2);
        let mut a = UploadSteer::default();
        assert_eq!(a.on_request(&s, &blk(0, 0), true), Verdict::Refuse);
        assert_eq!(a.on_request(&s, &blk(1, 0), true), Verdict::Serve);
        assert_eq!(s.floor(), 1);
        // Every piece is out once: past the steered rounds, all is served.
        let mut b = UploadSteer::default();
        assert_eq!(b.on_request(&s, &blk(0, 0), true), Verdict::Serve);
        assert_eq!(b.on_request(&s, &blk(1, 0), true), Verdict::Serve);
        assert_eq!(s.floor(), 2);
        // Out-of-range pieces are neither admitted nor counted.
        assert!(!s.admit(9));
        s.seen(9, 3);
        s.count(9);
    }

    #[test]
    fn refusals_are_bounded() {
        let s = Spread::new(2);
        s.set_active(true);
        s.seen(0, 5);
        let mut a = UploadSteer::default();
        let mut refused = 0;
        for begin in 0..(MAX_REFUSALS as u32 + 10) {
            if a.on_request(&s, &blk(0, begin), true) == Verdict::Refuse {
                refused += 1;
            } else {
                break;
            }
        }
        assert_eq!(refused, MAX_REFUSALS);
    }

    #[test]
    fn saturation() {
        let mib = 1 << 20;
        assert!(saturated(true, mib, 0, 19, 4));
        assert!(saturated(true, mib, mib, 3, 4));
        assert!(!saturated(true, mib, 0, 3, 4));
        assert!(!saturated(true, mib, mib, 1, 4), "one leecher: full speed");
        assert!(!saturated(true, 0, mib, 19, 4), "no limit: never");
        assert!(!saturated(false, mib, mib, 19, 4), "not a seed");
    }

    #[test]
    fn leecher_leaves_refused_pieces_alone_for_a_while() {
        let mut r = Refused::default();
        let mut theirs = Bitfield::new(4);
        for i in 0..4 {
            theirs.set(i);
        }
        assert!(r.mask(&theirs).is_none());
        let t0 = Instant::now();
        r.insert(1, t0);
        r.insert(1, t0);
        let m = r.mask(&theirs).expect("masked");
        assert!(!m.get(1) && m.get(0) && m.get(2));
        r.expire(t0 + REFUSED_FOR / 2);
        assert!(!r.is_empty());
        r.expire(t0 + REFUSED_FOR);
        assert!(r.is_empty());
    }
}
