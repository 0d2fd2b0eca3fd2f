//! DHT node ids (BEP 5): 160-bit ids and their XOR distance.

use crate::proto::metainfo::InfoHash;
use std::fmt;

/// Number of id bits, hence most buckets.
pub const ID_BITS: usize = 160;

/// A 160-bit DHT node id (also used for info-hash targets).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// A random id.
    pub fn random() -> NodeId {
        let mut out = [0u8; 20];
        for chunk in out.chunks_mut(8) {
            let r = crate::util::rng::random_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        NodeId(out)
    }

    /// XOR distance to `other`; compare distances as byte arrays.
    pub fn distance(&self, other: &NodeId) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        d
    }

    /// Number of leading bits shared with `other` (160 if equal).
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        for (i, b) in self.distance(other).iter().enumerate() {
            if *b != 0 {
                return i * 8 + b.leading_zeros() as usize;
            }
        }
        ID_BITS
    }

    /// A random id sharing exactly `prefix` leading bits with `self`
    /// (`prefix` < 160), for refreshing the bucket at that depth.
    pub fn random_with_prefix(&self, prefix: usize) -> NodeId {
        let prefix = prefix.min(ID_BITS - 1);
        let mut r = NodeId::random();
        for bit in 0..=prefix {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let want = if bit == prefix {
                !self.0[byte] & mask
            } else {
                self.0[byte] & mask
            };
            r.0[byte] = (r.0[byte] & !mask) | want;
        }
        r
    }
}

impl From<InfoHash> for NodeId {
    fn from(ih: InfoHash) -> NodeId {
        NodeId(ih.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_prefix() {
        let a = NodeId([0; 20]);
        let mut b = NodeId([0; 20]);
        assert_eq!(a.common_prefix_len(&b), 160);
        b.0[0] = 0x80;
        assert_eq!(a.common_prefix_len(&b), 0);
        b.0[0] = 0;
        b.0[2] = 0x10;
        assert_eq!(a.common_prefix_len(&b), 19);
        assert_eq!(a.distance(&b)[2], 0x10);
        for p in [0, 1, 7, 8, 100, 159] {
            let own = NodeId::random();
            assert_eq!(own.common_prefix_len(&own.random_with_prefix(p)), p);
        }
    }
}
