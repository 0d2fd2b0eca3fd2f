//! `peer create PATH [-o OUT] [--announce URL]... [--piece-length BYTES] [--private] [--comment TEXT] [--web-seed URL]... [--threads N] [--v2 | --hybrid]`
//!
//! Writes `OUT` (default `<name>.torrent` in the current directory)
//! atomically (an existing `OUT` only with `--force`), then prints the info-hash on one line and a summary on the next.
//! The info-hash line is the v1 hash (40 hex digits) for v1 and hybrid
//! torrents and the v2 hash (64 hex digits) for `--v2`; the summary of a
//! v2 or hybrid torrent ends with its format (and, for a hybrid, its v2
//! hash).

use crate::args::CliError;
use crate::cli::CreateArgs;
use crate::progress::human;
use bittorrent_core::create::{self, CreateError, CreateOptions, TorrentFormat};
use bittorrent_core::proto::metainfo::{Format, Metainfo};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the command line asked for.
struct Request {
    path: PathBuf,
    out: Option<PathBuf>,
    force: bool,
    opts: CreateOptions,
}

/// Run `peer create`.
pub fn run(args: CreateArgs) -> Result<(), CliError> {
    let req = request(args);
    if let Some(out) = &req.out {
        // Before hashing: a refusal should not cost the whole read.
        refuse_overwrite(out, req.force)?;
    }
    let torrent = hash_with_progress(&req)?;
    let summary = Summary::of(&torrent).ok_or_else(|| {
        CliError::Failed("internal error: created torrent does not decode".into())
    })?;
    let out = req
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", summary.name)));
    refuse_overwrite(&out, req.force)?;
    write_atomically(&out, &torrent)?;
    println!("{}", summary.info_hash);
    println!(
        "wrote {}: {}",
        out.display(),
        summary.line(req.opts.private)
    );
    Ok(())
}

fn request(a: CreateArgs) -> Request {
    let opts = CreateOptions {
        announce: a.announce,
        piece_length: a.piece_length,
        private: a.private,
        comment: a.comment,
        web_seeds: a.web_seed,
        threads: a.threads.map(|n| n.max(1)),
        format: match (a.v2, a.hybrid) {
            (true, _) => TorrentFormat::V2,
            (false, true) => TorrentFormat::Hybrid,
            (false, false) => TorrentFormat::V1,
        },
        ..CreateOptions::default()
    };
    Request {
        path: a.path,
        out: a.out,
        force: a.force,
        opts,
    }
}

/// Hash, drawing a progress bar on stderr when it is a terminal.
fn hash_with_progress(req: &Request) -> Result<Vec<u8>, CliError> {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let draw = |done: u64, total: u64| {
        if tty {
            draw_bar(done, total, start);
        }
    };
    let result = create::create_torrent(&req.path, &req.opts, &draw);
    if tty {
        eprintln!();
    }
    result.map_err(|e| match e {
        CreateError::InvalidPieceLength(_) => CliError::Usage(e.to_string()),
        e => CliError::failed(&e),
    })
}

/// `hashing [#########-----------]  45.0%  812.4 MB/s`, redrawn in place.
fn draw_bar(done: u64, total: u64, start: Instant) {
    const WIDTH: u64 = 30;
    let frac = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((frac * WIDTH as f64) as u64).min(WIDTH);
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[Khashing [{bar}] {:5.1}%  {:.1} MB/s",
        frac * 100.0,
        done as f64 / secs / 1e6
    );
    let _ = err.flush();
}

/// An existing `out` is replaced only with `--force`.
fn refuse_overwrite(out: &Path, force: bool) -> Result<(), CliError> {
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(CliError::Failed(format!(
            "{} already exists (--force overwrites it)",
            out.display()
        )));
    }
    Ok(())
}

/// Write `bytes` to a temporary file next to `out`, then rename it over `out`.
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let file_name = out
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("-o {}: not a file name", out.display())))?;
    let tmp = out.with_file_name(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_file(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, out));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Failed(format!("cannot write {}: {e}", out.display()))
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What the one-line summary says, read back from the bytes written (with
/// the loader every other command uses, so a torrent we cannot read back is
/// never reported as written).
struct Summary {
    info_hash: String,
    name: String,
    files: usize,
    total: u64,
    pieces: usize,
    piece_length: u64,
    /// `", v2"` or `", hybrid (v2 info hash ...)"`; empty for v1.
    format: String,
}

impl Summary {
    fn of(torrent: &[u8]) -> Option<Summary> {
        let m = Metainfo::from_bytes(torrent).ok()?;
        let v2_hex = m.info_hash_v2.map(|h| h.to_hex()).unwrap_or_default();
        let (info_hash, pieces, format) = match (m.format(), &m.v2) {
            (Format::V2, Some(v2)) => (v2_hex, v2.num_pieces as usize, ", v2".to_string()),
            (Format::Hybrid, _) => (
                m.info_hash.to_hex(),
                m.info.num_pieces(),
                format!(", hybrid (v2 info hash {v2_hex})"),
            ),
            _ => (m.info_hash.to_hex(), m.info.num_pieces(), String::new()),
        };
        let real = m.info.files.iter().filter(|f| !f.pad);
        Some(Summary {
            info_hash,
            name: m.info.name.clone(),
            files: real.clone().count(),
            total: real.map(|f| f.length).sum(),
            pieces,
            piece_length: m.info.piece_length,
            format,
        })
    }

    fn line(&self, private: bool) -> String {
        format!(
            "{:?}, {} file{}, {} in {} pieces of {}{}{}",
            self.name,
            self.files,
            if self.files == 1 { "" } else { "s" },
            human(self.total),
            self.pieces,
            human(self.piece_length),
            if private { ", private" } else { "" },
            self.format
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn human_sizes() {
        // The one size format of every command (progress::human).
        assert_eq!(human(12), "12 B");
        assert_eq!(human(256 * 1024), "256.0 KiB");
        assert_eq!(human(300_000), "293.0 KiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
