//! Piece order preferences beside rarest-first (issue 24): sequential
//! download and first/last-piece priority. Pure state, owned by the
//! `Picker` (`picker.rs`).
//!
//! * **First/last pieces** ([`PieceOrder::set_urgent`]): the first and the
//!   last piece of every wanted file are started before any other new
//!   piece (a player reads a file's header and, for many containers, its
//!   index at the end before anything else).
//! * **Sequential**: the *playhead* is the first wanted piece not yet
//!   verified. A peer that has an unverified piece among the
//!   [`DEFAULT_WINDOW`] wanted pieces from the playhead on gets new pieces in ascending order
//!   (from the playhead, past the window if its pipeline has room, so one
//!   fast seeder fetches strictly in order). A peer that has none of them
//!   is of no use to the playhead: rarest-first still decides for it, so
//!   we keep fetching (and can upload) the pieces the swarm lacks.
//! * **Streaming readers** ([`PieceOrder::set_readers`], as libtorrent's
//!   `set_piece_deadline`): every reader's next pieces have deadlines, the
//!   `k`-th missing piece ahead of a reader due `k` piece-times from now
//!   (readers read at the same pace, so a deadline is the rank ahead of its
//!   reader). A playhead peer gets them nearest deadline first: each
//!   reader's first missing piece, then each one's second, and so on, over
//!   a window per reader sized by the download rate
//!   ([`PieceOrder::set_rate`]: what the torrent fetches in
//!   [`READER_HORIZON_SECS`], within [`MIN_READER_WINDOW`] and
//!   [`MAX_READER_WINDOW`] pieces); so two readers far apart both move.
//!   Readers replace the playhead while there are any; a reader that stops
//!   is removed from the list and its window goes with it.

use crate::proto::bitfield::Bitfield;

/// Pieces ahead of the playhead that make a peer a "playhead peer".
pub const DEFAULT_WINDOW: u32 = 16;

/// Seconds of download a reader's window covers at the measured rate.
pub const READER_HORIZON_SECS: u64 = 4;
/// The fewest pieces in a reader's window (a slow or unmeasured rate).
pub const MIN_READER_WINDOW: u32 = 4;
/// The most pieces in a reader's window.
pub const MAX_READER_WINDOW: u32 = 256;

/// How many pieces the readers' deadline order runs to (past their
/// windows), before in order from the first reader.
pub const ORDER_DEPTH: u32 = 512;

/// The order preferences of one torrent.
#[derive(Debug, Clone)]
pub struct PieceOrder {
    sequential: bool,
    window: u32,
    /// First and last pieces of the wanted files, ascending, no repeats.
    urgent: Vec<u32>,
    /// The wanted pieces (`None`: all).
    wanted: Option<Bitfield>,
    /// No wanted piece before this one is missing (only moves forward,
    /// over verified or unwanted pieces; reset when the selection changes).
    playhead: u32,
    /// The streaming readers' positions, ascending, no repeats (empty:
    /// no one reads); they replace the playhead while there are any.
    readers: Vec<u32>,
    /// The pieces of each reader's window (from the rate).
    reader_window: u32,
}

impl Default for PieceOrder {
    fn default() -> Self {
        PieceOrder {
            sequential: false,
            window: DEFAULT_WINDOW,
            urgent: Vec::new(),
            wanted: None,
            playhead: 0,
            readers: Vec::new(),
            reader_window: MIN_READER_WINDOW,
        }
    }
}

impl PieceOrder {
    /// Turn sequential mode on or off.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    /// Set the window (clamped to at least 1).
    #[cfg(test)]
    pub fn set_window(&mut self, window: u32) {
        self.window = window.max(1);
    }

    /// The pieces to start before any other (first/last pieces of files).
    pub fn set_urgent(&mut self, mut pieces: Vec<u32>) {
        pieces.sort_unstable();
        pieces.dedup();
        self.urgent = pieces;
    }

    /// The urgent pieces.
    pub fn urgent(&self) -> &[u32] {
        &self.urgent
    }

    /// The wanted pieces changed (file selection): the playhead starts over.
    pub fn set_wanted(&mut self, wanted: Option<Bitfield>) {
        self.wanted = wanted;
        self.playhead = 0;
    }

    fn is_wanted(&self, i: u32) -> bool {
        self.wanted.as_ref().is_none_or(|w| w.get(i as usize))
    }

    /// The streaming readers' pieces (empty: no one reads; the torrent's
    /// own order again).
    pub fn set_readers(&mut self, mut pieces: Vec<u32>) {
        pieces.sort_unstable();
        pieces.dedup();
        self.readers = pieces;
    }

    /// Size the readers' windows by the download rate (bytes per second):
    /// the pieces fetched in [`READER_HORIZON_SECS`], clamped to
    /// [`MIN_READER_WINDOW`]..=[`MAX_READER_WINDOW`].
    pub fn set_rate(&mut self, bytes_per_sec: u64, piece_length: u64) {
        let pieces = bytes_per_sec
            .saturating_mul(READER_HORIZON_SECS)
            .div_ceil(piece_length.max(1));
        self.reader_window =
            pieces.clamp(u64::from(MIN_READER_WINDOW), u64::from(MAX_READER_WINDOW)) as u32;
    }

    /// The pieces of a reader's window.
    #[cfg(test)]
    pub fn reader_window(&self) -> u32 {
        self.reader_window
    }

    /// The first piece from `from` on that is neither verified nor unwanted.
    fn skip(&self, mut from: u32, have: &Bitfield) -> u32 {
        let n = have.len() as u32;
        while from < n && (have.get(from as usize) || !self.is_wanted(from)) {
            from += 1;
        }
        from
    }

    /// Move the playhead past verified and unwanted pieces; returns it.
    pub fn advance(&mut self, have: &Bitfield) -> u32 {
        self.playhead = self.skip(self.playhead, have);
        self.playhead
    }

    /// Move every reader past the pieces there already (the list stays
    /// ascending; readers that meet merge).
    fn advance_readers(&mut self, have: &Bitfield) {
        for k in 0..self.readers.len() {
            self.readers[k] = self.skip(self.readers[k], have);
        }
        self.readers.dedup();
    }

    /// Where in-order fetching starts in sequential mode (no readers).
    fn head(&mut self, have: &Bitfield) -> Option<u32> {
        self.sequential.then(|| self.advance(have))
    }

    /// Sequential or readers: the (last reader's) head plus twice its
    /// window (pieces past it are not worth a choked peer's allowed-fast
    /// slots); otherwise `u32::MAX`.
    pub fn near_playhead(&mut self, have: &Bitfield) -> u32 {
        if !self.readers.is_empty() {
            self.advance_readers(have);
            let last = self.readers.last().copied().unwrap_or(0);
            return last.saturating_add(2 * self.reader_window);
        }
        match self.head(have) {
            Some(h) => h.saturating_add(2 * self.window),
            None => u32::MAX,
        }
    }

    /// The readers' windows merged by deadline: every reader's first
    /// missing wanted piece (readers ascending), then every one's second,
    /// ...; a piece in two windows comes at its earlier deadline.
    #[cfg(test)]
    pub fn deadline_order(&mut self, have: &Bitfield) -> Vec<u32> {
        self.merged(have, self.reader_window).0
    }

    /// The deadline order over `per_reader` pieces per reader,
    /// and how many of them the first `reader_window` rounds gave (the
    /// windows themselves: a prefix of the longer order).
    fn merged(&mut self, have: &Bitfield, per_reader: u32) -> (Vec<u32>, usize) {
        self.advance_readers(have);
        let n = have.len() as u32;
        let mut cursors: Vec<u32> = self.readers.clone();
        let mut out: Vec<u32> = Vec::with_capacity(cursors.len() * per_reader as usize);
        let mut seen = std::collections::HashSet::new();
        let mut windows = 0;
        for round in 0..per_reader {
            if round == self.reader_window {
                windows = out.len();
            }
            for c in cursors.iter_mut() {
                let i = self.skip(*c, have);
                if i >= n {
                    *c = n;
                    continue;
                }
                *c = i + 1;
                if seen.insert(i) {
                    out.push(i);
                }
            }
        }
        if per_reader <= self.reader_window {
            windows = out.len();
        }
        (out, windows)
    }

    /// The pieces from the playhead on, ascending, that a playhead peer
    /// may be given (the caller checks their state and skips the unwanted
    /// ones through the masked `theirs`), or `None` when this peer has no
    /// piece for which `unverified(i)` holds among the window's wanted
    /// pieces (rarest-first decides for it). Pieces of the window already
    /// being fetched count: a peer that could serve them keeps going in
    /// order past the window.
    ///
    /// With readers: for a peer that has a piece of their windows
    /// (the deadline order), the same deadline order on past
    /// the windows ([`ORDER_DEPTH`] pieces in all, at least the windows),
    /// then in order from the first reader on.
    pub fn playhead_run(
        &mut self,
        have: &Bitfield,
        theirs: &Bitfield,
        unverified: impl Fn(u32) -> bool,
    ) -> Option<PlayheadRun> {
        let n = have.len() as u32;
        if !self.readers.is_empty() {
            // Past the windows the deadline order goes on (a fast peer's
            // pipeline is not filled with the first reader's pieces alone),
            // up to ORDER_DEPTH pieces in all; the windows are its prefix.
            let per_reader = self
                .reader_window
                .max(ORDER_DEPTH / self.readers.len().max(1) as u32);
            let (first, windows) = self.merged(have, per_reader);
            if !first[..windows]
                .iter()
                .any(|&i| theirs.get(i as usize) && unverified(i))
            {
                return None;
            }
            let start = self.readers.first().copied().unwrap_or(n);
            return Some(PlayheadRun {
                first,
                then: start..n,
            });
        }
        let start = self.head(have)?;
        let mut seen = 0;
        let mut i = start;
        while i < n && seen < self.window {
            if self.is_wanted(i) {
                seen += 1;
                if theirs.get(i as usize) && unverified(i) {
                    return Some(PlayheadRun {
                        first: Vec::new(),
                        then: start..n,
                    });
                }
            }
            i += 1;
        }
        None
    }
}

/// The pieces a playhead peer may be given, in this order: `first` (the
/// readers' windows by deadline), then `then` (ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayheadRun {
    /// Pieces by deadline.
    pub first: Vec<u32>,
    /// Then these, ascending.
    pub then: std::ops::Range<u32>,
}

impl PlayheadRun {
    /// Every piece in order (`first` may repeat in `then`; the caller
    /// skips pieces already started).
    pub fn pieces(self) -> impl Iterator<Item = u32> {
        self.first.into_iter().chain(self.then)
    }
}

/// The first and last piece of every file `wanted(i)` says is wanted,
/// given `(first, last)` piece of each file (`None`: empty file).
pub fn first_last_pieces(
    spans: impl Iterator<Item = Option<(u32, u32)>>,
    wanted: impl Fn(usize) -> bool,
) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, span) in spans.enumerate() {
        if let (Some((a, b)), true) = (span, wanted(i)) {
            out.push(a);
            out.push(b);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playhead_skips_verified_and_unwanted_pieces() {
        let mut o = PieceOrder::default();
        o.set_sequential(true);
        let mut have = Bitfield::new(10);
        have.set(0);
        have.set(1);
        let mut wanted = Bitfield::full(10);
        wanted.clear(2);
        o.set_wanted(Some(wanted));
        assert_eq!(o.advance(&have), 3);
        have.set(4);
        assert_eq!(o.advance(&have), 3, "a hole stops the playhead");
    }

    #[test]
    fn a_peer_without_window_pieces_is_left_to_rarest_first() {
        let mut o = PieceOrder::default();
        o.set_sequential(true);
        o.set_window(4);
        let have = Bitfield::new(20);
        let mut late = Bitfield::new(20);
        late.set(10);
        assert_eq!(o.playhead_run(&have, &late, |_| true), None);
        let mut early = Bitfield::new(20);
        early.set(3);
        assert_eq!(
            o.playhead_run(&have, &early, |_| true).map(|r| r.then),
            Some(0..20)
        );
        // Piece 3 already verified: no window piece for this peer.
        assert_eq!(o.playhead_run(&have, &early, |i| i != 3), None);
        o.set_sequential(false);
        assert_eq!(o.playhead_run(&have, &early, |_| true), None);
    }

    #[test]
    fn a_reader_moves_the_head_and_clearing_it_restores_the_order() {
        let mut o = PieceOrder::default();
        o.set_window(4);
        let mut have = Bitfield::new(100);
        have.set(50);
        let mut theirs = Bitfield::new(100);
        theirs.set(1);
        theirs.set(52);
        assert_eq!(o.playhead_run(&have, &theirs, |_| true), None);
        o.set_readers(vec![50]);
        // Piece 50 is there: the head moves to 51; the peer has 52.
        let run = |o: &mut PieceOrder| {
            o.playhead_run(&have, &theirs, |_| true)
                .map(|r| r.pieces().take(6).collect::<Vec<_>>())
        };
        assert_eq!(run(&mut o), Some(vec![51, 52, 53, 54, 55, 56]));
        assert_eq!(o.near_playhead(&have), 51 + 2 * MIN_READER_WINDOW);
        o.set_readers(Vec::new());
        assert_eq!(run(&mut o), None);
        assert_eq!(o.near_playhead(&have), u32::MAX);
        // In sequential mode a reader still wins over the playhead.
        o.set_sequential(true);
        assert_eq!(run(&mut o), Some(vec![0, 1, 2, 3, 4, 5]));
        o.set_readers(vec![50]);
        assert_eq!(run(&mut o), Some(vec![51, 52, 53, 54, 55, 56]));
    }

    #[test]
    fn readers_windows_come_by_deadline_nearest_first() {
        let mut o = PieceOrder::default();
        let mut have = Bitfield::new(1000);
        have.set(501);
        // 4 pieces per reader at a slow (or unmeasured) rate.
        o.set_rate(0, 16384);
        assert_eq!(o.reader_window(), MIN_READER_WINDOW);
        o.set_readers(vec![500, 10]);
        // Each reader's first missing piece, then each one's second, ...
        // (501 is there: reader 500's second piece is 502).
        assert_eq!(
            o.deadline_order(&have),
            vec![10, 500, 11, 502, 12, 503, 13, 504]
        );
        // A peer with only the far reader's pieces serves them first.
        let mut theirs = Bitfield::new(1000);
        for i in 500..600 {
            theirs.set(i);
        }
        let run = o.playhead_run(&have, &theirs, |i| !have.get(i as usize));
        let first = run.map(|r| r.first).unwrap_or_default();
        assert_eq!(first[..2], [10, 500]);
        // The rate sizes the window: 8 MiB/s over 4 s of 1 MiB pieces.
        o.set_rate(8 << 20, 1 << 20);
        assert_eq!(o.reader_window(), 32);
        assert_eq!(o.deadline_order(&have).len(), 64);
        o.set_rate(u64::MAX, 1);
        assert_eq!(o.reader_window(), MAX_READER_WINDOW);
        // Readers that meet share their pieces (each at its nearest
        // deadline), and a reader that stops takes its window with it.
        o.set_rate(0, 1);
        o.set_readers(vec![10, 12]);
        assert_eq!(o.deadline_order(&have), vec![10, 12, 11, 13, 14, 15]);
        o.set_readers(vec![12]);
        assert_eq!(o.deadline_order(&have), vec![12, 13, 14, 15]);
        o.set_readers(Vec::new());
        assert!(o.deadline_order(&have).is_empty());
    }

    #[test]
    fn two_readers_far_apart_both_progress_from_one_seeder() {
        let mut p = picker(200);
        let all = Bitfield::full(200);
        p.add_availability(&all);
        p.order_mut().set_readers(vec![0, 150]);
        // Whole pieces, one at a time (one block per piece here).
        let got: Vec<u32> = p.pick(1, &all, 6).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![0, 150, 1, 151, 2, 152]);
        // Only the lowest reader (the order before deadlines) would have
        // given 0, 1, 2, 3, 4, 5.
        let mut q = picker(200);
        q.add_availability(&all);
        q.order_mut().set_readers(vec![150]);
        let got: Vec<u32> = q.pick(1, &all, 3).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![150, 151, 152]);
        // Past the windows (4 pieces each at an unmeasured rate) the
        // deadline order goes on: the pipeline of a fast seeder is not
        // filled with the first reader's pieces alone.
        let mut r = picker(200);
        r.add_availability(&all);
        r.order_mut().set_readers(vec![0, 150]);
        let got: Vec<u32> = r.pick(1, &all, 12).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![0, 150, 1, 151, 2, 152, 3, 153, 4, 154, 5, 155]);
        // The reader at 150 stops: its window is released, the reader at
        // 0 goes on alone, in order.
        p.order_mut().set_readers(vec![0]);
        let got: Vec<u32> = p.pick(1, &all, 3).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![3, 4, 5]);
    }

    #[test]
    fn near_the_playhead_only_in_sequential_mode() {
        let mut o = PieceOrder::default();
        let mut have = Bitfield::new(100);
        assert_eq!(o.near_playhead(&have), u32::MAX);
        o.set_sequential(true);
        o.set_window(4);
        have.set(0);
        assert_eq!(o.near_playhead(&have), 1 + 8);
    }

    #[test]
    fn first_and_last_pieces_of_wanted_files() {
        let spans = vec![Some((0, 3)), None, Some((3, 3)), Some((4, 9))];
        let got = first_last_pieces(spans.into_iter(), |i| i != 3);
        assert_eq!(got, vec![0, 3]);
        let spans = vec![Some((0, 3)), Some((4, 9))];
        assert_eq!(
            first_last_pieces(spans.into_iter(), |_| true),
            vec![0, 3, 4, 9]
        );
    }

    use crate::engine::torrent::picker::{Picker, Received};
    use crate::proto::layout::Layout;

    fn picker(pieces: u32) -> Picker {
        let l = Layout {
            piece_length: 16384,
            total_length: 16384 * u64::from(pieces),
            num_pieces: pieces,
        };
        Picker::new(l, Bitfield::new(pieces as usize))
    }

    /// Fetch every piece from one seeder, `per_pick` blocks at a time, the
    /// oldest request answered first; returns the completion order.
    fn drain(p: &mut Picker, theirs: &Bitfield, per_pick: usize) -> Vec<u32> {
        let mut queue = std::collections::VecDeque::new();
        let mut done = Vec::new();
        for _ in 0..10_000 {
            queue.extend(p.pick(1, theirs, per_pick));
            let Some(b) = queue.pop_front() else { break };
            if let Received::New {
                piece_complete: true,
                ..
            } = p.block_received(1, &b)
            {
                p.piece_hashed(b.index, true);
                done.push(b.index);
            }
        }
        done
    }

    #[test]
    fn sequential_fetches_in_order_from_one_seeder() {
        let mut p = picker(64);
        let all = Bitfield::full(64);
        p.add_availability(&all);
        p.order_mut().set_sequential(true);
        let done = drain(&mut p, &all, 5);
        assert_eq!(done, (0..64).collect::<Vec<_>>());
        assert!(p.is_complete());
    }

    #[test]
    fn without_sequential_the_order_is_rarest_first_random() {
        let mut p = picker(64);
        let all = Bitfield::full(64);
        p.add_availability(&all);
        let done = drain(&mut p, &all, 5);
        assert_eq!(done.len(), 64);
        assert_ne!(done, (0..64).collect::<Vec<_>>(), "random ties");
    }

    #[test]
    fn first_last_pieces_come_first_then_the_playhead() {
        let mut p = picker(32);
        let all = Bitfield::full(32);
        p.add_availability(&all);
        p.order_mut().set_urgent(vec![31, 0, 15, 16]);
        let got: Vec<u32> = p.pick(1, &all, 4).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![0, 15, 16, 31]);
        p.order_mut().set_sequential(true);
        let got: Vec<u32> = p.pick(1, &all, 3).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[test]
    fn a_peer_without_playhead_pieces_gets_rarest_first() {
        let mut p = picker(32);
        let all = Bitfield::full(32);
        let mut tail = Bitfield::new(32);
        for i in 20..32 {
            tail.set(i);
        }
        p.add_availability(&all);
        p.add_availability(&tail);
        let mut rare = Bitfield::new(32);
        rare.set(25);
        p.add_availability(&tail);
        p.add_availability(&rare);
        p.order_mut().set_sequential(true);
        p.order_mut().set_window(8);
        // The tail peer has nothing in 0..8: the rarest of what it has
        // (not 25, which three peers have) instead of 20, 21, ...
        let got = p.pick(2, &tail, 1);
        assert_eq!(got.len(), 1);
        assert!(got[0].index >= 20 && got[0].index != 25);
        // The full seeder serves the playhead in order.
        let got: Vec<u32> = p.pick(1, &all, 3).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn a_failed_piece_behind_the_playhead_is_fetched_first_again() {
        let mut p = picker(8);
        let all = Bitfield::full(8);
        p.add_availability(&all);
        p.order_mut().set_sequential(true);
        let b = p.pick(1, &all, 1)[0];
        assert_eq!(b.index, 0);
        assert!(matches!(
            p.block_received(1, &b),
            Received::New {
                piece_complete: true,
                ..
            }
        ));
        let next: Vec<u32> = p.pick(1, &all, 2).iter().map(|b| b.index).collect();
        assert_eq!(next, vec![1, 2]);
        p.piece_hashed(0, false);
        let again = p.pick(1, &all, 1);
        assert_eq!(again[0].index, 0);
    }

    #[test]
    fn the_playhead_skips_unwanted_pieces() {
        let mut p = picker(16);
        let mut wanted = Bitfield::new(16);
        for i in 8..16 {
            wanted.set(i);
        }
        p.add_availability(&Bitfield::full(16));
        p.order_mut().set_sequential(true);
        p.order_mut().set_window(2);
        p.order_mut().set_wanted(Some(wanted.clone()));
        // `theirs` is masked by the wanted pieces, as `fill_requests` does.
        let got: Vec<u32> = p.pick(1, &wanted, 3).iter().map(|b| b.index).collect();
        assert_eq!(got, vec![8, 9, 10]);
    }
}
