//! The torrent thread, a hybrid's piece layers arriving while it runs
//! (`Command::PieceLayers`, from `session::hybrid_layers`):
//!
//! - the peer threads answer hash requests from the new layers at once
//!   (`PeerContext::hash_trees` is swapped; running threads and those
//!   started later read it);
//! - the pieces already verified by SHA-1 alone whose file's layer is new
//!   (pieces of files of more than one piece: a file of one piece was
//!   checked against its root from the start) are read back from disk on
//!   the hashing pool and checked against the v2 view, once, a few at a
//!   time (as the start-up check). Pieces whose verdict or write was
//!   pending when the layers came are checked once written.
//!
//! A piece that passed SHA-1 but fails its v2 hash means the torrent's two
//! views disagree (BEP 52: such a torrent is invalid). We trust neither:
//! the piece is missing again and fetched anew, and from then on every
//! piece must pass both checks (a forged hybrid ends with no piece, as one
//! whose layers were known from the start).

use super::*;
use crate::proto::metainfo::V2Info;
use crate::proto::piece_tree::PieceTrees;
use std::collections::VecDeque;

/// The piece-layer trees of `v2` that peers may ask for, if any.
pub(super) fn trees_of(v2: Option<&V2Info>) -> Option<Arc<PieceTrees>> {
    v2.map(PieceTrees::of)
        .filter(|t| !t.is_empty())
        .map(Arc::new)
}

/// The pieces of `0..pieces` that `new` checks against a piece-layer hash
/// and `old` did not check at all: those of files whose layer is new.
pub(super) fn newly_checked(old: Option<&V2Info>, new: &V2Info, pieces: u32) -> Vec<u32> {
    (0..pieces)
        .filter(|&i| {
            let p = u64::from(i);
            new.piece_check(p).is_some_and(|c| !c.whole_file)
                && old.and_then(|o| o.piece_check(p)).is_none()
        })
        .collect()
}

/// The rechecks of one torrent.
#[derive(Debug, Default)]
pub(super) struct Recheck {
    /// Written pieces to read back and check, in order.
    todo: VecDeque<u32>,
    /// Rechecks at the hashing pool.
    in_flight: HashSet<u32>,
    /// Pieces hashed without their v2 hash whose verdict or write was
    /// pending when the layers came: checked once written.
    once_written: HashSet<u32>,
    /// Layers that came during the start-up check: the scan waits for its
    /// end (pieces being checked then were hashed without them). Holds the
    /// view before them (`None`: the metainfo's own).
    during_check: Option<Option<Arc<V2Info>>>,
    /// Pieces checked again against the v2 view.
    pub(super) checked: u32,
    /// Of them, pieces that failed (missing again, fetched anew).
    pub(super) failed: u32,
}

impl Recheck {
    /// Whether `piece`'s verdict is a recheck's.
    pub(super) fn owns(&self, piece: u32) -> bool {
        self.in_flight.contains(&piece)
    }
}

impl Torrent {
    /// The v2 view pieces are checked against: the layers fetched while
    /// running (a hybrid from a magnet link), else the metainfo's own.
    pub(super) fn v2_view(&self) -> Option<&V2Info> {
        self.late_v2.as_deref().or(self.me.metainfo.v2.as_deref())
    }

    /// `Command::PieceLayers`: the hybrid's v2 view with the layers
    /// fetched so far.
    pub(super) fn on_piece_layers(&mut self, v2: Arc<V2Info>) {
        // The view before these layers: None is the metainfo's own (read
        // from `self.me` when planning, not copied).
        let old = self.late_v2.clone();
        *self.me.peer_ctx.hash_trees.write() = trees_of(Some(&v2));
        self.late_v2 = Some(v2);
        if self.phase == Phase::Checking {
            // Only the first view before the check matters: the scan
            // compares against it.
            self.recheck.during_check.get_or_insert(old);
            return;
        }
        self.plan_rechecks(old);
    }

    /// The start-up check is over: rechecks the layers that came during it
    /// call for.
    pub(super) fn check_ended(&mut self) {
        if let Some(old) = self.recheck.during_check.take() {
            self.plan_rechecks(old);
        }
    }

    fn plan_rechecks(&mut self, old: Option<Arc<V2Info>>) {
        let Some(new) = self.late_v2.clone() else {
            return;
        };
        let me = self.me.clone();
        let old = old.as_deref().or(me.metainfo.v2.as_deref());
        let written = self.me.peer_ctx.have.read().clone();
        let mut queued = 0usize;
        for i in newly_checked(old, &new, self.layout.num_pieces) {
            if written.get(i as usize) {
                self.recheck.todo.push_back(i);
                queued += 1;
            } else if self.picker.have().get(i as usize) || self.picker.is_hashing(i) {
                self.recheck.once_written.insert(i);
            }
        }
        if queued + self.recheck.once_written.len() > 0 {
            log::info!(
                "{}: checking {} pieces verified by SHA-1 alone against the new piece layers",
                self.me.metainfo.info.name,
                queued + self.recheck.once_written.len()
            );
        }
        self.feed_rechecks();
    }

    /// Piece `i` was written (and announced): check it against its v2 hash
    /// if it was verified without it.
    pub(super) fn recheck_if_pending(&mut self, i: u32) {
        if self.recheck.once_written.remove(&i) {
            self.recheck.todo.push_back(i);
            self.feed_rechecks();
        }
    }

    /// Hand queued rechecks to the hashing pool, a few at a time.
    fn feed_rechecks(&mut self) {
        let limit = self.shared.config.hasher_threads.max(1) + 1;
        while self.recheck.in_flight.len() < limit {
            let Some(i) = self.recheck.todo.pop_front() else {
                return;
            };
            let Some(check) = self
                .late_v2
                .as_deref()
                .and_then(|v| v.piece_check(u64::from(i)))
            else {
                continue;
            };
            let job = HashJob {
                piece: i,
                data: PieceData::Disk {
                    storage: self.me.peer_ctx.storage.clone(),
                    offset: self.layout.piece_offset(i),
                    len: self.layout.piece_len(i),
                },
                // The SHA-1 passed already: the v2 hash alone.
                expected: None,
                v2: Some(check),
                block_hashes: false,
                reply: self.hash_tx.clone(),
            };
            if self.shared.hasher.send(job).is_err() {
                return;
            }
            self.hash_jobs.set(self.hash_jobs.get() + 1);
            self.recheck.in_flight.insert(i);
        }
    }

    /// A recheck's verdict (`Recheck::owns`).
    pub(super) fn on_rechecked(&mut self, done: HashDone) {
        let i = done.piece;
        self.recheck.in_flight.remove(&i);
        self.recheck.checked += 1;
        if done.error.is_some() || !done.ok {
            self.recheck.failed += 1;
            log::warn!(
                "{}: piece {i} passed its SHA-1 but fails its v2 hash{}: the torrent's \
                 v1 and v2 views disagree (BEP 52); trusting neither, fetching it again",
                self.me.metainfo.info.name,
                done.error
                    .as_ref()
                    .map(|e| format!(" (reading it: {e})"))
                    .unwrap_or_default()
            );
            self.unverify(i);
        }
        self.feed_rechecks();
    }

    /// Piece `i` is missing again: not served, announced or counted.
    fn unverify(&mut self, i: u32) {
        let was = self.me.peer_ctx.have.write().clear(i as usize);
        self.me.peer_ctx.recent.forget(i);
        self.picker.forget(i);
        self.hash_failures += 1;
        if !was {
            return;
        }
        self.resume_dirty = true;
        let wanted = self.wanted.get(i as usize);
        if wanted {
            self.wanted_missing += 1;
        }
        if matches!(self.phase, Phase::Seeding | Phase::Finished) && !self.is_finished() {
            self.phase = Phase::Downloading;
            self.candidates.retry_all(Instant::now());
        }
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for &k in &keys {
            if let Some(c) = self.conns.get_mut(&k) {
                if wanted && c.bitfield.get(i as usize) {
                    c.wanted += 1;
                }
            }
            self.update_interest(k);
            self.fill_requests(k);
        }
        self.connect_candidates();
        self.publish_status();
    }
}

#[cfg(test)]
mod tests {
    use super::newly_checked;
    use crate::proto::metainfo::{FilePath, V2File, V2Info};

    fn file(first_piece: u64, length: u64, root: u8) -> V2File {
        V2File {
            path: FilePath::from_elements(["f"]),
            length,
            pieces_root: Some([root; 32]),
            first_piece,
            symlink: false,
            executable: false,
        }
    }

    /// Three files of 16 KiB pieces: 3 pieces, 1 piece (checked by its
    /// root from the start), 2 pieces.
    fn v2(layers: [bool; 2]) -> V2Info {
        let files = vec![file(0, 40_000, 1), file(3, 100, 2), file(4, 20_000, 3)];
        V2Info {
            piece_length: 16384,
            piece_layers: vec![
                layers[0].then(|| vec![[9; 32]; 3]),
                None,
                layers[1].then(|| vec![[8; 32]; 2]),
            ],
            files,
            num_pieces: 6,
        }
    }

    #[test]
    fn only_pieces_of_files_whose_layer_is_new_are_checked_again() {
        let none = v2([false, false]);
        let first = v2([true, false]);
        let both = v2([true, true]);
        assert_eq!(newly_checked(Some(&none), &first, 6), vec![0, 1, 2]);
        assert_eq!(newly_checked(Some(&first), &both, 6), vec![4, 5]);
        assert_eq!(newly_checked(Some(&none), &both, 6), vec![0, 1, 2, 4, 5]);
        assert!(newly_checked(Some(&both), &both, 6).is_empty());
        // A file of one piece never: its root was known.
        assert!(!newly_checked(None, &both, 6).contains(&3));
    }
}
