//! The control API's file-selection and rate-limit endpoints (docs/API.md):
//!
//! - `GET /torrents/ID/files`, `POST /torrents/ID/files`: the files of a
//!   torrent with their priority and progress; change priorities.
//! - `POST /torrents/ID/limits`: a torrent's own rate limits.
//! - `GET /limits`, `POST /limits`: the session's rate limits.
//! - `POST /torrents/ID/order`: sequential download and first/last-piece
//!   priority (issue 24).
//! - `POST /torrents/ID/verify`: check the torrent's data again (issue 23).
//! - the extra keys of `POST /torrents` (`only`, `skip`, `files`,
//!   `max_download_rate`, `max_upload_rate`, `sequential`,
//!   `first_last_piece`), read by [`AddOptions`].
//!
//! Kept apart from `daemon.rs`, which calls [`route`] first.

use crate::cmd::select::Selection;
use crate::control::{Request, Response};
use bittorrent_core::parse_rate;
use bittorrent_core::{AddTorrent, FilePriority, InfoHash, SeedLimit, Session};
use serde_json::{json, Value};

/// Handle the requests of this module; `None` for any other request.
/// `find` resolves a torrent ID (or answers the error).
pub fn route(
    session: &Session,
    r: &Request,
    find: &dyn Fn(&str) -> Result<InfoHash, Response>,
) -> Option<Response> {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    // A magnet link still fetching its metadata has no files yet.
    let find = |id: &str| -> Result<InfoHash, Response> {
        let ih = find(id)?;
        if session
            .status(&ih)
            .is_some_and(|s| s.phase == bittorrent_core::Phase::Metadata)
        {
            return Err(Response::error(
                409,
                "the torrent's metadata is not here yet",
            ));
        }
        Ok(ih)
    };
    let resp = match (r.method.as_str(), parts.as_slice()) {
        ("GET", ["limits"]) => limits_json(session),
        ("POST", ["limits"]) => set_session_limits(session, r),
        ("GET", ["torrents", id, "files"]) => match find(id) {
            Ok(ih) => files_json(session, &ih),
            Err(e) => e,
        },
        ("POST", ["torrents", id, "files"]) => match find(id) {
            Ok(ih) => set_files(session, &ih, r),
            Err(e) => e,
        },
        ("POST", ["torrents", id, "limits"]) => match find(id) {
            Ok(ih) => set_torrent_limits(session, &ih, r),
            Err(e) => e,
        },
        ("POST", ["torrents", id, "seeding"]) => match find(id) {
            Ok(ih) => set_seeding(session, &ih, r),
            Err(e) => e,
        },
        ("POST", ["torrents", id, "move"]) => match find(id) {
            Ok(ih) => move_data(session, &ih, r),
            Err(e) => e,
        },
        ("POST", ["torrents", id, "order"]) => match find(id) {
            Ok(ih) => set_order(session, &ih, r),
            Err(e) => e,
        },
        ("POST", ["torrents", id, "verify"]) => match find(id) {
            Ok(ih) => verify(session, &ih),
            Err(e) => e,
        },
        (
            _,
            ["limits"]
            | ["torrents", _, "files" | "limits" | "seeding" | "move" | "order" | "verify"],
        ) => Response::error(405, format!("{} not allowed on {}", r.method, r.path)),
        _ => return None,
    };
    Some(resp)
}

/// `POST /torrents/ID/move` with `{"dir": "/abs/dir", "move": true|false}`
/// (`move`, default true: move the files there; false: look for them there).
fn move_data(session: &Session, ih: &InfoHash, r: &Request) -> Response {
    let v = match body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(dir) = v.get("dir").and_then(Value::as_str) else {
        return Response::error(400, "give \"dir\": an absolute directory");
    };
    let move_files = match v.get("move") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Response::error(400, format!("move: not a boolean: {other}")),
    };
    if !std::path::Path::new(dir).is_absolute() {
        return Response::error(400, format!("dir: not an absolute path: {dir}"));
    }
    match session.move_data(ih, std::path::Path::new(dir), move_files) {
        Ok(()) => Response::ok(json!({"id": ih.to_hex(), "save_path": dir})),
        Err(bittorrent_core::Error::UnknownTorrent(_)) => {
            Response::error(404, format!("no torrent {ih}"))
        }
        Err(e @ bittorrent_core::Error::NoMetadata(_)) => Response::error(409, e.to_string()),
        Err(e) => Response::error(500, e.to_string()),
    }
}

/// `POST /torrents/ID/verify`: check every piece of the torrent's data
/// again (phase `checking`); pieces that fail are downloaded again.
fn verify(session: &Session, ih: &InfoHash) -> Response {
    match session.verify(ih) {
        Ok(()) => Response::ok(json!({"id": ih.to_hex(), "checking": true})),
        Err(bittorrent_core::Error::UnknownTorrent(_)) => {
            Response::error(404, format!("no torrent {ih}"))
        }
        Err(e @ bittorrent_core::Error::NoMetadata(_)) => Response::error(409, e.to_string()),
        Err(e) => Response::error(500, e.to_string()),
    }
}

fn body(r: &Request) -> Result<Value, Response> {
    if r.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&r.body)
        .map_err(|e| Response::error(400, format!("body: not JSON: {e}")))
}

/// A boolean in a body; `Ok(None)` when the key is absent or null.
fn flag(v: &Value, key: &str) -> Result<Option<bool>, Response> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Response::error(
            400,
            format!("{key}: not true or false: {other}"),
        )),
    }
}

/// `POST /torrents/ID/order`: `sequential`, `first_last_piece` (each
/// optional: an absent key keeps its value).
fn set_order(session: &Session, ih: &InfoHash, r: &Request) -> Response {
    let v = match body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(now) = session.piece_order(ih) else {
        return Response::error(404, format!("no torrent {ih}"));
    };
    let order = match (flag(&v, "sequential"), flag(&v, "first_last_piece")) {
        (Ok(s), Ok(f)) => bittorrent_core::PieceOrderPrefs {
            sequential: s.unwrap_or(now.sequential),
            first_last_piece: f.unwrap_or(now.first_last_piece),
        },
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match session.set_piece_order(ih, order) {
        Ok(()) => Response::ok(json!({
            "id": ih.to_hex(),
            "sequential": order.sequential,
            "first_last_piece": order.first_last_piece,
        })),
        Err(e) => Response::error(500, e.to_string()),
    }
}

/// A rate in a body: bytes per second as a number, or a string such as
/// `"2M"`; `0` or `null` mean unlimited. `Ok(None)` when the key is absent.
fn rate(v: &Value, key: &str) -> Result<Option<u64>, Response> {
    match v.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(0)),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| Response::error(400, format!("{key}: not a rate: {n}"))),
        Some(Value::String(s)) => parse_rate(s)
            .map(Some)
            .map_err(|e| Response::error(400, format!("{key}: {e}"))),
        Some(other) => Err(Response::error(400, format!("{key}: not a rate: {other}"))),
    }
}

/// `null` for unlimited, else the rate.
fn rate_json(r: u64) -> Value {
    if r == 0 {
        Value::Null
    } else {
        json!(r)
    }
}

fn limits_json(session: &Session) -> Response {
    let (down, up) = session.rate_limits();
    Response::ok(json!({
        "max_download_rate": rate_json(down),
        "max_upload_rate": rate_json(up),
    }))
}

fn set_session_limits(session: &Session, r: &Request) -> Response {
    let v = match body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (down, up) = session.rate_limits();
    let (down, up) = match (rate(&v, "max_download_rate"), rate(&v, "max_upload_rate")) {
        (Ok(d), Ok(u)) => (d.unwrap_or(down), u.unwrap_or(up)),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match session.set_rate_limits(down, up) {
        Ok(()) => limits_json(session),
        Err(e) => Response::error(500, e.to_string()),
    }
}

fn set_torrent_limits(session: &Session, ih: &InfoHash, r: &Request) -> Response {
    let v = match body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(st) = session.status(ih) else {
        return Response::error(404, format!("no torrent {ih}"));
    };
    let (down, up) = match (rate(&v, "max_download_rate"), rate(&v, "max_upload_rate")) {
        (Ok(d), Ok(u)) => (
            d.unwrap_or(st.max_download_rate),
            u.unwrap_or(st.max_upload_rate),
        ),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match session.set_torrent_rate_limits(ih, down, up) {
        Ok(()) => Response::ok(json!({
            "id": ih.to_hex(),
            "max_download_rate": rate_json(down),
            "max_upload_rate": rate_json(up),
        })),
        Err(e) => Response::error(500, e.to_string()),
    }
}

/// A torrent's own seeding limit in our JSON: `"session"`, `"unlimited"`,
/// or its value.
pub fn limit_json<T>(l: SeedLimit<T>, value: impl Fn(T) -> Value) -> Value {
    match l {
        SeedLimit::Session => json!("session"),
        SeedLimit::Unlimited => json!("unlimited"),
        SeedLimit::Limit(v) => value(v),
    }
}

/// `"session"`, `"unlimited"` or a number (non-negative) as a limit.
fn limit_from<T>(
    v: &Value,
    key: &str,
    f: impl Fn(f64) -> T,
) -> Result<Option<SeedLimit<T>>, Response> {
    match v.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if s == "session" => Ok(Some(SeedLimit::Session)),
        Some(Value::String(s)) if s == "unlimited" => Ok(Some(SeedLimit::Unlimited)),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x.is_finite() && x >= 0.0) => Ok(n
            .as_f64()
            .map(|x| Some(SeedLimit::Limit(f(x))))
            .unwrap_or(None)),
        Some(other) => Err(Response::error(
            400,
            format!("{key}: \"session\", \"unlimited\" or a number of 0 or more, not {other}"),
        )),
    }
}

/// `POST /torrents/ID/seeding` with `{"seed_ratio_limit": 1.5|"session"|"unlimited",
/// "seed_idle_limit": SECONDS|"session"|"unlimited"}` (a key left out keeps its value).
fn set_seeding(session: &Session, ih: &InfoHash, r: &Request) -> Response {
    let v = match body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(st) = session.status(ih) else {
        return Response::error(404, format!("no torrent {ih}"));
    };
    let mut l = st.seed_limits;
    match (
        limit_from(&v, "seed_ratio_limit", |x| x),
        limit_from(&v, "seed_idle_limit", |x| {
            std::time::Duration::from_secs(x as u64)
        }),
    ) {
        (Ok(ratio), Ok(idle)) => {
            l.ratio = ratio.unwrap_or(l.ratio);
            l.idle = idle.unwrap_or(l.idle);
        }
        (Err(e), _) | (_, Err(e)) => return e,
    }
    match session.set_seed_limits(ih, l) {
        Ok(()) => Response::ok(json!({
            "id": ih.to_hex(),
            "seed_ratio_limit": limit_json(l.ratio, |r| json!(r)),
            "seed_idle_limit": limit_json(l.idle, |d| json!(d.as_secs())),
        })),
        Err(e) => Response::error(500, e.to_string()),
    }
}

fn files_json(session: &Session, ih: &InfoHash) -> Response {
    let Some(files) = session.files(ih) else {
        return Response::error(404, format!("no torrent {ih}"));
    };
    let list: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "index": f.index,
                "path": f.path,
                "length": f.length,
                "pad": f.pad,
                "priority": f.priority.as_str(),
                "bytes_have": f.bytes_have,
                "progress": if f.length == 0 { 1.0 } else { f.bytes_have as f64 / f.length as f64 },
            })
        })
        .collect();
    Response::ok(json!({"id": ih.to_hex(), "files": list}))
}

/// `{"files": [{"index": 1, "priority": "skip"}, ...]}` changes the files
/// listed; `{"priorities": ["normal", "skip", ...]}` sets every file.
fn set_files(session: &Session, ih: &InfoHash, r: &Request) -> Response {
    let v = match body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(current) = session.files(ih) else {
        return Response::error(404, format!("no torrent {ih}"));
    };
    let mut prios: Vec<FilePriority> = current.iter().map(|f| f.priority).collect();
    let parse_prio = |p: &Value| -> Result<FilePriority, Response> {
        let s = match p {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        FilePriority::parse(&s).ok_or_else(|| {
            Response::error(400, format!("not a priority: {p} (\"skip\" or \"normal\")"))
        })
    };
    if let Some(all) = v.get("priorities") {
        let Some(list) = all.as_array() else {
            return Response::error(400, "\"priorities\" must be a list");
        };
        if list.len() != prios.len() {
            return Response::error(
                400,
                format!("{} priorities given for {} files", list.len(), prios.len()),
            );
        }
        for (slot, p) in prios.iter_mut().zip(list) {
            match parse_prio(p) {
                Ok(p) => *slot = p,
                Err(e) => return e,
            }
        }
    } else if let Some(changes) = v.get("files") {
        let Some(list) = changes.as_array() else {
            return Response::error(400, "\"files\" must be a list of {\"index\", \"priority\"}");
        };
        for c in list {
            let Some(i) = c.get("index").and_then(Value::as_u64) else {
                return Response::error(400, format!("no \"index\" in {c}"));
            };
            let Some(slot) = usize::try_from(i).ok().and_then(|i| prios.get_mut(i)) else {
                return Response::error(400, format!("no file {i}"));
            };
            match c.get("priority").map(parse_prio) {
                Some(Ok(p)) => *slot = p,
                Some(Err(e)) => return e,
                None => return Response::error(400, format!("no \"priority\" in {c}")),
            }
        }
    } else {
        return Response::error(
            400,
            "give \"files\" (changes) or \"priorities\" (every file)",
        );
    }
    let any = current
        .iter()
        .zip(&prios)
        .any(|(f, p)| !f.pad && p.is_wanted());
    if !any && current.iter().any(|f| !f.pad) {
        return Response::error(400, "the selection leaves no file to download");
    }
    match session.set_file_priorities(ih, prios) {
        Ok(()) => files_json(session, ih),
        Err(e) => Response::error(500, e.to_string()),
    }
}

/// The extra keys of `POST /torrents`.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    selection: Selection,
    max_download_rate: u64,
    max_upload_rate: u64,
    piece_order: bittorrent_core::PieceOrderPrefs,
}

impl AddOptions {
    /// Read `only`, `skip` (lists of patterns), `files` (`"0,3-5"` or a
    /// list of indices), `max_download_rate`, `max_upload_rate`,
    /// `sequential`, `first_last_piece` (booleans).
    pub fn from_body(v: &Value) -> Result<AddOptions, Response> {
        let mut o = AddOptions::default();
        let patterns = |key: &str| -> Result<Vec<String>, Response> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|p| {
                        p.as_str().map(String::from).ok_or_else(|| {
                            Response::error(400, format!("{key}: not a pattern: {p}"))
                        })
                    })
                    .collect(),
                Some(x) => Err(Response::error(
                    400,
                    format!("{key}: not a list of patterns: {x}"),
                )),
            }
        };
        o.selection.only = patterns("only")?;
        o.selection.skip = patterns("skip")?;
        o.selection.file_lists = match v.get("files") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => {
                let mut l = Vec::new();
                for i in a {
                    match i.as_u64() {
                        Some(i) => l.push(i.to_string()),
                        None => {
                            return Err(Response::error(400, format!("files: not an index: {i}")))
                        }
                    }
                }
                Some(l.join(","))
            }
            Some(x) => return Err(Response::error(400, format!("files: {x}"))),
        }
        .into_iter()
        .collect();
        o.selection
            .validate()
            .map_err(|e| Response::error(400, cli_text(e)))?;
        o.max_download_rate = rate(v, "max_download_rate")?.unwrap_or(0);
        o.max_upload_rate = rate(v, "max_upload_rate")?.unwrap_or(0);
        o.piece_order.sequential = flag(v, "sequential")?.unwrap_or(false);
        o.piece_order.first_last_piece = flag(v, "first_last_piece")?.unwrap_or(false);
        Ok(o)
    }

    /// Put the options into an `AddTorrent` (its metainfo, or a magnet
    /// link's once fetched, decides what the patterns select). The error
    /// is a one-line reason.
    pub fn apply(&self, add: &mut AddTorrent) -> Result<(), String> {
        match &add.source {
            // Resolved now, so a selection that does not fit is a 400.
            bittorrent_core::TorrentSource::Metainfo(mi) => {
                add.file_priorities = self.selection.priorities(&mi.info).map_err(cli_text)?;
            }
            // Resolved when the metadata arrives.
            _ => add.file_selector = self.selection.selector().map_err(cli_text)?,
        }
        add.max_download_rate = self.max_download_rate;
        add.max_upload_rate = self.max_upload_rate;
        add.piece_order = self.piece_order;
        Ok(())
    }
}

fn cli_text(e: crate::args::CliError) -> String {
    match e {
        crate::args::CliError::Usage(m) | crate::args::CliError::Failed(m) => m,
    }
}
