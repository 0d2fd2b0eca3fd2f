//! Fetch a `.torrent` file by `http://` URL (for `POST /torrents` with `url`):
//! one plain HTTP/1.1 GET, with a size limit, a deadline for the whole
//! transfer and at most a few redirects.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest `.torrent` fetched.
pub const MAX_TORRENT: usize = 8 * 1024 * 1024;
/// The whole fetch (redirects included) must finish within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_REDIRECTS: usize = 3;
const MAX_HEAD: usize = 16 * 1024;

/// `http://host[:port]/path` split into the host (with port) and the path.
fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs can be fetched".to_string())?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    if authority.contains('@') || authority.is_empty() {
        return Err(format!("not a usable URL: {url}"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
            Ok(p) if !h.is_empty() => (h.to_string(), p),
            _ if authority.starts_with('[') && authority.ends_with(']') => {
                (authority.to_string(), 80)
            }
            _ => return Err(format!("not a usable URL: {url}")),
        },
        _ => (authority.to_string(), 80),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("not a usable URL: {url}"));
    }
    Ok((host, port, path))
}

/// GET `url` and return the body.
pub fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + FETCH_TIMEOUT;
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&url, deadline)? {
            Fetched::Body(b) => return Ok(b),
            Fetched::Redirect(to) => {
                url = if to.starts_with("http://") {
                    to
                } else if to.starts_with('/') {
                    let (host, port, _) = split_url(&url)?;
                    format!("http://{host}:{port}{to}")
                } else {
                    return Err(format!("redirect to an unsupported location: {to}"));
                };
            }
        }
    }
    Err("too many redirects".into())
}

enum Fetched {
    Body(Vec<u8>),
    Redirect(String),
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs()))
    } else {
        Ok(d)
    }
}

fn get_once(url: &str, deadline: Instant) -> Result<Fetched, String> {
    let (host, port, path) = split_url(url)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .collect();
    let mut stream = None;
    let mut last_err = format!("{host}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, left(deadline)?.min(Duration::from_secs(5))) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = format!("{a}: {e}"),
        }
    }
    let mut s = stream.ok_or(last_err)?;
    let host_header = if port == 80 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: peer/{}\r\nAccept: application/x-bittorrent, */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    s.set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    // Read everything (Connection: close), bounded in size and time.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        s.set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("{url}: {e}")),
        }
        if buf.len() > MAX_TORRENT + MAX_HEAD {
            return Err(format!("{url}: larger than {} MiB", MAX_TORRENT >> 20));
        }
    }
    parse(&buf, url)
}

fn parse(buf: &[u8], url: &str) -> Result<Fetched, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(format!("{url}: truncated response")),
        Err(e) => return Err(format!("{url}: bad response: {e}")),
    };
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let code = r.code.unwrap_or(0);
    if matches!(code, 301 | 302 | 303 | 307 | 308) {
        return header("location")
            .map(Fetched::Redirect)
            .ok_or_else(|| format!("{url}: redirect without a Location"));
    }
    if code != 200 {
        return Err(format!("{url}: HTTP {code}"));
    }
    let raw = &buf[head_len..];
    let body = if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(raw).ok_or_else(|| format!("{url}: bad chunked body"))?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("{url}: bad Content-Length"))?;
        if raw.len() < len {
            return Err(format!("{url}: truncated body"));
        }
        raw[..len].to_vec()
    } else {
        raw.to_vec()
    };
    if body.len() > MAX_TORRENT {
        return Err(format!("{url}: larger than {} MiB", MAX_TORRENT >> 20));
    }
    Ok(Fetched::Body(body))
}

/// Decode a complete chunked body.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size + 2 || out.len() + size > MAX_TORRENT {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:8000/a/b.torrent?x=1#f").expect("ok"),
            ("127.0.0.1".into(), 8000, "/a/b.torrent?x=1".into())
        );
        assert_eq!(
            split_url("http://host").expect("ok"),
            ("host".into(), 80, "/".into())
        );
        assert_eq!(
            split_url("http://[::1]:9/x").expect("ok"),
            ("[::1]".into(), 9, "/x".into())
        );
        assert!(split_url("https://host/x").is_err());
        assert!(split_url("http://user@host/x").is_err());
        assert!(split_url("http://host:port/x").is_err());
    }

    #[test]
    fn chunked() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert!(dechunk(b"5\r\nab").is_none());
    }

    fn serve_once(response: Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                let _ = s.write_all(&response);
            }
        });
        port
    }

    #[test]
    fn fetches_with_limits() {
        let port = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec());
        assert_eq!(
            fetch(&format!("http://127.0.0.1:{port}/t")).expect("body"),
            b"hello"
        );
        let port = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        assert!(fetch(&format!("http://127.0.0.1:{port}/t"))
            .unwrap_err()
            .contains("404"));
        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.resize(MAX_TORRENT + MAX_HEAD + 100_000, b'x');
        let port = serve_once(big);
        assert!(fetch(&format!("http://127.0.0.1:{port}/t"))
            .unwrap_err()
            .contains("larger"));
        let target = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
        );
        let port = serve_once(
            format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target}/x\r\n\r\n")
                .into_bytes(),
        );
        assert_eq!(
            fetch(&format!("http://127.0.0.1:{port}/t")).expect("body"),
            b"ok"
        );
    }
}
