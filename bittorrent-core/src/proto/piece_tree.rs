//! The upper part of each file's merkle tree (BEP 52) that a torrent's
//! `piece layers` give: the piece layer and every layer above it, up to
//! the file's `pieces root`. Kept to answer `hash request`s
//! ([`crate::proto::hash_msg`]) for layers at or above the piece layer;
//! the block layers below it are not kept: a request for them is answered
//! from the file's data by `proto/block_layer.rs`, which finds the
//! file's place here ([`PieceTrees::place`]).

use crate::proto::hash_msg::{self, HashRequest};
use crate::proto::merkle::{self, Hash256};
use crate::proto::metainfo::V2Info;
use std::collections::HashMap;

/// One file's tree from its piece layer up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PieceTree {
    /// Layers above the leaves of the piece layer (`log2(piece length /
    /// 16 KiB)`).
    piece_height: u32,
    /// The piece layer padded to a power of two with the hashes of zero
    /// subtrees, then each layer above it; the last is `[root]`.
    layers: Vec<Vec<Hash256>>,
    /// The file's first piece in the torrent's piece space.
    first_piece: u64,
    /// The file's length in bytes.
    length: u64,
}

/// Where a file of a [`PieceTrees`] is, to answer block-layer requests
/// from its data (`proto/block_layer.rs`).
#[derive(Debug, Clone, Copy)]
pub struct FilePlace<'a> {
    /// Layers above the leaves of the piece layer.
    pub piece_height: u32,
    /// The file's first piece in the torrent's piece space.
    pub first_piece: u64,
    /// The file's length in bytes.
    pub length: u64,
    /// The piece layer padded to a power of two, then each layer above
    /// it; the last is `[root]`.
    pub layers: &'a [Vec<Hash256>],
}

/// The piece-layer trees of a torrent's files, by `pieces root` (files
/// with identical contents share one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PieceTrees {
    by_root: HashMap<Hash256, PieceTree>,
}

/// Every layer of a tree whose lowest layer is `layer`, `height` layers
/// above the leaves: padded to a power of two with [`merkle::pad_hash`],
/// the root last.
fn layers_from(layer: &[Hash256], height: u32) -> Vec<Vec<Hash256>> {
    let width = layer.len().max(1).next_power_of_two();
    let pad = merkle::pad_hash(height);
    let mut row = layer.to_vec();
    row.resize(width, pad);
    let mut layers = vec![row];
    while layers.last().is_some_and(|l| l.len() > 1) {
        let below = layers.last().map(Vec::as_slice).unwrap_or_default();
        let up = below
            .chunks(2)
            .map(|p| merkle::hash_pair(&p[0], &p[1]))
            .collect();
        layers.push(up);
    }
    layers
}

impl PieceTrees {
    /// The trees of every file of `v2` whose piece layer is known (files of
    /// one piece have none: their root is all there is above the blocks).
    pub fn of(v2: &V2Info) -> PieceTrees {
        let piece_height = merkle::piece_height(v2.piece_length);
        let mut by_root = HashMap::new();
        for (f, layer) in v2.files.iter().zip(&v2.piece_layers) {
            let (Some(root), Some(layer)) = (f.pieces_root, layer) else {
                continue;
            };
            if layer.is_empty() || by_root.contains_key(&root) {
                continue;
            }
            let layers = layers_from(layer, piece_height);
            // Loading checked the layer against the root; a tree that does
            // not reach it would only answer hashes that fail to verify.
            if layers.last().and_then(|l| l.first()) == Some(&root) {
                by_root.insert(
                    root,
                    PieceTree {
                        piece_height,
                        layers,
                        first_piece: f.first_piece,
                        length: f.length,
                    },
                );
            }
        }
        PieceTrees { by_root }
    }

    /// No tree at all (a v1 torrent, or only files of one piece).
    pub fn is_empty(&self) -> bool {
        self.by_root.is_empty()
    }

    /// The tree of the file whose root is `root`, and where the file is.
    pub fn place(&self, root: &Hash256) -> Option<FilePlace<'_>> {
        self.by_root.get(root).map(|t| FilePlace {
            piece_height: t.piece_height,
            first_piece: t.first_piece,
            length: t.length,
            layers: &t.layers,
        })
    }

    /// The hashes answering `req` (its base hashes, then its uncle hashes),
    /// or `None` when it must be rejected: invalid, an unknown root, a base
    /// layer below the piece layer, or a range or proof beyond the tree.
    pub fn answer(&self, req: &HashRequest) -> Option<Vec<Hash256>> {
        let tree = self.by_root.get(&req.pieces_root)?;
        let shifted = HashRequest {
            base_layer: req.base_layer.checked_sub(tree.piece_height)?,
            ..*req
        };
        hash_msg::answer(&shifted, &tree.layers)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::metainfo::V2File;

    fn leaves(n: usize, seed: u8) -> Vec<Hash256> {
        (0..n)
            .map(|i| merkle::sha256(&[seed, (i % 256) as u8, (i / 256) as u8]))
            .collect()
    }

    /// A torrent of 64 KiB pieces (height 2) with a file of `blocks[i]`
    /// blocks each.
    fn info(blocks: &[usize]) -> (V2Info, Vec<Vec<Hash256>>) {
        let piece_length = 65536;
        let mut files = Vec::new();
        let mut piece_layers = Vec::new();
        let mut all_leaves = Vec::new();
        let mut first_piece = 0;
        for (i, &n) in blocks.iter().enumerate() {
            let l = leaves(n, i as u8);
            let (layer, root) = merkle::layer_and_root(&l, piece_length);
            let pieces = layer.len().max(1) as u64;
            files.push(V2File {
                path: crate::proto::metainfo::FilePath::from_elements([format!("f{i}")]),
                length: n as u64 * merkle::BLOCK_LEN,
                pieces_root: Some(root),
                first_piece,
                symlink: false,
                executable: false,
            });
            first_piece += pieces;
            piece_layers.push((!layer.is_empty()).then_some(layer));
            all_leaves.push(l);
        }
        (
            V2Info {
                piece_length,
                files,
                num_pieces: first_piece,
                piece_layers,
            },
            all_leaves,
        )
    }

    fn req(root: Hash256, base_layer: u32, index: u32, length: u32, proof: u32) -> HashRequest {
        HashRequest {
            pieces_root: root,
            base_layer,
            index,
            length,
            proof_layers: proof,
        }
    }

    #[test]
    fn answers_piece_layer_requests_that_verify() {
        // 11 pieces of 4 blocks (the last one short): a tree 6 layers high
        // over 64 leaves, the piece layer (height 2) 16 wide.
        let (v2, leaves) = info(&[42, 3]);
        let trees = PieceTrees::of(&v2);
        assert_eq!(trees.by_root.len(), 1, "a file of one piece has no tree");
        let root = v2.files[0].pieces_root.unwrap();
        let full = hash_msg::tree_layers(&leaves[0]);
        assert_eq!(full.len(), 7);
        // What libtorrent asks: the whole piece layer, proof to the root.
        for (index, length, proof) in [(0, 16u32, 3u32), (0, 2, 3), (8, 4, 3), (4, 4, 1), (0, 8, 3)]
        {
            let r = req(root, 2, index, length, proof);
            let got = trees.answer(&r).unwrap_or_else(|| panic!("{r:?}"));
            // The same as from the whole tree over the leaves.
            assert_eq!(Some(got.clone()), hash_msg::answer(&r, &full), "{r:?}");
            if 2 + length.trailing_zeros() + r.uncles() as u32 == 6 {
                let base = hash_msg::verify(&r, &got, &root, 6).unwrap();
                assert_eq!(base[..], full[2][index as usize..][..length as usize]);
            }
        }
        // Higher layers too.
        let r = req(root, 3, 0, 2, 2);
        assert_eq!(trees.answer(&r), hash_msg::answer(&r, &full));
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        let (v2, _) = info(&[42]);
        let trees = PieceTrees::of(&v2);
        let root = v2.files[0].pieces_root.unwrap();
        assert!(trees.answer(&req(root, 2, 0, 16, 3)).is_some());
        // Unknown root, block layers, range past the layer, proof reaching
        // past the root, an invalid count.
        assert!(trees.answer(&req([9; 32], 2, 0, 16, 3)).is_none());
        assert!(trees.answer(&req(root, 0, 0, 4, 3)).is_none());
        assert!(trees.answer(&req(root, 1, 0, 4, 3)).is_none());
        assert!(trees.answer(&req(root, 2, 16, 16, 0)).is_none());
        assert!(trees.answer(&req(root, 2, 0, 16, 4)).is_none());
        assert!(trees.answer(&req(root, 2, 0, 3, 0)).is_none());
        assert!(trees.answer(&req(root, 7, 0, 2, 0)).is_none());
        assert!(PieceTrees::of(&info(&[1, 4]).0).is_empty());
    }
}
