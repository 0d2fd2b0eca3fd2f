//! `peer FILE... --stream [--stream-port PORT]` (issue 24): the plain `peer`
//! command serves its torrents' files over HTTP on 127.0.0.1 with the same
//! routes as the daemon ([`Streams`]), on a port of its own:
//!
//! - `GET` / `HEAD /stream/<info-hash>/<file index>/<name>?token=T`
//! - `GET /torrents/<info-hash>/streams?token=T` (JSON, as the daemon's)
//! - `GET /torrents/<info-hash>/playlist.m3u?token=T` (M3U)
//!
//! There is no control API here: every request carries the random stream
//! token `T` (made at start-up, printed in the URLs only) or gets `401`,
//! and its `Host` must name this machine (`web::auth::Auth::check_host`,
//! against DNS rebinding). The control API's server (`control::server`:
//! one accept thread, a fixed pool of workers) serves them.

use super::Streams;
use crate::control::http::MAX_REQUEST;
use crate::control::server::{bind_local_port, Service};
use crate::control::{new_token, Request, Response, Server};
use crate::web::auth::{same, Auth};
use bittorrent_core::{InfoHash, Session};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

/// The stream server of `peer FILE --stream`.
pub struct LocalStreams {
    server: Server,
    service: Arc<Local>,
}

/// What its workers serve.
struct Local {
    session: Weak<Session>,
    streams: Streams,
    token: String,
}

impl LocalStreams {
    /// Listen on 127.0.0.1:`port` (0: any free port) and serve `session`'s
    /// torrents.
    pub fn start(session: &Arc<Session>, port: u16) -> std::io::Result<LocalStreams> {
        let listener = bind_local_port(port)?;
        let addr = listener.local_addr()?;
        let token = new_token();
        let service = Arc::new(Local {
            session: Arc::downgrade(session),
            streams: Streams::new(token.clone(), addr),
            token,
        });
        let server = Server::start(listener, service.clone())?;
        Ok(LocalStreams { server, service })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The playlist URL and each file's path and stream URL of a torrent
    /// (`None` while its metadata is missing).
    pub fn urls(
        &self,
        session: &Session,
        ih: &InfoHash,
    ) -> Option<(String, Vec<(String, String)>)> {
        let files = self.service.streams.urls(session, ih)?;
        let playlist = format!(
            "http://{}/torrents/{}/playlist.m3u?token={}",
            self.addr(),
            ih.to_hex(),
            self.service.token
        );
        Some((playlist, files))
    }

    /// Print a torrent's URLs (stdout) if its metadata is here; whether
    /// it printed them.
    pub fn print_urls(&self, session: &Session, ih: &InfoHash) -> bool {
        let Some((playlist, files)) = self.urls(session, ih) else {
            return false;
        };
        let mut out = std::io::stdout().lock();
        for (path, url) in files {
            let _ = writeln!(out, "stream {path}: {url}");
        }
        let _ = writeln!(out, "playlist {}: {playlist}", ih.to_hex());
        let _ = out.flush();
        true
    }

    /// Stop serving (bodies being sent finish or time out).
    pub fn stop(self) {
        self.server.stop();
    }
}

impl Local {
    /// The stream token in `?token=`, or `401`.
    fn authorise(&self, r: &Request) -> Result<(), Response> {
        Auth::check_host(r)?;
        match r.param("token") {
            Some(t) if same(t.as_bytes(), self.token.as_bytes()) => Ok(()),
            Some(_) => Err(Response::error(401, "wrong stream token")),
            None => Err(Response::error(
                401,
                "a stream token is needed (?token=, from the URLs peer printed)",
            )),
        }
    }
}

impl Service for Local {
    fn admit(&self, head: &Request) -> Result<usize, Response> {
        self.authorise(head)?;
        Ok(MAX_REQUEST)
    }

    fn handle(&self, r: &Request) -> Response {
        if let Err(resp) = self.authorise(r) {
            return resp;
        }
        let Some(session) = self.session.upgrade() else {
            return Response::error(503, "peer is stopping");
        };
        let find = |id: &str| super::find(&session, id);
        self.streams
            .route(&session, r, &find)
            .unwrap_or_else(|| Response::error(404, format!("no such URL: {}", r.path)))
    }
}
