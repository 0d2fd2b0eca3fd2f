//! Labels on torrents (the categories of the media tools), kept in
//! `STATE/labels.json` (`{"<info-hash hex>": ["tv", "hd"], ...}`), shared by
//! our JSON API and the Transmission RPC. A state directory without the file
//! simply has no labels.

use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name in the state directory.
pub const LABELS_FILE: &str = "labels.json";
/// Most labels on one torrent, and the longest label.
pub const MAX_LABELS: usize = 32;
/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 128;

/// The labels of every torrent.
pub struct Labels {
    path: PathBuf,
    map: Mutex<BTreeMap<String, Vec<String>>>,
}

/// Check a list of labels: at most [`MAX_LABELS`], each non-empty, at most
/// [`MAX_LABEL_LEN`] bytes, without a comma or control character
/// (Transmission's rule); duplicates are dropped.
pub fn validate(labels: &[String]) -> Result<Vec<String>, String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("labels: at most {MAX_LABELS} labels"));
    }
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for l in labels {
        let l = l.trim();
        if l.is_empty()
            || l.len() > MAX_LABEL_LEN
            || l.contains(',')
            || l.chars().any(char::is_control)
        {
            return Err(format!(
                "labels: not a label: {l:?} (1 to {MAX_LABEL_LEN} bytes, no comma or control character)"
            ));
        }
        if !out.iter().any(|o| o == l) {
            out.push(l.to_string());
        }
    }
    Ok(out)
}

/// A JSON list of strings as labels.
pub fn from_json(v: &Value) -> Result<Vec<String>, String> {
    let Value::Array(a) = v else {
        return Err(format!("labels: not a list of strings: {v}"));
    };
    let list = a
        .iter()
        .map(|l| {
            l.as_str()
                .map(String::from)
                .ok_or(format!("labels: not a string: {l}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    validate(&list)
}

impl Labels {
    /// The labels of the state directory (a damaged file is reported and
    /// kept beside itself; the labels start empty).
    pub fn load(state: &Path) -> Labels {
        let path = state.join(LABELS_FILE);
        let mut map = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<BTreeMap<String, Vec<String>>>(&text) {
                Ok(m) => map = m,
                Err(e) => {
                    let kept = path.with_extension("json.corrupt");
                    let _ = std::fs::rename(&path, &kept);
                    log::warn!("{}: {e}; kept as {}", path.display(), kept.display());
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}: {e}", path.display()),
        }
        Labels {
            path,
            map: Mutex::new(map),
        }
    }

    /// A torrent's labels (empty when it has none).
    pub fn get(&self, hex: &str) -> Vec<String> {
        self.map.lock().get(hex).cloned().unwrap_or_default()
    }

    /// Set a torrent's labels (checked with [`validate`]) and save.
    pub fn set(&self, hex: &str, labels: Vec<String>) -> Result<(), String> {
        let labels = validate(&labels)?;
        let mut m = self.map.lock();
        if labels.is_empty() {
            m.remove(hex);
        } else {
            m.insert(hex.to_string(), labels);
        }
        self.save(&m)
    }

    /// Forget a removed torrent's labels.
    pub fn remove(&self, hex: &str) {
        let mut m = self.map.lock();
        if m.remove(hex).is_some() {
            if let Err(e) = self.save(&m) {
                log::warn!("{e}");
            }
        }
    }

    fn save(&self, m: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
        let tmp = self.path.with_extension("json.tmp");
        let text = json!(m).to_string();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("peer-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let l = Labels::load(&dir);
        assert!(l.get("ab").is_empty());
        l.set("ab", vec!["tv".into(), "hd".into(), "tv".into()])
            .expect("set");
        assert_eq!(Labels::load(&dir).get("ab"), vec!["tv", "hd"]);
        assert!(l.set("ab", vec!["a,b".into()]).is_err());
        assert!(l.set("ab", vec![String::new()]).is_err());
        assert!(l.set("ab", vec!["x".repeat(200)]).is_err());
        l.remove("ab");
        assert!(Labels::load(&dir).get("ab").is_empty());
        std::fs::write(dir.join(LABELS_FILE), "{bad").expect("write");
        assert!(Labels::load(&dir).get("ab").is_empty());
        assert!(dir.join("labels.json.corrupt").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
