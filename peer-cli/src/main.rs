//! `peer`: a BitTorrent peer. Thin binary over `bittorrent-core`.

mod args;
mod cmd;
mod progress;

use args::{Args, CliError};
use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  peer FILE.torrent|MAGNET... [--dir DIR] [--port N] [--peer IP:PORT]... [--once] [--open-tracker]
                      [--state DIR] [--no-lsd]
  peer --open-tracker [--port N]        (a tracker for any torrent, nothing else)
  peer demo [--size MIB] [--leechers N] [--dir DIR]
  peer info FILE.torrent|MAGNET [--json]
  peer create PATH [-o OUT] [--announce URL|IP:PORT]... [--piece-length BYTES]
              [--private] [--comment TEXT] [--web-seed URL]... [--threads N]
";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let result = match argv.first().and_then(|a| a.to_str()) {
        None | Some("-h") | Some("--help") | Some("help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("info") => {
            argv.remove(0);
            cmd::info::run(Args::new(argv))
        }
        Some("create") => {
            argv.remove(0);
            cmd::create::run(Args::new(argv))
        }
        Some("demo") => {
            argv.remove(0);
            cmd::demo::run(Args::new(argv))
        }
        Some(_) => cmd::run::run(Args::new(argv)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
