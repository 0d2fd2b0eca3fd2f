//! The file-selection and rate-limit flags shared by `peer FILE`,
//! `peer daemon` and `peer add`: `--only PATTERN`, `--skip PATTERN`,
//! `--files LIST`, `--max-download-rate RATE`, `--max-upload-rate RATE`.
//! The logic lives in `bittorrent_core::engine::{selection, rate_limit}`;
//! this module only turns strings into priorities and rates.

use crate::args::CliError;
use bittorrent_core::engine::rate_limit::parse_rate;
use bittorrent_core::engine::selection::{self, Glob};
use bittorrent_core::proto::metainfo::Info;
use bittorrent_core::FilePriority;

/// `--only`, `--skip` and `--files` as given.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--only PATTERN` (repeatable).
    pub only: Vec<String>,
    /// `--skip PATTERN` (repeatable).
    pub skip: Vec<String>,
    /// `--files LIST` (`0,3-5`; repeatable, joined).
    pub files: Option<String>,
}

impl Selection {
    /// Take `flag` and its value if it is one of ours; `Ok(false)` if not.
    pub fn take(
        &mut self,
        flag: &str,
        value: impl FnOnce() -> Result<String, CliError>,
    ) -> Result<bool, CliError> {
        match flag {
            "--only" => self.only.push(value()?),
            "--skip" => self.skip.push(value()?),
            "--files" => {
                let v = value()?;
                self.files = Some(match self.files.take() {
                    Some(old) => format!("{old},{v}"),
                    None => v,
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether no selection flag was given (every file is wanted, or the
    /// saved selection applies).
    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.skip.is_empty() && self.files.is_none()
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
        let files = match &self.files {
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
            files: self.files.clone(),
            only: globs(&self.only)?,
            skip: globs(&self.skip)?,
        }))
    }
}

/// Read a `--max-download-rate` / `--max-upload-rate` value.
pub fn rate(flag: &str, value: &str) -> Result<u64, CliError> {
    parse_rate(value).map_err(|e| CliError::Usage(format!("{flag}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_its_flags_only() {
        let mut s = Selection::default();
        assert!(s.is_empty());
        assert!(s.take("--only", || Ok("*.txt".into())).unwrap());
        assert!(s.take("--files", || Ok("0".into())).unwrap());
        assert!(s.take("--files", || Ok("2-3".into())).unwrap());
        assert!(!s.take("--dir", || Ok("x".into())).unwrap());
        assert_eq!(s.files.as_deref(), Some("0,2-3"));
        assert!(!s.is_empty());
        assert!(s.validate().is_ok());
        s.skip.push("[bad".into());
        assert!(matches!(s.validate(), Err(CliError::Usage(_))));
        assert_eq!(rate("--max-upload-rate", "500K").unwrap(), 500 * 1024);
        assert!(matches!(
            rate("--max-upload-rate", "fast"),
            Err(CliError::Usage(_))
        ));
    }
}
