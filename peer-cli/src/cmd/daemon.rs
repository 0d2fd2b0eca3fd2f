//! `peer daemon [--state DIR] [--port N] [SESSION OPTIONS]`
//!
//! Runs the session in the foreground with every torrent recorded in the
//! state directory, and serves the local control API (`docs/API.md`) until
//! Ctrl-C or SIGTERM.

use crate::args::CliError;
use crate::cli::DaemonArgs;
use crate::cmd::run::install_stop_handler;
use crate::cmd::watch;
use crate::control::labels::Labels;
use crate::control::transmission::{self, Rpc};
use crate::control::{self, ControlInfo, Request, Response, Server};
use crate::progress::Progress;
use crate::web::{auth::Auth, Site};
use bittorrent_core::{
    AddTorrent, Config, Error, Event, InfoHash, Magnet, Metainfo, Phase, Session, TorrentStatus,
};
use crossbeam_channel::RecvTimeoutError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Run `peer daemon`.
pub fn run(a: DaemonArgs) -> Result<(), CliError> {
    let state = a.session.state.clone();
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
    // A damaged settings file is kept beside itself and reported, never
    // silently overwritten.
    // Port mapping is on for the daemon unless `session.benc` says
    // `port map` `off` or --no-port-map is given.
    let base = Config {
        port_map: true,
        ..Config::default()
    };
    let (mut config, corrupt) = Config::load_state_dir_over(&state, base);
    if let Some(c) = corrupt {
        log::warn!("settings: {c}; using the default settings (and this command's flags) instead");
    }
    let settings = transmission::config::load(&state).map_err(CliError::Failed)?;
    // The session's seeding limits set through the RPC (settings.json),
    // unless a flag says otherwise.
    let (ratio, idle) = settings.seed_limits();
    if let Some(r) = ratio {
        config.seed_ratio = r;
    }
    if let Some(i) = idle {
        config.seed_idle = i;
    }
    let mut flags = a.session;
    flags.state = Some(state.clone());
    flags.apply(&mut config);
    let rpc_config = config.clone();
    let session = Arc::new(Session::start(config).map_err(|e| CliError::failed(&e))?);
    let events = session.events();
    let restored = session.restore().map_err(|e| CliError::failed(&e))?;
    let stop = install_stop_handler()?;
    let token = control::new_token();
    let rpc_port = a.rpc_port.or(settings.rpc_port).unwrap_or(0);
    let listener = control::server::bind_local_port(rpc_port)
        .map_err(|e| CliError::Failed(format!("control API: 127.0.0.1:{rpc_port}: {e}")))?;
    let control_addr = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("control API: {e}")))?;
    let labels = Arc::new(Labels::load(&state));
    let daemon = Arc::new(Daemon {
        session: Arc::downgrade(&session),
        control_addr,
        download_dir: std::env::current_dir().unwrap_or_else(|_| state.clone()),
        labels: labels.clone(),
        streams: crate::stream::Streams::new(crate::web::auth::stream_token(&token), control_addr),
    });
    let rpc = Arc::new(Rpc::new(
        Arc::downgrade(&session),
        settings.clone(),
        rpc_config,
        settings
            .download_dir
            .clone()
            .unwrap_or_else(|| daemon.download_dir.clone()),
        state.clone(),
        stop.clone(),
        labels,
    ));
    let watcher = match a.watch_dir.clone().or(settings.watch_dir.clone()) {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::Failed(format!("watch folder {}: {e}", dir.display())))?;
            let done = if a.watch_dir_delete || settings.watch_dir_delete {
                watch::Done::Delete
            } else {
                watch::Done::Rename
            };
            eprintln!(
                "peer daemon: watching {} for .torrent and .magnet files",
                dir.display()
            );
            let r = rpc.clone();
            Some(
                watch::spawn(
                    dir,
                    done,
                    Arc::downgrade(&session),
                    Arc::new(move || r.download_dir.lock().clone()),
                    stop.clone(),
                )
                .map_err(|e| CliError::Failed(format!("watch folder: {e}")))?,
            )
        }
        None => None,
    };
    let d = daemon.clone();
    let site = Arc::new(
        Site::new(
            Auth::new(token.clone(), control_addr.port()),
            Box::new(move |r: &Request| d.handle(r)),
        )
        .with_transmission(rpc.clone()),
    );
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
        "peer daemon: listening on {}, control API on {}, state {} ({} restored)",
        session.local_addr(),
        server.addr(),
        state.display(),
        crate::progress::plural(restored.len() as u64, "torrent")
    );
    eprintln!(
        "peer daemon: web interface: http://{control_addr}/login?code={login_code} (works once; `peer web` prints a new link)"
    );
    let mut progress = Progress::new();
    let mut port_map_line = String::new();
    let queue = rpc.queue.clone();
    let mut last_queue = std::time::Instant::now();
    // The status version last shown and last queued: with nothing changed
    // (thousands of idle torrents) neither copies a snapshot (issue 23).
    let (mut shown, mut queued) = (None, None);
    while !stop.load(Ordering::SeqCst) {
        // The download queue: a completed torrent frees a slot, a torrent
        // added or resumed through our API may need one.
        if last_queue.elapsed() >= Duration::from_secs(1) {
            last_queue = std::time::Instant::now();
            let v = session.status_version();
            if queued != Some(v) {
                queued = Some(v);
                queue.rebalance(&session);
            }
        }
        // Wait for the session's events (the progress display reads
        // snapshots at its own rate).
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::MetadataReceived { info_hash, name }) => {
                eprintln!("{info_hash}: got the metadata: {name}")
            }
            Ok(Event::Completed { info_hash }) => eprintln!("{info_hash}: complete"),
            Ok(Event::Error {
                info_hash, message, ..
            }) => eprintln!("{info_hash}: {message}"),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        progress.port_mapping(&session, &mut port_map_line);
        let v = session.status_version();
        if shown != Some(v) || progress.full_lines_due() {
            shown = Some(v);
            let mut st = session.torrents();
            st.sort_by(|a, b| a.name.cmp(&b.name));
            progress.show(&st);
        }
    }
    progress.finish();
    eprintln!("stopping...");
    server.stop();
    if let Some(w) = watcher {
        let _ = w.join();
    }
    // Control requests still running get `Error::Stopped` from here on.
    session.shutdown();
    control::remove_info(&state);
    Ok(())
}

/// What the control API works on.
struct Daemon {
    session: Weak<Session>,
    /// Where the control API (and the web interface) listens.
    control_addr: std::net::SocketAddr,
    /// Suggested to the web page as where to save new torrents.
    download_dir: PathBuf,
    /// Labels on torrents (shared with the Transmission RPC).
    labels: Arc<Labels>,
    /// Streaming over HTTP (`stream/mod.rs`).
    streams: crate::stream::Streams,
}

/// `metadata`, `checking`, `downloading`, `seeding`, `finished`, `paused`,
/// `failed`, `stalled`.
fn state_name(s: &TorrentStatus) -> &'static str {
    if s.paused && s.phase != Phase::Metadata {
        return "paused";
    }
    match s.phase {
        Phase::Metadata => "metadata",
        Phase::Checking => "checking",
        Phase::Downloading => "downloading",
        Phase::Seeding => "seeding",
        Phase::Finished => "finished",
        Phase::Failed(_) => "failed",
        Phase::Stalled(_) => "stalled",
    }
}

fn torrent_json(s: &TorrentStatus) -> Value {
    if s.phase == Phase::Metadata {
        return metadata_json(s);
    }
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
        "selection_complete": s.is_selection_complete() && !matches!(s.phase, Phase::Checking),
        "pieces_wanted": s.pieces_wanted,
        "pieces_wanted_have": s.pieces_wanted_have,
        "wanted_length": s.wanted_length,
        "max_download_rate": if s.max_download_rate == 0 { Value::Null } else { json!(s.max_download_rate) },
        "max_upload_rate": if s.max_upload_rate == 0 { Value::Null } else { json!(s.max_upload_rate) },
        "sequential": s.sequential,
        "first_last_piece": s.first_last_piece,
        "tracker": {
            "url": s.tracker.url,
            "last_announce": s.tracker.last_announce,
            "peers_returned": s.tracker.peers_returned,
            "error": s.tracker.error,
        },
        "ratio": ratio,
        "eta": eta,
        "waiting_for_disk": s.waiting_for_disk,
        "disk_queued": s.disk_queued,
        "piece_layers_missing": s.piece_layers_missing,
        "piece_layers_fetched": s.piece_layers_fetched,
        "pieces_v2_rechecked": s.pieces_v2_rechecked,
        "pieces_spilled": s.pieces_spilled,
        "web_seeds": s.web_seeds.iter().map(|w| json!({
            "url": w.url,
            "state": w.state.as_str(),
            "downloaded": w.downloaded,
            "download_rate": w.download_rate,
            "error": w.error,
        })).collect::<Vec<_>>(),
        "seed_ratio_limit": crate::cmd::daemon_api::limit_json(s.seed_limits.ratio, |r| json!(r)),
        "seed_idle_limit": crate::cmd::daemon_api::limit_json(s.seed_limits.idle, |d| json!(d.as_secs())),
    })
}

/// A magnet link still fetching its metadata (no tracker object yet).
fn metadata_json(s: &TorrentStatus) -> Value {
    json!({
        "id": s.info_hash.to_hex(),
        "name": s.name,
        "state": "metadata",
        "error": Value::Null,
        "progress": 0.0,
        "pieces_have": 0, "pieces_total": 0, "bytes_have": 0, "total_length": 0,
        "downloaded": 0, "uploaded": 0, "download_rate": 0, "upload_rate": 0,
        "peers": s.peers, "seeds": 0, "paused": s.paused,
        "save_path": s.save_path.to_string_lossy(),
        "selection_complete": false, "pieces_wanted": 0, "pieces_wanted_have": 0, "wanted_length": 0,
        "max_download_rate": Value::Null, "max_upload_rate": Value::Null,
        "tracker": Value::Null,
        "ratio": Value::Null,
        "eta": Value::Null,
        "waiting_for_disk": false,
        "disk_queued": 0,
        "piece_layers_missing": s.piece_layers_missing,
        "piece_layers_fetched": s.piece_layers_fetched,
        "pieces_v2_rechecked": s.pieces_v2_rechecked,
        "pieces_spilled": 0,
        "web_seeds": [],
        "seed_ratio_limit": "session",
        "seed_idle_limit": "session",
    })
}

impl Daemon {
    fn handle(&self, r: &Request) -> Response {
        let Some(session) = self.session.upgrade() else {
            return Response::error(503, "the daemon is stopping");
        };
        // File selection and rate limits: cmd/daemon_api.rs.
        let find = |id: &str| self.find(&session, id);
        if let Some(resp) = self.streams.route(&session, r, &find) {
            return resp;
        }
        if let Some(resp) = crate::cmd::daemon_api::route(&session, r, &find) {
            return resp;
        }
        let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("GET", ["status"]) => self.status(&session),
            ("GET", ["torrents"]) => self.list(&session, r),
            ("POST", ["torrents"]) => self.add(&session, r),
            ("GET", ["torrents", id]) => match self.find(&session, id) {
                Ok(ih) => match session.status(&ih) {
                    Some(s) => Response::ok(self.with_labels(torrent_json(&s))),
                    None => Response::error(404, format!("no torrent {id}")),
                },
                Err(e) => e,
            },
            ("GET", ["torrents", id, "details"]) => match self.find(&session, id) {
                Ok(ih) => super::details::details(&session, &ih).map_or_else(
                    || Response::error(404, format!("no torrent {id}")),
                    Response::ok,
                ),
                Err(e) => e,
            },
            ("POST", ["torrents", id, "labels"]) => match self.find(&session, id) {
                Ok(ih) => self.set_labels(&ih, r),
                Err(e) => e,
            },
            ("POST", ["torrents", id, action @ ("pause" | "resume")]) => {
                let ih = match self.find(&session, id) {
                    Ok(ih) => ih,
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
                    Err(Error::NoMetadata(_)) => {
                        Response::error(409, "the torrent's metadata is not here yet")
                    }
                    Err(e) => error_response(&e),
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
                let ih = match self.find(&session, id) {
                    Ok(ih) => ih,
                    Err(e) => return e,
                };
                // A magnet link still without metadata has no data to delete.
                let has_data = session
                    .status(&ih)
                    .is_some_and(|s| s.phase != Phase::Metadata);
                match session.remove(&ih, delete_data) {
                    Ok(()) => {
                        self.labels.remove(&ih.to_hex());
                        Response::ok(json!({
                            "id": ih.to_hex(),
                            "removed": true,
                            "data_deleted": delete_data && has_data,
                        }))
                    }
                    Err(e) => error_response(&e),
                }
            }
            (_, ["status"] | ["torrents"] | ["torrents", _] | ["torrents", _, _]) => {
                Response::error(405, format!("{} not allowed on {}", r.method, r.path))
            }
            _ => Response::error(404, format!("no such endpoint: {} {}", r.method, r.path)),
        }
    }

    /// Resolve an ID: the info-hash in hex or a unique prefix of it (4+ chars).
    fn find(&self, session: &Session, id: &str) -> Result<InfoHash, Response> {
        crate::stream::find(session, id)
    }

    /// A torrent object with its `labels` added.
    fn with_labels(&self, mut t: Value) -> Value {
        let labels = t["id"]
            .as_str()
            .map(|id| self.labels.get(id))
            .unwrap_or_default();
        t["labels"] = json!(labels);
        t
    }

    /// `POST /torrents/ID/labels` with `{"labels": ["tv", ...]}`.
    fn set_labels(&self, ih: &InfoHash, r: &Request) -> Response {
        let v: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, format!("body: not JSON: {e}")),
        };
        let Some(l) = v.get("labels") else {
            return Response::error(400, "give \"labels\": a list of strings");
        };
        let labels = match crate::control::labels::from_json(l) {
            Ok(l) => l,
            Err(e) => return Response::error(400, e),
        };
        match self.labels.set(&ih.to_hex(), labels) {
            Ok(()) => {
                Response::ok(json!({"id": ih.to_hex(), "labels": self.labels.get(&ih.to_hex())}))
            }
            Err(e) => Response::error(500, e),
        }
    }

    fn list(&self, session: &Session, r: &Request) -> Response {
        let mut st = session.torrents();
        st.sort_by(|a, b| a.name.cmp(&b.name).then(a.info_hash.0.cmp(&b.info_hash.0)));
        // Magnet links still fetching their metadata come last.
        st.sort_by_key(|s| s.phase == Phase::Metadata);
        // `?label=NAME`: only the torrents with that label.
        let label = r.param("label").map(percent_decode);
        let list = st
            .iter()
            .map(|s| self.with_labels(torrent_json(s)))
            .filter(|t| match &label {
                None => true,
                Some(l) => t["labels"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(l.as_str()))),
            })
            .collect();
        Response::ok(Value::Array(list))
    }

    fn status(&self, session: &Session) -> Response {
        let (fetching, st): (Vec<TorrentStatus>, Vec<TorrentStatus>) = session
            .torrents()
            .into_iter()
            .partition(|s| s.phase == Phase::Metadata);
        let count = |f: &dyn Fn(&TorrentStatus) -> bool| st.iter().filter(|s| f(s)).count();
        let peer_id = session.peer_id();
        Response::ok(json!({
            "listen_addr": session.local_addr().to_string(),
            "listen_addrs": session
                .listen_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            "peer_id": String::from_utf8_lossy(&peer_id),
            "encryption": session.encryption().as_str(),
            "torrents": st.len(),
            "downloading": count(&|s| !s.paused && s.phase == Phase::Downloading),
            "seeding": count(&|s| !s.paused && s.phase == Phase::Seeding),
            "finished": count(&|s| !s.paused && s.phase == Phase::Finished),
            "paused": count(&|s| s.paused),
            "fetching_metadata": fetching.len(),
            "download_rate": st.iter().map(|s| s.download_rate).sum::<u64>(),
            "upload_rate": st.iter().map(|s| s.upload_rate).sum::<u64>(),
            "downloaded": st.iter().map(|s| s.downloaded).sum::<u64>(),
            "uploaded": st.iter().map(|s| s.uploaded).sum::<u64>(),
            "peers": st.iter().map(|s| s.peers).sum::<usize>(),
            "max_download_rate": match session.rate_limits().0 { 0 => Value::Null, r => json!(r) },
            "max_upload_rate": match session.rate_limits().1 { 0 => Value::Null, r => json!(r) },
            "dht_addr": session.dht_addr().map(|a| a.to_string()),
            "port_mapping": port_mapping_json(session),
            "external_addresses": session.external_addresses().iter().map(|e| json!({
                "ip": e.ip.to_string(),
                "source": e.source.as_str(),
                "votes": e.votes,
            })).collect::<Vec<_>>(),
            "control_addr": self.control_addr.to_string(),
            "download_dir": self.download_dir.to_string_lossy(),
        }))
    }

    /// `POST /torrents`, with the `labels` key set once the torrent is in.
    fn add(&self, session: &Session, r: &Request) -> Response {
        let v: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, format!("body: not JSON: {e}")),
        };
        let labels = match v.get("labels").filter(|l| !l.is_null()) {
            None => None,
            Some(l) => match crate::control::labels::from_json(l) {
                Ok(l) => Some(l),
                Err(e) => return Response::error(400, e),
            },
        };
        let mut resp = self.add_torrent(session, &v);
        if let (Some(l), Some(id), true) = (labels, resp.body["id"].as_str(), resp.status < 300) {
            let id = id.to_string();
            if let Err(e) = self.labels.set(&id, l) {
                return Response::error(500, e);
            }
            resp.body["labels"] = json!(self.labels.get(&id));
        }
        resp
    }

    fn add_torrent(&self, session: &Session, v: &Value) -> Response {
        let Some(dir) = v.get("dir").and_then(Value::as_str) else {
            return Response::error(400, "\"dir\" (an absolute directory) is required");
        };
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            return Response::error(400, "\"dir\" must be an absolute path");
        }
        let paused = v.get("paused").and_then(Value::as_bool).unwrap_or(false);
        let opts = match crate::cmd::daemon_api::AddOptions::from_body(v) {
            Ok(o) => o,
            Err(e) => return e,
        };
        if let Some(path) = v.get("path").and_then(Value::as_str) {
            return add_file(session, Path::new(path), dir, paused, &opts);
        }
        if let Some(b64) = v.get("torrent").and_then(Value::as_str) {
            use base64::Engine;
            return match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                Ok(bytes) => add_bytes(session, bytes, "torrent", dir, paused, &opts),
                Err(e) => Response::error(400, format!("torrent: not base64: {e}")),
            };
        }
        if let Some(url) = v.get("url").and_then(Value::as_str) {
            return match crate::fetch::fetch(url) {
                Ok(bytes) => add_bytes(session, bytes, url, dir, paused, &opts),
                Err(e) => Response::error(502, e),
            };
        }
        if let Some(uri) = v.get("magnet").and_then(Value::as_str) {
            return add_magnet(session, uri, dir, paused, &opts);
        }
        Response::error(
            400,
            "give \"path\" (a .torrent file), \"torrent\" (its bytes, base64), \"url\" or \"magnet\"",
        )
    }
}

/// A query value with its `%XX` escapes (and `+`) decoded.
fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTP status for a library error.
fn error_response(e: &Error) -> Response {
    let status = match e {
        Error::AlreadyAdded(_) => 409,
        Error::UnknownTorrent(_) => 404,
        Error::NoMetadata(_) => 409,
        Error::Stopped => 503,
        _ => 500,
    };
    Response::error(status, e.to_string())
}

/// A magnet link: the session fetches its metadata (phase `metadata`),
/// for as long as it takes, then downloads.
fn add_magnet(
    session: &Session,
    uri: &str,
    dir: PathBuf,
    paused: bool,
    opts: &crate::cmd::daemon_api::AddOptions,
) -> Response {
    let m = match Magnet::parse(uri) {
        Ok(m) => m,
        Err(e) => return Response::error(400, format!("magnet: {e}")),
    };
    let ih = m.info_hash;
    let name = m.display_name.clone().unwrap_or_else(|| ih.to_hex());
    let mut add = AddTorrent::magnet(m, dir).paused(paused);
    if let Err(e) = opts.apply(&mut add) {
        return Response::error(400, e);
    }
    match session.add(add) {
        Ok(ih) => Response::json(
            202,
            json!({"id": ih.to_hex(), "name": name, "state": "metadata"}),
        ),
        Err(e) => error_response(&e),
    }
}

fn add_file(
    session: &Session,
    path: &Path,
    dir: PathBuf,
    paused: bool,
    opts: &crate::cmd::daemon_api::AddOptions,
) -> Response {
    match std::fs::read(path) {
        Ok(bytes) => add_bytes(
            session,
            bytes,
            &path.display().to_string(),
            dir,
            paused,
            opts,
        ),
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
    opts: &crate::cmd::daemon_api::AddOptions,
) -> Response {
    let mi = match Metainfo::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => return Response::error(400, format!("{what}: {e}")),
    };
    let name = mi.info.name.clone();
    let mut add = AddTorrent::new(mi, dir).paused(paused).torrent_bytes(bytes);
    if let Err(e) = opts.apply(&mut add) {
        return Response::error(400, e);
    }
    match session.add(add) {
        Ok(ih) => Response::json(201, json!({"id": ih.to_hex(), "name": name})),
        Err(e) => error_response(&e),
    }
}

/// The `port_mapping` object of `GET /status`: `state` is `off` (with the
/// reason in `message`) when port mapping is turned off.
/// `ipv6` inside it: the IPv6 pinholes (`address`: our IPv6 address they
/// open), `off` without an IPv6 listener.
fn port_mapping_json(session: &Session) -> Value {
    let Some(p) = session.port_mapping() else {
        let why = if bittorrent_core::port_map::disabled_by_env() {
            "off (PEER_PORT_MAP=off)"
        } else {
            "off (--no-port-map, or `port map` `off` in session.benc)"
        };
        let mut off = mapping_off(why);
        if let Some(o) = off.as_object_mut() {
            o.remove("address");
        }
        off["external_ip"] = Value::Null;
        off["ipv6"] = mapping_off(why);
        return off;
    };
    let ipv6 = match session.pinholes() {
        Some(h) => json!({
            "state": h.state.as_str(),
            "method": h.method,
            "gateway": h.gateway.map(|g| g.to_string()),
            "address": h.external_ip.map(|g| g.to_string()),
            "tcp_port": h.tcp_port,
            "udp_port": h.udp_port,
            "lease_secs": h.lease_secs,
            "message": h.message,
        }),
        None => mapping_off("off (no IPv6 listener)"),
    };
    json!({
        "state": p.state.as_str(),
        "method": p.method,
        "gateway": p.gateway.map(|g| g.to_string()),
        "external_ip": p.external_ip.map(|g| g.to_string()),
        "tcp_port": p.tcp_port,
        "udp_port": p.udp_port,
        "lease_secs": p.lease_secs,
        "message": p.message,
        "ipv6": ipv6,
    })
}

/// A `port_mapping` (or its `ipv6`) object that is off, `why` as its message.
fn mapping_off(why: &str) -> Value {
    json!({
        "state": "off",
        "method": null,
        "gateway": null,
        "address": null,
        "tcp_port": null,
        "udp_port": null,
        "lease_secs": 0,
        "message": why,
    })
}
