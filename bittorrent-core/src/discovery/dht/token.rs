//! `announce_peer` tokens (BEP 5): SHA-1 of a secret and the querying IP.
//!
//! The secret is replaced every [`ROTATE_EVERY`]; tokens made with the
//! current or the previous secret are accepted, so a token stays valid
//! between 5 and 10 minutes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often the secret changes.
pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Length of the tokens we hand out.
pub const TOKEN_LEN: usize = 8;

/// The token secrets of one node.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
}

fn random_secret() -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&crate::util::rng::random_u64().to_le_bytes());
    s[8..].copy_from_slice(&crate::util::rng::random_u64().to_le_bytes());
    s
}

fn make(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = sha1_smol::Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(&v4.octets()),
        IpAddr::V6(v6) => h.update(&v6.octets()),
    }
    let d = h.digest().bytes();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&d[..TOKEN_LEN]);
    out
}

fn eq_ct(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Fresh random secrets, rotation clock starting at `now`.
    pub fn new(now: Instant) -> Tokens {
        Tokens {
            current: random_secret(),
            previous: random_secret(),
            rotated_at: now,
        }
    }

    /// Rotate the secret if [`ROTATE_EVERY`] has passed (once per call; a
    /// long gap also invalidates the previous secret).
    pub fn maybe_rotate(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.rotated_at);
        if age >= ROTATE_EVERY {
            self.previous = if age >= 2 * ROTATE_EVERY {
                random_secret()
            } else {
                self.current
            };
            self.current = random_secret();
            self.rotated_at = now;
        }
    }

    /// The token for `ip`, rotating first if due.
    pub fn token(&mut self, ip: IpAddr, now: Instant) -> Vec<u8> {
        self.maybe_rotate(now);
        make(&self.current, ip).to_vec()
    }

    /// Whether `token` was issued to `ip` with the current or previous
    /// secret, rotating first if due.
    pub fn verify(&mut self, ip: IpAddr, token: &[u8], now: Instant) -> bool {
        self.maybe_rotate(now);
        eq_ct(&make(&self.current, ip), token) || eq_ct(&make(&self.previous, ip), token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_window() {
        let t0 = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let mut t = Tokens::new(t0);
        let tok = t.token(ip, t0);
        assert_eq!(tok.len(), TOKEN_LEN);
        assert!(t.verify(ip, &tok, t0));
        assert!(!t.verify(other, &tok, t0));
        assert!(!t.verify(ip, b"", t0));
        // Still valid after one rotation (previous secret).
        let t1 = t0 + ROTATE_EVERY + Duration::from_secs(1);
        assert!(t.verify(ip, &tok, t1));
        assert_ne!(t.token(ip, t1), tok);
        // Gone after the second rotation.
        let t2 = t1 + ROTATE_EVERY;
        assert!(!t.verify(ip, &tok, t2));
    }

    #[test]
    fn long_gap_invalidates_both() {
        let t0 = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut t = Tokens::new(t0);
        let tok = t.token(ip, t0);
        assert!(!t.verify(ip, &tok, t0 + 3 * ROTATE_EVERY));
    }
}
