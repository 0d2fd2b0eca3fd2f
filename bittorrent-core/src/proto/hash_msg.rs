//! BEP 52 hash messages: `hash request` (id 21), `hashes` (22) and
//! `hash reject` (23), their codec with the limits a peer's input gets, how
//! to answer a request from a file's merkle tree and how to check an answer
//! against the file's `pieces root`.
//!
//! The peer thread answers `hash request`s (`engine::conn::peer::hashes`,
//! from the torrent's `proto::piece_tree::PieceTrees`); `wire::Message`
//! carries ids 21-23 raw (`Message::Hash`) and this module reads them. Our
//! requests for missing piece layers are planned and checked by
//! `proto::layer_plan` (sent by `engine::torrent::layers`).
//!
//! Payload (after the id byte), all integers big-endian u32:
//! `pieces root (32) | base layer | index | length | proof layers`, then for
//! `hashes` the hashes: `length` hashes of the base layer from `index`, then
//! one uncle hash per proof layer above the requested subtree (the first
//! `log2(length) - 1` proof layers are implied by the base hashes and not
//! sent), the uncle closest to the base first.

use crate::proto::merkle::{hash_pair, Hash256};
use std::fmt;

/// Message id of `hash request`.
pub const HASH_REQUEST: u8 = 21;
/// Message id of `hashes`.
pub const HASHES: u8 = 22;
/// Message id of `hash reject`.
pub const HASH_REJECT: u8 = 23;
/// Most hashes asked for in one request (BEP 52: SHOULD NOT exceed 512).
pub const MAX_LENGTH: u32 = 512;
/// Highest layer (base layer, or base plus proof layers) of any tree: a
/// file of 2^64 bytes in 16 KiB blocks has 50 layers above its leaves.
pub const MAX_LAYER: u32 = 64;
/// Bytes of the fixed part of the payload.
pub const HEADER_LEN: usize = 32 + 4 * 4;

/// What a request names: a range of one layer of one file's tree, with
/// the proof up towards the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// The file's merkle root.
    pub pieces_root: Hash256,
    /// Layers above the leaves (0: the 16 KiB block hashes).
    pub base_layer: u32,
    /// Offset, in hashes of the base layer, of the first one asked for.
    pub index: u32,
    /// How many hashes of the base layer (a power of two, at least 2).
    pub length: u32,
    /// Ancestor layers to prove the range with.
    pub proof_layers: u32,
}

/// One of the three hash messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashMessage {
    /// id 21
    Request(HashRequest),
    /// id 22: the base hashes, then the uncle hashes.
    Hashes {
        /// What is answered.
        request: HashRequest,
        /// `length` base hashes, then [`HashRequest::uncles`] uncle hashes.
        hashes: Vec<Hash256>,
    },
    /// id 23
    Reject(HashRequest),
}

/// Why a hash message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashMsgError {
    /// Not id 21, 22 or 23 (given).
    NotAHashMessage(u8),
    /// The payload is not `HEADER_LEN` bytes (plus whole hashes for
    /// `hashes`); the length given.
    BadLength(usize),
    /// `length` is not a power of two from 2 to [`MAX_LENGTH`] (given).
    BadCount(u32),
    /// `index` is not a multiple of `length`.
    Unaligned {
        /// The index.
        index: u32,
        /// The length.
        length: u32,
    },
    /// `base layer` or `base layer + proof layers` above [`MAX_LAYER`].
    LayerTooHigh(u32),
    /// A `hashes` message with a different number of hashes than its
    /// request implies (expected, got).
    WrongHashCount(usize, usize),
}

impl fmt::Display for HashMsgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashMsgError::NotAHashMessage(id) => write!(f, "message id {id} is not a hash message"),
            HashMsgError::BadLength(n) => write!(f, "hash message payload of {n} bytes"),
            HashMsgError::BadCount(n) => {
                write!(
                    f,
                    "hash count {n} is not a power of two from 2 to {MAX_LENGTH}"
                )
            }
            HashMsgError::Unaligned { index, length } => {
                write!(
                    f,
                    "hash index {index} is not a multiple of the count {length}"
                )
            }
            HashMsgError::LayerTooHigh(l) => write!(f, "hash layer {l} is above {MAX_LAYER}"),
            HashMsgError::WrongHashCount(want, got) => {
                write!(f, "{got} hashes where the request implies {want}")
            }
        }
    }
}

impl std::error::Error for HashMsgError {}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

impl HashRequest {
    /// Check the limits BEP 52 sets (and ours).
    pub fn validate(&self) -> Result<(), HashMsgError> {
        if !(2..=MAX_LENGTH).contains(&self.length) || !self.length.is_power_of_two() {
            return Err(HashMsgError::BadCount(self.length));
        }
        if self.index % self.length != 0 {
            return Err(HashMsgError::Unaligned {
                index: self.index,
                length: self.length,
            });
        }
        let top = self.base_layer.saturating_add(self.proof_layers);
        if top > MAX_LAYER {
            return Err(HashMsgError::LayerTooHigh(top));
        }
        Ok(())
    }

    /// Uncle hashes a `hashes` answer carries: one per proof layer above
    /// the subtree the base hashes span (`log2(length)` layers high).
    pub fn uncles(&self) -> usize {
        let implied = self.length.max(2).trailing_zeros() - 1;
        self.proof_layers.saturating_sub(implied) as usize
    }

    /// The fields of a hash message's payload read as they are, limits
    /// unchecked (to reject a request we refuse with its own fields);
    /// `None` when the payload is shorter than [`HEADER_LEN`].
    pub fn header(payload: &[u8]) -> Option<HashRequest> {
        (payload.len() >= HEADER_LEN).then(|| HashRequest::decode(payload))
    }

    fn decode(p: &[u8]) -> HashRequest {
        let mut pieces_root = [0u8; 32];
        pieces_root.copy_from_slice(&p[..32]);
        HashRequest {
            pieces_root,
            base_layer: be32(p, 32),
            index: be32(p, 36),
            length: be32(p, 40),
            proof_layers: be32(p, 44),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pieces_root);
        for x in [self.base_layer, self.index, self.length, self.proof_layers] {
            out.extend_from_slice(&x.to_be_bytes());
        }
    }
}

impl HashMessage {
    /// Decode the payload of message `id` (the bytes after the id).
    pub fn decode(id: u8, payload: &[u8]) -> Result<HashMessage, HashMsgError> {
        if !(HASH_REQUEST..=HASH_REJECT).contains(&id) {
            return Err(HashMsgError::NotAHashMessage(id));
        }
        let extra = payload.len().checked_sub(HEADER_LEN);
        let fixed = extra == Some(0);
        if !(fixed || id == HASHES && extra.is_some_and(|e| e % 32 == 0)) {
            return Err(HashMsgError::BadLength(payload.len()));
        }
        let request = HashRequest::decode(payload);
        request.validate()?;
        Ok(match id {
            HASH_REQUEST => HashMessage::Request(request),
            HASH_REJECT => HashMessage::Reject(request),
            _ => {
                let want = request.length as usize + request.uncles();
                let hashes: Vec<Hash256> = payload[HEADER_LEN..]
                    .chunks_exact(32)
                    .map(|c| {
                        let mut h = [0u8; 32];
                        h.copy_from_slice(c);
                        h
                    })
                    .collect();
                if hashes.len() != want {
                    return Err(HashMsgError::WrongHashCount(want, hashes.len()));
                }
                HashMessage::Hashes { request, hashes }
            }
        })
    }

    /// The message id.
    pub fn id(&self) -> u8 {
        match self {
            HashMessage::Request(_) => HASH_REQUEST,
            HashMessage::Hashes { .. } => HASHES,
            HashMessage::Reject(_) => HASH_REJECT,
        }
    }

    /// The payload: the bytes after the id.
    pub fn payload(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            HashMessage::Request(r) | HashMessage::Reject(r) => r.encode(&mut body),
            HashMessage::Hashes { request, hashes } => {
                body.reserve(HEADER_LEN + 32 * hashes.len());
                request.encode(&mut body);
                for h in hashes {
                    body.extend_from_slice(h);
                }
            }
        }
        body
    }

    /// The whole frame: length prefix, id, payload.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut body = vec![self.id()];
        body.extend_from_slice(&self.payload());
        let mut frame = u32::try_from(body.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes()
            .to_vec();
        frame.extend_from_slice(&body);
        frame
    }
}

/// Every layer of a file's tree, leaves first (padded with zero leaves to a
/// power of two), the root last (a one-hash layer).
pub fn tree_layers(leaves: &[Hash256]) -> Vec<Vec<Hash256>> {
    let width = leaves.len().max(1).next_power_of_two();
    let mut layer = leaves.to_vec();
    layer.resize(width, [0; 32]);
    let mut layers = vec![layer];
    while layers.last().is_some_and(|l| l.len() > 1) {
        let below = layers.last().map(Vec::as_slice).unwrap_or_default();
        let up = below.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        layers.push(up);
    }
    layers
}

/// The hashes answering `req` from a file's `layers` ([`tree_layers`]), or
/// `None` when the request is invalid or reaches past the tree (reject it).
pub fn answer(req: &HashRequest, layers: &[Vec<Hash256>]) -> Option<Vec<Hash256>> {
    req.validate().ok()?;
    let base = layers.get(req.base_layer as usize)?;
    let (start, len) = (req.index as usize, req.length as usize);
    let mut out = base.get(start..start.checked_add(len)?)?.to_vec();
    let span = req.length.trailing_zeros() as usize;
    let mut pos = start >> span;
    for layer in 0..req.uncles() {
        let row = layers.get(req.base_layer as usize + span + layer)?;
        out.push(*row.get(pos ^ 1)?);
        pos >>= 1;
    }
    Some(out)
}

/// Check a `hashes` answer against the file's `root` in a tree of `height`
/// layers above the leaves (log2 of its padded leaf count): the proof must
/// reach the root. Returns the base hashes, now trusted.
pub fn verify(
    req: &HashRequest,
    hashes: &[Hash256],
    root: &Hash256,
    height: u32,
) -> Option<Vec<Hash256>> {
    req.validate().ok()?;
    let len = req.length as usize;
    if hashes.len() != len + req.uncles() {
        return None;
    }
    let (base, uncles) = hashes.split_at(len);
    let mut level = base.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
    }
    let mut node = *level.first()?;
    let mut at = req.base_layer + req.length.trailing_zeros();
    let mut pos = req.index >> req.length.trailing_zeros();
    for u in uncles {
        node = if pos & 1 == 0 {
            hash_pair(&node, u)
        } else {
            hash_pair(u, &node)
        };
        pos >>= 1;
        at += 1;
    }
    (at == height && pos == 0 && node == *root).then(|| base.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::merkle;

    fn leaves(n: usize) -> Vec<Hash256> {
        (0..n)
            .map(|i| merkle::sha256(&(i as u64).to_be_bytes()))
            .collect()
    }

    fn req(base_layer: u32, index: u32, length: u32, proof_layers: u32) -> HashRequest {
        HashRequest {
            pieces_root: [7; 32],
            base_layer,
            index,
            length,
            proof_layers,
        }
    }

    #[test]
    fn frames_round_trip() {
        let r = req(0, 4, 4, 3);
        for m in [
            HashMessage::Request(r),
            HashMessage::Reject(r),
            HashMessage::Hashes {
                request: r,
                hashes: vec![[1; 32]; 4 + r.uncles()],
            },
        ] {
            let f = m.to_frame();
            assert_eq!(
                u32::from_be_bytes(f[..4].try_into().unwrap()) as usize,
                f.len() - 4
            );
            assert_eq!(HashMessage::decode(f[4], &f[5..]), Ok(m));
        }
        // log2(4) - 1 = 1 proof layer implied: 3 asked, 2 uncles sent.
        assert_eq!(r.uncles(), 2);
        assert_eq!(req(0, 0, 2, 5).uncles(), 5);
        assert_eq!(req(0, 0, 512, 3).uncles(), 0);
    }

    #[test]
    fn bad_payloads_refused() {
        let mut p = Vec::new();
        req(0, 0, 4, 0).encode(&mut p);
        assert!(HashMessage::decode(21, &p[..47]).is_err());
        assert_eq!(
            HashMessage::decode(21, &[p.clone(), vec![0; 32]].concat()),
            Err(HashMsgError::BadLength(80))
        );
        assert_eq!(
            HashMessage::decode(20, &p),
            Err(HashMsgError::NotAHashMessage(20))
        );
        // `hashes` with one hash too few.
        let short = [p.clone(), vec![0; 3 * 32]].concat();
        assert_eq!(
            HashMessage::decode(22, &short),
            Err(HashMsgError::WrongHashCount(4, 3))
        );
        for (r, e) in [
            (req(0, 0, 3, 0), HashMsgError::BadCount(3)),
            (req(0, 0, 1, 0), HashMsgError::BadCount(1)),
            (req(0, 0, 1024, 0), HashMsgError::BadCount(1024)),
            (
                req(0, 2, 4, 0),
                HashMsgError::Unaligned {
                    index: 2,
                    length: 4,
                },
            ),
            (req(60, 0, 4, 10), HashMsgError::LayerTooHigh(70)),
        ] {
            let mut p = Vec::new();
            r.encode(&mut p);
            assert_eq!(HashMessage::decode(21, &p), Err(e));
        }
    }

    #[test]
    fn answers_verify_against_the_root_and_tampering_does_not() {
        // 13 leaves: a tree 4 layers high over 16, three zero leaves.
        let l = leaves(13);
        let layers = tree_layers(&l);
        let root = merkle::root_of_layer(&l, 0);
        assert_eq!(layers.last().unwrap(), &vec![root]);
        assert_eq!(layers.len(), 5);
        for (base, index, length) in [
            (0, 0, 2u32),
            (0, 8, 8),
            (0, 12, 4),
            (1, 4, 4),
            (2, 0, 4),
            (0, 0, 16),
        ] {
            let span = length.trailing_zeros();
            // Just enough proof layers to reach the root.
            let proof = 4 - base - span + span.saturating_sub(1);
            let r = req(base, index, length, proof);
            let hashes = answer(&r, &layers).unwrap();
            assert_eq!(hashes.len(), length as usize + r.uncles());
            let got = verify(&r, &hashes, &root, 4).unwrap();
            assert_eq!(
                got,
                layers[base as usize][index as usize..][..length as usize]
            );
            for i in 0..hashes.len() {
                let mut bad = hashes.clone();
                bad[i][0] ^= 1;
                assert!(verify(&r, &bad, &root, 4).is_none(), "{r:?} hash {i}");
            }
            // A proof one layer short does not reach the root.
            if proof > 0 && r.uncles() > 0 {
                let short = req(base, index, length, proof - 1);
                let h = answer(&short, &layers).unwrap();
                assert!(verify(&short, &h, &root, 4).is_none());
            }
        }
        // Out of the tree: rejected.
        assert!(answer(&req(0, 16, 4, 0), &layers).is_none());
        assert!(answer(&req(0, 0, 4, 9), &layers).is_none());
        assert!(answer(&req(5, 0, 2, 0), &layers).is_none());
    }

    #[test]
    fn piece_layer_answers_match_the_torrents_piece_layer() {
        // 10 leaves in 32 KiB pieces: the piece layer (base layer 1) of
        // `merkle::layer_and_root` is what a request for layer 1 returns.
        let l = leaves(10);
        let (piece_layer, root) = merkle::layer_and_root(&l, 32768);
        let layers = tree_layers(&l);
        let r = req(1, 0, 8, 2);
        let hashes = answer(&r, &layers).unwrap();
        let got = verify(&r, &hashes, &root, 4).unwrap();
        assert_eq!(got[..piece_layer.len()], piece_layer[..]);
        assert!(got[piece_layer.len()..]
            .iter()
            .all(|h| *h == merkle::pad_hash(1)));
    }
}
