//! What the picker gives a web seed (BEP 19): whole pieces, in runs of
//! consecutive ones (one HTTP request per run and file), pieces that no
//! connected peer has first, then any missing piece. A web seed's pieces
//! belong to it alone (as a parole peer's do): no peer is asked for their
//! blocks, and a failed run gives them back whole ([`Picker::remove_peer`]).

use super::{BlockState, Partial, PeerKey, Picker, PieceState};
use crate::proto::bitfield::Bitfield;

impl Picker {
    /// Up to `max_bytes` (at least one piece) of consecutive missing
    /// pieces among `allowed` (`None`: every piece) for web seed `seed`,
    /// now requested from it alone. Empty when nothing is left to give.
    pub fn pick_web_run(
        &mut self,
        seed: PeerKey,
        allowed: Option<&Bitfield>,
        max_bytes: u64,
    ) -> Vec<u32> {
        let n = self.pieces.len();
        let ok = |p: &Picker, i: usize, unoffered: bool| {
            matches!(p.pieces[i], PieceState::Missing)
                && allowed.is_none_or(|a| a.get(i))
                && (!unoffered || p.availability[i] == 0)
        };
        for unoffered in [true, false] {
            let Some(start) = (0..n).find(|&i| ok(self, i, unoffered)) else {
                continue;
            };
            let mut run = Vec::new();
            let mut bytes = 0u64;
            let mut i = start;
            while i < n && ok(self, i, unoffered) {
                let len = u64::from(self.layout.piece_len(i as u32));
                if !run.is_empty() && bytes + len > max_bytes {
                    break;
                }
                bytes += len;
                run.push(i as u32);
                i += 1;
            }
            for &p in &run {
                let blocks = self.layout.blocks_in_piece(p) as usize;
                self.pieces[p as usize] = PieceState::InProgress(Partial {
                    blocks: vec![BlockState::Requested(vec![seed]); blocks],
                    received: 0,
                    owner: Some(seed),
                });
                self.in_progress.push(p);
            }
            return run;
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::layout::Layout;

    #[test]
    fn unoffered_runs_first_owned_and_given_back() {
        let layout = Layout {
            piece_length: 32 * 1024,
            total_length: 10 * 32 * 1024,
            num_pieces: 10,
        };
        let mut p = Picker::new(layout, Bitfield::new(10));
        let mut peer_has = Bitfield::new(10);
        for i in 0..5 {
            peer_has.set(i);
        }
        p.add_availability(&peer_has);
        // Pieces 5.. are offered by nobody: they go first, 3 pieces a run.
        assert_eq!(p.pick_web_run(100, None, 96 * 1024), vec![5, 6, 7]);
        assert_eq!(p.pick_web_run(101, None, 96 * 1024), vec![8, 9]);
        // Then the offered ones; at least one piece even past the cap.
        assert_eq!(p.pick_web_run(101, None, 1), vec![0]);
        // A peer never gets a web seed's blocks.
        let blocks = p.pick(1, &peer_has, 1000);
        assert!(
            blocks.iter().all(|b| (1..5).contains(&b.index)),
            "{blocks:?}"
        );
        // A seed that fails gives its pieces back whole.
        p.remove_peer(100, &Bitfield::new(10));
        assert_eq!(p.pick_web_run(101, None, 96 * 1024), vec![5, 6, 7]);
        // Selection: only allowed pieces.
        let mut allowed = Bitfield::new(10);
        allowed.set(2);
        assert!(p.pick_web_run(102, Some(&allowed), 1 << 20).is_empty());
    }
}
