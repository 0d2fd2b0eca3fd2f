//! Who may use the control API: a client with the bearer token of
//! `control.json`, or the web page with a session cookie it got by trading a
//! one-time login code (`peer daemon` prints a link with one; `peer web` asks
//! the API for a fresh one). A player opening a stream URL
//! (`/stream/...?token=`) shows the *stream token* instead: derived from the
//! control token (SHA-1 of a fixed prefix and it), it opens `/stream/` only,
//! so a URL that ends up in a player's history or log gives no control.
//!
//! Against other web sites and DNS rebinding: the `Host` header must name
//! this machine (`localhost` or an IP literal); a request carrying the cookie
//! must come from our own origin (`Origin` equal to `http://` + `Host`; required
//! on every state-changing method) and not be marked cross-site by
//! `Sec-Fetch-Site`; and the cookie itself is `HttpOnly; SameSite=Strict`.

use crate::control::state::new_token;
use crate::control::{Request, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login code may wait to be used.
pub const CODE_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a session lasts without being used.
pub const SESSION_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most codes waiting and sessions kept (the oldest go first).
const MAX_CODES: usize = 16;
const MAX_SESSIONS: usize = 32;

/// Equal strings, compared without an early exit.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a `Host` header names this machine: `localhost` (or a name under
/// `.localhost`) or an IP literal, with any port. A DNS name that merely
/// resolves here (DNS rebinding) does not.
pub fn local_host(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.starts_with(':') => ip.to_string(),
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n.to_string(),
            Some(_) => return false,
            None => host.clone(),
        }
    };
    name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok()
}

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A client with the bearer token.
    Token,
    /// The web page, with its session cookie.
    Browser,
    /// A player with the stream token (`/stream/` only).
    Stream,
}

/// The stream token of a control token.
pub fn stream_token(token: &str) -> String {
    sha1_smol::Sha1::from(format!("peer stream token v1\0{token}"))
        .digest()
        .to_string()
}

/// The token, the login codes and the sessions.
pub struct Auth {
    token: String,
    stream: String,
    cookie: String,
    codes: Mutex<Vec<(String, Instant)>>,
    sessions: Mutex<HashMap<String, Instant>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Auth {
    /// For a daemon whose control API has `token` and listens on `port`
    /// (the cookie's name carries the port: cookies are shared by all the
    /// ports of a host).
    pub fn new(token: String, port: u16) -> Auth {
        Auth {
            stream: stream_token(&token),
            token,
            cookie: format!("peer_session_{port}"),
            codes: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// A new one-time login code.
    pub fn new_code(&self) -> String {
        let code = new_token();
        let mut c = locked(&self.codes);
        let now = Instant::now();
        c.retain(|(_, t)| now.duration_since(*t) < CODE_LIFETIME);
        if c.len() >= MAX_CODES {
            c.remove(0);
        }
        c.push((code.clone(), now));
        code
    }

    /// Trade a login code for a session: the `Set-Cookie` value.
    pub fn login(&self, code: &str) -> Option<String> {
        let now = Instant::now();
        {
            let mut c = locked(&self.codes);
            c.retain(|(_, t)| now.duration_since(*t) < CODE_LIFETIME);
            // Look at every code (no early exit), then remove the match.
            let hit = c
                .iter()
                .map(|(k, _)| same(k.as_bytes(), code.as_bytes()))
                .fold((None, 0), |(found, i), ok| {
                    (if ok { Some(i) } else { found }, i + 1)
                })
                .0?;
            c.remove(hit);
        }
        let id = format!("{}{}", new_token(), new_token());
        let mut s = locked(&self.sessions);
        s.retain(|_, t| now.duration_since(*t) < SESSION_IDLE);
        if s.len() >= MAX_SESSIONS {
            if let Some(oldest) = s.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                s.remove(&oldest);
            }
        }
        s.insert(id.clone(), now);
        Some(format!(
            "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.cookie,
            SESSION_IDLE.as_secs()
        ))
    }

    /// End the request's session: the `Set-Cookie` value that clears it.
    pub fn logout(&self, req: &Request) -> String {
        if let Some(id) = req.cookie(&self.cookie) {
            locked(&self.sessions).remove(id);
        }
        format!(
            "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
            self.cookie
        )
    }

    fn session_ok(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut s = locked(&self.sessions);
        match s
            .iter_mut()
            .find(|(k, _)| same(k.as_bytes(), id.as_bytes()))
        {
            Some((_, t)) if now.duration_since(*t) < SESSION_IDLE => {
                *t = now;
                true
            }
            _ => false,
        }
    }

    /// Check the `Host` header (every request, pages included).
    pub fn check_host(req: &Request) -> Result<(), Response> {
        match req.header("host") {
            Some(h) if !local_host(h) => Err(Response::error(
                403,
                "Host must be localhost or an IP address (DNS rebinding protection)",
            )),
            _ => Ok(()),
        }
    }

    /// The stream token (see the module's documentation).
    #[cfg(test)]
    pub fn stream_token(&self) -> &str {
        &self.stream
    }

    /// A stream request's `?token=`: `None` if it has none (the other
    /// checks apply), else whether it is the stream token.
    pub fn check_stream_token(&self, req: &Request) -> Option<Result<Who, Response>> {
        if !req.path.starts_with("/stream/") {
            return None;
        }
        let t = req.param("token")?;
        Some(if same(t.as_bytes(), self.stream.as_bytes()) {
            Ok(Who::Stream)
        } else {
            Err(Response::error(
                401,
                "wrong stream token (take the URL from GET /torrents/ID/streams)",
            ))
        })
    }

    /// Who sent this request, or the refusal.
    pub fn check(&self, req: &Request) -> Result<Who, Response> {
        if let Some(a) = req.header("authorization") {
            let ok = a
                .strip_prefix("Bearer ")
                .is_some_and(|t| same(t.trim().as_bytes(), self.token.as_bytes()));
            return if ok {
                Ok(Who::Token)
            } else {
                Err(unauthorized())
            };
        }
        let Some(id) = req.cookie(&self.cookie) else {
            return Err(unauthorized());
        };
        if !self.session_ok(id) {
            return Err(unauthorized());
        }
        // The cookie came with it: make sure our own page sent it.
        let host = req.header("host").unwrap_or("");
        let changes = !matches!(req.method.as_str(), "GET" | "HEAD");
        match req.header("origin") {
            Some(o) if !same(o.as_bytes(), format!("http://{host}").as_bytes()) => {
                return Err(Response::error(403, "cross-origin request refused"))
            }
            None if changes => {
                return Err(Response::error(
                    403,
                    "a state-changing request with the session cookie needs an Origin header",
                ))
            }
            _ => {}
        }
        if let Some(site) = req.header("sec-fetch-site") {
            if site != "same-origin" && site != "none" {
                return Err(Response::error(403, "cross-site request refused"));
            }
        }
        Ok(Who::Browser)
    }
}

fn unauthorized() -> Response {
    Response::error(
        401,
        "missing or wrong token (Authorization: Bearer <token from control.json>)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: "/torrents".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "localhost",
            "localhost:80",
            "127.0.0.1:5",
            "[::1]:8",
            "[::1]",
            "a.localhost:1",
            "10.0.0.1",
        ] {
            assert!(local_host(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:80",
            "127.0.0.1.nip.io:5",
            "localhost.evil.com",
            "[::1]x",
            "localhost:x",
        ] {
            assert!(!local_host(bad), "{bad}");
        }
    }

    #[test]
    fn codes_are_one_time_and_cookies_need_our_origin() {
        let a = Auth::new("t".repeat(32), 7);
        let code = a.new_code();
        assert!(a.login("nope").is_none());
        let set = a.login(&code).expect("first use");
        assert!(a.login(&code).is_none(), "a code works once");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        let cookie = set.split(';').next().expect("pair").to_string();
        let host = ("host", "127.0.0.1:7");
        let ck = ("cookie", cookie.as_str());
        assert_eq!(a.check(&req("GET", &[host, ck])), Ok(Who::Browser));
        let origin = ("origin", "http://127.0.0.1:7");
        assert_eq!(a.check(&req("POST", &[host, ck, origin])), Ok(Who::Browser));
        let status = |r: Result<Who, Response>| r.map_err(|e| e.status);
        assert_eq!(status(a.check(&req("POST", &[host, ck]))), Err(403));
        let evil = ("origin", "http://evil.example");
        assert_eq!(status(a.check(&req("POST", &[host, ck, evil]))), Err(403));
        assert_eq!(status(a.check(&req("GET", &[host, ck, evil]))), Err(403));
        let other_port = ("origin", "http://127.0.0.1:8");
        assert_eq!(
            status(a.check(&req("POST", &[host, ck, other_port]))),
            Err(403)
        );
        let cross = ("sec-fetch-site", "cross-site");
        assert_eq!(status(a.check(&req("GET", &[host, ck, cross]))), Err(403));
        assert_eq!(status(a.check(&req("GET", &[host]))), Err(401));
        assert_eq!(
            status(a.check(&req("GET", &[host, ("cookie", "peer_session_7=x")]))),
            Err(401)
        );
        let bearer = format!("Bearer {}", "t".repeat(32));
        assert_eq!(
            a.check(&req("POST", &[("authorization", &bearer)])),
            Ok(Who::Token)
        );
        assert_eq!(
            status(a.check(&req("POST", &[("authorization", "Bearer x")]))),
            Err(401)
        );
        // The stream token opens /stream/ only, and only itself.
        let st = a.stream_token().to_string();
        assert_ne!(st, "t".repeat(32));
        let mut r = req("GET", &[host]);
        r.path = "/stream/ab/0/x".into();
        assert_eq!(a.check_stream_token(&r), None);
        r.query = format!("token={st}");
        assert_eq!(a.check_stream_token(&r), Some(Ok(Who::Stream)));
        r.query = "token=nope".into();
        assert_eq!(a.check_stream_token(&r).map(status), Some(Err(401)));
        r.path = "/torrents".into();
        r.query = format!("token={st}");
        assert_eq!(a.check_stream_token(&r), None);
        assert_eq!(status(a.check(&r)), Err(401));
        // Logging out ends the session.
        let _ = a.logout(&req("POST", &[ck]));
        assert_eq!(status(a.check(&req("GET", &[host, ck]))), Err(401));
    }
}
