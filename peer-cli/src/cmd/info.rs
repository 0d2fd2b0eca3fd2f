//! `peer info FILE.torrent|MAGNET [--json]`

use crate::args::{Args, CliError};

/// Run `peer info`.
pub fn run(_args: Args) -> Result<(), CliError> {
    Err(CliError::Failed("not implemented yet".into()))
}
