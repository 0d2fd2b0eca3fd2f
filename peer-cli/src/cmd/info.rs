//! `peer info FILE.torrent|MAGNET [--json]`
//!
//! Shows what a torrent file or a magnet link says. With `--json` it prints
//! one object with exactly the keys `name`, `info_hash`, `total_length`,
//! `piece_length`, `num_pieces`, `private`, `trackers` (a list of tiers, each
//! a list of URLs) and `files` (a list of `{"index": i, "path": "a/b",
//! "length": n}`, pad files included, in torrent order; `index` is what
//! `peer FILE --files LIST` and the control API take).
//!
//! Added since (see [`Extra`]): `comment`, `created_by`, `creation_date`
//! (seconds since the epoch), `web_seeds` (BEP 19 `url-list`) and `source`
//! (the info dictionary's `source`); `null` (`web_seeds`: empty) when the
//! torrent has none or for a magnet link.
//!
//! Added for BitTorrent v2 (BEP 52): `format` (`"v1"`, `"v2"` or
//! `"hybrid"`; for a magnet link what its hashes say), `info_hash_v2` (64
//! hex digits, or `null` for a v1 torrent or a link without `btmh`) and
//! `piece_layers_missing` (v2 files whose piece layer the torrent lacks,
//! to be fetched from peers; `null` for v1 and magnet links). For a
//! v2-only torrent `info_hash` is the v2 hash truncated to 20 bytes (what
//! trackers and the DHT use) and `num_pieces` counts v2 pieces (each file
//! starts a piece).
//!
//! For a magnet link the metadata is not known: `total_length`,
//! `piece_length`, `num_pieces` and `private` are `null`, `files` is empty,
//! `name` is the `dn` parameter or `null`, and each `tr` is its own tier.

use crate::args::CliError;
use crate::cli::InfoArgs;
use crate::progress::human;
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::{FileEntry, Format, Metainfo};
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
    /// What the torrent says about itself besides its content.
    extra: Extra,
    /// v1, v2 or hybrid, and the v2 fields.
    v2: V2Summary,
}

/// The BEP 52 additions to the summary.
struct V2Summary {
    format: &'static str,
    info_hash_v2: Option<String>,
    piece_layers_missing: Option<usize>,
}

impl V2Summary {
    fn add_json(&self, v: &mut serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            o.insert("format".into(), json!(self.format));
            o.insert("info_hash_v2".into(), json!(self.info_hash_v2));
            o.insert(
                "piece_layers_missing".into(),
                json!(self.piece_layers_missing),
            );
        }
    }
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
    if let Err(e) = written.and_then(|()| out.flush()) {
        crate::args::output_failed(e)
    }
    Ok(())
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
        num_pieces: Some(match &m.v2 {
            Some(v2) if m.format() == Format::V2 => v2.num_pieces as usize,
            _ => m.info.num_pieces(),
        }),
        private: Some(m.info.private),
        trackers: m.trackers(),
        files: &m.info.files,
        magnet: Magnet::of(m).to_uri(),
        meta: Some(m),
        extra: Extra::of(m),
        v2: V2Summary {
            format: m.format().as_str(),
            info_hash_v2: m.info_hash_v2.map(|h| h.to_hex()),
            piece_layers_missing: m.v2.as_ref().map(|v| v.missing_layers()),
        },
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
        extra: Extra::default(),
        v2: V2Summary {
            format: match (m.info_hash_v2, m.is_v2_only()) {
                (None, _) => "v1",
                (Some(_), true) => "v2",
                (Some(_), false) => "hybrid",
            },
            info_hash_v2: m.info_hash_v2.map(|h| h.to_hex()),
            piece_layers_missing: None,
        },
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
    let mut rest = json!({
        "name": s.name,
        "info_hash": s.info_hash,
        "total_length": s.total_length,
        "piece_length": s.piece_length,
        "num_pieces": s.num_pieces,
        "private": s.private,
        "trackers": s.trackers,
    });
    s.extra.add_json(&mut rest);
    s.v2.add_json(&mut rest);
    let rest = rest.to_string();
    // `rest` is `{...}`: its members follow the files.
    w.write_all(rest.get(1..).unwrap_or("}").as_bytes())?;
    w.write_all(b"\n")
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
    line("format:", s.v2.format.to_string())?;
    line("info hash:", s.info_hash.clone())?;
    if let Some(h) = &s.v2.info_hash_v2 {
        line("info hash v2:", h.clone())?;
    }
    if let Some(n) = s.v2.piece_layers_missing.filter(|&n| n > 0) {
        line(
            "piece layers:",
            format!("{n} missing (to be fetched from peers)"),
        )?;
    }
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
    w.write_all(s.extra.text().as_bytes())?;
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

/// The torrent's description of itself (`comment`, `created by`,
/// `creation date`, `url-list`, the info dictionary's `source`), kept apart
/// from the summary so that `peer info` grows by additions only.
#[derive(Default)]
struct Extra {
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    web_seeds: Vec<String>,
    source: Option<String>,
}

impl Extra {
    fn of(m: &Metainfo) -> Extra {
        Extra {
            comment: m.comment.clone(),
            created_by: m.created_by.clone(),
            creation_date: m.creation_date,
            web_seeds: m.url_list.clone(),
            source: m.source(),
        }
    }

    /// The keys added to `peer info --json` (never renamed or removed).
    fn add_json(&self, v: &mut serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            o.insert("comment".into(), json!(self.comment));
            o.insert("created_by".into(), json!(self.created_by));
            o.insert("creation_date".into(), json!(self.creation_date));
            o.insert("web_seeds".into(), json!(self.web_seeds));
            o.insert("source".into(), json!(self.source));
        }
    }

    /// Text lines, only for what the torrent has.
    fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<14}{v}\n"));
        if let Some(c) = &self.comment {
            line("comment:", c);
        }
        if let Some(c) = &self.created_by {
            line("created by:", c);
        }
        if let Some(d) = self.creation_date {
            line("created on:", &utc_date(d));
        }
        if let Some(s) = &self.source {
            line("source:", s);
        }
        for (i, w) in self.web_seeds.iter().enumerate() {
            line(if i == 0 { "web seeds:" } else { "" }, w);
        }
        out
    }
}

/// `2024-05-01 12:34:56 UTC` for seconds since the epoch.
fn utc_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
    }
}
