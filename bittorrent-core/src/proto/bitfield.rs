//! The piece bitfield of BEP 3: bit `i` (most significant bit first) says
//! whether piece `i` is present. Spare bits at the end must be zero.

/// A fixed-length set of piece indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: usize,
    count: usize,
}

/// Why a received bitfield was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitfieldError {
    /// The byte length is not `ceil(num_pieces / 8)`.
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// A bit past the last piece is set.
    SpareBitsSet,
}

impl std::fmt::Display for BitfieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BitfieldError::WrongLength { expected, actual } => {
                write!(f, "bitfield of {actual} bytes, expected {expected}")
            }
            BitfieldError::SpareBitsSet => f.write_str("bitfield has spare bits set"),
        }
    }
}

impl std::error::Error for BitfieldError {}

impl Bitfield {
    /// An empty bitfield for `len` pieces.
    pub fn new(len: usize) -> Bitfield {
        Bitfield {
            bytes: vec![0; len.div_ceil(8)],
            len,
            count: 0,
        }
    }

    /// A full bitfield for `len` pieces.
    pub fn full(len: usize) -> Bitfield {
        let mut b = Bitfield::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Check and adopt bytes received from a peer for a torrent of `len` pieces.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Result<Bitfield, BitfieldError> {
        let expected = len.div_ceil(8);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                expected,
                actual: bytes.len(),
            });
        }
        let spare = expected * 8 - len;
        if spare > 0 {
            let mask = (1u8 << spare) - 1;
            if bytes.last().is_some_and(|b| b & mask != 0) {
                return Err(BitfieldError::SpareBitsSet);
            }
        }
        let count = bytes.iter().map(|b| b.count_ones() as usize).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            count,
        })
    }

    /// Adopt a peer's `bitfield` message for a torrent of `len` pieces the
    /// way libtorrent, Transmission and qBittorrent do: the byte length must
    /// be right, spare bits past the last piece are ignored (cleared).
    pub fn from_wire(bytes: &[u8], len: usize) -> Result<Bitfield, BitfieldError> {
        let expected = len.div_ceil(8);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                expected,
                actual: bytes.len(),
            });
        }
        let mut bytes = bytes.to_vec();
        let spare = expected * 8 - len;
        if let (true, Some(last)) = (spare > 0, bytes.last_mut()) {
            *last &= !((1u8 << spare) - 1);
        }
        let count = bytes.iter().map(|b| b.count_ones() as usize).sum();
        Ok(Bitfield { bytes, len, count })
    }

    /// Number of pieces this bitfield covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitfield covers no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether piece `i` is set (false when out of range).
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.bytes[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// Set piece `i`; returns whether it changed. Out of range is ignored.
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[i / 8] |= 0x80 >> (i % 8);
        self.count += 1;
        true
    }

    /// Clear piece `i`; returns whether it changed.
    pub fn clear(&mut self, i: usize) -> bool {
        if !self.get(i) {
            return false;
        }
        self.bytes[i / 8] &= !(0x80 >> (i % 8));
        self.count -= 1;
        true
    }

    /// Number of pieces set.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether every piece is set.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// The wire form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Indices of the pieces set.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_bits_and_length_checked() {
        assert!(Bitfield::from_bytes(&[0xff, 0x80], 9).is_ok());
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xc0], 9),
            Err(BitfieldError::SpareBitsSet)
        );
        assert!(matches!(
            Bitfield::from_bytes(&[0xff], 9),
            Err(BitfieldError::WrongLength { .. })
        ));
        let w = Bitfield::from_wire(&[0xff, 0xc0], 9).unwrap();
        assert_eq!(
            (w.count(), w.get(8), w.as_bytes()),
            (9, true, &[0xff, 0x80][..])
        );
        assert!(Bitfield::from_wire(&[0xff], 9).is_err());
        assert!(Bitfield::from_wire(&[0xff, 0, 0], 9).is_err());
        let b = Bitfield::from_bytes(&[0xa0], 3).unwrap();
        assert!(b.get(0) && !b.get(1) && b.get(2) && !b.get(3));
        assert_eq!(b.count(), 2);
    }

    #[test]
    fn set_and_clear_count() {
        let mut b = Bitfield::new(10);
        assert!(b.set(9));
        assert!(!b.set(9));
        assert!(!b.set(10));
        assert_eq!(b.count(), 1);
        assert!(b.clear(9));
        assert_eq!(b.count(), 0);
        assert!(Bitfield::full(10).is_full());
    }
}
