//! `peer info FILE.torrent|MAGNET [--json]`
//!
//! Shows what a torrent file or a magnet link says. With `--json` it prints
//! one object with exactly the keys `name`, `info_hash`, `total_length`,
//! `piece_length`, `num_pieces`, `private`, `trackers` (a list of tiers, each
//! a list of URLs) and `files` (a list of `{"index": i, "path": "a/b",
//! "length": n}`, pad files included, in torrent order; `index` is what
//! `peer FILE --files LIST` and the control API take).
//!
//! For a magnet link the metadata is not known: `total_length`,
//! `piece_length`, `num_pieces` and `private` are `null`, `files` is empty,
//! `name` is the `dn` parameter or `null`, and each `tr` is its own tier.

use crate::args::CliError;
use crate::cli::InfoArgs;
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::{FileEntry, Metainfo};
use serde_json::json;
use std::ffi::OsString;
use std::io::Write;

/// What `peer info` prints, from a torrent or a magnet.
struct Summary<'a> {
    name: Option<String>,
    info_hash: String,
    total_length: Option<u64>,
    piece_length: Option<u64>,
    num_pieces: Option<usize>,
    private: Option<bool>,
    trackers: Vec<Vec<String>>,
    /// The files, in torrent order (borrowed: a million files are not
    /// copied).
    files: &'a [FileEntry],
    magnet: String,
    /// The torrent, for the files renamed for safety (worked out only for
    /// the text form, which lists them).
    meta: Option<&'a Metainfo>,
}

/// Run `peer info`. Output is streamed; a closed pipe (`peer info | head`)
/// ends it quietly with status 0.
pub fn run(a: InfoArgs) -> Result<(), CliError> {
    let loaded = load(&a.input)?;
    let summary = match &loaded {
        Loaded::Torrent(m) => from_metainfo(m),
        Loaded::Magnet(m) => from_magnet(m),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = if a.json {
        write_json(&mut out, &summary)
    } else {
        write_text(&mut out, &summary)
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Failed(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

enum Loaded {
    Torrent(Box<Metainfo>),
    Magnet(Magnet),
}

fn load(input: &OsString) -> Result<Loaded, CliError> {
    if let Some(s) = input.to_str() {
        if s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
        {
            let m = Magnet::parse(s).map_err(|e| CliError::Failed(e.to_string()))?;
            return Ok(Loaded::Magnet(m));
        }
    }
    let shown = input.to_string_lossy();
    let bytes =
        std::fs::read(input).map_err(|e| CliError::Failed(format!("cannot read {shown}: {e}")))?;
    let meta =
        Metainfo::from_bytes(&bytes).map_err(|e| CliError::Failed(format!("{shown}: {e}")))?;
    Ok(Loaded::Torrent(Box::new(meta)))
}

fn from_metainfo(m: &Metainfo) -> Summary<'_> {
    Summary {
        name: Some(m.info.name.clone()),
        info_hash: m.info_hash.to_hex(),
        total_length: Some(m.info.total_length),
        piece_length: Some(m.info.piece_length),
        num_pieces: Some(m.info.num_pieces()),
        private: Some(m.info.private),
        trackers: m.trackers(),
        files: &m.info.files,
        magnet: Magnet::of(m).to_uri(),
        meta: Some(m),
    }
}

fn from_magnet(m: &Magnet) -> Summary<'static> {
    Summary {
        name: m.display_name.clone(),
        info_hash: m.info_hash.to_hex(),
        total_length: None,
        piece_length: None,
        num_pieces: None,
        private: None,
        trackers: m.trackers.iter().map(|t| vec![t.clone()]).collect(),
        files: &[],
        magnet: m.to_uri(),
        meta: None,
    }
}

/// The JSON object, written piece by piece (keys in the order
/// `serde_json` always printed them: sorted), never built whole.
fn write_json(w: &mut impl Write, s: &Summary<'_>) -> std::io::Result<()> {
    w.write_all(b"{\"files\":[")?;
    for (i, f) in s.files.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write!(w, "{{\"index\":{i},\"length\":{},\"path\":", f.length)?;
        serde_json::to_writer(&mut *w, &f.path.join("/"))?;
        w.write_all(b"}")?;
    }
    w.write_all(b"],")?;
    let rest = json!({
        "name": s.name,
        "info_hash": s.info_hash,
        "total_length": s.total_length,
        "piece_length": s.piece_length,
        "num_pieces": s.num_pieces,
        "private": s.private,
        "trackers": s.trackers,
    })
    .to_string();
    // `rest` is `{...}`: its members follow the files.
    w.write_all(rest.get(1..).unwrap_or("}").as_bytes())?;
    w.write_all(b"\n")
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

fn write_text(w: &mut impl Write, s: &Summary<'_>) -> std::io::Result<()> {
    let unknown = || "unknown (no metadata)".to_string();
    let mut line = |k: &str, v: String| writeln!(w, "{k:<14}{v}");
    line("name:", s.name.clone().unwrap_or_else(unknown))?;
    line("info hash:", s.info_hash.clone())?;
    line("total size:", size(s.total_length))?;
    line("piece length:", size(s.piece_length))?;
    line(
        "pieces:",
        s.num_pieces.map_or_else(unknown, |n| n.to_string()),
    )?;
    let private = s.private.map(|p| if p { "yes" } else { "no" });
    line("private:", private.map_or_else(unknown, String::from))?;
    line(
        "trackers:",
        if s.trackers.is_empty() {
            "none".into()
        } else {
            String::new()
        },
    )?;
    for (i, tier) in s.trackers.iter().enumerate() {
        writeln!(w, "  tier {}: {}", i + 1, tier.join(" "))?;
    }
    writeln!(w, "files ({}):", s.files.len())?;
    let width = s.files.len().saturating_sub(1).to_string().len();
    for (i, f) in s.files.iter().enumerate() {
        let pad = if f.pad { " [pad]" } else { "" };
        let (path, length) = (f.path.join("/"), f.length);
        writeln!(w, "  {i:>width$}: {path} ({length} bytes){pad}")?;
    }
    writeln!(w, "magnet:       {}", s.magnet)?;
    let renamed = s.meta.map(Metainfo::renamed_files).unwrap_or_default();
    if !renamed.is_empty() {
        writeln!(w, "renamed (unsafe or unportable paths in the torrent):")?;
        for (raw, used) in &renamed {
            writeln!(w, "  {raw:?} -> {used}")?;
        }
    }
    Ok(())
}
