//! `peer create PATH [-o OUT] [--announce URL]... [--piece-length BYTES] [--private] [--comment TEXT] [--web-seed URL]...`

use crate::args::{Args, CliError};

/// Run `peer create`.
pub fn run(_args: Args) -> Result<(), CliError> {
    Err(CliError::Failed("not implemented yet".into()))
}
