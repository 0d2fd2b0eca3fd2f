//! The client of the control API that `peer add`, `peer list`... use.

use super::state::{read_info, NO_DAEMON};
use crate::args::CliError;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Largest response read.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

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
    let _ = s.set_write_timeout(Some(Duration::from_secs(60)));
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
    s.take(MAX_RESPONSE).read_to_end(&mut resp).map_err(io)?;
    parse_response(&resp)
}

/// The status and JSON body of a whole response.
fn parse_response(resp: &[u8]) -> Result<(u16, Value), CliError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(resp) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(CliError::Failed("control API: truncated response".into()))
        }
        Err(e) => return Err(CliError::Failed(format!("control API: bad response: {e}"))),
    };
    let status = r
        .code
        .ok_or_else(|| CliError::Failed("control API: bad response".into()))?;
    let v = serde_json::from_slice(&resp[head_len..]).unwrap_or(Value::Null);
    Ok((status, v))
}

/// The port of the daemon of `state`, if one answers there.
pub fn daemon_running(state: &Path) -> Option<u16> {
    let info = read_info(state)?;
    match call(state, "GET", "/status", None) {
        Ok((200, _)) => Some(info.port),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let (s, v) = parse_response(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\n{\"error\":\"x\"}",
        )
        .expect("parsed");
        assert_eq!(s, 404);
        assert_eq!(v["error"], "x");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-").is_err());
    }
}
