//! `peer`: a BitTorrent peer. Thin binary over `bittorrent-core`.

mod args;
mod cli;
mod cmd;
mod control;
mod fetch;
mod progress;
mod stream;
mod web;

use args::CliError;
use clap::{CommandFactory, Parser};
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    // Sockets and the file pool need descriptors: lift the soft limit to
    // the hard one (the file pool sizes itself from it).
    if let Some(n) = bittorrent_core::raise_nofile_limit() {
        log::debug!("open file limit: {n}");
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 1 {
        // `peer` alone is a usage error: the help on stderr, exit 2.
        eprintln!("{}", Cli::command().render_help());
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and exit 0; usage errors
            // print the reason, a suggestion if any, and exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        None => cmd::run::run(cli.run),
        Some(Command::Daemon(a)) => cmd::daemon::run(a),
        Some(Command::Add(a)) => cmd::control::add(a),
        Some(Command::List(a)) => cmd::control::list(a),
        Some(Command::Status(a)) => cmd::control::status(a),
        Some(Command::Pause(a)) => cmd::control::pause_resume(a, "pause"),
        Some(Command::Resume(a)) => cmd::control::pause_resume(a, "resume"),
        Some(Command::Verify(a)) => cmd::control::verify(a),
        Some(Command::Remove(a)) => cmd::control::remove(a),
        Some(Command::Web(a)) => cmd::control::web(a),
        Some(Command::Demo(a)) => cmd::demo::run(a),
        Some(Command::Info(a)) => cmd::info::run(a),
        Some(Command::Create(a)) => cmd::create::run(a),
        Some(Command::Completions(a)) => {
            cli::print_completions(a.shell);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            let mut cmd = Cli::command();
            let _ = cmd
                .error(clap::error::ErrorKind::ValueValidation, msg)
                .print();
            ExitCode::from(2)
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
