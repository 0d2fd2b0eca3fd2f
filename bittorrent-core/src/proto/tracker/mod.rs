//! Tracker messages (BEP 3, 7, 15, 23, 24, 48): announce and scrape
//! responses over HTTP and UDP, and percent-encoding. Pure parsers with
//! limits that never panic; the announce client that sends the requests
//! over sockets is `discovery/tracker/`, and the tracker embedded in every
//! peer is [`crate::tracker_server`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::proto::bencode::{self, Value};
use crate::proto::metainfo::InfoHash;

pub(crate) mod url;

pub use url::percent_encode;

/// Largest tracker response body accepted (HTTP).
pub const MAX_RESPONSE_BODY: usize = 2 * 1024 * 1024;
/// Interval used when a tracker does not send a usable one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);
/// Shortest announce interval honoured, whatever the tracker says.
pub const MIN_INTERVAL_FLOOR: Duration = Duration::from_secs(30);
/// Longest announce interval honoured, whatever the tracker says.
pub const MAX_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// BEP 15 protocol id of the connect request.
pub const UDP_PROTOCOL_ID: u64 = 0x41727101980;

/// Why a tracker response was not an answer we can use. The announce
/// client turns it into its `TrackerError` (same variants, same messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The tracker refused: its `failure reason`.
    Failure(String),
    /// The response could not be understood.
    Malformed(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Failure(s) => write!(f, "tracker refused: {s}"),
            ResponseError::Malformed(s) => write!(f, "malformed tracker response: {s}"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// What a tracker answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// When to announce again (clamped to sane bounds).
    pub interval: Duration,
    /// The tracker's `min interval`, if any.
    pub min_interval: Option<Duration>,
    /// Peers: IPv4 from `peers`, IPv6 from `peers6` (compact or dictionary).
    pub peers: Vec<SocketAddr>,
    /// Seeders (`complete`), if reported.
    pub complete: Option<u32>,
    /// Leechers (`incomplete`), if reported.
    pub incomplete: Option<u32>,
    /// The tracker's `warning message`, if any.
    pub warning: Option<String>,
    /// Our address as the tracker sees it (BEP 24 `external ip`), if sent.
    pub external_ip: Option<IpAddr>,
}

/// Scrape counters of one torrent (BEP 48, BEP 15 scrape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeEntry {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever reported.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

fn int_u32(v: Option<&Value<'_>>) -> Option<u32> {
    v.and_then(Value::as_int)
        .and_then(|i| u32::try_from(i).ok())
}

fn secs(v: Option<&Value<'_>>) -> Option<Duration> {
    v.and_then(Value::as_int)
        .filter(|i| *i >= 0)
        .map(|i| Duration::from_secs(i as u64))
}

fn dict_peers(list: &[Value<'_>], out: &mut Vec<SocketAddr>) {
    for p in list {
        let Some(ip) = p.get(b"ip").and_then(Value::as_str) else {
            continue;
        };
        let Some(port) = p
            .get(b"port")
            .and_then(Value::as_int)
            .and_then(|i| u16::try_from(i).ok())
        else {
            continue;
        };
        // Host names are not resolved (a tracker could make us resolve anything).
        if let Ok(ip) = ip.trim().parse::<IpAddr>() {
            if port != 0 {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
}

/// Parse the bencoded body of an HTTP announce response (tolerant decoder).
/// A `failure reason` becomes [`ResponseError::Failure`]. Never panics.
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, ResponseError> {
    let v = bencode::decode(body)
        .map_err(|e| ResponseError::Malformed(format!("not bencoded: {e}")))?;
    let d = v
        .as_dict()
        .ok_or_else(|| ResponseError::Malformed("response is not a dictionary".into()))?;
    if let Some(f) = d.get(b"failure reason") {
        let reason = f
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        return Err(ResponseError::Failure(
            reason.unwrap_or_else(|| "(no reason given)".into()),
        ));
    }
    let mut peers = Vec::new();
    match d.get(b"peers") {
        Some(Value::Bytes(b)) => peers.extend(crate::proto::compact::parse_v4(b)),
        Some(Value::List(l)) => dict_peers(l, &mut peers),
        _ => {}
    }
    match d.get(b"peers6") {
        Some(Value::Bytes(b)) => peers.extend(crate::proto::compact::parse_v6(b)),
        Some(Value::List(l)) => dict_peers(l, &mut peers),
        _ => {}
    }
    let interval = secs(d.get(b"interval"))
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_INTERVAL)
        .clamp(MIN_INTERVAL_FLOOR, MAX_INTERVAL);
    let external_ip = match d.get(b"external ip").and_then(Value::as_bytes) {
        Some(b) if b.len() == 4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        Some(b) if b.len() == 16 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(ip)))
        }
        _ => None,
    };
    Ok(AnnounceResponse {
        interval,
        min_interval: secs(d.get(b"min interval")).map(|m| m.min(MAX_INTERVAL)),
        peers,
        complete: int_u32(d.get(b"complete")),
        incomplete: int_u32(d.get(b"incomplete")),
        warning: d
            .get(b"warning message")
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        external_ip,
    })
}

/// Parse the body of an HTTP scrape response (BEP 48). Never panics.
pub fn parse_scrape_response(body: &[u8]) -> Result<Vec<(InfoHash, ScrapeEntry)>, ResponseError> {
    let v = bencode::decode(body)
        .map_err(|e| ResponseError::Malformed(format!("not bencoded: {e}")))?;
    if let Some(f) = v.get(b"failure reason") {
        let reason = f
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        return Err(ResponseError::Failure(reason.unwrap_or_default()));
    }
    let files = v
        .get(b"files")
        .and_then(Value::as_dict)
        .ok_or_else(|| ResponseError::Malformed("scrape response without files".into()))?;
    let mut out = Vec::new();
    for (k, e) in &files.entries {
        let Ok(ih) = <[u8; 20]>::try_from(*k) else {
            continue;
        };
        out.push((
            InfoHash(ih),
            ScrapeEntry {
                complete: int_u32(e.get(b"complete")).unwrap_or(0),
                downloaded: int_u32(e.get(b"downloaded")).unwrap_or(0),
                incomplete: int_u32(e.get(b"incomplete")).unwrap_or(0),
            },
        ));
    }
    Ok(out)
}

/// The big-endian `u32` at `at`, or 0 past the end (BEP 15 fields).
pub(crate) fn be32(p: &[u8], at: usize) -> u32 {
    p.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

/// The big-endian `u64` at `at`, or 0 past the end (BEP 15 connection ids).
pub(crate) fn be64(p: &[u8], at: usize) -> u64 {
    p.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Parse a BEP 15 announce response (action 1). `ipv6` selects 18-byte
/// peers (the request went over IPv6). Never panics.
pub fn parse_udp_announce_response(
    p: &[u8],
    ipv6: bool,
) -> Result<AnnounceResponse, ResponseError> {
    if p.len() < 20 || be32(p, 0) != 1 {
        return Err(ResponseError::Malformed(
            "short or wrong UDP announce response".into(),
        ));
    }
    let interval = Duration::from_secs(u64::from(be32(p, 8)));
    let interval = if interval.is_zero() {
        DEFAULT_INTERVAL
    } else {
        interval
    };
    let peers = if ipv6 {
        crate::proto::compact::parse_v6(&p[20..])
    } else {
        crate::proto::compact::parse_v4(&p[20..])
    };
    Ok(AnnounceResponse {
        interval: interval.clamp(MIN_INTERVAL_FLOOR, MAX_INTERVAL),
        min_interval: None,
        peers,
        incomplete: Some(be32(p, 12)),
        complete: Some(be32(p, 16)),
        warning: None,
        external_ip: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vector(tsv: &str, name: &str) -> String {
        tsv.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split('\t')
            .nth(1)
            .unwrap()
            .to_string()
    }

    const HTTP: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/vectors/http_tracker.tsv"
    ));

    #[test]
    fn parses_http_responses() {
        let r = parse_announce_response(&unhex(&vector(HTTP, "compact announce"))).unwrap();
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!((r.complete, r.incomplete), (Some(2), Some(1)));
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:51413".parse().unwrap()
            ]
        );
        let r = parse_announce_response(vector(HTTP, "dictionary-model").as_bytes()).unwrap();
        assert_eq!(r.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let r = parse_announce_response(vector(HTTP, "BEP 7 example").as_bytes()).unwrap();
        assert_eq!(r.peers.len(), 2);
        assert!(r.peers[1].is_ipv6());
        let r = parse_announce_response(&unhex(&vector(HTTP, "external ip"))).unwrap();
        assert_eq!(r.external_ip, Some("203.0.113.7".parse().unwrap()));
        assert!(r.peers.is_empty());
        match parse_announce_response(vector(HTTP, "failure response").as_bytes()) {
            Err(ResponseError::Failure(f)) => assert_eq!(f, "unknown info_hash"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_announce_response(b"garbage"),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            parse_announce_response(b"li1ee"),
            Err(ResponseError::Malformed(_))
        ));
        let s = parse_scrape_response(vector(HTTP, "BEP 48 scrape").as_bytes()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].1,
            ScrapeEntry {
                complete: 11,
                downloaded: 13772,
                incomplete: 19
            }
        );
    }
}
