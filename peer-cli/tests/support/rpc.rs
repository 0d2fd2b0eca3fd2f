#![allow(clippy::unwrap_used)]
//! Helpers of the Transmission RPC tests: a daemon, a client of our own
//! (session-id handshake included), our JSON API.

use super::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub fn start_daemon(state: &Path, rpc_port: u16, extra: &[&str]) -> Child {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon")
        .arg("--state")
        .arg(state)
        .args(["--port", &free_port().to_string(), "--no-lsd", "--no-dht"])
        .args(["--rpc-port", &rpc_port.to_string()])
        .args(extra);
    let mut d = Child::spawn("peer daemon", cmd);
    assert!(
        d.wait_for_output("web interface: http://", LONG_WAIT),
        "daemon did not start\n{}",
        d.output()
    );
    d
}

/// One HTTP request; (status, headers in lower case, body).
pub fn http(port: u16, req: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).to_string();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A Transmission RPC client of our own for the checks (handshake included).
pub struct Rpc {
    pub port: u16,
    pub auth: Option<String>,
    pub id: String,
}

impl Rpc {
    pub fn new(port: u16, auth: Option<&str>) -> Rpc {
        use base64::Engine;
        Rpc {
            port,
            auth: auth.map(|a| base64::engine::general_purpose::STANDARD.encode(a)),
            id: String::new(),
        }
    }
    pub fn post(&mut self, body: &str) -> (u16, Value) {
        for _ in 0..2 {
            let auth = self
                .auth
                .as_ref()
                .map(|a| format!("Authorization: Basic {a}\r\n"))
                .unwrap_or_default();
            let req = format!(
                "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{auth}X-Transmission-Session-Id: {}\r\nContent-Length: {}\r\n\r\n{body}",
                self.port,
                self.id,
                body.len()
            );
            let (status, head, text) = http(self.port, &req);
            if status == 409 {
                self.id = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-transmission-session-id: "))
                    .unwrap()
                    .trim()
                    .to_string();
                continue;
            }
            return (status, serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        panic!("409 twice");
    }
    pub fn call(&mut self, method: &str, args: Value) -> Value {
        let (status, v) = self.post(&json!({"method": method, "arguments": args}).to_string());
        assert_eq!(status, 200, "{method}: {v}");
        v
    }
    pub fn ok(&mut self, method: &str, args: Value) -> Value {
        let v = self.call(method, args.clone());
        assert_eq!(v["result"], "success", "{method} {args}: {v}");
        v["arguments"].clone()
    }
    pub fn err(&mut self, method: &str, args: Value) -> String {
        let v = self.call(method, args.clone());
        let r = v["result"].as_str().unwrap().to_string();
        assert_ne!(r, "success", "{method} {args} should fail: {v}");
        r
    }
    pub fn torrents(&mut self, fields: &[&str]) -> Vec<Value> {
        self.ok("torrent-get", json!({ "fields": fields }))["torrents"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// `GET /torrents` of our own API.
pub fn our_torrents(state: &Path) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("control.json")).unwrap())
            .unwrap();
    let (port, token) = (
        v["port"].as_u64().unwrap() as u16,
        v["token"].as_str().unwrap(),
    );
    let (status, _, body) = http(
        port,
        &format!(
            "GET /torrents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
        ),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `GET PATH` of our own API.
pub fn our_get(state: &Path, path: &str) -> Value {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("control.json")).unwrap())
            .unwrap();
    let (port, token) = (
        v["port"].as_u64().unwrap() as u16,
        v["token"].as_str().unwrap(),
    );
    let (status, _, body) = http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}
