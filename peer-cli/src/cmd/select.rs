//! The file-selection and rate-limit flags shared by `peer FILE`,
//! `peer daemon` and `peer add`: `--only PATTERN`, `--skip PATTERN`,
//! `--files LIST`, `--max-download-rate RATE`, `--max-upload-rate RATE`.
//! The logic lives in `bittorrent_core::engine::{selection, rate_limit}`;
//! this module only turns strings into priorities and rates.

use crate::args::CliError;
use bittorrent_core::parse_rate;
use bittorrent_core::proto::metainfo::Info;
use bittorrent_core::selection::{self, Glob};
use bittorrent_core::FilePriority;

/// `--only`, `--skip` and `--files` as given (flattened into `peer FILE`
/// and `peer add`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Selection {
    /// Download only the files matching this glob (repeatable; see README "Choosing files")
    #[arg(long, value_name = "PATTERN")]
    pub only: Vec<String>,
    /// Leave out the files matching this glob (repeatable)
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// Download the files with these indices, as `peer info` lists them (e.g. 0,3-5)
    #[arg(long = "files", value_name = "LIST")]
    pub file_lists: Vec<String>,
}

/// `--max-download-rate` / `--max-upload-rate` (flattened into the session
/// flags and into `peer add`, where they are the torrent's own limits).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Rates {
    /// Download limit in bytes/s, with K/M/G (binary) allowed: 500K, 2M; 0 = none
    #[arg(long, value_name = "RATE", value_parser = rate_arg)]
    pub max_download_rate: Option<u64>,
    /// Upload limit in bytes/s (piece data), as for --max-download-rate
    #[arg(long, value_name = "RATE", value_parser = rate_arg)]
    pub max_upload_rate: Option<u64>,
}

fn rate_arg(s: &str) -> Result<u64, String> {
    parse_rate(s).map_err(|e| e.to_string())
}

impl Selection {
    /// The `--files` lists joined (`None` if not given).
    pub fn files(&self) -> Option<String> {
        (!self.file_lists.is_empty()).then(|| self.file_lists.join(","))
    }

    /// Whether no selection flag was given (every file is wanted, or the
    /// saved selection applies).
    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.skip.is_empty() && self.file_lists.is_empty()
    }

    /// Check the patterns (before anything starts).
    pub fn validate(&self) -> Result<(), CliError> {
        for p in self.only.iter().chain(&self.skip) {
            Glob::new(p).map_err(|e| CliError::Usage(e.to_string()))?;
        }
        Ok(())
    }

    /// The priorities for one torrent; `None` when no flag was given.
    pub fn priorities(&self, info: &Info) -> Result<Option<Vec<FilePriority>>, CliError> {
        if self.is_empty() {
            return Ok(None);
        }
        let globs = |ps: &[String]| -> Result<Vec<Glob>, CliError> {
            ps.iter()
                .map(|p| Glob::new(p).map_err(|e| CliError::Usage(e.to_string())))
                .collect()
        };
        let files = match &self.files() {
            Some(l) => Some(
                selection::parse_indices(l, info.files.len())
                    .map_err(|e| CliError::Usage(format!("--files: {e}")))?,
            ),
            None => None,
        };
        selection::select(
            info,
            files.as_deref(),
            &globs(&self.only)?,
            &globs(&self.skip)?,
        )
        .map(Some)
        .map_err(|e| CliError::Failed(format!("{}: {e}", info.name)))
    }
}

impl Selection {
    /// The selection as the library takes it (for a magnet link, applied
    /// when its metadata arrives); `None` when no flag was given.
    pub fn selector(&self) -> Result<Option<selection::Selector>, CliError> {
        if self.is_empty() {
            return Ok(None);
        }
        let globs = |ps: &[String]| -> Result<Vec<Glob>, CliError> {
            ps.iter()
                .map(|p| Glob::new(p).map_err(|e| CliError::Usage(e.to_string())))
                .collect()
        };
        Ok(Some(selection::Selector {
            files: self.files(),
            only: globs(&self.only)?,
            skip: globs(&self.skip)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_to_selection_and_rates() {
        let mut s = Selection::default();
        assert!(s.is_empty());
        s.only.push("*.txt".into());
        s.file_lists = vec!["0".into(), "2-3".into()];
        assert_eq!(s.files().as_deref(), Some("0,2-3"));
        assert!(!s.is_empty());
        assert!(s.validate().is_ok());
        assert_eq!(
            s.selector().unwrap().unwrap().files.as_deref(),
            Some("0,2-3")
        );
        s.skip.push("[bad".into());
        assert!(matches!(s.validate(), Err(CliError::Usage(_))));
        assert!(rate_arg("2M").is_ok() && rate_arg("x").is_err());
    }
}
