//! The daemon's configuration file, `STATE/settings.json` (keys named as in
//! Transmission's `settings.json`): the Transmission RPC's credentials and
//! Host allow list, the control port, the watch folder, the session's
//! seeding limits (`session-set` writes them; a `--seed-ratio` flag wins).
//!
//! `rpc-password` may be written in clear text; the daemon replaces it at
//! start with its salted PBKDF2-HMAC-SHA1 hash (`pbkdf2-sha1$ITER$SALT$HASH`),
//! so it is never kept in clear at rest.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file's name in the state directory.
pub const SETTINGS_FILE: &str = "settings.json";
/// Largest settings file read.
const MAX_SETTINGS: u64 = 1024 * 1024;
/// PBKDF2 rounds of a stored password.
const ROUNDS: u32 = 20_000;
const PREFIX: &str = "pbkdf2-sha1$";

/// What `settings.json` says (every key optional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// `rpc-username`: Basic authentication's user name (with a password).
    pub rpc_username: Option<String>,
    /// `rpc-password`: its hash (see [`hash_password`]).
    pub rpc_password: Option<String>,
    /// `rpc-host-whitelist`: Host names accepted besides `localhost` and IP
    /// literals (`*` matches any run of characters).
    pub rpc_host_whitelist: Vec<String>,
    /// `rpc-port`: the control port on 127.0.0.1 (else a random one).
    pub rpc_port: Option<u16>,
    /// `watch-dir`: the watch folder.
    pub watch_dir: Option<PathBuf>,
    /// `watch-dir-delete`: delete added files instead of renaming them.
    pub watch_dir_delete: bool,
    /// `download-dir`: where the RPC's `torrent-add` saves by default.
    pub download_dir: Option<PathBuf>,
    /// `ratio-limit-enabled`: whether the session has a seeding ratio limit.
    pub ratio_limit_enabled: Option<bool>,
    /// `ratio-limit`: its value (kept while disabled).
    pub ratio_limit: Option<f64>,
    /// `idle-seeding-limit-enabled`: whether the session has an idle limit.
    pub idle_limit_enabled: Option<bool>,
    /// `idle-seeding-limit`: its value in minutes (kept while disabled).
    pub idle_limit_minutes: Option<u64>,
}

/// Transmission's default session ratio limit (used while none was set).
pub const DEFAULT_RATIO_LIMIT: f64 = 2.0;
/// Transmission's default idle limit, minutes.
pub const DEFAULT_IDLE_MINUTES: u64 = 30;

impl Settings {
    /// The session's seeding limits these settings give, for the keys they
    /// have: (ratio, idle time), each `None` when the file does not say.
    #[allow(clippy::type_complexity)]
    pub fn seed_limits(&self) -> (Option<Option<f64>>, Option<Option<Duration>>) {
        let ratio = self
            .ratio_limit_enabled
            .map(|on| on.then(|| self.ratio_limit.unwrap_or(DEFAULT_RATIO_LIMIT)));
        let idle = self.idle_limit_enabled.map(|on| {
            on.then(|| {
                let m = self.idle_limit_minutes.unwrap_or(DEFAULT_IDLE_MINUTES);
                Duration::from_secs(m.saturating_mul(60))
            })
        });
        (ratio, idle)
    }
}

/// Read `STATE/settings.json` (none: the defaults). A clear-text
/// `rpc-password` is hashed and the file rewritten (mode 0600).
pub fn load(state: &Path) -> Result<Settings, String> {
    let path = state.join(SETTINGS_FILE);
    let text = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
        Ok(m) if m.len() > MAX_SETTINGS => {
            return Err(format!("{}: larger than 1 MiB", path.display()))
        }
        Ok(_) => std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    };
    let mut v: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(format!("{}: not a JSON object", path.display())),
        Err(e) => return Err(format!("{}: not JSON: {e}", path.display())),
    };
    let err = |k: &str, what: &str| format!("{}: {k}: {what}", path.display());
    let string = |v: &Map<String, Value>, k: &str| -> Result<Option<String>, String> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(err(k, "not a string")),
        }
    };
    let mut s = Settings {
        rpc_username: string(&v, "rpc-username")?.filter(|u| !u.is_empty()),
        rpc_password: string(&v, "rpc-password")?.filter(|p| !p.is_empty()),
        ..Settings::default()
    };
    s.rpc_host_whitelist = match v.get("rpc-host-whitelist") {
        None | Some(Value::Null) => Vec::new(),
        // Transmission writes a comma-separated string.
        Some(Value::String(list)) => list
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|h| {
                h.as_str()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .ok_or_else(|| err("rpc-host-whitelist", "not a list of names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err("rpc-host-whitelist", "not a list of names")),
    };
    s.rpc_port = match v.get("rpc-port") {
        None | Some(Value::Null) => None,
        Some(p) => Some(
            p.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| err("rpc-port", "not a port"))?,
        ),
    };
    s.watch_dir = string(&v, "watch-dir")?
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    s.download_dir = string(&v, "download-dir")?
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    s.watch_dir_delete = match v.get("watch-dir-delete") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(err("watch-dir-delete", "not a boolean")),
    };
    let flag = |k: &str| match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(err(k, "not a boolean")),
    };
    s.ratio_limit_enabled = flag("ratio-limit-enabled")?;
    s.idle_limit_enabled = flag("idle-seeding-limit-enabled")?;
    s.ratio_limit = match v.get("ratio-limit") {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_f64()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| err("ratio-limit", "not a number of 0 or more"))?,
        ),
    };
    s.idle_limit_minutes = match v.get("idle-seeding-limit") {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_u64()
                .ok_or_else(|| err("idle-seeding-limit", "not a number of minutes"))?,
        ),
    };
    if s.rpc_password.is_some() != s.rpc_username.is_some() {
        return Err(format!(
            "{}: rpc-username and rpc-password go together",
            path.display()
        ));
    }
    if let Some(p) = &s.rpc_password {
        if !p.starts_with(PREFIX) {
            let hashed = hash_password(p);
            v.insert("rpc-password".into(), Value::String(hashed.clone()));
            write_private(&path, &Value::Object(v).to_string())
                .map_err(|e| format!("{}: could not hash the password: {e}", path.display()))?;
            log::info!("settings: rpc-password hashed in {}", path.display());
            s.rpc_password = Some(hashed);
        }
    }
    Ok(s)
}

/// Set one key of `STATE/settings.json` (created if missing).
pub fn save_key(state: &Path, key: &str, value: Value) -> Result<(), String> {
    save_keys(state, &[(key, value)])
}

/// Set keys of `STATE/settings.json` at once (created if missing).
pub fn save_keys(state: &Path, keys: &[(&str, Value)]) -> Result<(), String> {
    let path = state.join(SETTINGS_FILE);
    let mut m = match std::fs::read_to_string(&path) {
        Ok(t) => match serde_json::from_str(&t) {
            Ok(Value::Object(m)) => m,
            _ => return Err(format!("{}: not a JSON object", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    for (k, v) in keys {
        m.insert((*k).into(), v.clone());
    }
    write_private(&path, &Value::Object(m).to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1_smol::Sha1::from(key).digest().bytes());
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha1_smol::Sha1::new();
    inner.update(&k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = sha1_smol::Sha1::new();
    outer.update(&k.map(|b| b ^ 0x5c));
    outer.update(&inner.digest().bytes());
    outer.digest().bytes()
}

/// PBKDF2-HMAC-SHA1 (RFC 8018), one 20-byte block.
fn pbkdf2(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 20] {
    let mut msg = salt.to_vec();
    msg.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha1(password, &msg);
    let mut out = u;
    for _ in 1..rounds {
        u = hmac_sha1(password, &u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `pbkdf2-sha1$ROUNDS$SALT$HASH` of a password, with a fresh salt.
pub fn hash_password(password: &str) -> String {
    let salt = crate::control::new_token();
    let h = pbkdf2(password.as_bytes(), salt.as_bytes(), ROUNDS);
    format!("{PREFIX}{ROUNDS}${salt}${}", hex(&h))
}

/// Whether `password` matches a stored hash.
pub fn check_password(stored: &str, password: &str) -> bool {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.split('$');
    let (Some(rounds), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(rounds) = rounds.parse::<u32>() else {
        return false;
    };
    if rounds == 0 || rounds > 10_000_000 {
        return false;
    }
    let h = hex(&pbkdf2(password.as_bytes(), salt.as_bytes(), rounds));
    crate::web::auth::same(h.as_bytes(), hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc_6070() {
        // RFC 6070 test vectors 1 and 2.
        assert_eq!(
            hex(&pbkdf2(b"password", b"salt", 1)),
            "0c60c80f961f0e71f3a9b524af6012062fe037a6"
        );
        assert_eq!(
            hex(&pbkdf2(b"password", b"salt", 2)),
            "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"
        );
    }

    #[test]
    fn seeding_limits_from_the_settings() {
        let dir = std::env::temp_dir().join(format!("peer-settings-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        // Nothing said: nothing changes.
        assert_eq!(load(&dir).expect("load").seed_limits(), (None, None));
        save_keys(
            &dir,
            &[
                ("ratio-limit-enabled", Value::Bool(true)),
                ("ratio-limit", serde_json::json!(1.25)),
                ("idle-seeding-limit-enabled", Value::Bool(false)),
                ("idle-seeding-limit", serde_json::json!(10)),
            ],
        )
        .expect("save");
        let s = load(&dir).expect("load");
        assert_eq!(s.seed_limits(), (Some(Some(1.25)), Some(None)));
        assert_eq!(s.idle_limit_minutes, Some(10));
        save_key(&dir, "idle-seeding-limit-enabled", Value::Bool(true)).expect("save");
        let s = load(&dir).expect("load");
        assert_eq!(s.seed_limits().1, Some(Some(Duration::from_secs(600))));
        save_key(&dir, "ratio-limit", serde_json::json!(-1)).expect("save");
        assert!(load(&dir).unwrap_err().contains("ratio-limit"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn clear_password_is_hashed_at_rest() {
        let dir = std::env::temp_dir().join(format!("peer-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join(SETTINGS_FILE),
            r#"{"rpc-username":"me","rpc-password":"s3cret","rpc-host-whitelist":"nas.lan, *.example","rpc-port":9091,"watch-dir":"/tmp/w"}"#,
        )
        .expect("write");
        let s = load(&dir).expect("load");
        let stored = s.rpc_password.clone().expect("password");
        assert!(stored.starts_with(PREFIX), "{stored}");
        assert!(check_password(&stored, "s3cret"));
        assert!(!check_password(&stored, "s3cre"));
        let text = std::fs::read_to_string(dir.join(SETTINGS_FILE)).expect("read");
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(s.rpc_host_whitelist, vec!["nas.lan", "*.example"]);
        assert_eq!(s.rpc_port, Some(9091));
        // Loading again keeps the same hash.
        assert_eq!(load(&dir).expect("again"), s);
        std::fs::write(dir.join(SETTINGS_FILE), "{nope").expect("write");
        assert!(load(&dir).unwrap_err().contains("not JSON"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
