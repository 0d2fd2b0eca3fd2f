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

use crate::proto::bitfield::Bitfield;

/// Pieces ahead of the playhead that make a peer a "playhead peer".
pub const DEFAULT_WINDOW: u32 = 16;

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
    /// A streaming reader's position (the lowest of the readers'), if
    /// anyone reads: it replaces the playhead and turns sequential on
    /// until it is cleared.
    reader: Option<u32>,
}

impl Default for PieceOrder {
    fn default() -> Self {
        PieceOrder {
            sequential: false,
            window: DEFAULT_WINDOW,
            urgent: Vec::new(),
            wanted: None,
            playhead: 0,
            reader: None,
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

    /// A streaming reader's piece (`None`: no one reads; the torrent's
    /// own order again).
    pub fn set_reader(&mut self, piece: Option<u32>) {
        self.reader = piece;
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

    /// Where in-order fetching starts: a reader's position (moved past
    /// what is there already), else the playhead in sequential mode.
    fn head(&mut self, have: &Bitfield) -> Option<u32> {
        if let Some(r) = self.reader {
            let r = self.skip(r, have);
            self.reader = Some(r);
            return Some(r);
        }
        self.sequential.then(|| self.advance(have))
    }

    /// Sequential or a reader: the head plus twice the window (pieces past
    /// it are not worth a choked peer's allowed-fast slots); otherwise
    /// `u32::MAX`.
    pub fn near_playhead(&mut self, have: &Bitfield) -> u32 {
        match self.head(have) {
            Some(h) => h.saturating_add(2 * self.window),
            None => u32::MAX,
        }
    }

    /// The pieces from the playhead on, ascending, that a playhead peer
    /// may be given (the caller checks their state and skips the unwanted
    /// ones through the masked `theirs`), or `None` when this peer has no
    /// piece for which `unverified(i)` holds among the window's wanted
    /// pieces (rarest-first decides for it). Pieces of the window already
    /// being fetched count: a peer that could serve them keeps going in
    /// order past the window.
    pub fn playhead_run(
        &mut self,
        have: &Bitfield,
        theirs: &Bitfield,
        unverified: impl Fn(u32) -> bool,
    ) -> Option<std::ops::Range<u32>> {
        let start = self.head(have)?;
        let n = have.len() as u32;
        let mut seen = 0;
        let mut i = start;
        while i < n && seen < self.window {
            if self.is_wanted(i) {
                seen += 1;
                if theirs.get(i as usize) && unverified(i) {
                    return Some(start..n);
                }
            }
            i += 1;
        }
        None
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
        assert_eq!(o.playhead_run(&have, &early, |_| true), Some(0..20));
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
        o.set_reader(Some(50));
        // Piece 50 is there: the head moves to 51; the peer has 52.
        assert_eq!(o.playhead_run(&have, &theirs, |_| true), Some(51..100));
        assert_eq!(o.near_playhead(&have), 51 + 8);
        o.set_reader(None);
        assert_eq!(o.playhead_run(&have, &theirs, |_| true), None);
        assert_eq!(o.near_playhead(&have), u32::MAX);
        // In sequential mode a reader still wins over the playhead.
        o.set_sequential(true);
        assert_eq!(o.playhead_run(&have, &theirs, |_| true), Some(0..100));
        o.set_reader(Some(50));
        assert_eq!(o.playhead_run(&have, &theirs, |_| true), Some(51..100));
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
