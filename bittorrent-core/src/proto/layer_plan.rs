//! Fetching the piece layers a v2 torrent lacks (BEP 52 `hash request`s):
//! which requests to send, how to check each `hashes` answer against the
//! file's `pieces root`, and how the verified hashes become the file's
//! piece layer.
//!
//! For each file of more than one piece whose layer is missing, the piece
//! layer (base layer `log2(piece length / 16 KiB)`) is asked for in ranges
//! of at most [`hash_msg::MAX_LENGTH`] hashes (the layer padded to a power
//! of two `W` wide: one request of `W` when `W <= 512`, else one per 512
//! that holds a real piece), each with the proof up to the root
//! (`proof layers` = tree height - base layer - 1, as libtorrent asks). An
//! answer is trusted only when its hashes and uncles hash up to the root
//! ([`hash_msg::verify`]); the padding past the file's last piece is
//! covered by that proof and dropped. Files with the same root share their
//! requests. Pure: no I/O, used by the metadata thread
//! (`engine::torrent::layers`).

use crate::proto::hash_msg::{self, HashRequest, MAX_LENGTH};
use crate::proto::merkle::{self, Hash256};
use crate::proto::metainfo::V2Info;
use std::collections::HashMap;

/// One file tree whose piece layer is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Need {
    root: Hash256,
    /// Pieces of the file (the real length of its piece layer).
    pieces: usize,
    /// Layers above the leaves of the whole tree.
    height: u32,
    /// The files (indices in `V2Info::files`) with this root.
    files: Vec<usize>,
}

/// The piece layers a torrent lacks and the requests that fetch them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    piece_height: u32,
    needs: Vec<Need>,
}

impl LayerPlan {
    /// The plan for `v2`'s missing layers; `None` when none is missing.
    pub fn of(v2: &V2Info) -> Option<LayerPlan> {
        let piece_height = merkle::piece_height(v2.piece_length);
        let mut needs: Vec<Need> = Vec::new();
        for (i, f) in v2.files.iter().enumerate() {
            let (true, None, Some(root)) = (
                v2.needs_layer(i),
                v2.piece_layers.get(i).and_then(Option::as_ref),
                f.pieces_root,
            ) else {
                continue;
            };
            if let Some(n) = needs.iter_mut().find(|n| n.root == root) {
                n.files.push(i);
                continue;
            }
            let pieces = usize::try_from(f.length.div_ceil(v2.piece_length)).ok()?;
            let width = pieces.max(2).next_power_of_two();
            needs.push(Need {
                root,
                pieces,
                height: piece_height + width.trailing_zeros(),
                files: vec![i],
            });
        }
        (!needs.is_empty()).then_some(LayerPlan {
            piece_height,
            needs,
        })
    }

    /// Every request of the plan (in file order).
    pub fn requests(&self) -> Vec<HashRequest> {
        let mut out = Vec::new();
        for n in &self.needs {
            let width = n.pieces.max(2).next_power_of_two();
            let len = width.min(MAX_LENGTH as usize);
            let mut index = 0;
            while index < n.pieces {
                out.push(HashRequest {
                    pieces_root: n.root,
                    base_layer: self.piece_height,
                    index: index as u32,
                    length: len as u32,
                    proof_layers: n.height - self.piece_height - 1,
                });
                index += len;
            }
        }
        out
    }

    /// The base hashes of `hashes`, an answer to `req`, when `req` is one
    /// of the plan's requests and the answer proves itself against the
    /// file's root; `None` otherwise (a wrong or unasked answer).
    pub fn check(&self, req: &HashRequest, hashes: &[Hash256]) -> Option<Vec<Hash256>> {
        let n = self.needs.iter().find(|n| n.root == req.pieces_root)?;
        if req.base_layer != self.piece_height
            || req.proof_layers + self.piece_height + 1 != n.height
        {
            return None;
        }
        hash_msg::verify(req, hashes, &n.root, n.height)
    }

    /// Write the layers `got` (verified answers by request) holds into
    /// `v2`; returns the requests still missing (nothing is written for a
    /// file until all of its requests are there).
    pub fn fill(&self, got: &HashMap<HashRequest, Vec<Hash256>>, v2: &mut V2Info) -> usize {
        let mut missing = 0;
        let all = self.requests();
        for n in &self.needs {
            let mine: Vec<&HashRequest> = all.iter().filter(|r| r.pieces_root == n.root).collect();
            let have: Vec<&Vec<Hash256>> = mine.iter().filter_map(|r| got.get(*r)).collect();
            if have.len() < mine.len() {
                missing += mine.len() - have.len();
                continue;
            }
            let mut layer: Vec<Hash256> = have.into_iter().flatten().copied().collect();
            layer.truncate(n.pieces);
            for &i in &n.files {
                if let Some(slot) = v2.piece_layers.get_mut(i) {
                    *slot = Some(layer.clone());
                }
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::metainfo::{FilePath, V2File};

    /// A v2 torrent of 32 KiB pieces (height 1) whose files have `blocks`
    /// 16 KiB blocks each; returns it with each file's whole tree.
    fn torrent(blocks: &[usize]) -> (V2Info, Vec<Vec<Vec<Hash256>>>) {
        let piece_length = 32768;
        let (mut files, mut layers, mut trees, mut first_piece) = (vec![], vec![], vec![], 0);
        for (i, &n) in blocks.iter().enumerate() {
            let leaves: Vec<Hash256> = (0..n)
                .map(|j| merkle::sha256(&[i as u8, j as u8, (j >> 8) as u8]))
                .collect();
            let (layer, root) = merkle::layer_and_root(&leaves, piece_length);
            files.push(V2File {
                path: FilePath::from_elements([format!("f{i}")]),
                length: n as u64 * merkle::BLOCK_LEN,
                pieces_root: Some(root),
                first_piece,
                symlink: false,
                executable: false,
            });
            first_piece += layer.len().max(1) as u64;
            layers.push((!layer.is_empty()).then_some(layer));
            trees.push(hash_msg::tree_layers(&leaves));
        }
        let v2 = V2Info {
            piece_length,
            files,
            num_pieces: first_piece,
            piece_layers: layers,
        };
        (v2, trees)
    }

    #[test]
    fn answers_from_the_tree_fill_the_missing_layers() {
        // 13 blocks: 7 pieces, one request of 8; 1500 blocks: 750 pieces,
        // two requests of 512; a file of one piece needs nothing.
        let (full, trees) = torrent(&[13, 2, 1500]);
        let mut v2 = full.clone();
        v2.piece_layers = vec![None; 3];
        let plan = LayerPlan::of(&v2).unwrap();
        let reqs = plan.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!((reqs[0].base_layer, reqs[0].length), (1, 8));
        assert_eq!((reqs[2].index, reqs[2].length), (512, 512));
        let mut got = HashMap::new();
        assert_eq!(plan.fill(&got, &mut v2), 3);
        for r in &reqs {
            let tree = if r.length == 8 { &trees[0] } else { &trees[2] };
            let hashes = hash_msg::answer(r, tree).unwrap();
            // Any changed hash fails.
            let mut bad = hashes.clone();
            bad[hashes.len() - 1][5] ^= 1;
            assert!(plan.check(r, &bad).is_none());
            // An answer for another root or a shorter proof fails.
            let short = HashRequest {
                proof_layers: r.proof_layers - 1,
                ..*r
            };
            assert!(plan
                .check(&short, &hash_msg::answer(&short, tree).unwrap())
                .is_none());
            got.insert(*r, plan.check(r, &hashes).unwrap());
        }
        assert_eq!(plan.fill(&got, &mut v2), 0);
        assert_eq!(v2, full);
        assert_eq!(v2.missing_layers(), 0);
    }

    #[test]
    fn nothing_to_fetch_when_every_layer_is_there() {
        let (v2, _) = torrent(&[13, 1]);
        assert!(LayerPlan::of(&v2).is_none());
    }
}
