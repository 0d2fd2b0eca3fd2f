//! A failed piece whose good blocks are known (BEP 52 block hashes,
//! `torrent::block_verify`): its contributors are looked at while its
//! verdict waits, and it goes back in progress with those blocks kept, so
//! only the bad ones are fetched again.

use super::{BlockState, Partial, PeerKey, Picker, PieceState};

impl Picker {
    /// Who sent each block of piece `i`, while it waits for its verdict
    /// (hashed, not yet [`Picker::piece_hashed`]).
    pub fn contributors(&self, i: u32) -> Option<&[PeerKey]> {
        match self.pieces.get(i as usize)? {
            PieceState::Hashing(c) => Some(c),
            _ => None,
        }
    }

    /// Piece `i`, waiting for its verdict, failed; `keep[b]` names the
    /// sender of each block known good (kept as received), `None` for a
    /// block to fetch again. Returns false (nothing changed) unless the
    /// piece was waiting and `keep` has one entry per block.
    pub fn restore_partial(&mut self, i: u32, keep: &[Option<PeerKey>]) -> bool {
        let Some(st) = self.pieces.get_mut(i as usize) else {
            return false;
        };
        let PieceState::Hashing(c) = st else {
            return false;
        };
        if c.len() != keep.len() || keep.iter().all(Option::is_some) {
            return false;
        }
        let blocks: Vec<BlockState> = keep
            .iter()
            .map(|k| k.map_or(BlockState::Open, BlockState::Received))
            .collect();
        let received = keep.iter().filter(|k| k.is_some()).count() as u32;
        *st = PieceState::InProgress(Partial {
            blocks,
            received,
            owner: None,
        });
        if !self.in_progress.contains(&i) {
            self.in_progress.push(i);
        }
        self.order_force = true;
        true
    }
}
