//! `peer daemon [--state DIR] [--port N] [--no-lsd] [--no-dht] [--dht-bootstrap HOST:PORT]...
//! [--encryption prefer|require|off]`
//!
//! Runs the session in the foreground with every torrent recorded in the
//! state directory, and serves the local control API (`docs/API.md`) until
//! Ctrl-C or SIGTERM.

use crate::args::{Arg, Args, CliError};
use crate::cmd::run::install_stop_handler;
use crate::control::{self, ControlInfo, Request, Response, Server};
use crate::progress::Progress;
use crate::web::{auth::Auth, Site};
use bittorrent_core::engine::metadata::fetch_metainfo;
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::{AddTorrent, Config, Encryption, InfoHash, Phase, Session, TorrentStatus};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a magnet link's metadata is looked for.
const MAGNET_TIMEOUT: Duration = Duration::from_secs(300);

/// Run `peer daemon`.
pub fn run(mut args: Args) -> Result<(), CliError> {
    let mut state = None;
    let mut port: Option<u16> = None;
    let mut lsd = true;
    let mut encryption: Option<Encryption> = None;
    let mut dht = true;
    let mut dht_bootstrap = Vec::new();
    while let Some(arg) = args.next() {
        match arg {
            Arg::Flag(f) => match f.as_str() {
                "--state" => state = Some(PathBuf::from(args.value(&f)?)),
                "--port" | "-p" => port = Some(args.parsed(&f)?),
                "--no-lsd" => lsd = false,
                "--encryption" => {
                    encryption = Some(
                        args.value(&f)?
                            .parse()
                            .map_err(|e| CliError::Usage(format!("--encryption: {e}")))?,
                    )
                }
                "--no-dht" => dht = false,
                "--dht-bootstrap" => {
                    let v = args.value(&f)?;
                    let addr = std::net::ToSocketAddrs::to_socket_addrs(v.as_str())
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| {
                            CliError::Usage(format!("--dht-bootstrap: not an address: {v}"))
                        })?;
                    dht_bootstrap.push(addr);
                }
                _ => return Err(CliError::Usage(format!("unknown flag {f}"))),
            },
            Arg::Positional(p) => {
                return Err(CliError::Usage(format!(
                    "peer daemon takes no argument ({})",
                    p.to_string_lossy()
                )))
            }
        }
    }
    let state = control::state_dir(state)?;
    std::fs::create_dir_all(&state)
        .map_err(|e| CliError::Failed(format!("{}: {e}", state.display())))?;
    let state = std::fs::canonicalize(&state)
        .map_err(|e| CliError::Failed(format!("{}: {e}", state.display())))?;
    if let Some(p) = control::daemon_running(&state) {
        return Err(CliError::Failed(format!(
            "a peer daemon is already running on port {p} (state {})",
            state.display()
        )));
    }
    // The configuration saved by the last session (port, limits, peer-id
    // prefix) applies unless a flag says otherwise.
    let mut config = Config::from_state_dir(&state).unwrap_or_else(|| Config {
        state_dir: Some(state.clone()),
        ..Config::default()
    });
    if let Some(p) = port {
        config.listen_port = p;
    }
    if let Some(e) = encryption {
        config.encryption = e;
    }
    config.lsd = lsd;
    config.dht = dht;
    config.dht_bootstrap = dht_bootstrap;
    let session = Arc::new(Session::start(config).map_err(|e| CliError::failed(&e))?);
    let restored = session.restore().map_err(|e| CliError::failed(&e))?;
    let stop = install_stop_handler()?;
    let token = control::new_token();
    let listener =
        control::server::bind_local().map_err(|e| CliError::Failed(format!("control API: {e}")))?;
    let control_addr = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("control API: {e}")))?;
    let daemon = Arc::new(Daemon {
        session: Arc::downgrade(&session),
        pending: Arc::default(),
        control_addr,
        download_dir: std::env::current_dir().unwrap_or_else(|_| state.clone()),
    });
    let d = daemon.clone();
    let site = Arc::new(Site::new(
        Auth::new(token.clone(), control_addr.port()),
        Box::new(move |r: &Request| d.handle(r)),
    ));
    let login_code = site.auth.new_code();
    let server =
        Server::start(listener, site).map_err(|e| CliError::Failed(format!("control API: {e}")))?;
    control::write_info(
        &state,
        &ControlInfo {
            port: server.addr().port(),
            token,
        },
    )
    .map_err(|e| CliError::Failed(format!("{}: {e}", state.join("control.json").display())))?;
    eprintln!(
        "peer daemon: listening on {}, control API on {}, state {} ({} torrents restored)",
        session.local_addr(),
        server.addr(),
        state.display(),
        restored.len()
    );
    eprintln!(
        "peer daemon: web interface: http://{control_addr}/login?code={login_code} (works once; `peer web` prints a new link)"
    );
    let mut progress = Progress::new();
    while !stop.load(Ordering::SeqCst) {
        let mut st = session.torrents();
        st.sort_by(|a, b| a.name.cmp(&b.name));
        progress.show(&st);
        std::thread::sleep(Duration::from_millis(200));
    }
    progress.finish();
    eprintln!("stopping...");
    server.stop();
    // Request threads hold the session only while they run (bounded).
    let mut session = session;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Arc::try_unwrap(session) {
            Ok(s) => {
                s.shutdown();
                break;
            }
            Err(s) if Instant::now() < deadline => {
                session = s;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => {
                log::warn!("a control request is still running; exiting without waiting");
                break;
            }
        }
    }
    control::remove_info(&state);
    Ok(())
}

/// A pending magnet link: the daemon is fetching its metadata.
#[derive(Clone)]
struct Pending {
    name: String,
    dir: PathBuf,
    error: Option<String>,
}

/// Magnets being fetched (or that failed), by info-hash.
#[derive(Default)]
struct PendingMap(std::sync::Mutex<HashMap<InfoHash, Pending>>);

impl PendingMap {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<InfoHash, Pending>) -> R) -> R {
        let mut g = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }
}

/// What the control API works on.
struct Daemon {
    session: Weak<Session>,
    pending: Arc<PendingMap>,
    /// Where the control API (and the web interface) listens.
    control_addr: std::net::SocketAddr,
    /// Suggested to the web page as where to save new torrents.
    download_dir: PathBuf,
}

/// `checking`, `downloading`, `seeding`, `paused`, `failed`, `stalled`.
fn state_name(s: &TorrentStatus) -> &'static str {
    if s.paused {
        return "paused";
    }
    match s.phase {
        Phase::Checking => "checking",
        Phase::Downloading => "downloading",
        Phase::Seeding => "seeding",
        Phase::Failed(_) => "failed",
        Phase::Stalled(_) => "stalled",
    }
}

fn torrent_json(s: &TorrentStatus) -> Value {
    let progress = if s.pieces_total == 0 {
        0.0
    } else {
        f64::from(s.pieces_have) / f64::from(s.pieces_total)
    };
    let error = match &s.phase {
        Phase::Failed(e) | Phase::Stalled(e) => Some(e.clone()),
        _ => None,
    };
    // Since the daemon started; a torrent that downloaded nothing counts
    // what it has.
    let base = if s.downloaded > 0 {
        s.downloaded
    } else {
        s.bytes_have
    };
    let ratio = (base > 0).then(|| s.uploaded as f64 / base as f64);
    let eta = if s.paused {
        None
    } else {
        s.eta().map(|d| d.as_secs())
    };
    json!({
        "id": s.info_hash.to_hex(),
        "name": s.name,
        "state": state_name(s),
        "error": error,
        "progress": progress,
        "pieces_have": s.pieces_have,
        "pieces_total": s.pieces_total,
        "bytes_have": s.bytes_have,
        "total_length": s.total_length,
        "downloaded": s.downloaded,
        "uploaded": s.uploaded,
        "download_rate": s.download_rate,
        "upload_rate": s.upload_rate,
        "peers": s.peers,
        "seeds": s.seeds,
        "paused": s.paused,
        "save_path": s.save_path.to_string_lossy(),
        "tracker": {
            "url": s.tracker.url,
            "last_announce": s.tracker.last_announce,
            "peers_returned": s.tracker.peers_returned,
            "error": s.tracker.error,
        },
        "ratio": ratio,
        "eta": eta,
    })
}

fn pending_json(ih: &InfoHash, p: &Pending) -> Value {
    json!({
        "id": ih.to_hex(),
        "name": p.name,
        "state": if p.error.is_some() { "failed" } else { "metadata" },
        "error": p.error,
        "progress": 0.0,
        "pieces_have": 0, "pieces_total": 0, "bytes_have": 0, "total_length": 0,
        "downloaded": 0, "uploaded": 0, "download_rate": 0, "upload_rate": 0,
        "peers": 0, "seeds": 0, "paused": false,
        "save_path": p.dir.to_string_lossy(),
        "tracker": Value::Null,
        "ratio": Value::Null,
        "eta": Value::Null,
    })
}

/// A torrent named by an ID.
enum Found {
    Torrent(InfoHash),
    Pending(InfoHash),
}

impl Daemon {
    fn handle(&self, r: &Request) -> Response {
        let Some(session) = self.session.upgrade() else {
            return Response::error(503, "the daemon is stopping");
        };
        let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("GET", ["status"]) => self.status(&session),
            ("GET", ["torrents"]) => self.list(&session),
            ("POST", ["torrents"]) => self.add(&session, r),
            ("GET", ["torrents", id]) => match self.find(&session, id) {
                Ok(Found::Torrent(ih)) => match session.status(&ih) {
                    Some(s) => Response::ok(torrent_json(&s)),
                    None => Response::error(404, format!("no torrent {id}")),
                },
                Ok(Found::Pending(ih)) => self
                    .pending
                    .with(|p| p.get(&ih).map(|x| pending_json(&ih, x)))
                    .map_or_else(|| Response::error(404, "gone"), Response::ok),
                Err(e) => e,
            },
            ("GET", ["torrents", id, "details"]) => match self.find(&session, id) {
                Ok(Found::Torrent(ih)) => super::details::details(&session, &ih).map_or_else(
                    || Response::error(404, format!("no torrent {id}")),
                    Response::ok,
                ),
                Ok(Found::Pending(ih)) => Response::ok(json!({
                    "id": ih.to_hex(), "files": [], "peers": [], "trackers": [],
                    "pieces": {"count": 0, "have": 0, "bitfield": ""},
                })),
                Err(e) => e,
            },
            ("POST", ["torrents", id, action @ ("pause" | "resume")]) => {
                let ih = match self.find(&session, id) {
                    Ok(Found::Torrent(ih)) => ih,
                    Ok(Found::Pending(_)) => {
                        return Response::error(409, "the torrent's metadata is not here yet")
                    }
                    Err(e) => return e,
                };
                let res = if *action == "pause" {
                    session.pause(&ih)
                } else {
                    session.resume(&ih)
                };
                match res {
                    Ok(()) => {
                        Response::ok(json!({"id": ih.to_hex(), "paused": *action == "pause"}))
                    }
                    Err(e) => Response::error(500, e.to_string()),
                }
            }
            ("DELETE", ["torrents", id]) => {
                let delete_data = match r.param("delete_data") {
                    None | Some("false") | Some("0") => false,
                    Some("true") | Some("1") => true,
                    Some(v) => {
                        return Response::error(400, format!("delete_data: not a boolean: {v}"))
                    }
                };
                match self.find(&session, id) {
                    Ok(Found::Torrent(ih)) => match session.remove(&ih, delete_data) {
                        Ok(()) => Response::ok(
                            json!({"id": ih.to_hex(), "removed": true, "data_deleted": delete_data}),
                        ),
                        Err(e) => Response::error(500, e.to_string()),
                    },
                    Ok(Found::Pending(ih)) => {
                        self.pending.with(|p| p.remove(&ih));
                        Response::ok(
                            json!({"id": ih.to_hex(), "removed": true, "data_deleted": false}),
                        )
                    }
                    Err(e) => e,
                }
            }
            (_, ["status"] | ["torrents"] | ["torrents", _] | ["torrents", _, _]) => {
                Response::error(405, format!("{} not allowed on {}", r.method, r.path))
            }
            _ => Response::error(404, format!("no such endpoint: {} {}", r.method, r.path)),
        }
    }

    /// Resolve an ID: the info-hash in hex or a unique prefix of it (4+ chars).
    fn find(&self, session: &Session, id: &str) -> Result<Found, Response> {
        let id = id.to_ascii_lowercase();
        if id.len() < 4 || id.len() > 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Response::error(
                404,
                format!("no torrent {id} (an ID is 4 to 40 hex characters of the info-hash)"),
            ));
        }
        let mut hits: Vec<Found> = session
            .torrents()
            .iter()
            .filter(|s| s.info_hash.to_hex().starts_with(&id))
            .map(|s| Found::Torrent(s.info_hash))
            .collect();
        self.pending.with(|p| {
            hits.extend(
                p.keys()
                    .filter(|ih| ih.to_hex().starts_with(&id))
                    .map(|ih| Found::Pending(*ih)),
            )
        });
        match hits.len() {
            0 => Err(Response::error(404, format!("no torrent {id}"))),
            1 => Ok(hits.remove(0)),
            n => Err(Response::error(
                404,
                format!("ambiguous ID {id}: {n} torrents match"),
            )),
        }
    }

    fn list(&self, session: &Session) -> Response {
        let mut st = session.torrents();
        st.sort_by(|a, b| a.name.cmp(&b.name).then(a.info_hash.0.cmp(&b.info_hash.0)));
        let mut out: Vec<Value> = st.iter().map(torrent_json).collect();
        self.pending.with(|p| {
            out.extend(
                p.iter()
                    .filter(|(ih, _)| session.status(ih).is_none())
                    .map(|(ih, x)| pending_json(ih, x)),
            )
        });
        Response::ok(Value::Array(out))
    }

    fn status(&self, session: &Session) -> Response {
        let st = session.torrents();
        let count = |f: &dyn Fn(&TorrentStatus) -> bool| st.iter().filter(|s| f(s)).count();
        let peer_id = session.peer_id();
        Response::ok(json!({
            "listen_addr": session.local_addr().to_string(),
            "peer_id": String::from_utf8_lossy(&peer_id),
            "encryption": session.encryption().as_str(),
            "torrents": st.len(),
            "downloading": count(&|s| !s.paused && s.phase == Phase::Downloading),
            "seeding": count(&|s| !s.paused && s.phase == Phase::Seeding),
            "paused": count(&|s| s.paused),
            "fetching_metadata": self.pending.with(|p| p.values().filter(|x| x.error.is_none()).count()),
            "download_rate": st.iter().map(|s| s.download_rate).sum::<u64>(),
            "upload_rate": st.iter().map(|s| s.upload_rate).sum::<u64>(),
            "downloaded": st.iter().map(|s| s.downloaded).sum::<u64>(),
            "uploaded": st.iter().map(|s| s.uploaded).sum::<u64>(),
            "peers": st.iter().map(|s| s.peers).sum::<usize>(),
            "dht_addr": session.dht_addr().map(|a| a.to_string()),
            "control_addr": self.control_addr.to_string(),
            "download_dir": self.download_dir.to_string_lossy(),
        }))
    }

    fn add(&self, session: &Arc<Session>, r: &Request) -> Response {
        let v: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, format!("body: not JSON: {e}")),
        };
        let Some(dir) = v.get("dir").and_then(Value::as_str) else {
            return Response::error(400, "\"dir\" (an absolute directory) is required");
        };
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            return Response::error(400, "\"dir\" must be an absolute path");
        }
        let paused = v.get("paused").and_then(Value::as_bool).unwrap_or(false);
        if let Some(path) = v.get("path").and_then(Value::as_str) {
            return add_file(session, Path::new(path), dir, paused);
        }
        if let Some(b64) = v.get("torrent").and_then(Value::as_str) {
            use base64::Engine;
            return match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                Ok(bytes) => add_bytes(session, bytes, "torrent", dir, paused),
                Err(e) => Response::error(400, format!("torrent: not base64: {e}")),
            };
        }
        if let Some(url) = v.get("url").and_then(Value::as_str) {
            return match crate::fetch::fetch(url) {
                Ok(bytes) => add_bytes(session, bytes, url, dir, paused),
                Err(e) => Response::error(502, e),
            };
        }
        if let Some(uri) = v.get("magnet").and_then(Value::as_str) {
            return self.add_magnet(session, uri, dir, paused);
        }
        Response::error(
            400,
            "give \"path\" (a .torrent file), \"torrent\" (its bytes, base64), \"url\" or \"magnet\"",
        )
    }

    fn add_magnet(
        &self,
        session: &Arc<Session>,
        uri: &str,
        dir: PathBuf,
        paused: bool,
    ) -> Response {
        let m = match Magnet::parse(uri) {
            Ok(m) => m,
            Err(e) => return Response::error(400, format!("magnet: {e}")),
        };
        let ih = m.info_hash;
        if session.status(&ih).is_some()
            || self
                .pending
                .with(|p| p.get(&ih).is_some_and(|x| x.error.is_none()))
        {
            return Response::error(409, format!("torrent {ih} is already in the session"));
        }
        let name = m.display_name.clone().unwrap_or_else(|| ih.to_hex());
        self.pending.with(|p| {
            p.insert(
                ih,
                Pending {
                    name: name.clone(),
                    dir: dir.clone(),
                    error: None,
                },
            )
        });
        let weak = Arc::downgrade(session);
        let (peer_id, port) = (session.peer_id(), session.local_addr().port());
        let pending = self.pending.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("magnet {}", &ih.to_hex()[..8]))
            .spawn(move || {
                // Peers from the DHT too (a bounded lookup, retried while
                // the node bootstraps), then x.pe and the trackers.
                let mut from = Vec::new();
                for _ in 0..6 {
                    let Some(session) = weak.upgrade() else {
                        return;
                    };
                    from = session.dht_get_peers(&m.info_hash, Duration::from_secs(10));
                    if !from.is_empty() || session.dht_addr().is_none() {
                        break;
                    }
                }
                let result = fetch_metainfo(&m, &from, peer_id, port, MAGNET_TIMEOUT);
                let outcome = match result {
                    Err(e) => Err(e.to_string()),
                    Ok(mi) => match weak.upgrade() {
                        None => return,
                        Some(session) => {
                            let peers = m
                                .peers
                                .iter()
                                .filter_map(|p| p.to_socket_addrs().ok()?.next())
                                .collect();
                            let mut a = AddTorrent::new(mi, dir).peers(peers);
                            a.paused = paused;
                            session.add(a).map(|_| ()).map_err(|e| e.to_string())
                        }
                    },
                };
                pending.with(|p| match outcome {
                    Ok(()) => {
                        p.remove(&ih);
                    }
                    Err(e) => {
                        log::warn!("magnet {ih}: {e}");
                        if let Some(x) = p.get_mut(&ih) {
                            x.error = Some(e);
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            self.pending.with(|p| p.remove(&ih));
            return Response::error(500, format!("cannot start a thread: {e}"));
        }
        Response::json(
            202,
            json!({"id": ih.to_hex(), "name": name, "state": "metadata"}),
        )
    }
}

fn add_file(session: &Session, path: &Path, dir: PathBuf, paused: bool) -> Response {
    match std::fs::read(path) {
        Ok(bytes) => add_bytes(session, bytes, &path.display().to_string(), dir, paused),
        Err(e) => Response::error(400, format!("{}: {e}", path.display())),
    }
}

/// Add the torrent of these `.torrent` bytes (`what` names them in errors).
fn add_bytes(
    session: &Session,
    bytes: Vec<u8>,
    what: &str,
    dir: PathBuf,
    paused: bool,
) -> Response {
    let mi = match Metainfo::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => return Response::error(400, format!("{what}: {e}")),
    };
    let ih = mi.info_hash;
    if session.status(&ih).is_some() {
        return Response::error(409, format!("torrent {ih} is already in the session"));
    }
    let name = mi.info.name.clone();
    let mut a = AddTorrent::new(mi, dir);
    a.paused = paused;
    a.torrent_bytes = Some(bytes);
    match session.add(a) {
        Ok(ih) => Response::json(201, json!({"id": ih.to_hex(), "name": name})),
        Err(e) if e.to_string().contains("already in the session") => {
            Response::error(409, e.to_string())
        }
        Err(e) => Response::error(500, e.to_string()),
    }
}
