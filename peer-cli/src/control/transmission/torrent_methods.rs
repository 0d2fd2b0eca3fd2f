//! The torrent methods of the Transmission RPC but `torrent-get`:
//! `torrent-add`, `torrent-set`, `torrent-start(-now)`, `torrent-stop`,
//! `torrent-remove`, `torrent-verify`, `torrent-reannounce`,
//! `torrent-rename-path` and the queue moves.

use super::{Args, Rpc, RpcResult};
use crate::control::labels;
use bittorrent_core::{
    AddTorrent, Error, FilePriority, InfoHash, Magnet, Metainfo, SeedLimit, Session,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The info-hashes of `ids` (every torrent when absent).
fn hashes(rpc: &Rpc, s: &Session, a: &Args) -> Result<Vec<InfoHash>, String> {
    let (t, _) = rpc.select(s, a)?;
    Ok(t.into_iter().map(|(_, t)| t.info_hash).collect())
}

fn lib_error(what: &str, e: &Error) -> String {
    match e {
        Error::NoMetadata(_) => format!("{what}: the torrent's metadata is not here yet"),
        _ => format!("{what}: {e}"),
    }
}

/// A `.torrent` file named by `filename`: an absolute path to a regular
/// file ending in `.torrent`, at most 8 MiB, outside the state directory
/// (which holds the control token). Anything else is refused unread.
fn read_torrent_file(rpc: &Rpc, name: &str) -> Result<Vec<u8>, String> {
    let p = Path::new(name);
    if !p.is_absolute() {
        return Err(format!("filename: not an absolute path: {name}"));
    }
    let real = std::fs::canonicalize(p).map_err(|e| format!("filename: {name}: {e}"))?;
    let state = std::fs::canonicalize(&rpc.state_dir).unwrap_or_else(|_| rpc.state_dir.clone());
    if real.starts_with(&state) {
        return Err(format!(
            "filename: {name}: the daemon's state directory is not readable through the RPC"
        ));
    }
    if real.extension().and_then(|e| e.to_str()) != Some("torrent") {
        return Err(format!(
            "filename: {name}: only .torrent files are read (or give a URL or a magnet link)"
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("filename: {name}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("filename: {name}: not a regular file"));
    }
    if meta.len() > crate::fetch::MAX_TORRENT as u64 {
        return Err(format!("filename: {name}: larger than 8 MiB"));
    }
    std::fs::read(&real).map_err(|e| format!("filename: {name}: {e}"))
}

/// The priorities of `info.files` from `files-wanted` / `files-unwanted`
/// (indices of the files but padding). `Ok(None)`: neither given.
fn wanted(a: &Args, files: &[(bool, FilePriority)]) -> Result<Option<Vec<FilePriority>>, String> {
    let want = a.indices("files-wanted")?;
    let skip = a.indices("files-unwanted")?;
    if want.is_none() && skip.is_none() {
        return Ok(None);
    }
    // Our index of each Transmission index (padding left out).
    let real: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, (pad, _))| !pad)
        .map(|(i, _)| i)
        .collect();
    let mut prios: Vec<FilePriority> = files.iter().map(|(_, p)| *p).collect();
    for (list, p, name) in [
        (&skip, FilePriority::Skip, "files-unwanted"),
        (&want, FilePriority::Normal, "files-wanted"),
    ] {
        // An empty list means every file, as in Transmission.
        let indices: Vec<usize> = match list {
            None => continue,
            Some(l) if l.is_empty() => (0..real.len()).collect(),
            Some(l) => l.clone(),
        };
        for i in indices {
            let r = real
                .get(i)
                .ok_or_else(|| format!("{name}: no file {i} (the torrent has {})", real.len()))?;
            prios[*r] = p;
        }
    }
    if !real.is_empty() && !real.iter().any(|r| prios[*r].is_wanted()) {
        return Err("the selection leaves no file to download".into());
    }
    Ok(Some(prios))
}

/// `priority-normal` is the only priority we have; high and low are refused.
fn priorities(a: &Args) -> Result<(), String> {
    let _ = a.indices("priority-normal")?;
    for name in ["priority-high", "priority-low"] {
        if a.indices(name)?.is_some_and(|l| !l.is_empty()) {
            return Err(format!(
                "{name}: peer has no file priorities but normal and skipped (files-unwanted)"
            ));
        }
    }
    Ok(())
}

/// `torrent-add`.
pub fn torrent_add(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    let dir: PathBuf = match a.str("download-dir")? {
        Some(d) if Path::new(d).is_absolute() => d.into(),
        Some(d) => return Err(format!("download-dir: not an absolute path: {d}")),
        None => rpc.download_dir.lock().clone(),
    };
    let paused = a.bool("paused")?.unwrap_or(false);
    let labels = a.get("labels").map(labels::from_json).transpose()?;
    priorities(a)?;
    if a.str("cookies")?.is_some_and(|c| !c.is_empty()) {
        return Err("cookies: fetching with cookies is not supported".into());
    }
    if a.uint("bandwidthPriority")?.is_some_and(|p| p != 0) {
        return Err("bandwidthPriority: peer has no bandwidth priorities".into());
    }
    if let Some(n) = a.uint("peer-limit")? {
        if n != rpc.config.max_peers_per_torrent as u64 {
            return Err("peer-limit: the peer limit is the session's (peer daemon's)".into());
        }
    }
    let filename = a.str("filename")?;
    let metainfo = a.str("metainfo")?;
    let add = match (filename, metainfo) {
        (Some(_), Some(_)) => return Err("torrent-add: give filename or metainfo, not both".into()),
        (None, None) => return Err("torrent-add: no filename or metainfo".into()),
        (Some(f), None) if f.starts_with("magnet:") => {
            let m = Magnet::parse(f).map_err(|e| format!("filename: magnet: {e}"))?;
            if a.get("files-wanted").is_some() || a.get("files-unwanted").is_some() {
                return Err("files-wanted/files-unwanted: a magnet link's files are not known yet; use torrent-set once its metadata is here".into());
            }
            AddTorrent::magnet(m, dir).paused(paused)
        }
        (Some(f), None) => {
            let bytes = if f.starts_with("http://") || f.starts_with("https://") {
                crate::fetch::fetch(f).map_err(|e| format!("filename: {e}"))?
            } else {
                read_torrent_file(rpc, f)?
            };
            from_bytes(a, bytes, dir, paused, f)?
        }
        (None, Some(b64)) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("metainfo: not base64: {e}"))?;
            from_bytes(a, bytes, dir, paused, "metainfo")?
        }
    };
    let ih = add.source.info_hash();
    let name = match &add.source {
        bittorrent_core::TorrentSource::Metainfo(m) => m.info.name.clone(),
        bittorrent_core::TorrentSource::Magnet(m) => {
            m.display_name.clone().unwrap_or_else(|| ih.to_hex())
        }
    };
    let key = match s.add(add) {
        Ok(_) => "torrent-added",
        Err(Error::AlreadyAdded(_)) => "torrent-duplicate",
        Err(e) => return Err(lib_error("torrent-add", &e)),
    };
    if key == "torrent-added" {
        if let Some(l) = labels {
            rpc.labels.set(&ih.to_hex(), l)?;
        }
    }
    let id = rpc.ids.lock().id(&ih);
    let mut entry = json!({"id": id, "name": name, "hashString": ih.to_hex()});
    if let Some(st) = s.status(&ih) {
        entry["name"] = json!(st.name);
    }
    Ok(json!({ key: entry }))
}

fn from_bytes(
    a: &Args,
    bytes: Vec<u8>,
    dir: PathBuf,
    paused: bool,
    what: &str,
) -> Result<AddTorrent, String> {
    let mi = Metainfo::from_bytes(&bytes).map_err(|e| format!("{what}: not a torrent: {e}"))?;
    let files: Vec<(bool, FilePriority)> = mi
        .info
        .files
        .iter()
        .map(|f| (f.pad, FilePriority::Normal))
        .collect();
    let prios = wanted(a, &files)?;
    let mut add = AddTorrent::new(mi, dir).paused(paused).torrent_bytes(bytes);
    add.file_priorities = prios;
    Ok(add)
}

/// `torrent-set`.
pub fn torrent_set(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    let targets = hashes(rpc, s, a)?;
    let down = a.uint("downloadLimit")?;
    let down_on = a.bool("downloadLimited")?;
    let up = a.uint("uploadLimit")?;
    let up_on = a.bool("uploadLimited")?;
    let labels = a.get("labels").map(labels::from_json).transpose()?;
    priorities(a)?;
    let kb = super::session_methods::KB;
    for (name, ok) in [
        (
            "bandwidthPriority",
            a.uint("bandwidthPriority")?.is_none_or(|p| p == 0),
        ),
        (
            "honorsSessionLimits",
            a.bool("honorsSessionLimits")?.is_none_or(|b| b),
        ),
        (
            "peer-limit",
            a.uint("peer-limit")?
                .is_none_or(|n| n == rpc.config.max_peers_per_torrent as u64),
        ),
        ("group", a.get("group").is_none()),
        ("sequentialDownload", a.get("sequentialDownload").is_none()),
    ] {
        if !ok {
            return Err(format!(
                "torrent-set: {name} is not supported by peer (docs/API.md)"
            ));
        }
    }
    // `location`: look for the data there from now on (not moved).
    if let Some(l) = a.str("location")? {
        let dir = location(rpc, l)?;
        for ih in &targets {
            s.move_data(ih, dir, false)
                .map_err(|e| lib_error("torrent-set", &e))?;
        }
    }
    let position = a.uint("queuePosition")?;
    if let Some(p) = position {
        if targets.len() != 1 {
            return Err("torrent-set: queuePosition needs exactly one torrent in ids".into());
        }
        rpc.queue
            .set_position(s, &targets[0], usize::try_from(p).unwrap_or(usize::MAX));
    }
    let ratio_limit = a.number("seedRatioLimit")?;
    let ratio_mode = a.uint("seedRatioMode")?;
    let idle_limit = a.uint("seedIdleLimit")?;
    let idle_mode = a.uint("seedIdleMode")?;
    if ratio_limit.is_some_and(|r| !r.is_finite() || r < 0.0) {
        return Err("seedRatioLimit: must be 0 or more".into());
    }
    if ratio_mode.is_some_and(|m| m > 2) || idle_mode.is_some_and(|m| m > 2) {
        return Err(
            "seedRatioMode/seedIdleMode: 0 (session), 1 (the torrent's own) or 2 (unlimited)"
                .into(),
        );
    }
    for ih in &targets {
        let hex = ih.to_hex();
        if ratio_limit.is_some()
            || ratio_mode.is_some()
            || idle_limit.is_some()
            || idle_mode.is_some()
        {
            let st = s.status(ih).ok_or_else(|| format!("no torrent {hex}"))?;
            let mut l = st.seed_limits;
            let (session_ratio, session_idle) = *rpc.seed_values.lock();
            let minutes = |m: u64| Duration::from_secs(m.saturating_mul(60));
            l.ratio = seed_limit(l.ratio, ratio_mode, ratio_limit, session_ratio);
            l.idle = seed_limit(
                l.idle,
                idle_mode,
                idle_limit.map(minutes),
                minutes(session_idle),
            );
            s.set_seed_limits(ih, l)
                .map_err(|e| lib_error("torrent-set", &e))?;
        }
        if down.is_some() || down_on.is_some() || up.is_some() || up_on.is_some() {
            let st = s.status(ih).ok_or_else(|| format!("no torrent {hex}"))?;
            let rate = |now: u64, v: Option<u64>, on: Option<bool>| match (v, on) {
                (_, Some(false)) => 0,
                (Some(v), _) => v.saturating_mul(kb),
                (None, _) => now,
            };
            s.set_torrent_rate_limits(
                ih,
                rate(st.max_download_rate, down, down_on),
                rate(st.max_upload_rate, up, up_on),
            )
            .map_err(|e| lib_error("torrent-set", &e))?;
        }
        if a.get("files-wanted").is_some() || a.get("files-unwanted").is_some() {
            let files = s
                .files(ih)
                .ok_or("files-wanted: the torrent's metadata is not here yet")?;
            let current: Vec<(bool, FilePriority)> =
                files.iter().map(|f| (f.pad, f.priority)).collect();
            if let Some(p) = wanted(a, &current)? {
                s.set_file_priorities(ih, p)
                    .map_err(|e| lib_error("torrent-set", &e))?;
            }
        }
        if let Some(l) = &labels {
            rpc.labels.set(&hex, l.clone())?;
        }
        if super::tracker_edits::wanted(a) {
            super::tracker_edits::apply(s, a, ih)?;
        }
    }
    Ok(json!({}))
}

/// A limit after `torrent-set`: the mode (0 session, 1 own, 2 none) and the
/// value; a value alone becomes the torrent's own limit. Mode 1 without a
/// value keeps the torrent's own value, else takes `session`'s (as a
/// Transmission torrent's own value starts as the session's).
fn seed_limit<T: Copy>(
    now: SeedLimit<T>,
    mode: Option<u64>,
    value: Option<T>,
    session: T,
) -> SeedLimit<T> {
    let own = |fallback: SeedLimit<T>| match (value, now) {
        (Some(v), _) => SeedLimit::Limit(v),
        (None, SeedLimit::Limit(v)) => SeedLimit::Limit(v),
        (None, _) => fallback,
    };
    match mode {
        Some(0) => SeedLimit::Session,
        Some(2) => SeedLimit::Unlimited,
        Some(_) => own(SeedLimit::Limit(session)),
        // A value alone: the torrent's own limit (transmission-remote's
        // `-sr` sends the mode too).
        None => own(now),
    }
}

/// Which of `torrent-start`, `torrent-start-now`, `torrent-stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `torrent-start`: through the download queue.
    Queued,
    /// `torrent-start-now`: at once, outside the queue.
    Now,
    /// `torrent-stop`.
    Stop,
}

/// `torrent-start`, `torrent-start-now`, `torrent-stop`.
pub fn start_stop(rpc: &Rpc, s: &Session, a: &Args, how: Start) -> RpcResult {
    for ih in hashes(rpc, s, a)? {
        let r = match how {
            Start::Stop => rpc.queue.stop(s, &ih),
            Start::Queued => rpc.queue.start(s, &ih, false),
            Start::Now => rpc.queue.start(s, &ih, true),
        };
        r.map_err(|e| {
            let name = match how {
                Start::Stop => "torrent-stop",
                Start::Queued => "torrent-start",
                Start::Now => "torrent-start-now",
            };
            lib_error(name, &e)
        })?;
    }
    Ok(json!({}))
}

/// A `location`: an absolute path outside the daemon's state directory.
fn location<'a>(rpc: &Rpc, l: &'a str) -> Result<&'a Path, String> {
    let dir = Path::new(l);
    if !dir.is_absolute() {
        return Err(format!("location: not an absolute path: {l}"));
    }
    let state = std::fs::canonicalize(&rpc.state_dir).unwrap_or_else(|_| rpc.state_dir.clone());
    if dir.starts_with(&state) || dir.starts_with(&rpc.state_dir) {
        return Err(format!(
            "location: {l}: not inside the daemon's state directory"
        ));
    }
    Ok(dir)
}

/// `torrent-set-location`: `location` (an absolute directory), `move`
/// (move the data there; else look for it there).
pub fn set_location(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    let targets = hashes(rpc, s, a)?;
    let location_arg = a
        .str("location")?
        .ok_or("torrent-set-location: no location")?;
    let move_files = a.bool("move")?.unwrap_or(false);
    let dir = location(rpc, location_arg)?;
    for ih in targets {
        s.move_data(&ih, dir, move_files)
            .map_err(|e| lib_error("torrent-set-location", &e))?;
    }
    Ok(json!({}))
}

/// `queue-move-top`, `-up`, `-down`, `-bottom`.
pub fn queue_move(rpc: &Rpc, s: &Session, a: &Args, m: crate::control::queue::Move) -> RpcResult {
    let which = hashes(rpc, s, a)?;
    rpc.queue.move_torrents(s, &which, m);
    Ok(json!({}))
}

/// `torrent-remove` (`delete-local-data`).
pub fn torrent_remove(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    let delete = a.bool("delete-local-data")?.unwrap_or(false);
    for ih in hashes(rpc, s, a)? {
        s.remove(&ih, delete)
            .map_err(|e| lib_error("torrent-remove", &e))?;
        rpc.labels.remove(&ih.to_hex());
        rpc.ids.lock().removed(&ih);
    }
    Ok(json!({}))
}

/// `torrent-verify`: every piece of the torrents is checked again (the
/// torrent shows `status` 2 and `recheckProgress` meanwhile); pieces that
/// fail are downloaded again. A magnet link still fetching its metadata
/// has nothing to check and is left alone.
pub fn torrent_verify(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    for ih in hashes(rpc, s, a)? {
        match s.verify(&ih) {
            Ok(()) | Err(Error::NoMetadata(_)) => {}
            Err(e) => return Err(lib_error("torrent-verify", &e)),
        }
    }
    Ok(json!({}))
}

/// `torrent-reannounce`: an announce to the trackers as soon as their
/// `min interval` allows, and a DHT lookup (at most once per 10 s per
/// torrent; sooner calls do nothing). Magnet links still fetching their
/// metadata are left alone (they look for peers all the time).
pub fn torrent_reannounce(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    for ih in hashes(rpc, s, a)? {
        match s.reannounce(&ih) {
            Ok(()) | Err(Error::NoMetadata(_)) => {}
            Err(e) => return Err(lib_error("torrent-reannounce", &e)),
        }
    }
    Ok(json!({}))
}

/// `torrent-rename-path`: `ids` (exactly one torrent), `path` (a file or
/// folder as `files[].name` shows it), `name` (the new last element).
/// Answers `path`, `name` and `id`.
pub fn rename_path(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    if a.get("ids").is_none() {
        return Err("torrent-rename-path: ids must name exactly one torrent".into());
    }
    let (t, _) = rpc.select(s, a)?;
    let [(id, st)] = t.as_slice() else {
        return Err("torrent-rename-path: ids must name exactly one torrent".into());
    };
    let path = a.str("path")?.ok_or("torrent-rename-path: no path")?;
    let name = a.str("name")?.ok_or("torrent-rename-path: no name")?;
    s.rename_path(&st.info_hash, path, name)
        .map_err(|e| lib_error("torrent-rename-path", &e))?;
    Ok(json!({"path": path, "name": name, "id": id}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn args(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    #[test]
    fn wanted_maps_indices_past_padding() {
        let files = vec![
            (false, FilePriority::Normal),
            (true, FilePriority::Normal),
            (false, FilePriority::Normal),
        ];
        let m = args(json!({"files-unwanted": [1]}));
        let p = wanted(&Args::new(&m), &files).expect("ok").expect("some");
        assert_eq!(
            p,
            vec![
                FilePriority::Normal,
                FilePriority::Normal,
                FilePriority::Skip
            ]
        );
        let m = args(json!({"files_unwanted": [0, 1]}));
        assert!(wanted(&Args::new(&m), &files)
            .unwrap_err()
            .contains("leaves no file"));
        let m = args(json!({"files-unwanted": [2]}));
        assert!(wanted(&Args::new(&m), &files)
            .unwrap_err()
            .contains("no file 2"));
        let m = args(json!({}));
        assert!(wanted(&Args::new(&m), &files).expect("ok").is_none());
    }

    #[test]
    fn seed_limit_follows_mode_and_value() {
        use SeedLimit::*;
        // A mode alone.
        assert_eq!(seed_limit(Limit(2.0), Some(0), None, 9.0), Session);
        assert_eq!(seed_limit(Limit(2.0), Some(2), None, 9.0), Unlimited);
        // Mode 1 keeps its own value, or takes the one given.
        assert_eq!(seed_limit(Limit(2.0), Some(1), None, 9.0), Limit(2.0));
        assert_eq!(seed_limit(Session, Some(1), Some(0.5), 9.0), Limit(0.5));
        // A value alone becomes the torrent's own limit.
        assert_eq!(seed_limit(Unlimited, None, Some(3.0), 9.0), Limit(3.0));
        assert_eq!(seed_limit(Session, None, None, 9.0), Session);
        // Mode 1 alone on a torrent without its own: the session's value.
        assert_eq!(seed_limit(Session, Some(1), None, 9.0), Limit(9.0));
        // Resolved against the session's.
        assert_eq!(Session.resolve(Some(1.5)), Some(1.5));
        assert_eq!(Unlimited.resolve(Some(1.5)), None);
        assert_eq!(Limit(0.0).resolve(None), Some(0.0));
    }
}
