//! The BitTorrent v2 merkle tree (BEP 52): SHA-256 over 16 KiB blocks.
//!
//! Each non-empty file has its own tree. Its leaves are the SHA-256 of the
//! file's 16 KiB blocks (the last block may be shorter and is hashed as it
//! is); the leaf count is rounded up to a power of two with leaves of 32
//! zero bytes. A node is the SHA-256 of its two children concatenated; the
//! top is the file's `pieces root`.
//!
//! The *piece layer* is the layer in which one hash covers `piece length`
//! bytes; a torrent's `piece layers` carries it for every file larger than
//! one piece, without the hashes that cover only padding. To get the root
//! back from a piece layer, the missing hashes are those of a subtree of
//! zero leaves of the piece's height ([`pad_hash`]).

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash256 = [u8; 32];

/// Bytes per leaf of the tree.
pub const BLOCK_LEN: u64 = 16 * 1024;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash256 {
    Sha256::digest(data).into()
}

/// The parent of two nodes.
pub fn hash_pair(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a subtree of `2^height` zero leaves (height 0 is a zero
/// leaf).
pub fn pad_hash(height: u32) -> Hash256 {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = hash_pair(&h, &h);
    }
    h
}

/// Number of 16 KiB blocks (leaves that hold data) of a file of `len` bytes.
pub fn blocks(len: u64) -> u64 {
    len.div_ceil(BLOCK_LEN)
}

/// Reduce `layer` (whose nodes are `height` levels above the leaves) to its
/// root, padding it to the next power of two with [`pad_hash`]`(height)`.
/// The root of an empty layer is the pad hash itself.
pub fn root_of_layer(layer: &[Hash256], height: u32) -> Hash256 {
    let mut pad = pad_hash(height);
    let width = layer.len().max(1).next_power_of_two();
    let mut level: Vec<Hash256> = layer.to_vec();
    let mut len = width;
    while len > 1 {
        let next: Vec<Hash256> = (0..len / 2)
            .map(|i| {
                let l = level.get(2 * i).unwrap_or(&pad);
                let r = level.get(2 * i + 1).unwrap_or(&pad);
                hash_pair(l, r)
            })
            .collect();
        pad = hash_pair(&pad, &pad);
        level = next;
        len /= 2;
    }
    level.first().copied().unwrap_or(pad)
}

/// Height of the piece layer above the leaves: `log2(piece_length / 16 KiB)`.
/// `piece_length` must be a power of two of at least 16 KiB.
pub fn piece_height(piece_length: u64) -> u32 {
    (piece_length / BLOCK_LEN).max(1).trailing_zeros()
}

/// A file's piece layer and root from its leaf hashes (one per 16 KiB
/// block). The layer is empty when the file fits in one piece (BEP 52
/// stores no layer for it).
pub fn layer_and_root(leaves: &[Hash256], piece_length: u64) -> (Vec<Hash256>, Hash256) {
    let per_piece = (piece_length / BLOCK_LEN).max(1) as usize;
    if leaves.len() <= per_piece {
        return (Vec::new(), root_of_layer(leaves, 0));
    }
    let height = piece_height(piece_length);
    let layer: Vec<Hash256> = leaves
        .chunks(per_piece)
        .map(|chunk| {
            // A full subtree of `per_piece` leaves, zero-padded.
            let mut padded = chunk.to_vec();
            padded.resize(per_piece, [0; 32]);
            root_of_layer(&padded, 0)
        })
        .collect();
    let root = root_of_layer(&layer, height);
    (layer, root)
}

/// The root a file's piece layer hashes up to.
pub fn root_from_piece_layer(layer: &[Hash256], piece_length: u64) -> Hash256 {
    root_of_layer(layer, piece_height(piece_length))
}

/// Leaf hashes of `data` (a whole file, or a whole number of blocks of one
/// followed by its tail).
pub fn leaf_hashes(data: &[u8]) -> Vec<Hash256> {
    data.chunks(BLOCK_LEN as usize).map(sha256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // FIPS 180-2 example "abc".
        let h = sha256(b"abc");
        assert_eq!(
            h[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "sha256(abc) starts ba7816bf"
        );
        assert_eq!(pad_hash(0), [0; 32]);
        assert_eq!(pad_hash(1), hash_pair(&[0; 32], &[0; 32]));
    }

    #[test]
    fn one_block_file_root_is_its_hash() {
        let data = vec![7u8; 100];
        let (layer, root) = layer_and_root(&leaf_hashes(&data), 16384);
        assert!(layer.is_empty());
        assert_eq!(root, sha256(&data));
    }

    #[test]
    fn three_blocks_pad_with_a_zero_leaf() {
        let data = vec![1u8; 2 * 16384 + 5];
        let l = leaf_hashes(&data);
        assert_eq!(l.len(), 3);
        let want = hash_pair(&hash_pair(&l[0], &l[1]), &hash_pair(&l[2], &[0; 32]));
        let (layer, root) = layer_and_root(&l, 65536);
        assert!(layer.is_empty());
        assert_eq!(root, want);
        // With 16 KiB pieces the layer is the leaves themselves.
        let (layer, root16) = layer_and_root(&l, 16384);
        assert_eq!(layer, l);
        assert_eq!(root16, want);
        assert_eq!(root_from_piece_layer(&layer, 16384), want);
    }

    #[test]
    fn piece_layer_hashes_up_to_the_root() {
        // 5 pieces of 32 KiB (2 leaves each), the last one short.
        let data: Vec<u8> = (0..(4 * 32768 + 20000)).map(|i| (i % 251) as u8).collect();
        let leaves = leaf_hashes(&data);
        assert_eq!(leaves.len(), 10);
        let (layer, root) = layer_and_root(&leaves, 32768);
        assert_eq!(layer.len(), 5);
        // The tree over all leaves padded to 16.
        assert_eq!(root, root_of_layer(&leaves, 0));
        assert_eq!(root_from_piece_layer(&layer, 32768), root);
        let mut bad = layer.clone();
        bad[4][0] ^= 1;
        assert_ne!(root_from_piece_layer(&bad, 32768), root);
        // The last piece's hash covers one real leaf and one zero leaf.
        assert_eq!(layer[4], hash_pair(&leaves[8], &leaves[9]));
        assert_eq!(piece_height(32768), 1);
        assert_eq!(piece_height(16384), 0);
    }
}
