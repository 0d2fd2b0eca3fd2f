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

/// Where a one-shot command's output went wrong: a closed pipe (`peer list
/// | head -1`) ends the process quietly with status 0, as a reader that has
/// seen enough expects; any other write error is a failure (status 1).
pub fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(1);
}

/// `println!` for the output of one-shot commands (`list`, `status`,
/// `completions`, ...): see [`output_failed`] for a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            $crate::args::output_failed(e)
        }
    }};
}
