//! The torrent list in the state directory, one set of files per
//! info-hash under `torrents/`:
//!
//! - `<ih>.add`: how it was added (save path, paused, its own rate and
//!   seeding limits), bencoded; keys absent in older files mean "none";
//! - `<ih>.torrent`: the torrent (the original bytes, or a file written
//!   from the info dictionary and trackers, see [`torrent_file_bytes`]);
//! - `<ih>.magnet`: a magnet link still in its metadata phase (the URI),
//!   removed once the `.torrent` is written;
//! - `<ih>.resume`: resume data, owned by the torrent thread
//!   (`proto::resume`).
//!
//! Every write is atomic ([`write_atomically`]); a restart adds back every
//! `.add` with its `.torrent`, or else its `.magnet`.

use crate::engine::torrent::status::{SeedLimit, SeedLimits};
use crate::proto::bencode::{self, OwnedValue, Value};
use crate::proto::metainfo::{InfoHash, Metainfo};
use crate::state::write_atomically;
use std::io;
use std::path::{Path, PathBuf};

/// What a `.torrent` or `.magnet` file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SavedSource {
    /// The bytes of the `.torrent`.
    Torrent(Vec<u8>),
    /// The magnet URI.
    Magnet(String),
}

/// One torrent of the list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SavedTorrent {
    pub(crate) save_path: PathBuf,
    pub(crate) paused: bool,
    pub(crate) source: SavedSource,
    /// The torrent's own rate limits (download, upload; 0: none).
    pub(crate) limits: (u64, u64),
    /// The torrent's own seeding limits.
    pub(crate) seed: SeedLimits,
}

fn file(dir: &Path, ih: &InfoHash, ext: &str) -> PathBuf {
    dir.join("torrents").join(format!("{ih}.{ext}"))
}

/// Write `<ih>.add` (unchanged content is not written again: a restore
/// of a thousand torrents costs no fsync).
pub(crate) fn save_entry(
    dir: &Path,
    ih: &InfoHash,
    save_path: &Path,
    paused: bool,
    limits: (u64, u64),
    seed: SeedLimits,
) -> io::Result<()> {
    let mut d = vec![
        (
            b"save path".to_vec(),
            OwnedValue::bytes(save_path.to_string_lossy().as_bytes()),
        ),
        (b"paused".to_vec(), OwnedValue::Int(i64::from(paused))),
    ];
    // Only when set, so entries without limits keep their old bytes.
    for (k, r) in [
        (&b"max download rate"[..], limits.0),
        (b"max upload rate", limits.1),
    ] {
        if r > 0 {
            d.push((k.to_vec(), OwnedValue::Int(r.min(i64::MAX as u64) as i64)));
        }
    }
    // Seeding limits, only when the torrent has its own: the ratio in
    // thousandths, the idle time in seconds; -1 for "no limit".
    let ratio = match seed.ratio {
        SeedLimit::Session => None,
        SeedLimit::Unlimited => Some(-1),
        SeedLimit::Limit(r) => Some((r * 1000.0).round().clamp(0.0, 1e15) as i64),
    };
    let idle = match seed.idle {
        SeedLimit::Session => None,
        SeedLimit::Unlimited => Some(-1),
        SeedLimit::Limit(d) => Some(d.as_secs().min(i64::MAX as u64) as i64),
    };
    for (k, v) in [
        (&b"seed idle limit"[..], idle),
        (b"seed ratio limit", ratio),
    ] {
        if let Some(v) = v {
            d.push((k.to_vec(), OwnedValue::Int(v)));
        }
    }
    d.sort_by(|a, b| a.0.cmp(&b.0));
    let v = OwnedValue::Dict(d);
    let path = file(dir, ih, "add");
    let bytes = v.to_bytes();
    if std::fs::read(&path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    write_atomically(&path, &bytes)
}

/// Write `<ih>.torrent` unless it exists, then drop a `<ih>.magnet`.
pub(crate) fn save_torrent(dir: &Path, ih: &InfoHash, bytes: &[u8]) -> io::Result<()> {
    let path = file(dir, ih, "torrent");
    if !path.exists() {
        write_atomically(&path, bytes)?;
    }
    match std::fs::remove_file(file(dir, ih, "magnet")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Write `<ih>.torrent` over the one saved (a v2 torrent whose piece
/// layers were fetched from peers: the saved one lacked them).
pub(crate) fn replace_torrent(dir: &Path, ih: &InfoHash, bytes: &[u8]) -> io::Result<()> {
    write_atomically(&file(dir, ih, "torrent"), bytes)
}

/// Write `<ih>.magnet`.
pub(crate) fn save_magnet(dir: &Path, ih: &InfoHash, uri: &str) -> io::Result<()> {
    write_atomically(&file(dir, ih, "magnet"), uri.as_bytes())
}

/// Forget a torrent: every file of it (resume data included).
pub(crate) fn remove(dir: &Path, ih: &InfoHash) {
    for ext in ["torrent", "magnet", "resume", "add", "paths", "trackers"] {
        let _ = std::fs::remove_file(file(dir, ih, ext));
    }
}

/// Every torrent of the list, in file-name order; one that cannot be read
/// comes with the reason and its `.add` path.
pub(crate) fn load_all(dir: &Path) -> io::Result<Vec<Result<SavedTorrent, (PathBuf, String)>>> {
    let list = match std::fs::read_dir(dir.join("torrents")) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries: Vec<PathBuf> = list
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "add"))
        .collect();
    entries.sort();
    Ok(entries
        .into_iter()
        .map(|entry| load(&entry).map_err(|e| (entry, e)))
        .collect())
}

fn load(entry: &Path) -> Result<SavedTorrent, String> {
    let add = std::fs::read(entry).map_err(|e| e.to_string())?;
    let v = bencode::decode(&add).map_err(|e| e.to_string())?;
    let save = v
        .get(b"save path")
        .and_then(Value::as_bytes)
        .ok_or("no save path")?;
    let paused = v.get(b"paused").and_then(Value::as_int) == Some(1);
    let source = match std::fs::read(entry.with_extension("torrent")) {
        Ok(bytes) => SavedSource::Torrent(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let uri = std::fs::read(entry.with_extension("magnet"))
                .map_err(|_| "neither a .torrent nor a .magnet file beside it".to_string())?;
            SavedSource::Magnet(String::from_utf8_lossy(&uri).trim().to_string())
        }
        Err(e) => return Err(e.to_string()),
    };
    let rate = |k: &[u8]| {
        v.get(k)
            .and_then(Value::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
    };
    let limit = |k: &[u8]| match v.get(k).and_then(Value::as_int) {
        None => SeedLimit::Session,
        Some(n) if n < 0 => SeedLimit::Unlimited,
        Some(n) => SeedLimit::Limit(n as u64),
    };
    let seed = SeedLimits {
        ratio: match limit(b"seed ratio limit") {
            SeedLimit::Limit(n) => SeedLimit::Limit(n as f64 / 1000.0),
            SeedLimit::Unlimited => SeedLimit::Unlimited,
            SeedLimit::Session => SeedLimit::Session,
        },
        idle: match limit(b"seed idle limit") {
            SeedLimit::Limit(n) => SeedLimit::Limit(std::time::Duration::from_secs(n)),
            SeedLimit::Unlimited => SeedLimit::Unlimited,
            SeedLimit::Session => SeedLimit::Session,
        },
    };
    Ok(SavedTorrent {
        save_path: PathBuf::from(String::from_utf8_lossy(save).into_owned()),
        paused,
        source,
        limits: (rate(b"max download rate"), rate(b"max upload rate")),
        seed,
    })
}

/// A `.torrent` written from a metainfo: its trackers and the original
/// bytes of its info dictionary (so the info-hash is unchanged).
pub(crate) fn torrent_file_bytes(m: &Metainfo) -> Vec<u8> {
    let mut out = b"d".to_vec();
    if let Some(a) = &m.announce {
        out.extend_from_slice(b"8:announce");
        out.extend_from_slice(&OwnedValue::bytes(a).to_bytes());
    }
    if !m.announce_list.is_empty() {
        out.extend_from_slice(b"13:announce-list");
        let tiers = OwnedValue::List(
            m.announce_list
                .iter()
                .map(|t| OwnedValue::List(t.iter().map(OwnedValue::bytes).collect()))
                .collect(),
        );
        out.extend_from_slice(&tiers.to_bytes());
    }
    out.extend_from_slice(b"4:info");
    out.extend_from_slice(&m.info_bytes);
    // A v2 torrent's piece layers (those fetched from peers too), by root.
    let layers: std::collections::BTreeMap<&[u8], &Vec<[u8; 32]>> =
        m.v2.iter()
            .flat_map(|v2| v2.files.iter().zip(&v2.piece_layers))
            .filter_map(|(f, l)| Some((f.pieces_root.as_ref()?.as_slice(), l.as_ref()?)))
            .collect();
    if !layers.is_empty() {
        out.extend_from_slice(b"12:piece layersd");
        for (root, layer) in layers {
            out.extend_from_slice(&OwnedValue::bytes(root).to_bytes());
            out.extend_from_slice(format!("{}:", layer.len() * 32).as_bytes());
            for h in layer {
                out.extend_from_slice(h);
            }
        }
        out.push(b'e');
    }
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bt-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_magnet_entry_comes_back_until_its_torrent_is_saved() {
        let dir = temp("magnet");
        let ih = InfoHash([7; 20]);
        save_entry(
            &dir,
            &ih,
            Path::new("/data"),
            true,
            (0, 0),
            SeedLimits::default(),
        )
        .unwrap();
        save_magnet(
            &dir,
            &ih,
            "magnet:?xt=urn:btih:0707070707070707070707070707070707070707",
        )
        .unwrap();
        let all = load_all(&dir).unwrap();
        assert_eq!(
            all,
            vec![Ok(SavedTorrent {
                save_path: PathBuf::from("/data"),
                paused: true,
                source: SavedSource::Magnet(
                    "magnet:?xt=urn:btih:0707070707070707070707070707070707070707".into()
                ),
                limits: (0, 0),
                seed: SeedLimits::default(),
            })]
        );
        save_torrent(&dir, &ih, b"d4:infod4:name1:xee").unwrap();
        assert!(!file(&dir, &ih, "magnet").exists());
        let all = load_all(&dir).unwrap();
        assert!(
            matches!(&all[0], Ok(t) if t.source == SavedSource::Torrent(b"d4:infod4:name1:xee".to_vec()))
        );
        remove(&dir, &ih);
        assert!(load_all(&dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_entry_without_its_torrent_is_reported() {
        let dir = temp("orphan");
        let ih = InfoHash([8; 20]);
        save_entry(
            &dir,
            &ih,
            Path::new("/d"),
            false,
            (0, 0),
            SeedLimits::default(),
        )
        .unwrap();
        let all = load_all(&dir).unwrap();
        assert!(matches!(&all[0], Err((p, _)) if p.ends_with(format!("{ih}.add"))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seeding_limits_round_trip_and_old_entries_have_none() {
        let dir = temp("seed-limits");
        let ih = InfoHash([9; 20]);
        save_torrent(&dir, &ih, b"d4:infod4:name1:xee").unwrap();
        // An entry written before seeding limits existed.
        write_atomically(&file(&dir, &ih, "add"), b"d6:pausedi0e9:save path2:/de").unwrap();
        let t = load_all(&dir).unwrap().remove(0).unwrap();
        assert_eq!(t.seed, SeedLimits::default());
        let seed = SeedLimits {
            ratio: SeedLimit::Limit(1.5),
            idle: SeedLimit::Unlimited,
        };
        save_entry(&dir, &ih, Path::new("/d"), false, (0, 0), seed).unwrap();
        let t = load_all(&dir).unwrap().remove(0).unwrap();
        assert_eq!(t.seed, seed);
        let seed = SeedLimits {
            ratio: SeedLimit::Unlimited,
            idle: SeedLimit::Limit(std::time::Duration::from_secs(600)),
        };
        save_entry(&dir, &ih, Path::new("/d"), false, (0, 0), seed).unwrap();
        assert_eq!(load_all(&dir).unwrap().remove(0).unwrap().seed, seed);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
