//! The Transmission RPC (Transmission's `docs/rpc-spec.md`, rpc-version 17,
//! with the rpc-version 18 snake_case names) on the daemon's control port, at
//! `/transmission/rpc`, so that `transmission-remote`, the `transmission-rpc`
//! Python package and the media tools built on them drive `peer daemon`.
//!
//! - this module: the transport (the `X-Transmission-Session-Id` handshake,
//!   HTTP Basic authentication, the Host allow list, the body limit, the JSON
//!   envelope `{method, arguments, tag}` / `{result, arguments, tag}`), the
//!   torrent ids, and the dispatch;
//! - [`config`]: `STATE/settings.json` (credentials, allow list, port, watch folder);
//! - [`session_methods`]: `session-*`, `free-space`, `port-test`;
//! - [`fields`]: the fields of `torrent-get`;
//! - [`torrent_methods`]: `torrent-add`, `torrent-set`, the actions, `torrent-remove`.
//!
//! Everything maps onto the library's [`Session`] calls, the same ones our
//! own JSON API makes. What the library cannot do answers an error whose
//! `result` says so, never a success.

pub mod config;
pub mod fields;
pub mod session_methods;
pub mod torrent_methods;
pub mod tracker_edits;

use crate::control::server::Service;
use crate::control::{Request, Response};
use bittorrent_core::{Config, InfoHash, Session, TorrentStatus};
use config::Settings;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// The RPC's path.
pub const RPC_PATH: &str = "/transmission/rpc";
/// The session-id header.
pub const SESSION_ID_HEADER: &str = "X-Transmission-Session-Id";
/// Largest RPC request (a `torrent-add` may carry a `.torrent`, base64).
pub const MAX_RPC_REQUEST: usize = 8 * 1024 * 1024;
/// What `recently-active` covers.
const RECENT: Duration = Duration::from_secs(60);

/// A method's error: the text that goes into `result`.
pub type RpcResult = Result<Value, String>;

/// A name as compared: lower case without `-` and `_`, so that
/// `hashString`, `hash_string` and `hash-string` are one name.
pub fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The rpc-version 18 (snake_case) spelling of a kebab or camel name.
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c == '-' {
            out.push('_');
        } else if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A method's arguments, looked up by any spelling of their names; every
/// argument read is marked, so that the unknown ones can be refused.
pub struct Args<'a> {
    map: &'a Map<String, Value>,
    seen: std::cell::RefCell<Vec<String>>,
}

impl<'a> Args<'a> {
    fn new(map: &'a Map<String, Value>) -> Args<'a> {
        Args {
            map,
            seen: Default::default(),
        }
    }
    /// The value of an argument (`None` when absent or `null`).
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        let n = norm(name);
        self.seen.borrow_mut().push(n.clone());
        self.map
            .iter()
            .find(|(k, _)| norm(k) == n)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }
    /// A boolean argument (Transmission clients send `true` or `1`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(v) => Err(format!("{name}: not a boolean: {v}")),
        }
    }
    /// A non-negative integer argument.
    pub fn uint(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{name}: not a non-negative integer: {v}")),
        }
    }
    /// A number argument.
    pub fn number(&self, name: &str) -> Result<Option<f64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{name}: not a number: {v}")),
        }
    }
    /// A string argument.
    pub fn str(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(format!("{name}: not a string: {v}")),
        }
    }
    /// A list of file indices.
    pub fn indices(&self, name: &str) -> Result<Option<Vec<usize>>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|i| {
                    i.as_u64()
                        .and_then(|i| usize::try_from(i).ok())
                        .ok_or_else(|| format!("{name}: not a file index: {i}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(format!("{name}: not a list of file indices: {v}")),
        }
    }
    /// Refuse the arguments no method read (`ids` is read by the caller).
    fn unknown(&self) -> Option<String> {
        let seen = self.seen.borrow();
        self.map
            .iter()
            .filter(|(k, v)| !v.is_null() && !seen.contains(&norm(k)))
            .map(|(k, _)| k.clone())
            .next()
    }
}

/// The torrents `ids` selects, with their ids, and for `recently-active`
/// the ids removed lately.
pub type Selection = (Vec<(u64, TorrentStatus)>, Option<Vec<u64>>);

/// The torrent ids of this run: integers handed out in the order the
/// torrents are first seen, stable until the daemon stops (hashes always work).
#[derive(Default)]
pub struct Ids {
    by_hash: HashMap<InfoHash, u64>,
    by_id: HashMap<u64, InfoHash>,
    next: u64,
    /// When each torrent was first seen (for `recently-active`).
    seen_at: HashMap<InfoHash, Instant>,
    /// Ids removed, and when (for `recently-active`'s `removed`).
    removed: Vec<(u64, Instant)>,
}

impl Ids {
    /// The id of a torrent, handing out the next one if it has none.
    pub fn id(&mut self, ih: &InfoHash) -> u64 {
        if let Some(id) = self.by_hash.get(ih) {
            return *id;
        }
        self.next += 1;
        self.by_hash.insert(*ih, self.next);
        self.by_id.insert(self.next, *ih);
        self.seen_at.insert(*ih, Instant::now());
        self.next
    }
    /// Forget a removed torrent.
    pub fn removed(&mut self, ih: &InfoHash) {
        if let Some(id) = self.by_hash.remove(ih) {
            self.by_id.remove(&id);
            self.seen_at.remove(ih);
            self.removed.push((id, Instant::now()));
        }
        self.removed.retain(|(_, t)| t.elapsed() < RECENT);
    }
}

/// The Transmission RPC of one daemon.
pub struct Rpc {
    session: Weak<Session>,
    session_id: String,
    settings: Settings,
    /// The last `Authorization` value that checked out (hashing the
    /// password on every request would cost milliseconds each).
    accepted: Mutex<Option<String>>,
    /// Torrent ids.
    pub ids: Mutex<Ids>,
    /// Where `torrent-add` saves by default (`session-set download-dir`).
    pub download_dir: Mutex<PathBuf>,
    /// The state directory (never a place a `filename` may be read from).
    pub state_dir: PathBuf,
    /// The configuration the session started with.
    pub config: Config,
    /// When the daemon started.
    pub started: SystemTime,
    /// Labels on torrents (shared with our JSON API).
    pub labels: Arc<crate::control::labels::Labels>,
    /// Set by `session-close`: the daemon stops.
    pub stop: Arc<AtomicBool>,
    /// The session's ratio limit and idle limit (minutes) as values, kept
    /// while the limit is off (`seedRatioLimit`, `idle-seeding-limit`).
    pub seed_values: Mutex<(f64, u64)>,
    /// The download queue (`STATE/queue.json`).
    pub queue: Arc<crate::control::queue::Queue>,
}

/// The answer to a request without the current session id (the spec's
/// CSRF protection): 409 with the id in the header.
fn conflict(id: &str) -> Response {
    Response::bytes(
        "text/html; charset=ISO-8859-1",
        format!(
            "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p>\
             <p><code>{SESSION_ID_HEADER}: {id}</code></p>"
        )
        .into_bytes(),
    )
    .with_status(409)
    .with_header(SESSION_ID_HEADER, id)
}

fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len()
                && name.starts_with(head)
                && wildcard_tail(tail, &name[head.len()..])
        }
    }
}

fn wildcard_tail(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.ends_with(pattern);
    }
    (0..=name.len()).any(|i| name.is_char_boundary(i) && wildcard(pattern, &name[i..]))
}

impl Rpc {
    /// The RPC of a daemon whose session is `session`.
    pub fn new(
        session: Weak<Session>,
        settings: Settings,
        config: Config,
        download_dir: PathBuf,
        state_dir: PathBuf,
        stop: Arc<AtomicBool>,
        labels: Arc<crate::control::labels::Labels>,
    ) -> Rpc {
        let seed_values = Mutex::new((
            (settings.ratio_limit)
                .or(config.seed_ratio)
                .unwrap_or(config::DEFAULT_RATIO_LIMIT),
            (settings.idle_limit_minutes)
                .or(config.seed_idle.map(|d| d.as_secs() / 60))
                .unwrap_or(config::DEFAULT_IDLE_MINUTES),
        ));
        Rpc {
            queue: Arc::new(crate::control::queue::Queue::load(&state_dir)),
            seed_values,
            session,
            session_id: crate::control::new_token(),
            settings,
            accepted: Mutex::new(None),
            ids: Mutex::new(Ids::default()),
            download_dir: Mutex::new(download_dir),
            state_dir,
            config,
            started: SystemTime::now(),
            stop,
            labels,
        }
    }

    /// Whether a `Host` header is allowed: this machine's names (as for our
    /// own API) or a name of `rpc-host-whitelist`.
    fn host_ok(&self, r: &Request) -> bool {
        let Some(host) = r.header("host") else {
            return true;
        };
        if crate::web::auth::local_host(host) {
            return true;
        }
        let name = host.trim().to_ascii_lowercase();
        let name = match name.rsplit_once(':') {
            Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => n.to_string(),
            _ => name,
        };
        self.settings
            .rpc_host_whitelist
            .iter()
            .any(|p| wildcard(p, &name))
    }

    fn auth_ok(&self, r: &Request) -> bool {
        let (Some(user), Some(hash)) = (&self.settings.rpc_username, &self.settings.rpc_password)
        else {
            return true;
        };
        let Some(value) = r.header("authorization") else {
            return false;
        };
        if let Some(a) = &*self.accepted.lock() {
            if crate::web::auth::same(a.as_bytes(), value.as_bytes()) {
                return true;
            }
        }
        let Some(b64) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return false;
        };
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let raw = String::from_utf8_lossy(&raw);
        let Some((u, p)) = raw.split_once(':') else {
            return false;
        };
        let ok = crate::web::auth::same(u.as_bytes(), user.as_bytes())
            && config::check_password(hash, p);
        if ok {
            *self.accepted.lock() = Some(value.to_string());
        }
        ok
    }

    /// Check a request's head: Host, then credentials, then the session id.
    pub fn admit(&self, head: &Request) -> Result<usize, Response> {
        if !self.host_ok(head) {
            return Err(Response::bytes(
                "text/html; charset=ISO-8859-1",
                b"<h1>421: Misdirected Request</h1><p>Transmission received your request, but the \
                  hostname was unrecognized. Add it to rpc-host-whitelist in settings.json.</p>"
                    .as_slice(),
            )
            .with_status(421));
        }
        if head.path.starts_with("/transmission/web") {
            return Ok(crate::control::http::MAX_REQUEST);
        }
        if !self.auth_ok(head) {
            return Err(Response::bytes(
                "text/html; charset=ISO-8859-1",
                b"<h1>401: Unauthorized</h1>Unauthorized User".as_slice(),
            )
            .with_status(401)
            .with_header("WWW-Authenticate", "Basic realm=\"Transmission\""));
        }
        if head.path.trim_end_matches('/') != RPC_PATH {
            return Err(Response::error(
                404,
                format!("no such endpoint: {}", head.path),
            ));
        }
        let id_ok = head
            .header("x-transmission-session-id")
            .is_some_and(|id| crate::web::auth::same(id.as_bytes(), self.session_id.as_bytes()));
        if !id_ok {
            return Err(conflict(&self.session_id));
        }
        if head.method != "POST" {
            return Err(Response::error(
                405,
                "the Transmission RPC takes POST requests",
            ));
        }
        Ok(MAX_RPC_REQUEST)
    }

    /// Answer an admitted request.
    pub fn handle(&self, r: &Request) -> Response {
        if r.path.starts_with("/transmission/web") {
            return Response::bytes("text/plain", b"see /".as_slice())
                .with_status(301)
                .with_header("Location", "/");
        }
        let answer = |status: u16, result: &str, args: Value, tag: Option<&Value>| {
            let mut v = json!({"result": result, "arguments": args});
            if let Some(t) = tag {
                v["tag"] = t.clone();
            }
            Response::json(status, v).with_header(SESSION_ID_HEADER, self.session_id.clone())
        };
        let v: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => {
                return answer(
                    400,
                    &format!("malformed JSON request: {e}"),
                    json!({}),
                    None,
                )
            }
        };
        let tag = v.get("tag").filter(|t| t.is_number());
        let Some(method) = v.get("method").and_then(Value::as_str) else {
            return answer(400, "no method name", json!({}), tag);
        };
        let empty = Map::new();
        let args = match v.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return answer(400, "arguments: not an object", json!({}), tag),
        };
        let Some(session) = self.session.upgrade() else {
            return answer(503, "the daemon is stopping", json!({}), tag);
        };
        let snake_names = method.contains('_');
        let a = Args::new(args);
        let name = method.replace('_', "-");
        let out = self.dispatch(&session, &name, &a, snake_names);
        if name.starts_with("torrent-") && name != "torrent-get" {
            // Added, removed, started or stopped torrents: the queue's rule
            // holds again at once.
            self.queue.rebalance(&session);
        }
        let out = out.and_then(|v| match a.unknown() {
            Some(k) => Err(format!("unknown argument for {method}: {k}")),
            None => Ok(v),
        });
        match out {
            Ok(v) => answer(200, "success", v, tag),
            Err(e) => answer(200, &e, json!({}), tag),
        }
    }

    fn dispatch(&self, s: &Session, method: &str, a: &Args, snake: bool) -> RpcResult {
        use crate::control::queue::Move;
        use session_methods as sm;
        use torrent_methods as tm;
        match method {
            "session-get" => sm::session_get(self, s, a, snake),
            "session-set" => sm::session_set(self, s, a),
            "session-stats" => sm::session_stats(self, s, snake),
            "session-close" => sm::session_close(self),
            "free-space" => sm::free_space(a, snake),
            "port-test" => sm::port_test(s, a),
            "blocklist-update" => Err("blocklist-update: peer has no blocklists".into()),
            "torrent-get" => fields::torrent_get(self, s, a),
            "torrent-add" => tm::torrent_add(self, s, a),
            "torrent-set" => tm::torrent_set(self, s, a),
            "torrent-start" => tm::start_stop(self, s, a, tm::Start::Queued),
            "torrent-start-now" => tm::start_stop(self, s, a, tm::Start::Now),
            "torrent-stop" => tm::start_stop(self, s, a, tm::Start::Stop),
            "torrent-remove" => tm::torrent_remove(self, s, a),
            "torrent-set-location" => tm::set_location(self, s, a),
            "torrent-verify" => tm::torrent_verify(self, s, a),
            "torrent-reannounce" => tm::torrent_reannounce(self, s, a),
            "torrent-rename-path" => tm::rename_path(self, s, a),
            "queue-move-top" => tm::queue_move(self, s, a, Move::Top),
            "queue-move-up" => tm::queue_move(self, s, a, Move::Up),
            "queue-move-down" => tm::queue_move(self, s, a, Move::Down),
            "queue-move-bottom" => tm::queue_move(self, s, a, Move::Bottom),
            "group-get" | "group-set" => Err(format!("{method}: peer has no bandwidth groups")),
            _ => Err(format!("method name not recognized: {method}")),
        }
    }

    /// The torrents named by `ids` (every torrent when absent), sorted by
    /// id, with their ids; and for `recently-active` the ids removed lately.
    pub fn select(&self, session: &Session, a: &Args) -> Result<Selection, String> {
        let all = session.torrents();
        let mut ids = self.ids.lock();
        // New torrents get their ids in a stable order.
        let mut fresh: Vec<&TorrentStatus> = all
            .iter()
            .filter(|s| !ids.by_hash.contains_key(&s.info_hash))
            .collect();
        fresh.sort_by(|a, b| a.name.cmp(&b.name).then(a.info_hash.0.cmp(&b.info_hash.0)));
        for s in fresh {
            ids.id(&s.info_hash);
        }
        let mut with_ids: Vec<(u64, TorrentStatus)> =
            all.into_iter().map(|s| (ids.id(&s.info_hash), s)).collect();
        with_ids.sort_by_key(|(id, _)| *id);
        let Some(sel) = a.get("ids") else {
            return Ok((with_ids, None));
        };
        if sel.as_str() == Some("recently-active") {
            ids.removed.retain(|(_, t)| t.elapsed() < RECENT);
            let removed = ids.removed.iter().map(|(id, _)| *id).collect();
            let seen = &ids.seen_at;
            with_ids.retain(|(_, s)| {
                s.download_rate > 0
                    || s.upload_rate > 0
                    || seen.get(&s.info_hash).is_some_and(|t| t.elapsed() < RECENT)
            });
            return Ok((with_ids, Some(removed)));
        }
        let wanted: Vec<&Value> = match sel {
            Value::Array(l) => l.iter().collect(),
            one => vec![one],
        };
        let mut out = Vec::with_capacity(wanted.len());
        for w in wanted {
            let hit = match w {
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| with_ids.iter().position(|(id, _)| *id == n)),
                Value::String(h) => {
                    let h = h.to_ascii_lowercase();
                    with_ids.iter().position(|(_, s)| s.info_hash.to_hex() == h)
                }
                _ => return Err(format!("ids: not a torrent id or hash: {w}")),
            };
            match hit {
                Some(i) => {
                    if !out.iter().any(|(id, _)| *id == with_ids[i].0) {
                        out.push(with_ids[i].clone());
                    }
                }
                None => return Err(format!("no torrent with id {w}")),
            }
        }
        Ok((out, None))
    }
}

/// The service of the daemon's control port, for `/transmission/...`.
impl Service for Rpc {
    fn admit(&self, head: &Request) -> Result<usize, Response> {
        Rpc::admit(self, head)
    }
    fn handle(&self, req: &Request) -> Response {
        Rpc::handle(self, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_every_spelling() {
        assert_eq!(norm("hashString"), norm("hash_string"));
        assert_eq!(norm("download-dir"), norm("download_dir"));
        assert_eq!(norm("downloadDir"), norm("download-dir"));
        assert_eq!(snake("hashString"), "hash_string");
        assert_eq!(snake("rpc-version"), "rpc_version");
        assert_eq!(snake("peer-limit"), "peer_limit");
    }

    #[test]
    fn host_patterns() {
        assert!(wildcard("nas.lan", "nas.lan"));
        assert!(!wildcard("nas.lan", "nas.lan.evil"));
        assert!(wildcard("*.example", "a.b.example"));
        assert!(!wildcard("*.example", "example"));
        assert!(wildcard("a*c*e", "abcde"));
        assert!(!wildcard("a*c*e", "abcd"));
    }
}
