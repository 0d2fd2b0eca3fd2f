//! The state directory of the daemon and its `control.json` (the port and
//! the token of the running daemon's control API).

use crate::args::CliError;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the file holding the port and token, in the state directory.
pub const CONTROL_FILE: &str = "control.json";

/// The message every control command prints when no daemon answers.
pub const NO_DAEMON: &str = "no running peer daemon (start one with `peer daemon`)";

/// Where a daemon listens and the token it wants.
#[derive(Debug, Clone)]
pub struct ControlInfo {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Bearer token.
    pub token: String,
}

/// `$XDG_DATA_HOME/peer`, else `$HOME/.local/share/peer`.
pub fn default_state_dir() -> Result<PathBuf, CliError> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("peer"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/peer")),
        None => Err(CliError::Failed(
            "no state directory: set --state, XDG_DATA_HOME or HOME".into(),
        )),
    }
}

/// The given state directory or the default one.
pub fn state_dir(given: Option<PathBuf>) -> Result<PathBuf, CliError> {
    match given {
        Some(d) => Ok(d),
        None => default_state_dir(),
    }
}

/// Read `STATE/control.json`, if there is a valid one.
pub fn read_info(state: &Path) -> Option<ControlInfo> {
    let text = std::fs::read_to_string(state.join(CONTROL_FILE)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let port = u16::try_from(v.get("port")?.as_u64()?).ok()?;
    let token = v.get("token")?.as_str()?.to_string();
    Some(ControlInfo { port, token })
}

/// Write `STATE/control.json` (mode 0600, replaced atomically).
pub fn write_info(state: &Path, info: &ControlInfo) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = state.join(format!("{CONTROL_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let body = json!({"port": info.port, "token": info.token}).to_string();
    f.write_all(body.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, state.join(CONTROL_FILE))
}

/// Remove `STATE/control.json`.
pub fn remove_info(state: &Path) {
    let _ = std::fs::remove_file(state.join(CONTROL_FILE));
}

/// 32 random hex characters (std's randomly keyed hasher, the time and the pid).
pub fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for i in 0..2u32 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(i);
        h.write_u64(n);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_are_hex() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn info_round_trips_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("peer-info-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let info = ControlInfo {
            port: 4242,
            token: "ab".repeat(16),
        };
        write_info(&dir, &info).expect("write");
        let back = read_info(&dir).expect("read");
        assert_eq!((back.port, back.token), (4242, info.token));
        let mode = std::fs::metadata(dir.join(CONTROL_FILE))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        remove_info(&dir);
        assert!(read_info(&dir).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
