//! Percent-encoding and the small subset of URL parsing trackers need.

/// Percent-encode every byte except the RFC 3986 unreserved characters
/// `A-Z a-z 0-9 - . _ ~`.
pub fn percent_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Decode `%XX` escapes (and `+` as a space, as in form encoding).
/// Returns `None` on a truncated or non-hex escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = (*b.get(i + 1)? as char).to_digit(16)?;
                let lo = (*b.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Split a query string into decoded `(key, value)` pairs. Pairs that do not
/// decode are skipped; at most `max_pairs` pairs are returned.
pub fn parse_query(query: &str, max_pairs: usize) -> Vec<(String, Vec<u8>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = String::from_utf8(percent_decode(k)?).ok()?;
            Some((k, percent_decode(v)?))
        })
        .take(max_pairs)
        .collect()
}

/// A parsed `scheme://host[:port][/path][?query]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Lower-cased scheme (`http`, `https`, `udp`).
    pub scheme: String,
    /// Host name or address literal (IPv6 without the brackets).
    pub host: String,
    /// Port: explicit, or the scheme's default (80, 443; `udp` has none → 0).
    pub port: u16,
    /// Path and query, starting with `/` (`/` when the URL has none).
    pub path_and_query: String,
}

impl Url {
    /// Parse an absolute URL. Returns `None` when it is not of the form above.
    pub fn parse(s: &str) -> Option<Url> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+')
        {
            return None;
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        // Drop userinfo, which trackers never use.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (h, tail) = after.split_once(']')?;
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().ok()?),
                None if tail.is_empty() => None,
                None => return None,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().ok()?)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty()
            || host
                .bytes()
                .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return None;
        }
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => 0,
        };
        let path_and_query = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path_and_query
            .bytes()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return None;
        }
        Some(Url {
            scheme,
            host,
            port: port.unwrap_or(default),
            path_and_query,
        })
    }

    /// `host:port` as it goes into a `Host:` header or `to_socket_addrs`.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Url {
    /// `scheme://host:port/path?query` (userinfo dropped, port explicit).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme,
            self.host_port(),
            self.path_and_query
        )
    }
}

#[cfg_attr(not(test), allow(dead_code))] // used by tests only
/// The BEP 48 scrape URL of an announce URL: the last path component must
/// begin with `announce`, which is replaced by `scrape` (the query is kept).
/// Returns `None` when the tracker does not support scraping by that rule.
pub fn scrape_url(announce: &str) -> Option<String> {
    let (base, query) = match announce.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (announce, None),
    };
    // The slash must be in the path, not the `//` after the scheme.
    let start = base.find("://").map_or(0, |p| p + 3);
    let slash = base[start..].rfind('/')? + start;
    let last = &base[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    let mut out = format!("{}/scrape{}", &base[..slash], rest);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodes_info_hash_like_vector() {
        let ih = crate::InfoHash::from_hex("c0fda1edafdbdbb96443424e0b3899af7159d10e").unwrap();
        assert_eq!(
            percent_encode(&ih.0),
            "%C0%FD%A1%ED%AF%DB%DB%B9dCBN%0B8%99%AFqY%D1%0E"
        );
        assert_eq!(
            percent_decode("%C0%FD%A1%ED%AF%DB%DB%B9dCBN%0B8%99%AFqY%D1%0E").unwrap(),
            ih.0
        );
        assert!(percent_decode("%4").is_none());
        assert!(percent_decode("%zz").is_none());
    }

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://example.com:6969/x/announce.php?passkey=abc").unwrap();
        assert_eq!(
            (
                u.scheme.as_str(),
                u.host.as_str(),
                u.port,
                u.path_and_query.as_str()
            ),
            ("http", "example.com", 6969, "/x/announce.php?passkey=abc")
        );
        let u = Url::parse("udp://[::1]:80").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.host_port().as_str()),
            ("::1", 80, "[::1]:80")
        );
        assert_eq!(Url::parse("HTTP://h/a").unwrap().port, 80);
        assert!(Url::parse("http://:80/").is_none());
        assert!(Url::parse("http://h:99999/").is_none());
        assert!(Url::parse("nonsense").is_none());
        assert!(Url::parse("http://h/a b").is_none());
    }

    #[test]
    fn scrape_urls_from_vectors() {
        let tsv = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vectors/http_tracker.tsv"
        ));
        let mut n = 0;
        for line in tsv.lines().filter(|l| l.starts_with("scrape URL")) {
            let v = line.split('\t').nth(1).unwrap();
            let (a, s) = v.split_once(" -> ").unwrap();
            assert_eq!(scrape_url(a).as_deref(), Some(s));
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(scrape_url("http://example.com/a"), None);
        assert_eq!(scrape_url("http://example.com/x%064announce"), None);
        assert_eq!(scrape_url("http://announce"), None);
    }
}
