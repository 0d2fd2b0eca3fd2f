//! BEP 52 hash requests for the layers below the piece layer (the 16 KiB
//! block hashes and the layers between them and the piece layer): the
//! leaf hashes are not kept, so they are computed from the pieces' data,
//! which must be verified (the caller's `read` gives only pieces we have),
//! and checked against the piece layer before anything is sent. The proof
//! above the requested range comes from the piece's own subtree (layers
//! below the piece layer) and from the file's [`PieceTrees`] (at and above
//! it).
//!
//! Bounded: a request may cover at most [`MAX_LEAVES`] blocks of data
//! (8 MiB read and hashed), so a peer cannot make one request cost more.
//!
//! Also here: checking the block hashes of one piece that we asked for
//! ([`piece_request`], [`verify_piece_blocks`]) and the leaf hashes of a
//! piece's received blocks ([`leaves_of_blocks`]).

use crate::proto::hash_msg::{self, HashRequest};
use crate::proto::merkle::{self, Hash256, BLOCK_LEN};
use crate::proto::piece_tree::PieceTrees;

/// Most 16 KiB blocks one request may make us read and hash (BEP 52's
/// 512 hashes of the block layer: 8 MiB).
pub const MAX_LEAVES: u64 = 512;

/// The leaf hashes of one piece's bytes: `real_len` bytes are file data
/// (the rest of the piece is padding), `leaves` leaves wide (blocks past
/// the data are zero leaves, as BEP 52's tree pads them).
pub fn leaves_of_piece(data: &[u8], real_len: u64, leaves: usize) -> Vec<Hash256> {
    let real = usize::try_from(real_len)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let mut out: Vec<Hash256> = data[..real]
        .chunks(BLOCK_LEN as usize)
        .map(merkle::sha256)
        .collect();
    out.resize(leaves.max(out.len()), [0; 32]);
    out
}

/// The leaf hash of each received block of a piece (16 KiB blocks in
/// order, the last maybe shorter) whose first `real_len` bytes are file
/// data: a block wholly past the data is a zero leaf whatever it holds.
pub fn leaves_of_blocks(blocks: &[Vec<u8>], real_len: u64) -> Vec<Hash256> {
    let mut left = real_len;
    blocks
        .iter()
        .map(|b| {
            let n = (b.len() as u64).min(left);
            left -= n;
            if n == 0 {
                [0; 32]
            } else {
                merkle::sha256(&b[..n as usize])
            }
        })
        .collect()
}

/// The hashes answering `req`, a request for a layer below the piece layer
/// of a file in `trees`, reading piece `p` of the torrent with `read(p)`
/// (`None`: we do not have it, reject); `None` when it must be rejected
/// (unknown root, base layer at or above the piece layer: see
/// [`PieceTrees::answer`], too much data, a range or proof past the tree,
/// a piece we lack or whose data does not match its piece-layer hash).
pub fn answer(
    trees: &PieceTrees,
    req: &HashRequest,
    mut read: impl FnMut(u64) -> Option<Vec<u8>>,
) -> Option<Vec<Hash256>> {
    req.validate().ok()?;
    let place = trees.place(&req.pieces_root)?;
    let p = place.piece_height;
    let b = req.base_layer;
    if b >= p {
        return None;
    }
    let piece_len = BLOCK_LEN << p;
    let span = req.length.trailing_zeros();
    // Base-layer nodes per piece, the pieces the range covers.
    let per = 1u64 << (p - b);
    let first = u64::from(req.index) / per;
    let count = (u64::from(req.length) / per).max(1);
    let leaves_per_piece = 1usize << p;
    if count.checked_mul(leaves_per_piece as u64)? > MAX_LEAVES {
        return None;
    }
    let piece_row = place.layers.first()?;
    if first.checked_add(count)? > piece_row.len() as u64 {
        return None;
    }
    let real_pieces = place.length.div_ceil(piece_len);
    let mut leaves: Vec<Hash256> = Vec::with_capacity(count as usize * leaves_per_piece);
    for j in first..first + count {
        if j >= real_pieces {
            // Past the file: a subtree of zero leaves.
            leaves.resize(leaves.len() + leaves_per_piece, [0; 32]);
            continue;
        }
        let data = read(place.first_piece.checked_add(j)?)?;
        let real = (place.length - j * piece_len).min(piece_len);
        let l = leaves_of_piece(&data, real, leaves_per_piece);
        // The data must be what the piece layer says (it was verified; a
        // file changed on disk since is not served).
        if l.len() != leaves_per_piece
            || merkle::root_of_layer(&l, 0) != *piece_row.get(j as usize)?
        {
            return None;
        }
        leaves.extend(l);
    }
    let local = hash_msg::tree_layers(&leaves);
    let start = u64::from(req.index) - first * per;
    let base = local.get(b as usize)?;
    let mut out = base
        .get(start as usize..start as usize + req.length as usize)?
        .to_vec();
    let mut pos = u64::from(req.index) >> span;
    for k in 0..req.uncles() as u32 {
        let layer = b + span + k;
        let sib = pos ^ 1;
        let h = if layer < p {
            // Inside the piece: from its own subtree.
            let off = first << (p - layer);
            *local
                .get(layer as usize)?
                .get(sib.checked_sub(off)? as usize)?
        } else {
            *place.layers.get((layer - p) as usize)?.get(sib as usize)?
        };
        out.push(h);
        pos >>= 1;
    }
    Some(out)
}

/// The request for the block hashes of piece `j` of a file (its `root`)
/// whose piece layer is `piece_height` layers above the leaves: every
/// block of the piece, with no uncle (the proof layers up to the piece
/// layer are implied by the blocks); `None` for pieces of one block or of
/// more than 512.
pub fn piece_request(root: Hash256, piece_height: u32, j: u64) -> Option<HashRequest> {
    let length = 1u32.checked_shl(piece_height)?;
    if !(2..=hash_msg::MAX_LENGTH).contains(&length) {
        return None;
    }
    let req = HashRequest {
        pieces_root: root,
        base_layer: 0,
        index: u32::try_from(j.checked_mul(u64::from(length))?).ok()?,
        length,
        proof_layers: piece_height - 1,
    };
    req.validate().ok()?;
    Some(req)
}

/// The block hashes of an answer to [`piece_request`], now trusted: they
/// hash up to the piece's `piece_hash` (its piece-layer hash). `None` when
/// they do not (the sender lied).
pub fn verify_piece_blocks(
    req: &HashRequest,
    hashes: &[Hash256],
    piece_hash: &Hash256,
) -> Option<Vec<Hash256>> {
    if hashes.len() != req.length as usize + req.uncles() || req.uncles() != 0 {
        return None;
    }
    (merkle::root_of_layer(hashes, 0) == *piece_hash).then(|| hashes.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::metainfo::{FilePath, V2File, V2Info};

    /// A torrent of 64 KiB pieces (4 blocks, height 2) with one file of
    /// `len` bytes at piece `first`, and its bytes.
    fn file(len: usize, first: u64) -> (PieceTrees, Vec<u8>, Vec<Vec<Hash256>>, Hash256) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 5000) as u8).collect();
        let leaves = merkle::leaf_hashes(&data);
        let (layer, root) = merkle::layer_and_root(&leaves, 65536);
        let v2 = V2Info {
            piece_length: 65536,
            files: vec![V2File {
                path: FilePath::from_elements(["f".to_string()]),
                length: len as u64,
                pieces_root: Some(root),
                first_piece: first,
                symlink: false,
                executable: false,
            }],
            num_pieces: first + layer.len() as u64,
            piece_layers: vec![Some(layer)],
        };
        let full = hash_msg::tree_layers(&leaves);
        (PieceTrees::of(&v2), data, full, root)
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

    /// Piece `p` of the torrent, zero-padded to 64 KiB (as the aligned
    /// view reads it).
    fn reader(data: &[u8], first: u64) -> impl FnMut(u64) -> Option<Vec<u8>> + '_ {
        move |p| {
            let j = p.checked_sub(first)? as usize;
            let mut v = data.get(j * 65536..)?.to_vec();
            v.truncate(65536);
            v.resize(65536, 0);
            Some(v)
        }
    }

    #[test]
    fn block_layer_answers_equal_the_whole_trees_and_verify() {
        // 11 pieces, the last short and ending inside a block: 42 blocks,
        // a tree 6 layers high over 64 leaves.
        let len = 41 * 16384 + 1000;
        let (trees, data, full, root) = file(len, 3);
        assert_eq!(full.len(), 7);
        for (b, index, length, proof) in [
            (0u32, 0u32, 4u32, 1u32), // one piece, no uncle
            (0, 8, 4, 5),             // one piece, proof to the root
            (0, 40, 4, 5),            // the last piece (2 real blocks)
            (0, 2, 2, 5),             // half a piece: an uncle inside it
            (0, 0, 32, 5),            // 8 pieces
            (0, 0, 64, 5),            // all, padding pieces included
            (1, 4, 2, 4),             // layer 1, one piece
            (1, 0, 32, 4),            // layer 1, every piece
            (0, 44, 4, 5),            // a padding piece alone
        ] {
            let r = req(root, b, index, length, proof);
            let got = answer(&trees, &r, reader(&data, 3)).unwrap_or_else(|| panic!("{r:?}"));
            assert_eq!(Some(got.clone()), hash_msg::answer(&r, &full), "{r:?}");
            if b + length.trailing_zeros() + r.uncles() as u32 == 6 {
                assert!(hash_msg::verify(&r, &got, &root, 6).is_some(), "{r:?}");
            }
        }
        // At or above the piece layer: not this module's.
        assert!(answer(&trees, &req(root, 2, 0, 2, 0), reader(&data, 3)).is_none());
        // A piece we lack, a changed file, an unknown root, past the tree.
        let r = req(root, 0, 8, 4, 5);
        assert!(answer(&trees, &r, |_| None).is_none());
        let mut changed = data.clone();
        changed[8 * 16384 + 5] ^= 1;
        assert!(answer(&trees, &r, reader(&changed, 3)).is_none());
        assert!(answer(&trees, &req([1; 32], 0, 8, 4, 5), reader(&data, 3)).is_none());
        assert!(answer(&trees, &req(root, 0, 64, 4, 0), reader(&data, 3)).is_none());
        assert!(answer(&trees, &req(root, 0, 0, 4, 6), reader(&data, 3)).is_none());
        // Over MAX_LEAVES of data: layer 1, 512 hashes = 1024 blocks.
        let (big, bdata, _, broot) = file(1100 * 16384, 0);
        let r = req(broot, 1, 0, 512, 1);
        assert!(answer(&big, &r, reader(&bdata, 0)).is_none());
        assert!(answer(&big, &req(broot, 0, 0, 512, 8), reader(&bdata, 0)).is_some());
    }

    #[test]
    fn a_pieces_block_hashes_verify_and_find_the_bad_block() {
        let len = 41 * 16384 + 1000;
        let (trees, data, _, root) = file(len, 3);
        let layer = trees.place(&root).unwrap().layers[0].clone();
        for j in [0u64, 10] {
            let r = piece_request(root, 2, j).unwrap();
            assert_eq!((r.index, r.length, r.uncles()), (j as u32 * 4, 4, 0));
            let hashes = answer(&trees, &r, reader(&data, 3)).unwrap();
            let good = verify_piece_blocks(&r, &hashes, &layer[j as usize]).unwrap();
            let mut wrong = hashes.clone();
            wrong[1][0] ^= 1;
            assert!(verify_piece_blocks(&r, &wrong, &layer[j as usize]).is_none());
            // The received blocks, one corrupted: only it differs.
            let mut piece = reader(&data, 3)(3 + j).unwrap();
            let real = (len as u64 - j * 65536).min(65536);
            piece[16384 + 3] ^= 0xff;
            let blocks: Vec<Vec<u8>> = piece.chunks(16384).map(<[u8]>::to_vec).collect();
            let got = leaves_of_blocks(&blocks, real);
            let bad: Vec<usize> = (0..4).filter(|&b| got[b] != good[b]).collect();
            assert_eq!(bad, vec![1]);
        }
        assert!(piece_request(root, 0, 0).is_none(), "one block a piece");
        assert!(piece_request(root, 10, 0).is_none(), "1024 blocks a piece");
    }
}
