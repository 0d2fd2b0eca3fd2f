//! The primitives of MSE: 768-bit Diffie-Hellman, SHA-1 key derivation and
//! RC4 with the first 1024 bytes of keystream discarded.

use super::MseError;
use num_bigint::BigUint;
use rc4::{KeyInit, Rc4, StreamCipher};
use std::sync::OnceLock;

/// Bytes of a public key or of the shared secret on the wire (768 bits).
pub const KEY_LEN: usize = 96;
/// The 768-bit safe prime of the specification (generator 2).
const PRIME_HEX: &[u8] = b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";
/// Bits of a private key (the specification asks for at least 128, 160
/// recommended).
const PRIVATE_LEN: usize = 20;
/// Keystream bytes thrown away before the first byte is used.
const DISCARD: usize = 1024;

fn prime() -> &'static BigUint {
    static P: OnceLock<BigUint> = OnceLock::new();
    P.get_or_init(|| BigUint::parse_bytes(PRIME_HEX, 16).unwrap_or_default())
}

/// `n` as exactly 96 big-endian bytes, left-padded with zeros.
fn to_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let b = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    let take = b.len().min(KEY_LEN);
    out[KEY_LEN - take..].copy_from_slice(&b[b.len() - take..]);
    out
}

/// Fill `buf` from the operating system's random source (falling back to
/// the process's hash-seeded generator if that fails, which it should not).
pub fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        for chunk in buf.chunks_mut(8) {
            let r = crate::util::rng::random_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// A uniformly random number in `0..=max`.
pub fn random_upto(max: usize) -> usize {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    (u64::from_le_bytes(b) % (max as u64 + 1)) as usize
}

/// One side's Diffie-Hellman key pair.
#[derive(Clone)]
pub struct DhKey {
    private: BigUint,
    public: [u8; KEY_LEN],
}

impl std::fmt::Debug for DhKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhKey").finish_non_exhaustive()
    }
}

impl DhKey {
    /// A fresh random key pair (160-bit private key).
    pub fn generate() -> DhKey {
        let mut x = [0u8; PRIVATE_LEN];
        fill_random(&mut x);
        x[0] |= 0x80; // a full 160 bits
        DhKey::from_private(&x)
    }

    /// The key pair for a given private key (big-endian), for tests.
    pub fn from_private(x: &[u8]) -> DhKey {
        let private = BigUint::from_bytes_be(x);
        let public = to_bytes(&BigUint::from(2u32).modpow(&private, prime()));
        DhKey { private, public }
    }

    /// Our public key `G^X mod P`, as sent.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The shared secret `S = Y^X mod P` from the other side's public key.
    /// Keys outside `2..P-1` (which would force a known secret) are refused.
    pub fn shared_secret(&self, theirs: &[u8]) -> Result<[u8; KEY_LEN], MseError> {
        let p = prime();
        let y = BigUint::from_bytes_be(theirs);
        let one = BigUint::from(1u32);
        if theirs.len() != KEY_LEN || y <= one || y >= p - &one {
            return Err(MseError::BadPublicKey);
        }
        Ok(to_bytes(&y.modpow(&self.private, p)))
    }
}

/// SHA-1 of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.digest().bytes()
}

/// `HASH('req2', SKEY)`: how an initiator names the torrent (xored with
/// `HASH('req3', S)` on the wire). A responder compares it with its torrents'.
pub fn req2_hash(info_hash: &[u8; 20]) -> [u8; 20] {
    hash(&[b"req2", info_hash])
}

/// An RC4 keystream whose first 1024 bytes have been discarded.
pub struct Rc4Cipher(Rc4);

impl std::fmt::Debug for Rc4Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4Cipher")
    }
}

impl Rc4Cipher {
    /// RC4 keyed with `key`, 1024 bytes of keystream already dropped.
    pub fn new(key: &[u8; 20]) -> Rc4Cipher {
        // A 20-byte key is always valid (RC4 takes 1..=256 bytes); the
        // fallback (the key zero-padded to the crate's default size) is
        // never taken.
        let rc4 = Rc4::new_from_slice(key).unwrap_or_else(|_| Rc4::new(&pad_key(key).into()));
        let mut c = Rc4Cipher(rc4);
        c.apply(&mut [0u8; DISCARD]);
        c
    }

    /// Encrypt or decrypt `buf` in place (the keystream moves on).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }

    /// Encrypt `input` into `output` (same length).
    pub fn apply_to(&mut self, input: &[u8], output: &mut [u8]) {
        self.0.apply_keystream_b2b(input, output);
    }
}

fn pad_key(key: &[u8; 20]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..20].copy_from_slice(key);
    k
}

/// The two RC4 streams of one side: `enc` for what we send, `dec` for what
/// we receive.
#[derive(Debug)]
pub struct Ciphers {
    /// Encrypts what we send.
    pub enc: Rc4Cipher,
    /// Decrypts what we receive.
    pub dec: Rc4Cipher,
}

impl Ciphers {
    /// The streams for secret `s` and torrent `skey`: A sends with
    /// `HASH('keyA', S, SKEY)`, B with `HASH('keyB', S, SKEY)`.
    pub fn derive(s: &[u8; KEY_LEN], skey: &[u8; 20], initiator: bool) -> Ciphers {
        let a = Rc4Cipher::new(&hash(&[b"keyA", s, skey]));
        let b = Rc4Cipher::new(&hash(&[b"keyB", s, skey]));
        if initiator {
            Ciphers { enc: a, dec: b }
        } else {
            Ciphers { enc: b, dec: a }
        }
    }
}
