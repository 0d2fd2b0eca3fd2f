//! Local Service Discovery announces (BEP 14): the `BT-SEARCH * HTTP/1.1`
//! datagram, formatted ([`format_announce`]) and parsed with limits
//! ([`parse_announce`]). The `lsd` thread that sends and receives them over
//! UDP multicast is `discovery/lsd.rs`.

use crate::proto::metainfo::InfoHash;
use std::fmt;

/// The `Host` header value of announces sent to the IPv4 group.
pub const HOST_V4: &str = "239.192.152.143:6771";
/// The `Host` header value of announces sent to the IPv6 group.
pub const HOST_V6: &str = "[ff15::efc0:988f]:6771";
/// Largest announce we send or accept, in bytes (BEP 14: "should not exceed
/// 1400 bytes").
pub const MAX_PACKET: usize = 1400;
/// Most info-hashes we put in one announce and accept from one announce.
pub const MAX_INFO_HASHES: usize = 16;

/// Longest cookie we send; longer cookies are cut.
const MAX_COOKIE: usize = 64;

/// A parsed LSD announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsdAnnounce {
    /// The port the announcing client listens on for BitTorrent connections.
    pub port: u16,
    /// The announced torrents, in packet order, without duplicates (1 to
    /// [`MAX_INFO_HASHES`]).
    pub info_hashes: Vec<InfoHash>,
    /// The sender's opaque cookie, if it sent one.
    pub cookie: Option<String>,
}

/// Why a datagram is not a valid LSD announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsdError {
    /// The datagram is longer than [`MAX_PACKET`] bytes (its length).
    TooLarge(usize),
    /// The datagram is not UTF-8 text.
    NotText,
    /// The first line is not `BT-SEARCH * HTTP/1.x`.
    BadRequestLine,
    /// There is no `Port` header.
    MissingPort,
    /// The `Port` header is not a port number from 1 to 65535.
    BadPort,
    /// There is no `Infohash` header.
    MissingInfoHash,
    /// An `Infohash` header is not 40 hex digits.
    BadInfoHash,
    /// More than [`MAX_INFO_HASHES`] distinct `Infohash` headers.
    TooManyInfoHashes,
}

impl fmt::Display for LsdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LsdError::TooLarge(n) => {
                write!(f, "LSD announce of {n} bytes is longer than {MAX_PACKET}")
            }
            LsdError::NotText => f.write_str("LSD announce is not UTF-8 text"),
            LsdError::BadRequestLine => {
                f.write_str("LSD announce does not start with `BT-SEARCH * HTTP/1.1`")
            }
            LsdError::MissingPort => f.write_str("LSD announce has no Port header"),
            LsdError::BadPort => f.write_str("LSD announce has an invalid Port header"),
            LsdError::MissingInfoHash => f.write_str("LSD announce has no Infohash header"),
            LsdError::BadInfoHash => {
                f.write_str("LSD announce has an Infohash header that is not 40 hex digits")
            }
            LsdError::TooManyInfoHashes => {
                write!(
                    f,
                    "LSD announce has more than {MAX_INFO_HASHES} info-hashes"
                )
            }
        }
    }
}

impl std::error::Error for LsdError {}

/// Format an announce datagram (BEP 14).
///
/// `host` is the group the datagram is sent to, [`HOST_V4`] or [`HOST_V6`];
/// `port` the port we listen on for BitTorrent connections. Each info-hash gets
/// its own `Infohash` header (40 lowercase hex digits). The `cookie` header is
/// left out when `cookie` is empty; control characters are removed from it and
/// it is cut to 64 bytes, so it cannot break the header structure.
///
/// The caller keeps `info_hashes` to at most [`MAX_INFO_HASHES`] so that the
/// datagram stays under [`MAX_PACKET`] bytes and is accepted by
/// [`parse_announce`]; the `lsd` thread splits larger sets.
pub fn format_announce(host: &str, port: u16, info_hashes: &[InfoHash], cookie: &str) -> Vec<u8> {
    let host: String = host.chars().filter(|c| !c.is_control()).collect();
    let mut s = format!("BT-SEARCH * HTTP/1.1\r\nHost: {host}\r\nPort: {port}\r\n");
    for h in info_hashes {
        s.push_str("Infohash: ");
        s.push_str(&h.to_hex());
        s.push_str("\r\n");
    }
    let cookie = clean_cookie(cookie);
    if !cookie.is_empty() {
        s.push_str("cookie: ");
        s.push_str(&cookie);
        s.push_str("\r\n");
    }
    s.push_str("\r\n\r\n");
    s.into_bytes()
}

/// `cookie` without control characters, at most [`MAX_COOKIE`] bytes, trimmed.
fn clean_cookie(cookie: &str) -> String {
    let mut out = String::new();
    for c in cookie.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_COOKIE {
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// Parse an announce datagram.
///
/// Tolerant where it costs nothing: header names in any case, `\n` or `\r\n`
/// line ends, spaces around values, unknown headers (including `Host`) are
/// ignored, as are header lines without a colon, and the headers end at the
/// first empty line or at the end of the datagram. Repeated info-hashes are
/// kept once; the first `Port` and `cookie` headers count. Strict where it
/// matters: at most [`MAX_PACKET`] bytes, a `BT-SEARCH * HTTP/1.x` request
/// line, a port from 1 to 65535, 1 to [`MAX_INFO_HASHES`] info-hashes of 40
/// hex digits each. Never panics.
pub fn parse_announce(packet: &[u8]) -> Result<LsdAnnounce, LsdError> {
    if packet.len() > MAX_PACKET {
        return Err(LsdError::TooLarge(packet.len()));
    }
    let text = std::str::from_utf8(packet).map_err(|_| LsdError::NotText)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));

    let request = lines.next().unwrap_or("");
    let mut words = request.split_whitespace();
    let ok = matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(m), Some("*"), Some(v), None)
            if m.eq_ignore_ascii_case("BT-SEARCH")
                && v.len() >= 7
                && v.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("HTTP/1."))
    );
    if !ok {
        return Err(LsdError::BadRequestLine);
    }

    let mut port: Option<Result<u16, LsdError>> = None;
    let mut info_hashes: Vec<InfoHash> = Vec::new();
    let mut cookie: Option<String> = None;
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("port") {
            if port.is_none() {
                port = Some(match value.parse::<u16>() {
                    Ok(p) if p != 0 => Ok(p),
                    _ => Err(LsdError::BadPort),
                });
            }
        } else if name.eq_ignore_ascii_case("infohash") {
            let h = InfoHash::from_hex(value).ok_or(LsdError::BadInfoHash)?;
            if !info_hashes.contains(&h) {
                if info_hashes.len() == MAX_INFO_HASHES {
                    return Err(LsdError::TooManyInfoHashes);
                }
                info_hashes.push(h);
            }
        } else if name.eq_ignore_ascii_case("cookie") && cookie.is_none() {
            cookie = Some(value.to_string());
        }
    }
    let port = port.ok_or(LsdError::MissingPort)??;
    if info_hashes.is_empty() {
        return Err(LsdError::MissingInfoHash);
    }
    Ok(LsdAnnounce {
        port,
        info_hashes,
        cookie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn round_trip() {
        let hashes = [ih(1), ih(0xab), ih(0xff)];
        let p = format_announce(HOST_V4, 6881, &hashes, "xyz");
        let a = parse_announce(&p).expect("parses");
        assert_eq!(a.port, 6881);
        assert_eq!(a.info_hashes, hashes.to_vec());
        assert_eq!(a.cookie.as_deref(), Some("xyz"));
    }

    #[test]
    fn format_exact_bytes() {
        let p = format_announce(HOST_V6, 1, &[ih(0x12)], "c");
        let want = format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: [ff15::efc0:988f]:6771\r\nPort: 1\r\n\
             Infohash: {}\r\ncookie: c\r\n\r\n\r\n",
            "12".repeat(20)
        );
        assert_eq!(String::from_utf8(p).expect("utf8"), want);
    }

    #[test]
    fn format_without_cookie_and_sanitised_cookie() {
        let p = format_announce(HOST_V4, 2, &[ih(3)], "");
        let s = String::from_utf8(p).expect("utf8");
        assert!(!s.to_ascii_lowercase().contains("cookie"));
        let p = format_announce(HOST_V4, 2, &[ih(3)], "a\r\nPort: 9\r\n");
        let a = parse_announce(&p).expect("parses");
        assert_eq!(a.port, 2);
        assert_eq!(a.cookie.as_deref(), Some("aPort: 9"));
        let long = "é".repeat(100);
        let p = format_announce(HOST_V4, 2, &[ih(3)], &long);
        let a = parse_announce(&p).expect("parses");
        assert!(a.cookie.expect("cookie").len() <= MAX_COOKIE);
    }

    #[test]
    fn bep_example() {
        let p = b"BT-SEARCH * HTTP/1.1\r\n\
                  Host: 239.192.152.143:6771\r\n\
                  Port: 6881\r\n\
                  Infohash: 0123456789abcdef0123456789ABCDEF01234567\r\n\
                  cookie: deadbeef\r\n\
                  \r\n\
                  \r\n";
        let a = parse_announce(p).expect("parses");
        assert_eq!(a.port, 6881);
        assert_eq!(
            a.info_hashes,
            vec![InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").expect("hex")]
        );
        assert_eq!(a.cookie.as_deref(), Some("deadbeef"));
    }

    #[test]
    fn tolerant_case_newlines_unknown_headers() {
        let h = "aa".repeat(20);
        let p = format!(
            "bt-search * http/1.1\nHOST: x\nX-Unknown: 1\nnonsense line\n  pOrT :  51413 \n\
             INFOHASH:{h}\ninfohash: {h}\nCOOKIE: q\n"
        );
        let a = parse_announce(p.as_bytes()).expect("parses");
        assert_eq!(a.port, 51413);
        assert_eq!(a.info_hashes, vec![ih(0xaa)]);
        assert_eq!(a.cookie.as_deref(), Some("q"));
        // Headers after the blank line are not headers.
        let p = format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\nInfohash: {h}\r\n");
        assert_eq!(parse_announce(p.as_bytes()), Err(LsdError::MissingInfoHash));
    }

    #[test]
    fn errors() {
        let h = "aa".repeat(20);
        let ok_tail = format!("Port: 1\r\nInfohash: {h}\r\n\r\n");
        for bad in [
            "",
            "\r\n",
            "GET / HTTP/1.1\r\n",
            "BT-SEARCH / HTTP/1.1\r\n",
            "BT-SEARCH * HTTP/2\r\n",
            "BT-SEARCH * HTTP/1.1 extra\r\n",
            "NOTIFY * HTTP/1.1\r\n",
        ] {
            let p = format!("{bad}{ok_tail}");
            assert_eq!(
                parse_announce(p.as_bytes()),
                Err(LsdError::BadRequestLine),
                "{bad:?}"
            );
        }
        let req = "BT-SEARCH * HTTP/1.1\r\n";
        let cases = [
            (format!("Infohash: {h}\r\n"), LsdError::MissingPort),
            (format!("Port: 0\r\nInfohash: {h}\r\n"), LsdError::BadPort),
            (
                format!("Port: 65536\r\nInfohash: {h}\r\n"),
                LsdError::BadPort,
            ),
            (format!("Port: -1\r\nInfohash: {h}\r\n"), LsdError::BadPort),
            (format!("Port:\r\nInfohash: {h}\r\n"), LsdError::BadPort),
            ("Port: 5\r\n".to_string(), LsdError::MissingInfoHash),
            ("Port: 5\r\nInfohash: abc\r\n".into(), LsdError::BadInfoHash),
            (
                format!("Port: 5\r\nInfohash: {}zz\r\n", "a".repeat(38)),
                LsdError::BadInfoHash,
            ),
            (
                format!("Port: 5\r\nInfohash: {}é\r\n", "a".repeat(38)),
                LsdError::BadInfoHash,
            ),
        ];
        for (tail, want) in cases {
            assert_eq!(
                parse_announce(format!("{req}{tail}").as_bytes()),
                Err(want.clone()),
                "{tail:?}"
            );
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(parse_announce(&[0xff, 0xfe, 0]), Err(LsdError::NotText));
    }

    #[test]
    fn limits() {
        let max: Vec<InfoHash> = (0..MAX_INFO_HASHES as u8).map(ih).collect();
        let p = format_announce(HOST_V6, 65535, &max, &"c".repeat(200));
        assert!(p.len() <= MAX_PACKET, "{} bytes", p.len());
        assert_eq!(parse_announce(&p).expect("parses").info_hashes, max);

        let too_many: Vec<InfoHash> = (0..=MAX_INFO_HASHES as u8).map(ih).collect();
        let p = format_announce(HOST_V4, 1, &too_many, "");
        assert_eq!(parse_announce(&p), Err(LsdError::TooManyInfoHashes));

        // Repeats of one hash do not count against the limit.
        let same = vec![ih(7); 20];
        let p = format_announce(HOST_V4, 1, &same, "");
        assert_eq!(parse_announce(&p).expect("parses").info_hashes, vec![ih(7)]);

        let mut big = format_announce(HOST_V4, 1, &[ih(1)], "");
        big.truncate(big.len() - 2);
        big.extend(std::iter::repeat_n(b'x', MAX_PACKET));
        assert_eq!(parse_announce(&big), Err(LsdError::TooLarge(big.len())));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic generator: mutations of a valid packet and
        // random bytes.
        let valid = format_announce(HOST_V4, 6881, &[ih(1), ih(2)], "abc");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut p = valid.clone();
            let r = next();
            match r % 4 {
                0 => {
                    let len = (next() % 1500) as usize;
                    p = (0..len).map(|_| next() as u8).collect();
                }
                1 => {
                    for _ in 0..(r >> 8) % 8 {
                        let i = (next() as usize) % p.len();
                        p[i] = next() as u8;
                    }
                }
                2 => {
                    let n = (next() as usize) % (p.len() + 1);
                    p.truncate(n);
                }
                _ => {
                    let i = (next() as usize) % p.len();
                    p.insert(i, b"\r\n:*"[(next() % 4) as usize]);
                }
            }
            let _ = parse_announce(&p);
        }
    }
}
