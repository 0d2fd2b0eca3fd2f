//! `peer`: a BitTorrent peer. Thin binary over `bittorrent-core`.

mod args;
mod cmd;
mod control;
mod fetch;
mod progress;
mod web;

use args::{Args, CliError};
use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  peer FILE.torrent|MAGNET... [--dir DIR] [--port N] [--peer IP:PORT]... [--once] [--open-tracker]
                      [--state DIR] [--no-lsd] [--no-dht] [--dht-bootstrap HOST:PORT]...
                      [--encryption prefer|require|off]
  peer --open-tracker [--port N]        (a tracker for any torrent, nothing else)
  peer daemon [--state DIR] [--port N] [--no-lsd] [--no-dht] [--dht-bootstrap HOST:PORT]...
              [--encryption prefer|require|off]
                      (runs every torrent of the state dir; serves the control API)
  peer add FILE.torrent|MAGNET... [--dir DIR] [--paused] [--state DIR]
  peer list [--json] [--state DIR]
  peer status [--json] [--state DIR]
  peer pause|resume ID [--state DIR]
  peer remove ID [--delete-data] [--state DIR]
  peer web [--open] [--state DIR]   (a one-time login link to the daemon's web interface)
                      (ID: the info-hash or a unique prefix of 4+ hex characters;
                       the state dir defaults to $XDG_DATA_HOME/peer or ~/.local/share/peer)
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
        Some(
            c @ ("daemon" | "add" | "list" | "status" | "pause" | "resume" | "remove" | "web"),
        ) => {
            let c = c.to_string();
            argv.remove(0);
            let a = Args::new(argv);
            match c.as_str() {
                "daemon" => cmd::daemon::run(a),
                "add" => cmd::control::add(a),
                "list" => cmd::control::list(a),
                "status" => cmd::control::status(a),
                "remove" => cmd::control::remove(a),
                "web" => cmd::control::web(a),
                action => cmd::control::pause_resume(a, action),
            }
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
