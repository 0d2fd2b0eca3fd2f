//! Magnet links (BEP 9 syntax).
//!
//! `magnet:?xt=urn:btih:<info-hash>&dn=<name>&tr=<tracker>&x.pe=<host:port>`.
//! The info-hash is 40 hex digits or 32 base32 characters (RFC 4648, either
//! case). Values are percent-decoded; in `dn` a `+` is a space. `tr.N` is
//! read like `tr`. Unknown parameters (`ws`, `so`, `x.*`...) are ignored.
//! A BitTorrent v2 hash (BEP 52) is `xt=urn:btmh:1220<64 hex digits>` (a
//! multihash: 0x12 is SHA-256, 0x20 its 32 bytes); a hybrid link carries
//! both `btih` and `btmh`. A v2-only link's 20-byte hash is the truncated
//! v2 one (what the handshake, trackers and the DHT use; its metadata is
//! checked against the whole SHA-256 hash); a hybrid link is downloaded
//! through its v1 hash and the metadata checked against both.

use crate::proto::metainfo::{InfoHash, InfoHashV2, Metainfo};
use std::fmt;

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash (`xt=urn:btih:`); for a v2-only link, the v2 hash
    /// truncated to 20 bytes.
    pub info_hash: InfoHash,
    /// The v2 info-hash (`xt=urn:btmh:1220...`), if the link has one.
    pub info_hash_v2: Option<InfoHashV2>,
    /// `dn`: a name to show until the metadata arrives.
    pub display_name: Option<String>,
    /// `tr` (and `tr.N`) tracker URLs, in order, without repeats.
    pub trackers: Vec<String>,
    /// `x.pe` peer addresses, `host:port` (IPv6 as `[addr]:port`).
    pub peers: Vec<String>,
}

/// Why a magnet link was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MagnetError {
    /// The text does not start with `magnet:?`.
    NotAMagnet,
    /// No `xt` parameter at all.
    MissingExactTopic,
    /// Only `xt` values of another kind (given), such as `urn:sha1:`.
    UnsupportedExactTopic(String),
    /// A `urn:btih:` value that is neither 40 hex digits nor 32 base32
    /// characters (given).
    InvalidInfoHash(String),
    /// Only a v2 (`urn:btmh:`) hash. No longer returned: the engine
    /// fetches v2-only links (metadata, then piece layers by hash
    /// requests); kept so that code matching on it still builds.
    V2Only,
    /// A `urn:btmh:` value that is not `1220` and 64 hex digits (given).
    InvalidV2InfoHash(String),
    /// A `%` not followed by two hex digits, or a value that is not UTF-8
    /// once decoded; the parameter name is given.
    BadEncoding(String),
}

impl fmt::Display for MagnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MagnetError::NotAMagnet => f.write_str("not a magnet link (must start with magnet:?)"),
            MagnetError::MissingExactTopic => f.write_str("magnet link has no xt parameter"),
            MagnetError::UnsupportedExactTopic(xt) => {
                write!(f, "magnet link has no urn:btih: info-hash (xt={xt})")
            }
            MagnetError::InvalidInfoHash(h) => write!(
                f,
                "magnet link info-hash {h:?} is neither 40 hex digits nor 32 base32 characters"
            ),
            MagnetError::V2Only => {
                f.write_str("BitTorrent v2-only magnet link (urn:btmh: without urn:btih:)")
            }
            MagnetError::InvalidV2InfoHash(h) => write!(
                f,
                "magnet link v2 info-hash {h:?} is not 1220 and 64 hex digits (SHA-256 multihash)"
            ),
            MagnetError::BadEncoding(key) => {
                write!(f, "magnet link parameter {key} is badly percent-encoded")
            }
        }
    }
}

impl std::error::Error for MagnetError {}

/// What the `xt` parameters held.
#[derive(Default)]
struct Topics {
    btih: Option<InfoHash>,
    btmh: Option<InfoHashV2>,
    other: Option<String>,
}

impl Magnet {
    /// The magnet link of a torrent: its info-hash, its name and every
    /// tracker (each once).
    pub fn of(m: &Metainfo) -> Magnet {
        let mut trackers: Vec<String> = Vec::new();
        for url in m.trackers().into_iter().flatten() {
            if !trackers.contains(&url) {
                trackers.push(url);
            }
        }
        Magnet {
            info_hash: m.info_hash,
            info_hash_v2: m.info_hash_v2,
            display_name: Some(m.info.name.clone()),
            trackers,
            peers: Vec::new(),
        }
    }

    /// Parse a magnet URI. Never panics, whatever the input.
    pub fn parse(uri: &str) -> Result<Magnet, MagnetError> {
        let query = strip_scheme(uri.trim()).ok_or(MagnetError::NotAMagnet)?;
        let mut topics = Topics::default();
        let mut magnet = Magnet {
            info_hash: InfoHash::default(),
            info_hash_v2: None,
            display_name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
        };
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = param.split_once('=').unwrap_or((param, ""));
            match key {
                "xt" => topics.add(&percent_decode(raw, false, key)?)?,
                "dn" => magnet.display_name = Some(percent_decode(raw, true, key)?),
                "x.pe" => push_unique(&mut magnet.peers, percent_decode(raw, false, key)?),
                k if k == "tr" || k.starts_with("tr.") => {
                    push_unique(&mut magnet.trackers, percent_decode(raw, false, key)?)
                }
                _ => {}
            }
        }
        (magnet.info_hash, magnet.info_hash_v2) = topics.finish()?;
        Ok(magnet)
    }

    /// Whether the link has only a v2 hash (no `btih`).
    pub fn is_v2_only(&self) -> bool {
        self.info_hash_v2
            .is_some_and(|h| h.truncated() == self.info_hash)
    }

    /// The magnet URI: `xt`, then `dn`, every `tr` and every `x.pe`,
    /// percent-encoded so that [`Magnet::parse`] gives back the same value.
    pub fn to_uri(&self) -> String {
        let mut uri = match self.info_hash_v2 {
            Some(v2) if self.is_v2_only() => format!("magnet:?xt=urn:btmh:1220{v2}"),
            Some(v2) => format!(
                "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{v2}",
                self.info_hash
            ),
            None => format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex()),
        };
        if let Some(name) = &self.display_name {
            uri.push_str("&dn=");
            uri.push_str(&percent_encode(name, ""));
        }
        for tr in &self.trackers {
            uri.push_str("&tr=");
            uri.push_str(&percent_encode(tr, ""));
        }
        for pe in &self.peers {
            uri.push_str("&x.pe=");
            uri.push_str(&percent_encode(pe, ":[]"));
        }
        uri
    }
}

impl Topics {
    fn add(&mut self, xt: &str) -> Result<(), MagnetError> {
        let lower = xt.to_ascii_lowercase();
        if let Some(hash) = lower.strip_prefix("urn:btih:") {
            if self.btih.is_none() {
                let parsed = parse_btih(hash).ok_or_else(|| {
                    MagnetError::InvalidInfoHash(xt.get(9..).unwrap_or("").to_string())
                })?;
                self.btih = Some(parsed);
            }
        } else if let Some(mh) = lower.strip_prefix("urn:btmh:") {
            if self.btmh.is_none() {
                let parsed = mh
                    .strip_prefix("1220")
                    .and_then(InfoHashV2::from_hex)
                    .ok_or_else(|| {
                        MagnetError::InvalidV2InfoHash(xt.get(9..).unwrap_or("").to_string())
                    })?;
                self.btmh = Some(parsed);
            }
        } else if self.other.is_none() {
            self.other = Some(xt.to_string());
        }
        Ok(())
    }

    fn finish(self) -> Result<(InfoHash, Option<InfoHashV2>), MagnetError> {
        match (self.btih, self.btmh, self.other) {
            (Some(h), v2, _) => Ok((h, v2)),
            (None, Some(v2), _) => Ok((v2.truncated(), Some(v2))),
            (None, None, Some(o)) => Err(MagnetError::UnsupportedExactTopic(o)),
            (None, None, None) => Err(MagnetError::MissingExactTopic),
        }
    }
}

fn strip_scheme(uri: &str) -> Option<&str> {
    let prefix = uri.get(..8)?;
    prefix
        .eq_ignore_ascii_case("magnet:?")
        .then(|| uri.get(8..))
        .flatten()
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !item.is_empty() && !list.contains(&item) {
        list.push(item);
    }
}

/// 40 hex digits or 32 base32 characters (already lower-cased).
fn parse_btih(s: &str) -> Option<InfoHash> {
    match s.len() {
        40 => InfoHash::from_hex(s),
        32 => base32_decode(s).map(InfoHash),
        _ => None,
    }
}

/// RFC 4648 base32 (case-insensitive, no padding) of exactly 20 bytes.
fn base32_decode(s: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    let mut n = 0usize;
    for c in s.bytes() {
        let v = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            acc &= (1 << bits) - 1;
            n += 1;
        }
    }
    (n == 20).then_some(out)
}

/// Percent-decode `s`; with `plus_is_space`, `+` becomes a space.
fn percent_decode(s: &str, plus_is_space: bool, key: &str) -> Result<String, MagnetError> {
    let bad = || MagnetError::BadEncoding(key.to_string());
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad());
                }
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Percent-encode everything but RFC 3986 unreserved characters and `keep`.
fn percent_encode(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn split(s: &str) -> Vec<String> {
        s.split(' ')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn x_pe_takes_ipv6_in_brackets() {
        let h = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
        for pe in ["[::1]:6881", "%5B%3A%3A1%5D%3A6881"] {
            let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{h}&x.pe={pe}")).unwrap();
            assert_eq!(m.peers, vec!["[::1]:6881".to_string()]);
            let a: std::net::SocketAddr = m.peers[0].parse().unwrap();
            assert!(a.is_ipv6());
            assert!(m.to_uri().ends_with("&x.pe=[::1]:6881"));
        }
    }

    /// Every row of fixtures/vectors/magnet.tsv.
    #[test]
    fn vectors() {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/magnet.tsv"
        ));
        let mut rows = 0;
        for line in tsv.lines().skip(1) {
            let c: Vec<&str> = line.split('\t').collect();
            let (uri, verdict, hex, btmh) = (c[0], c[1], c[2], c[3]);
            let parsed = Magnet::parse(uri);
            rows += 1;
            if verdict == "invalid" {
                assert!(parsed.is_err(), "accepted {uri}");
                continue;
            }
            let m = parsed.unwrap_or_else(|e| panic!("{uri}: {e}"));
            let v2 = m.info_hash_v2.map(|h| h.to_hex()).unwrap_or_default();
            assert_eq!(v2, btmh, "{uri}");
            if hex.is_empty() {
                // v2-only: the 20-byte form is the truncated SHA-256.
                assert!(m.is_v2_only(), "{uri}");
                assert_eq!(m.info_hash.to_hex(), btmh[..40], "{uri}");
            } else {
                assert!(!m.is_v2_only(), "{uri}");
                assert_eq!(m.info_hash.to_hex(), hex, "{uri}");
            }
            let dn = (!c[4].is_empty()).then(|| c[4].to_string());
            assert_eq!(m.display_name, dn, "{uri}");
            assert_eq!(m.trackers, split(c[5]), "{uri}");
            assert_eq!(m.peers, split(c[6]), "{uri}");
            assert_eq!(
                Magnet::parse(&m.to_uri()).unwrap(),
                m,
                "round trip of {uri}"
            );
        }
        assert_eq!(rows, 21);
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(
            Magnet::parse("magnet:?dn=x"),
            Err(MagnetError::MissingExactTopic)
        );
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotAMagnet));
        assert_eq!(Magnet::parse("magnet:"), Err(MagnetError::NotAMagnet));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:zz"),
            Err(MagnetError::InvalidInfoHash(_))
        ));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:%"),
            Err(MagnetError::BadEncoding(_))
        ));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:%e9%"),
            Err(MagnetError::BadEncoding(_))
        ));
        assert!(Magnet::parse("magnet:?xt=urn:btih:é").is_err());
        for bad in ["1220abc", "1114aaaa", &format!("1320{}", "a".repeat(64))] {
            assert!(matches!(
                Magnet::parse(&format!("magnet:?xt=urn:btmh:{bad}")),
                Err(MagnetError::InvalidV2InfoHash(_))
            ));
        }
        assert!(matches!(
            Magnet::parse("magnet:?dn=%+f&xt=urn:btih:c0fda1edafdbdbb96443424e0b3899af7159d10e"),
            Err(MagnetError::BadEncoding(_))
        ));
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for s in [
            "",
            "m",
            "magnet:?",
            "magnet:?&&&",
            "magnet:?xt",
            "magnet:?xt=urn:btih:",
            "magnet:?xt=%",
        ] {
            let _ = Magnet::parse(s);
        }
    }
}
