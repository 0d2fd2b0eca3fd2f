//! A minimal HTTP/1.0 GET client for trackers: blocking `TcpStream`, a
//! deadline for every phase, a size limit, `Content-Length` and chunked
//! transfer encoding.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Instant;

use super::error::{TimeoutPhase, TrackerError};
use super::url::Url;

/// Largest response head (status line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;

fn remaining(deadline: Instant, phase: TimeoutPhase) -> Result<std::time::Duration, TrackerError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(TrackerError::Timeout { phase });
    }
    Ok(deadline - now)
}

/// Resolve `url`'s host (blocking; literals resolve immediately).
pub(crate) fn resolve(url: &Url) -> Result<Vec<SocketAddr>, TrackerError> {
    let addrs: Vec<SocketAddr> = url
        .host_port()
        .to_socket_addrs()
        .map_err(|e| TrackerError::Resolve(format!("{}: {e}", url.host)))?
        .collect();
    if addrs.is_empty() {
        return Err(TrackerError::Resolve(format!("{}: no addresses", url.host)));
    }
    Ok(addrs)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Most redirects followed by [`get`].
const MAX_REDIRECTS: usize = 3;

/// `GET url` and return the status code and the (de-chunked) body,
/// following up to three redirects to `http://` URLs (a redirect to another
/// scheme fails with [`TrackerError::UnsupportedScheme`]).
pub(crate) fn get(
    url: &Url,
    deadline: Instant,
    max_body: usize,
) -> Result<(u16, Vec<u8>), TrackerError> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let (status, body, location) = get_once(&url, deadline, max_body)?;
        let Some(loc) = location.filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308)) else {
            return Ok((status, body));
        };
        url = if loc.starts_with('/') {
            Url {
                path_and_query: loc,
                ..url
            }
        } else {
            let next = Url::parse(&loc).ok_or_else(|| {
                TrackerError::Malformed(format!("bad redirect location {loc:.100}"))
            })?;
            if next.scheme != "http" {
                return Err(TrackerError::UnsupportedScheme(next.scheme));
            }
            next
        };
    }
    Err(TrackerError::Malformed("too many redirects".into()))
}

/// The value of header `name` in the response head at the start of `buf`.
fn header(buf: &[u8], name: &str) -> Option<String> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

/// One `GET`: status, body and `Location` header.
fn get_once(
    url: &Url,
    deadline: Instant,
    max_body: usize,
) -> Result<(u16, Vec<u8>, Option<String>), TrackerError> {
    let addrs = resolve(url)?;
    remaining(deadline, TimeoutPhase::Resolve)?;
    let mut last_err = None;
    let mut stream = None;
    for addr in addrs.iter().take(4) {
        let left = remaining(deadline, TimeoutPhase::Connect)?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if is_timeout(&e) => {
                last_err = Some(TrackerError::Timeout {
                    phase: TimeoutPhase::Connect,
                })
            }
            Err(e) => last_err = Some(TrackerError::Io(e)),
        }
    }
    let mut stream = match stream {
        Some(s) => s,
        None => {
            return Err(last_err.unwrap_or(TrackerError::Timeout {
                phase: TimeoutPhase::Connect,
            }))
        }
    };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: peer/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.path_and_query,
        url.host_port(),
        env!("CARGO_PKG_VERSION")
    );
    stream
        .set_write_timeout(Some(remaining(deadline, TimeoutPhase::Send)?))
        .map_err(TrackerError::Io)?;
    stream.write_all(request.as_bytes()).map_err(|e| {
        if is_timeout(&e) {
            TrackerError::Timeout {
                phase: TimeoutPhase::Send,
            }
        } else {
            TrackerError::Io(e)
        }
    })?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((status, body)) = parse_response(&buf, false, max_body)? {
            return Ok((status, body, header(&buf, "location")));
        }
        stream
            .set_read_timeout(Some(remaining(deadline, TimeoutPhase::Receive)?))
            .map_err(TrackerError::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                let (status, body) = parse_response(&buf, true, max_body)?.ok_or_else(|| {
                    TrackerError::Malformed("connection closed before the response ended".into())
                })?;
                return Ok((status, body, header(&buf, "location")));
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > max_body + MAX_HEAD {
                    return Err(TrackerError::TooLarge);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                return Err(TrackerError::Timeout {
                    phase: TimeoutPhase::Receive,
                })
            }
            Err(e) => return Err(TrackerError::Io(e)),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse an HTTP response held in `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (and `eof` is false),
/// `Ok(Some((status, body)))` when the response is complete. Never panics.
pub fn parse_response(
    buf: &[u8],
    eof: bool,
    max_body: usize,
) -> Result<Option<(u16, Vec<u8>)>, TrackerError> {
    let head_end = match find(&buf[..buf.len().min(MAX_HEAD + 4)], b"\r\n\r\n") {
        Some(p) => p,
        None if buf.len() > MAX_HEAD => {
            return Err(TrackerError::Malformed("response head too large".into()))
        }
        None if eof => {
            return Err(TrackerError::Malformed(
                "no complete HTTP response head".into(),
            ))
        }
        None => return Ok(None),
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| TrackerError::Malformed("response head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(TrackerError::Malformed(format!(
            "not an HTTP response: {:.40}",
            status_line
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| TrackerError::Malformed("bad status line".into()))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| TrackerError::Malformed("bad Content-Length".into()))?;
            if n > max_body {
                return Err(TrackerError::TooLarge);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = &buf[head_end + 4..];
    if chunked {
        return match dechunk(body, max_body)? {
            Some(b) => Ok(Some((status, b))),
            None if eof => Err(TrackerError::Malformed("truncated chunked body".into())),
            None => Ok(None),
        };
    }
    if let Some(n) = content_length {
        if body.len() >= n {
            return Ok(Some((status, body[..n].to_vec())));
        }
        if eof {
            return Err(TrackerError::Malformed(
                "body shorter than Content-Length".into(),
            ));
        }
        return Ok(None);
    }
    if body.len() > max_body {
        return Err(TrackerError::TooLarge);
    }
    if eof {
        Ok(Some((status, body.to_vec())))
    } else {
        Ok(None)
    }
}

/// Decode a chunked body; `Ok(None)` if it is not complete yet.
fn dechunk(mut body: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, TrackerError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(body, b"\r\n") else {
            if body.len() > 1024 {
                return Err(TrackerError::Malformed("chunk size line too long".into()));
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&body[..eol])
            .map_err(|_| TrackerError::Malformed("bad chunk size".into()))?;
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| TrackerError::Malformed("bad chunk size".into()))?;
        if size > max_body || out.len() + size > max_body {
            return Err(TrackerError::TooLarge);
        }
        body = &body[eol + 2..];
        if size == 0 {
            // Trailers are ignored; the body is complete.
            return Ok(Some(out));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        if &body[size..size + 2] != b"\r\n" {
            return Err(TrackerError::Malformed("chunk not followed by CRLF".into()));
        }
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn content_length_and_chunked() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(
            parse_response(r, false, 100).unwrap(),
            Some((200, b"abc".to_vec()))
        );
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(r, false, 100).unwrap(),
            Some((200, b"abcde".to_vec()))
        );
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab";
        assert_eq!(parse_response(r, false, 100).unwrap(), None);
        assert!(parse_response(r, true, 100).is_err());
        let r = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(
            parse_response(r, true, 100).unwrap(),
            Some((404, b"nope".to_vec()))
        );
        assert!(matches!(
            parse_response(
                b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n",
                false,
                100
            ),
            Err(TrackerError::TooLarge)
        ));
        assert!(parse_response(b"garbage\r\n\r\n", true, 100).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            false,
            100
        )
        .is_err());
    }

    #[test]
    fn never_panics_on_prefixes() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for i in 0..r.len() {
            let _ = parse_response(&r[..i], false, 100);
            let _ = parse_response(&r[..i], true, 100);
        }
    }
}
