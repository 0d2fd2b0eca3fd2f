//! `peer demo`: a small swarm on loopback (placeholder until create lands).

use crate::args::{Args, CliError};

/// Run the demo.
pub fn run(_args: Args) -> Result<(), CliError> {
    Err(CliError::Failed("demo not built yet".into()))
}
