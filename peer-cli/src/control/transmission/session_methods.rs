//! The session methods of the Transmission RPC: `session-get`,
//! `session-set`, `session-stats`, `session-close`, `free-space`, `port-test`.
//!
//! Speeds are in kB/s (1000 bytes), as Transmission's `units` say.

use super::{snake, Args, Rpc, RpcResult};
use bittorrent_core::{Encryption, Phase, Session};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Duration;

/// The Transmission release whose RPC we speak (tools check `version`).
pub const VERSION: &str = "4.0.6 (peer 0.1.0)";
/// rpc-version 17 (Transmission 4.0); the snake_case names of 18 are
/// accepted too.
pub const RPC_VERSION: u64 = 17;
const RPC_VERSION_MINIMUM: u64 = 14;
const RPC_VERSION_SEMVER: &str = "5.3.0";
/// Transmission's speed unit: 1 kB/s.
pub const KB: u64 = 1000;

fn encryption_name(e: Encryption) -> &'static str {
    match e {
        Encryption::Require => "required",
        Encryption::Prefer => "preferred",
        // Transmission's "tolerated" prefers plaintext and still accepts
        // encryption; ours is plaintext only. The closest name.
        Encryption::Off => "tolerated",
    }
}

/// Free and total bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> Result<(u64, u64), String> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let frag = st.fragment_size() as u64;
    Ok((
        (st.blocks_available() as u64).saturating_mul(frag),
        (st.blocks() as u64).saturating_mul(frag),
    ))
}

/// Every session argument, with its rpc-version 17 name.
fn session_args(rpc: &Rpc, s: &Session) -> Map<String, Value> {
    let (down, up) = s.rate_limits();
    let dir = rpc.download_dir.lock().clone();
    let free = disk_space(&dir).map_or(-1, |(f, _)| f as i64);
    let c = &rpc.config;
    let (ratio, idle) = s.seed_defaults();
    let (ratio_value, idle_minutes) = *rpc.seed_values.lock();
    let (queue_on, queue_size) = rpc.queue.settings();
    let v = json!({
        "version": VERSION,
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": RPC_VERSION_MINIMUM,
        "rpc-version-semver": RPC_VERSION_SEMVER,
        "session-id": rpc.session_id,
        "config-dir": rpc.state_dir.to_string_lossy(),
        "download-dir": dir.to_string_lossy(),
        "download-dir-free-space": free,
        "speed-limit-down": down / KB,
        "speed-limit-down-enabled": down > 0,
        "speed-limit-up": up / KB,
        "speed-limit-up-enabled": up > 0,
        "alt-speed-enabled": false,
        "alt-speed-down": 0,
        "alt-speed-up": 0,
        "alt-speed-time-enabled": false,
        "alt-speed-time-begin": 0,
        "alt-speed-time-end": 0,
        "alt-speed-time-day": 0,
        "seedRatioLimit": ratio.unwrap_or(ratio_value),
        "seedRatioLimited": ratio.is_some(),
        "idle-seeding-limit": idle.map_or(idle_minutes, |d| d.as_secs() / 60),
        "idle-seeding-limit-enabled": idle.is_some(),
        "peer-port": s.local_addr().port(),
        "peer-port-random-on-start": false,
        "port-forwarding-enabled": false,
        "encryption": encryption_name(s.encryption()),
        "dht-enabled": c.dht,
        "pex-enabled": true,
        "lsd-enabled": c.lsd,
        "utp-enabled": false,
        "tcp-enabled": true,
    });
    let more = json!({
        "peer-limit-global": c.max_connections,
        "peer-limit-per-torrent": c.max_peers_per_torrent,
        "blocklist-enabled": false,
        "blocklist-size": 0,
        "blocklist-url": "",
        "cache-size-mb": 0,
        "download-queue-enabled": queue_on,
        "download-queue-size": queue_size,
        "seed-queue-enabled": false,
        "seed-queue-size": 0,
        "queue-stalled-enabled": false,
        "queue-stalled-minutes": 0,
        "incomplete-dir-enabled": false,
        "incomplete-dir": "",
        "rename-partial-files": false,
        "start-added-torrents": true,
        "trash-original-torrent-files": false,
        "script-torrent-done-enabled": false,
        "script-torrent-done-filename": "",
        "script-torrent-added-enabled": false,
        "script-torrent-added-filename": "",
        "script-torrent-done-seeding-enabled": false,
        "script-torrent-done-seeding-filename": "",
        "anti-brute-force-enabled": false,
        "anti-brute-force-threshold": 0,
        "default-trackers": "",
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": KB,
            "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": KB,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024,
        },
    });
    let mut out = Map::new();
    for part in [v, more] {
        if let Value::Object(m) = part {
            out.extend(m);
        }
    }
    out
}

/// `session-get` (with `fields`, rpc-version 16+). A snake_case call
/// (rpc-version 18) gets snake_case names.
pub fn session_get(rpc: &Rpc, s: &Session, a: &Args, snake_names: bool) -> RpcResult {
    let all = session_args(rpc, s);
    let wanted: Option<Vec<String>> = match a.get("fields") {
        None => None,
        Some(Value::Array(l)) => Some(
            l.iter()
                .map(|f| {
                    f.as_str()
                        .map(super::norm)
                        .ok_or(format!("fields: not a name: {f}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(v) => return Err(format!("fields: not a list of names: {v}")),
    };
    let mut out = Map::new();
    for (k, v) in all {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&super::norm(&k)))
        {
            continue;
        }
        let name = if snake_names { snake(&k) } else { k };
        out.insert(name, v);
    }
    if let Some(w) = &wanted {
        if let Some(bad) = w
            .iter()
            .find(|f| !out.keys().any(|k| super::norm(k) == **f))
        {
            return Err(format!("session-get: unknown field {bad}"));
        }
    }
    Ok(Value::Object(out))
}

/// A setting we cannot change while running: accepted only when it asks
/// for what is already in force.
fn fixed<T: PartialEq + std::fmt::Display>(
    name: &str,
    given: Option<T>,
    now: T,
) -> Result<(), String> {
    match given {
        Some(g) if g != now => Err(format!(
            "session-set: {name} cannot be changed while the daemon runs (it is {now}; restart peer daemon with the flag)"
        )),
        _ => Ok(()),
    }
}

/// `session-set`: the download directory and the speed limits change at
/// once; the rest only if it already has the value asked for.
pub fn session_set(rpc: &Rpc, s: &Session, a: &Args) -> RpcResult {
    let c = &rpc.config;
    // Read (and so validate) everything before changing anything.
    let dir = a.str("download-dir")?;
    if let Some(d) = dir {
        if !Path::new(d).is_absolute() {
            return Err(format!("download-dir: not an absolute path: {d}"));
        }
    }
    let (down, up) = s.rate_limits();
    let down_kb = a.uint("speed-limit-down")?;
    let down_on = a.bool("speed-limit-down-enabled")?;
    let up_kb = a.uint("speed-limit-up")?;
    let up_on = a.bool("speed-limit-up-enabled")?;
    let rate = |now: u64, kb: Option<u64>, on: Option<bool>| -> u64 {
        match (kb, on) {
            (_, Some(false)) => 0,
            (Some(kb), _) => kb.saturating_mul(KB),
            (None, _) => now,
        }
    };
    let new_down = rate(down, down_kb, down_on);
    let new_up = rate(up, up_kb, up_on);
    if (down_on == Some(true) && new_down == 0) || (up_on == Some(true) && new_up == 0) {
        return Err("session-set: a speed limit enabled needs a speed-limit above 0".into());
    }
    fixed(
        "peer-port",
        a.uint("peer-port")?,
        u64::from(s.local_addr().port()),
    )?;
    fixed("dht-enabled", a.bool("dht-enabled")?, c.dht)?;
    fixed("lsd-enabled", a.bool("lsd-enabled")?, c.lsd)?;
    fixed("pex-enabled", a.bool("pex-enabled")?, true)?;
    fixed("utp-enabled", a.bool("utp-enabled")?, false)?;
    fixed(
        "encryption",
        a.str("encryption")?,
        encryption_name(s.encryption()),
    )?;
    let seeding = seed_limits_asked(rpc, s, a)?;
    fixed("alt-speed-enabled", a.bool("alt-speed-enabled")?, false)?;
    fixed(
        "alt-speed-time-enabled",
        a.bool("alt-speed-time-enabled")?,
        false,
    )?;
    fixed(
        "port-forwarding-enabled",
        a.bool("port-forwarding-enabled")?,
        false,
    )?;
    fixed("blocklist-enabled", a.bool("blocklist-enabled")?, false)?;
    let queue_on = a.bool("download-queue-enabled")?;
    let queue_size = a.uint("download-queue-size")?;
    if queue_size == Some(0) {
        return Err("session-set: download-queue-size must be 1 or more".into());
    }
    fixed("seed-queue-enabled", a.bool("seed-queue-enabled")?, false)?;
    fixed(
        "incomplete-dir-enabled",
        a.bool("incomplete-dir-enabled")?,
        false,
    )?;
    fixed(
        "start-added-torrents",
        a.bool("start-added-torrents")?,
        true,
    )?;
    if queue_on.is_some() || queue_size.is_some() {
        let size = queue_size.map(|n| usize::try_from(n.min(100_000)).unwrap_or(100_000));
        rpc.queue.configure(s, queue_on, size);
    }
    if let Some(((ratio, idle), values)) = seeding {
        s.set_seed_defaults(ratio, idle)
            .map_err(|e| format!("session-set: {e}"))?;
        *rpc.seed_values.lock() = values;
        super::config::save_keys(
            &rpc.state_dir,
            &[
                ("ratio-limit-enabled", json!(ratio.is_some())),
                ("ratio-limit", json!(values.0)),
                ("idle-seeding-limit-enabled", json!(idle.is_some())),
                ("idle-seeding-limit", json!(values.1)),
            ],
        )
        .map_err(|e| format!("session-set: {e}"))?;
    }
    if (new_down, new_up) != (down, up) {
        s.set_rate_limits(new_down, new_up)
            .map_err(|e| format!("session-set: {e}"))?;
    }
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(|e| format!("download-dir: {d}: {e}"))?;
        super::config::save_key(&rpc.state_dir, "download-dir", json!(d))
            .map_err(|e| format!("download-dir: {e}"))?;
        *rpc.download_dir.lock() = d.into();
    }
    Ok(json!({}))
}

/// The session's seeding limits asked by `session-set` (`seedRatioLimited`,
/// `seedRatioLimit`, `idle-seeding-limit-enabled`, `idle-seeding-limit` in
/// minutes): `None` when it asks for none of them, else the limits in force
/// after it, `((ratio, idle), (ratio value, idle minutes))`. As in
/// Transmission, a value is kept while its limit is off.
#[allow(clippy::type_complexity)]
fn seed_limits_asked(
    rpc: &Rpc,
    s: &Session,
    a: &Args,
) -> Result<Option<((Option<f64>, Option<Duration>), (f64, u64))>, String> {
    let ratio_on = a.bool("seedRatioLimited")?;
    let ratio = a.number("seedRatioLimit")?;
    let idle_on = a.bool("idle-seeding-limit-enabled")?;
    let idle = a.uint("idle-seeding-limit")?;
    if ratio_on.is_none() && ratio.is_none() && idle_on.is_none() && idle.is_none() {
        return Ok(None);
    }
    if ratio.is_some_and(|r| !r.is_finite() || r < 0.0) {
        return Err("seedRatioLimit: must be 0 or more".into());
    }
    let (now_ratio, now_idle) = s.seed_defaults();
    let (ratio_value, idle_minutes) = *rpc.seed_values.lock();
    let values = (
        ratio.unwrap_or(ratio_value),
        idle.unwrap_or(idle_minutes).min(u64::MAX / 60),
    );
    let ratio_in_force = ratio_on.unwrap_or(now_ratio.is_some()).then_some(values.0);
    let idle_in_force = idle_on
        .unwrap_or(now_idle.is_some())
        .then(|| Duration::from_secs(values.1 * 60));
    Ok(Some(((ratio_in_force, idle_in_force), values)))
}

/// `session-stats`. The totals count this run of the daemon (ours are not
/// kept across runs): `cumulative-stats` equals `current-stats`.
pub fn session_stats(rpc: &Rpc, s: &Session, snake_names: bool) -> RpcResult {
    let st = s.torrents();
    let active = st
        .iter()
        .filter(|t| {
            !t.paused
                && matches!(
                    t.phase,
                    Phase::Downloading | Phase::Seeding | Phase::Metadata | Phase::Checking
                )
        })
        .count();
    let secs = rpc.started.elapsed().map_or(0, |d| d.as_secs());
    let stats = json!({
        "uploadedBytes": st.iter().map(|t| t.uploaded).sum::<u64>(),
        "downloadedBytes": st.iter().map(|t| t.downloaded).sum::<u64>(),
        "filesAdded": 0,
        "sessionCount": 1,
        "secondsActive": secs,
    });
    let v = json!({
        "activeTorrentCount": active,
        "pausedTorrentCount": st.iter().filter(|t| t.paused).count(),
        "torrentCount": st.len(),
        "downloadSpeed": st.iter().map(|t| t.download_rate).sum::<u64>(),
        "uploadSpeed": st.iter().map(|t| t.upload_rate).sum::<u64>(),
        "cumulative-stats": stats,
        "current-stats": stats,
    });
    if !snake_names {
        return Ok(v);
    }
    let snake_obj = |v: &Value| -> Value {
        match v {
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (snake(k), v.clone())).collect())
            }
            other => other.clone(),
        }
    };
    match &v {
        Value::Object(m) => Ok(Value::Object(
            m.iter().map(|(k, v)| (snake(k), snake_obj(v))).collect(),
        )),
        _ => Ok(v),
    }
}

/// `session-close`: stops the daemon, as Transmission does.
pub fn session_close(rpc: &Rpc) -> RpcResult {
    rpc.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(json!({}))
}

/// `free-space`: the free bytes under an absolute directory.
pub fn free_space(a: &Args, snake_names: bool) -> RpcResult {
    let path = a.str("path")?.ok_or("free-space: no path")?;
    if !Path::new(path).is_absolute() {
        return Err(format!("free-space: not an absolute path: {path}"));
    }
    let (free, total) = disk_space(Path::new(path))?;
    let key = if snake_names {
        "size_bytes"
    } else {
        "size-bytes"
    };
    Ok(json!({"path": path, key: free, "total_size": total}))
}

/// `port-test`: Transmission asks a web service of its own project whether
/// its port is reachable from the Internet. We contact no outside service,
/// so we cannot tell, and say so.
/// `port-test`, answered from what we saw, never guessed: `true` once a
/// peer from a public address connected to us in this run (over the
/// family asked, `ipProtocol` `ipv4` or `ipv6`; either when absent). We
/// contact no outside service to test it, so without such a connection
/// the answer is an error saying we cannot tell (with the port mapping's
/// state), never a `false` we could not prove.
pub fn port_test(s: &Session, a: &Args) -> RpcResult {
    let family = a.str("ipProtocol")?;
    let (v4, v6) = s.incoming_from_internet();
    let seen = match family {
        None => v4 + v6,
        Some("ipv4") => v4,
        Some("ipv6") => v6,
        Some(other) => return Err(format!("port-test: ipProtocol: not ipv4 or ipv6: {other}")),
    };
    if seen > 0 {
        let mut out = json!({"port-is-open": true});
        if let Some(f) = family {
            out["ipProtocol"] = json!(f);
        }
        return Ok(out);
    }
    let mapping = match s.port_mapping() {
        Some(m) => format!("port mapping: {}", m.message),
        None => "port mapping is off".to_string(),
    };
    Err(format!(
        "port-test: peer cannot tell: no peer from the internet connected to port {} in this \
         run, and it contacts no outside service to test it ({mapping})",
        s.local_addr().port()
    ))
}
