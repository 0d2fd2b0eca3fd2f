//! `peer info FILE.torrent|MAGNET [--json]`
//!
//! Shows what a torrent file or a magnet link says. With `--json` it prints
//! one object with exactly the keys `name`, `info_hash`, `total_length`,
//! `piece_length`, `num_pieces`, `private`, `trackers` (a list of tiers, each
//! a list of URLs) and `files` (a list of `{"path": "a/b", "length": n}`,
//! pad files included, in torrent order).
//!
//! For a magnet link the metadata is not known: `total_length`,
//! `piece_length`, `num_pieces` and `private` are `null`, `files` is empty,
//! `name` is the `dn` parameter or `null`, and each `tr` is its own tier.

use crate::args::CliError;
use crate::cli::InfoArgs;
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::Metainfo;
use serde_json::json;
use std::ffi::OsString;

/// What `peer info` prints, from a torrent or a magnet.
struct Summary {
    name: Option<String>,
    info_hash: String,
    total_length: Option<u64>,
    piece_length: Option<u64>,
    num_pieces: Option<usize>,
    private: Option<bool>,
    trackers: Vec<Vec<String>>,
    /// (path joined with `/`, length, pad file)
    files: Vec<(String, u64, bool)>,
    magnet: String,
    /// Files renamed for safety: (as in the torrent, as used).
    renamed: Vec<(String, String)>,
}

/// Run `peer info`.
pub fn run(a: InfoArgs) -> Result<(), CliError> {
    let summary = load(&a.input)?;
    if a.json {
        println!("{}", to_json(&summary));
    } else {
        print!("{}", to_text(&summary));
    }
    Ok(())
}

fn load(input: &OsString) -> Result<Summary, CliError> {
    if let Some(s) = input.to_str() {
        if s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
        {
            let m = Magnet::parse(s).map_err(|e| CliError::Failed(e.to_string()))?;
            return Ok(from_magnet(&m));
        }
    }
    let shown = input.to_string_lossy();
    let bytes =
        std::fs::read(input).map_err(|e| CliError::Failed(format!("cannot read {shown}: {e}")))?;
    let meta =
        Metainfo::from_bytes(&bytes).map_err(|e| CliError::Failed(format!("{shown}: {e}")))?;
    Ok(from_metainfo(&meta))
}

fn from_metainfo(m: &Metainfo) -> Summary {
    Summary {
        name: Some(m.info.name.clone()),
        info_hash: m.info_hash.to_hex(),
        total_length: Some(m.info.total_length),
        piece_length: Some(m.info.piece_length),
        num_pieces: Some(m.info.num_pieces()),
        private: Some(m.info.private),
        trackers: m.trackers(),
        files: m
            .info
            .files
            .iter()
            .map(|f| (f.path.join("/"), f.length, f.pad))
            .collect(),
        magnet: m.magnet_link(),
        renamed: m.renamed_files(),
    }
}

fn from_magnet(m: &Magnet) -> Summary {
    Summary {
        name: m.display_name.clone(),
        info_hash: m.info_hash.to_hex(),
        total_length: None,
        piece_length: None,
        num_pieces: None,
        private: None,
        trackers: m.trackers.iter().map(|t| vec![t.clone()]).collect(),
        files: Vec::new(),
        magnet: m.to_uri(),
        renamed: Vec::new(),
    }
}

fn to_json(s: &Summary) -> String {
    let files: Vec<serde_json::Value> = s
        .files
        .iter()
        .map(|(path, length, _)| json!({ "path": path, "length": length }))
        .collect();
    json!({
        "name": s.name,
        "info_hash": s.info_hash,
        "total_length": s.total_length,
        "piece_length": s.piece_length,
        "num_pieces": s.num_pieces,
        "private": s.private,
        "trackers": s.trackers,
        "files": files,
    })
    .to_string()
}

/// `1.5 MiB`-style size.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn size(n: Option<u64>) -> String {
    n.map_or_else(
        || "unknown (no metadata)".into(),
        |n| format!("{} ({n} bytes)", human(n)),
    )
}

fn to_text(s: &Summary) -> String {
    let unknown = || "unknown (no metadata)".to_string();
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
    line("name:", s.name.clone().unwrap_or_else(unknown));
    line("info hash:", s.info_hash.clone());
    line("total size:", size(s.total_length));
    line("piece length:", size(s.piece_length));
    line(
        "pieces:",
        s.num_pieces.map_or_else(unknown, |n| n.to_string()),
    );
    let private = s.private.map(|p| if p { "yes" } else { "no" });
    line("private:", private.map_or_else(unknown, String::from));
    line(
        "trackers:",
        if s.trackers.is_empty() {
            "none".into()
        } else {
            String::new()
        },
    );
    for (i, tier) in s.trackers.iter().enumerate() {
        out.push_str(&format!("  tier {}: {}\n", i + 1, tier.join(" ")));
    }
    out.push_str(&format!("files ({}):\n", s.files.len()));
    for (path, length, pad) in &s.files {
        let pad = if *pad { " [pad]" } else { "" };
        out.push_str(&format!("  {path} ({length} bytes){pad}\n"));
    }
    out.push_str(&format!("magnet:       {}\n", s.magnet));
    if !s.renamed.is_empty() {
        out.push_str("renamed (unsafe or unportable paths in the torrent):\n");
        for (raw, used) in &s.renamed {
            out.push_str(&format!("  {raw:?} -> {used}\n"));
        }
    }
    out
}
