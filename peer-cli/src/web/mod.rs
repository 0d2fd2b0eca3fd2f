//! The web interface of `peer daemon`, served on the control API's port: the
//! page (plain HTML, CSS and JavaScript from `peer-cli/web/`, embedded in the
//! binary), the login by one-time code, and [`Site`], the control server's
//! service that checks every request ([`auth`]) before the daemon's API
//! handler sees it.

pub mod auth;

use crate::control::http::MAX_REQUEST;
use crate::control::server::Service;
use crate::control::transmission::Rpc;
use crate::control::{Request, Response};
use auth::{Auth, Who};
use serde_json::json;
use std::sync::Arc;

/// Largest `POST /torrents` request (it may carry a `.torrent` file, base64).
pub const MAX_ADD_REQUEST: usize = 8 * 1024 * 1024;

const INDEX: &str = include_str!("../../web/index.html");
const APP: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");
const ICON: &str = include_str!("../../web/icon.svg");

/// The page may load only itself and talk only to its own origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The API handler of the daemon.
pub type Handler = Box<dyn Fn(&Request) -> Response + Send + Sync>;

/// The control server's service: pages, login, then the API.
pub struct Site {
    /// The token, codes and sessions.
    pub auth: Auth,
    api: Handler,
    /// The Transmission RPC (`/transmission/...`), with its own checks.
    transmission: Option<Arc<Rpc>>,
}

/// Whether a path is the Transmission RPC's.
fn transmission_path(path: &str) -> bool {
    path == "/transmission" || path.starts_with("/transmission/")
}

fn page(content_type: &'static str, text: &'static str) -> Response {
    Response::bytes(content_type, text.as_bytes())
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "no-referrer")
}

/// Requests that need no token or cookie: the page's files and the login.
fn public(r: &Request) -> bool {
    r.method == "GET"
        && matches!(
            r.path.as_str(),
            "/" | "/index.html" | "/login" | "/web/app.js" | "/web/style.css" | "/web/icon.svg"
        )
}

impl Site {
    /// A site with this authority in front of the daemon's API handler.
    pub fn new(auth: Auth, api: Handler) -> Site {
        Site {
            auth,
            api,
            transmission: None,
        }
    }

    /// Serve the Transmission RPC too.
    pub fn with_transmission(mut self, rpc: Arc<Rpc>) -> Site {
        self.transmission = Some(rpc);
        self
    }

    fn login(&self, r: &Request) -> Response {
        let cookie = r.param("code").and_then(|c| self.auth.login(c));
        match cookie {
            Some(c) => Response::bytes("text/plain", b"logged in".as_slice())
                .with_status(303)
                .with_header("Location", "/")
                .with_header("Set-Cookie", c)
                .with_header("Referrer-Policy", "no-referrer"),
            None => Response::bytes(
                "text/html; charset=utf-8",
                "<!doctype html><meta charset=utf-8><title>peer: login</title>\
                 <p>This login link is not valid: each one works once and for an hour. \
                 Run <code>peer web</code> for a new one.</p>"
                    .as_bytes(),
            )
            .with_status(403)
            .with_header("Content-Security-Policy", CSP)
            .with_header("Referrer-Policy", "no-referrer"),
        }
    }
}

impl Service for Site {
    fn admit(&self, head: &Request) -> Result<usize, Response> {
        if let (Some(t), true) = (&self.transmission, transmission_path(&head.path)) {
            return t.admit(head);
        }
        Auth::check_host(head)?;
        if public(head) {
            return Ok(MAX_REQUEST);
        }
        if let Some(who) = self.auth.check_stream_token(head) {
            who?;
            return Ok(MAX_REQUEST);
        }
        self.auth.check(head)?;
        if head.method == "POST" && head.path.trim_end_matches('/') == "/torrents" {
            Ok(MAX_ADD_REQUEST)
        } else {
            Ok(MAX_REQUEST)
        }
    }

    fn handle(&self, r: &Request) -> Response {
        if let (Some(t), true) = (&self.transmission, transmission_path(&r.path)) {
            return t.handle(r);
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/" | "/index.html") => page("text/html; charset=utf-8", INDEX),
            ("GET", "/web/app.js") => page("text/javascript; charset=utf-8", APP),
            ("GET", "/web/style.css") => page("text/css; charset=utf-8", STYLE),
            ("GET", "/web/icon.svg") => page("image/svg+xml", ICON),
            ("GET", "/login") => self.login(r),
            ("POST", "/web/code") => match self.auth.check(r) {
                Ok(Who::Token) => {
                    let code = self.auth.new_code();
                    Response::ok(json!({
                        "code": code,
                        "path": format!("/login?code={code}"),
                        "expires_in": auth::CODE_LIFETIME.as_secs(),
                    }))
                }
                _ => Response::error(403, "login codes are given to the token holder only"),
            },
            ("POST", "/web/logout") => Response::ok(json!({"logged_out": true}))
                .with_header("Set-Cookie", self.auth.logout(r)),
            (_, "/web/code" | "/web/logout") => {
                Response::error(405, format!("{} not allowed on {}", r.method, r.path))
            }
            _ => (self.api)(r),
        }
    }
}
