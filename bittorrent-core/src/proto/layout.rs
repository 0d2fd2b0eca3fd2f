//! Piece and block geometry: the one place that checks indices coming from
//! the wire against the torrent's shape.

use crate::proto::metainfo::Info;
use crate::proto::wire::{BlockRef, BLOCK_SIZE};

/// The shape of a torrent's byte stream: pieces of `piece_length` bytes
/// (the last may be short), each split into 16 KiB blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per piece.
    pub piece_length: u64,
    /// Total bytes.
    pub total_length: u64,
    /// Number of pieces.
    pub num_pieces: u32,
}

impl Layout {
    /// The layout of a torrent's info dictionary. A v2-only torrent has no
    /// SHA-1 `pieces`: its pieces are counted from the length of its
    /// piece-aligned view ([`crate::proto::metainfo::v2::aligned_view`]).
    pub fn of(info: &Info) -> Layout {
        let num_pieces = if info.pieces.is_empty() && info.piece_length > 0 {
            info.total_length.div_ceil(info.piece_length) as u32
        } else {
            info.pieces.len() as u32
        };
        Layout {
            piece_length: info.piece_length,
            total_length: info.total_length,
            num_pieces,
        }
    }

    /// Length of piece `index` in bytes (0 if out of range).
    pub fn piece_len(&self, index: u32) -> u32 {
        if index >= self.num_pieces {
            return 0;
        }
        let start = u64::from(index) * self.piece_length;
        (self.total_length - start).min(self.piece_length) as u32
    }

    /// Byte offset of piece `index` in the torrent.
    pub fn piece_offset(&self, index: u32) -> u64 {
        u64::from(index) * self.piece_length
    }

    /// Number of blocks in piece `index`.
    pub fn blocks_in_piece(&self, index: u32) -> u32 {
        self.piece_len(index).div_ceil(BLOCK_SIZE)
    }

    /// Block number `b` of piece `index`.
    pub fn block(&self, index: u32, b: u32) -> BlockRef {
        let begin = b * BLOCK_SIZE;
        BlockRef {
            index,
            begin,
            length: (self.piece_len(index) - begin).min(BLOCK_SIZE),
        }
    }

    /// Whether a request from a peer is inside the torrent and at most 16 KiB.
    pub fn valid_request(&self, r: &BlockRef) -> bool {
        r.index < self.num_pieces
            && r.length > 0
            && r.length <= BLOCK_SIZE
            && u64::from(r.begin) + u64::from(r.length) <= u64::from(self.piece_len(r.index))
    }

    /// Whether a received block is exactly one of the blocks we request
    /// (aligned to 16 KiB, of the right length).
    pub fn is_block(&self, index: u32, begin: u32, len: usize) -> bool {
        index < self.num_pieces
            && begin % BLOCK_SIZE == 0
            && begin < self.piece_len(index)
            && self.block(index, begin / BLOCK_SIZE).length as usize == len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_last_piece_and_blocks() {
        let l = Layout {
            piece_length: 32768,
            total_length: 32768 * 2 + 100,
            num_pieces: 3,
        };
        assert_eq!(l.piece_len(2), 100);
        assert_eq!(l.blocks_in_piece(0), 2);
        assert_eq!(l.blocks_in_piece(2), 1);
        assert_eq!(l.block(2, 0).length, 100);
        assert!(l.is_block(2, 0, 100));
        assert!(!l.is_block(2, 0, 16384));
        assert!(!l.valid_request(&BlockRef {
            index: 2,
            begin: 0,
            length: 101
        }));
        assert!(!l.valid_request(&BlockRef {
            index: 0,
            begin: 0,
            length: 16385
        }));
        assert!(!l.valid_request(&BlockRef {
            index: 3,
            begin: 0,
            length: 1
        }));
        assert!(l.valid_request(&BlockRef {
            index: 1,
            begin: 16384,
            length: 16384
        }));
        assert_eq!(l.piece_len(3), 0);
    }
}
