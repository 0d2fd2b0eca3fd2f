//! A small hand-written argument reader (no parser crate needed for our few flags).

use std::ffi::OsString;

/// A usage error (exit code 2) or a failure (exit code 1).
#[derive(Debug)]
pub enum CliError {
    /// Wrong arguments; the text says what is wrong.
    Usage(String),
    /// The command failed; the text is the one-line reason.
    Failed(String),
}

impl CliError {
    /// A failure from any displayable error, with its source chain on one line.
    #[allow(dead_code)] // used by other subcommands
    pub fn failed(e: &dyn std::error::Error) -> CliError {
        let mut msg = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            let s_text = s.to_string();
            if !msg.contains(&s_text) {
                msg.push_str(": ");
                msg.push_str(&s_text);
            }
            src = s.source();
        }
        CliError::Failed(msg)
    }
}

/// Iterates over the arguments of one subcommand.
pub struct Args {
    items: std::vec::IntoIter<OsString>,
}

/// One parsed argument.
pub enum Arg {
    /// `--name` or `-n` (a value, if any, is read with [`Args::value`]).
    Flag(String),
    /// A positional argument.
    Positional(OsString),
}

impl Args {
    /// Wrap the arguments that follow the subcommand name.
    pub fn new(items: Vec<OsString>) -> Args {
        Args {
            items: items.into_iter(),
        }
    }

    /// The next argument, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Arg> {
        let a = self.items.next()?;
        match a.to_str() {
            Some(s) if s.starts_with('-') && s.len() > 1 => Some(Arg::Flag(s.to_string())),
            _ => Some(Arg::Positional(a)),
        }
    }

    /// The value of the flag just read.
    #[allow(dead_code)] // used by other subcommands
    pub fn value(&mut self, flag: &str) -> Result<String, CliError> {
        match self.items.next() {
            Some(v) => v
                .into_string()
                .map_err(|_| CliError::Usage(format!("{flag}: value is not valid UTF-8"))),
            None => Err(CliError::Usage(format!("{flag} needs a value"))),
        }
    }

    /// The value of the flag just read, parsed.
    #[allow(dead_code)] // used by other subcommands
    pub fn parsed<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, CliError> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| CliError::Usage(format!("{flag}: invalid value {v:?}")))
    }
}
