//! The error type of the subcommands: a usage error (exit code 2) or a
//! failure (exit code 1). Parsing itself is `clap`'s (see `cli.rs`).

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
