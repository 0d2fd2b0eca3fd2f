//! HTTP/1.1 requests and responses of the control API: the one request-head
//! parser (`httparse`), reading a request with a deadline and size limits, and
//! writing a response.

use serde_json::{json, Value};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request (head and body) on any route but those that allow more.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 32;

/// One parsed request.
#[derive(Debug, Default)]
pub struct Request {
    /// `GET`, `POST`, `DELETE`...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string (after `?`), maybe empty.
    pub query: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// A query parameter's value (not percent-decoded).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A cookie's value from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A response: JSON by default, or any bytes with a content type.
#[derive(Debug, PartialEq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// JSON body (when `content` is `None`).
    pub body: Value,
    /// A non-JSON body: its content type and bytes.
    pub content: Option<(&'static str, Cow<'static, [u8]>)>,
    /// Extra header lines.
    pub headers: Vec<(&'static str, String)>,
    /// A body written after the head by its own writer (a stream), in
    /// place of `body` and `content`.
    pub stream: Option<Box<BodyStream>>,
}

/// Writes a body of a known length to the connection, after the head.
pub type BodyWriter = Box<dyn FnOnce(&mut dyn Write) + Send>;

/// A streamed body: its content type, its length (the `Content-Length`),
/// and its writer (`None` for `HEAD`: the head only).
pub struct BodyStream {
    /// The content type.
    pub content_type: &'static str,
    /// The bytes the writer writes.
    pub len: u64,
    /// The writer.
    pub write: Option<BodyWriter>,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyStream({}, {} bytes)", self.content_type, self.len)
    }
}

impl PartialEq for BodyStream {
    /// Two streams are never equal (their writers cannot be compared).
    fn eq(&self, _: &BodyStream) -> bool {
        false
    }
}

impl Response {
    /// 200 with a body.
    pub fn ok(body: Value) -> Response {
        Response::json(200, body)
    }
    /// Any status with a JSON body.
    pub fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            body,
            content: None,
            headers: Vec::new(),
            stream: None,
        }
    }
    /// An error: `{"error": msg}`.
    pub fn error(status: u16, msg: impl Into<String>) -> Response {
        Response::json(status, json!({ "error": msg.into() }))
    }
    /// 200 with bytes of a content type.
    pub fn bytes(content_type: &'static str, bytes: impl Into<Cow<'static, [u8]>>) -> Response {
        Response {
            status: 200,
            body: Value::Null,
            content: Some((content_type, bytes.into())),
            headers: Vec::new(),
            stream: None,
        }
    }
    /// Add a header line.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
    /// A streamed body (see [`BodyStream`]).
    pub fn streamed(status: u16, stream: BodyStream) -> Response {
        Response {
            status,
            body: Value::Null,
            content: None,
            headers: Vec::new(),
            stream: Some(Box::new(stream)),
        }
    }
    /// The same response with another status.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }
}

/// The standard reason phrase of a status code (RFC 9110), for every code
/// we send (and the others of the standard); an unknown code gets its
/// class's name.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// The bytes of a response (`Connection: close`: one request per connection);
/// for a streamed body, its head only.
pub fn encode(r: &Response) -> Vec<u8> {
    let json;
    let (ctype, body, len): (&str, &[u8], u64) = match (&r.stream, &r.content) {
        (Some(s), _) => (s.content_type, &[], s.len),
        (None, Some((t, b))) => (t, b, b.len() as u64),
        (None, None) => {
            json = r.body.to_string();
            ("application/json", json.as_bytes(), json.len() as u64)
        }
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        r.status,
        reason(r.status),
    );
    if r.status == 401
        && !r
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
    {
        head.push_str("WWW-Authenticate: Bearer\r\n");
    }
    for (n, v) in &r.headers {
        // Header values are ours; still, never let one split the head.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Write a response (errors ignored: the client may be gone).
pub fn write_response(stream: &mut impl Write, r: &Response) {
    let _ = stream.write_all(&encode(r));
    let _ = stream.flush();
}

/// Write a response, and its streamed body if it has one.
pub fn send_response(stream: &mut impl Write, mut r: Response) {
    let body = r.stream.as_mut().and_then(|s| s.write.take());
    if stream.write_all(&encode(&r)).is_err() {
        return;
    }
    if let Some(write) = body {
        let mut w: &mut dyn Write = stream;
        write(&mut w);
    }
    let _ = stream.flush();
}

/// What [`read_request`] asks before it reads a body: the largest request
/// (head and body) allowed for this head, or a refusal.
pub type Admit<'a> = &'a dyn Fn(&Request) -> Result<usize, Response>;

/// Parse a complete head, if `buf` holds one: the request (without body),
/// the head's length and the body's declared length.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize, usize)>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Response::error(431, "too many header lines"))
        }
        Err(e) => return Err(Response::error(400, format!("bad request: {e}"))),
    };
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(Response::error(400, "bad request target"));
    }
    let mut length = 0usize;
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        match name.as_str() {
            "content-length" => {
                length = value
                    .parse()
                    .map_err(|_| Response::error(400, "bad Content-Length"))?;
            }
            "transfer-encoding" => {
                return Err(Response::error(
                    411,
                    "only Content-Length bodies are accepted",
                ))
            }
            _ => {}
        }
        out.push((name, value));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    Ok(Some((
        Request {
            method,
            path,
            query,
            headers: out,
            body: Vec::new(),
        },
        head_len,
        length,
    )))
}

/// Read one request within `timeout`: the head (at most [`MAX_HEAD`]), then,
/// if `admit` accepts the head, a body of at most what it allows.
pub fn read_request(
    stream: &mut dyn Read,
    set_timeout: &dyn Fn(Duration),
    timeout: Duration,
    admit: Admit<'_>,
) -> Result<Request, Response> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let read = |stream: &mut dyn Read, chunk: &mut [u8]| -> Result<usize, Response> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Response::error(400, "request timed out"));
        }
        set_timeout(left);
        match stream.read(chunk) {
            Ok(0) => Err(Response::error(400, "incomplete request")),
            Ok(n) => Ok(n),
            Err(_) => Err(Response::error(400, "incomplete request")),
        }
    };
    let (mut req, head_len, length) = loop {
        if let Some(parsed) = parse_head(&buf)? {
            break parsed;
        }
        if buf.len() >= MAX_HEAD {
            return Err(Response::error(431, "request head too large"));
        }
        let n = read(stream, &mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let limit = admit(&req)?;
    if head_len.saturating_add(length) > limit {
        return Err(Response::error(413, "request too large"));
    }
    let mut body = buf.split_off(head_len);
    while body.len() < length {
        let n = read(stream, &mut chunk)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    req.body = body;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_we_send_has_its_standard_reason() {
        // Every status peer-cli/src and the web interface construct.
        for (code, phrase) in [
            (200, "OK"),
            (201, "Created"),
            (303, "See Other"),
            (400, "Bad Request"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (409, "Conflict"),
            (413, "Payload Too Large"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
        ] {
            assert_eq!(reason(code), phrase, "{code}");
        }
        assert_eq!(reason(299), "Success");
        assert_eq!(reason(599), "Server Error");
        let out = encode(&Response::ok(json!({})).with_status(303));
        assert!(out.starts_with(b"HTTP/1.1 303 See Other\r\n"));
    }

    fn read(bytes: &[u8], limit: usize) -> Result<Request, Response> {
        let mut r = bytes;
        read_request(&mut r, &|_| {}, Duration::from_secs(1), &|_| Ok(limit))
    }

    #[test]
    fn parses_a_request_with_body_query_and_cookies() {
        let req = read(
            b"POST /torrents/ab12/pause?x=1&delete_data=true HTTP/1.1\r\nHost: 127.0.0.1:5\r\nCookie: a=1; peer_session_5=zz\r\nContent-Length: 2\r\n\r\n{}",
            MAX_REQUEST,
        )
        .expect("parsed");
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/torrents/ab12/pause");
        assert_eq!(req.param("delete_data"), Some("true"));
        assert_eq!(req.header("host"), Some("127.0.0.1:5"));
        assert_eq!(req.cookie("peer_session_5"), Some("zz"));
        assert_eq!(req.cookie("b"), None);
        assert_eq!(req.body, b"{}");
    }

    #[test]
    fn refuses_chunked_oversized_and_garbage() {
        let chunked = read(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            MAX_REQUEST,
        );
        assert_eq!(chunked.map(|_| ()).unwrap_err().status, 411);
        let big = read(
            b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n",
            MAX_REQUEST,
        );
        assert_eq!(big.map(|_| ()).unwrap_err().status, 413);
        let junk = read(b"\x00\x01 nonsense\r\n\r\n", MAX_REQUEST);
        assert_eq!(junk.map(|_| ()).unwrap_err().status, 400);
        let short = read(b"GET / HTTP/1.1\r\nHost: x\r\n", MAX_REQUEST);
        assert_eq!(short.map(|_| ()).unwrap_err().status, 400);
        let body_short = read(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
            MAX_REQUEST,
        );
        assert_eq!(body_short.map(|_| ()).unwrap_err().status, 400);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            read(&many, MAX_REQUEST).map(|_| ()).unwrap_err().status,
            431
        );
        let huge_head = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(
            read(&huge_head, MAX_REQUEST)
                .map(|_| ())
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn encodes_headers_without_line_breaks() {
        let r = Response::bytes("text/plain", b"hi".as_slice()).with_header("X-A", "1\r\nEvil: 2");
        let text = String::from_utf8(encode(&r)).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("X-A: 1Evil: 2\r\n"));
        assert!(text.ends_with("\r\n\r\nhi"));
    }
}
