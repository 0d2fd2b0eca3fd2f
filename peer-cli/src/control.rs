//! The local control API of `peer daemon`: a tiny HTTP/1.1 JSON server on
//! 127.0.0.1 (one short-lived thread per request), the client the control
//! commands use, and the `control.json` file (port and token) in the state
//! directory. See `docs/API.md`.

use crate::args::CliError;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request accepted (head and body together).
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Name of the file holding the port and token, in the state directory.
pub const CONTROL_FILE: &str = "control.json";

/// The message every control command prints when no daemon answers.
pub const NO_DAEMON: &str = "no running peer daemon (start one with `peer daemon`)";

/// Where a daemon listens and the token it wants.
#[derive(Debug, Clone)]
pub struct ControlInfo {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Bearer token.
    pub token: String,
}

/// `$XDG_DATA_HOME/peer`, else `$HOME/.local/share/peer`.
pub fn default_state_dir() -> Result<PathBuf, CliError> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("peer"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/peer")),
        None => Err(CliError::Failed(
            "no state directory: set --state, XDG_DATA_HOME or HOME".into(),
        )),
    }
}

/// The given state directory or the default one.
pub fn state_dir(given: Option<PathBuf>) -> Result<PathBuf, CliError> {
    match given {
        Some(d) => Ok(d),
        None => default_state_dir(),
    }
}

/// Read `STATE/control.json`, if there is a valid one.
pub fn read_info(state: &Path) -> Option<ControlInfo> {
    let text = std::fs::read_to_string(state.join(CONTROL_FILE)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let port = u16::try_from(v.get("port")?.as_u64()?).ok()?;
    let token = v.get("token")?.as_str()?.to_string();
    Some(ControlInfo { port, token })
}

/// Write `STATE/control.json` (mode 0600, replaced atomically).
pub fn write_info(state: &Path, info: &ControlInfo) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = state.join(format!("{CONTROL_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let body = json!({"port": info.port, "token": info.token}).to_string();
    f.write_all(body.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, state.join(CONTROL_FILE))
}

/// Remove `STATE/control.json`.
pub fn remove_info(state: &Path) {
    let _ = std::fs::remove_file(state.join(CONTROL_FILE));
}

/// 32 random hex characters (std's randomly keyed hasher, the time and the pid).
pub fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for i in 0..2u32 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(i);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, `DELETE`...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string (after `?`), maybe empty.
    pub query: String,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A JSON response.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Response {
    /// 200 with a body.
    pub fn ok(body: Value) -> Response {
        Response { status: 200, body }
    }
    /// An error: `{"error": msg}`.
    pub fn error(status: u16, msg: impl Into<String>) -> Response {
        Response {
            status,
            body: json!({ "error": msg.into() }),
        }
    }
}

/// The request handler.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running control server.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listen on 127.0.0.1:0 and serve requests that carry `token`.
    pub fn start(token: String, handler: Handler) -> std::io::Result<Server> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let token = Arc::new(token);
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (t, h) = (token.clone(), handler.clone());
                            let spawned = std::thread::Builder::new()
                                .name("control request".into())
                                .spawn(move || serve_one(stream, &t, &h));
                            if let Err(e) = spawned {
                                log::warn!("control: cannot start a request thread: {e}");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            log::warn!("control: accept: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting requests.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        _ => "Error",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response) {
    let body = r.body.to_string();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        body.len()
    );
    if r.status == 401 {
        head.push_str("WWW-Authenticate: Bearer\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

/// Equal strings, compared without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn serve_one(mut stream: TcpStream, token: &str, handler: &Handler) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let r = match read_request(&mut stream, token) {
        Ok(req) => handler(&req),
        Err(r) => r,
    };
    write_response(&mut stream, &r);
}

fn read_request(stream: &mut TcpStream, token: &str) -> Result<Request, Response> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() >= MAX_REQUEST {
            return Err(Response::error(413, "request too large"));
        }
        if Instant::now() > deadline {
            return Err(Response::error(400, "request timed out"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Response::error(400, "incomplete request")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(Response::error(400, "incomplete request")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    if method.is_empty() || !target.starts_with('/') {
        return Err(Response::error(400, "bad request line"));
    }
    let mut length = 0usize;
    let mut auth = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
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
            "authorization" => auth = Some(value.to_string()),
            _ => {}
        }
    }
    let authorized = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()));
    if !authorized {
        return Err(Response::error(
            401,
            "missing or wrong token (Authorization: Bearer <token from control.json>)",
        ));
    }
    if head_end + 4 + length > MAX_REQUEST {
        return Err(Response::error(413, "request too large"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        if Instant::now() > deadline {
            return Err(Response::error(400, "request timed out"));
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(Response::error(400, "incomplete body")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(Request {
        method,
        path,
        query,
        body,
    })
}

/// Send one request to the daemon of `state`; returns the status and JSON body.
/// Fails with [`NO_DAEMON`] if no daemon answers.
pub fn call(
    state: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), CliError> {
    let info = read_info(state).ok_or_else(|| CliError::Failed(NO_DAEMON.into()))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, info.port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|_| CliError::Failed(NO_DAEMON.into()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        info.port,
        info.token,
        body.len()
    );
    let io = |e: std::io::Error| CliError::Failed(format!("control API: {e}"));
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(io)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| CliError::Failed("control API: truncated response".into()))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| CliError::Failed("control API: bad response".into()))?;
    let v = serde_json::from_str(body).unwrap_or(Value::Null);
    Ok((status, v))
}

/// True if a daemon answers on the port recorded in `STATE/control.json`.
pub fn daemon_running(state: &Path) -> Option<u16> {
    let info = read_info(state)?;
    match call(state, "GET", "/status", None) {
        Ok((200, _)) => Some(info.port),
        _ => None,
    }
}
