//! `peer FILE.torrent|MAGNET... [--dir DIR] [--peer IP:PORT]... [--once] [SESSION OPTIONS]`
//!
//! Checks existing data in DIR, downloads what is missing from the given
//! peers, then seeds until interrupted (Ctrl-C or SIGTERM stop cleanly).
//! With `--once` it exits 0 as soon as every torrent is complete; with a
//! seeding goal (`--seed-ratio`, `--seed-time`) once every torrent has
//! reached it and stopped seeding. With `--stream` it also serves the
//! files over HTTP on 127.0.0.1 (`stream::local`) and prints their URLs.

use crate::args::CliError;
use crate::cli::RunArgs;
use crate::progress::Progress;
use crate::stream::local::LocalStreams;
use bittorrent_core::{
    AddTorrent, Config, Error, Event, InfoHash, Magnet, Metainfo, Phase, Session,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// When `peer FILE...` exits by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitWhen {
    /// Only on Ctrl-C / SIGTERM (or a failure).
    Stopped,
    /// When every torrent is complete (`--once`).
    Complete,
    /// When every torrent has reached its seeding goal and stopped seeding.
    Finished,
}

/// `--sequential`, `--first-last-piece`.
fn piece_order(o: &RunArgs) -> bittorrent_core::PieceOrderPrefs {
    bittorrent_core::PieceOrderPrefs {
        sequential: o.sequential,
        first_last_piece: o.first_last_piece,
    }
}

/// Run `peer FILE.torrent...`.
pub fn run(o: RunArgs) -> Result<(), CliError> {
    if o.torrents.is_empty() && !o.session.open_tracker {
        return Err(CliError::Usage("no torrent given".into()));
    }
    if let Some(sub) = o
        .torrents
        .first()
        .and_then(|t| crate::cli::subcommand_typo(t))
    {
        return Err(CliError::Usage(format!(
            "unrecognized subcommand '{}' (and no such file)\n\n  tip: a similar subcommand exists: '{sub}'",
            o.torrents[0].to_string_lossy()
        )));
    }
    // Read every argument first: a bad one fails before anything starts.
    o.select.validate()?;
    let mut adds = Vec::new();
    for t in &o.torrents {
        let t = std::path::Path::new(t);
        if let Some(s) = t.to_str().filter(|s| s.starts_with("magnet:")) {
            let m = Magnet::parse(s).map_err(|e| CliError::Failed(format!("{s}: {e}")))?;
            let mut add = AddTorrent::magnet(m, &o.dir).peers(o.peers.clone());
            // --only/--skip/--files apply when the metadata arrives.
            add.file_selector = o.select.selector()?;
            add.piece_order = piece_order(&o);
            adds.push(add);
            continue;
        }
        let bytes =
            std::fs::read(t).map_err(|e| CliError::Failed(format!("{}: {e}", t.display())))?;
        let mi = Metainfo::from_bytes(&bytes)
            .map_err(|e| CliError::Failed(format!("{}: {e}", t.display())))?;
        // Resolved now: a selection that does not fit fails before anything starts.
        let priorities = o.select.priorities(&mi.info)?;
        let mut add = AddTorrent::new(mi, &o.dir)
            .peers(o.peers.clone())
            .torrent_bytes(bytes);
        add.file_priorities = priorities;
        add.piece_order = piece_order(&o);
        adds.push(add);
    }
    // The `peer` command maps its port on the router unless --no-port-map
    // (the library's default is off).
    let mut config = Config {
        port_map: true,
        ..Config::default()
    };
    o.session.apply(&mut config);
    let session = Arc::new(Session::start(config).map_err(|e| CliError::failed(&e))?);
    eprintln!("listening on {}", session.listening());
    let streams = if o.stream {
        let port = o.stream_port.unwrap_or(0);
        let s = LocalStreams::start(&session, port).map_err(|e| {
            CliError::Failed(format!("--stream: cannot listen on 127.0.0.1:{port}: {e}"))
        })?;
        eprintln!("streaming on http://{}", s.addr());
        Some(s)
    } else {
        None
    };
    // Subscribed before anything is added: no event is missed.
    let events = session.events();
    if o.session.open_tracker {
        eprintln!(
            "open tracker on {} (HTTP http://IP:{}/announce, UDP udp://IP:{})",
            session.local_addr(),
            session.local_addr().port(),
            session.local_addr().port()
        );
    }
    // With a state directory, the torrents (and magnet links still without
    // their metadata) of earlier runs come back first, so running the same
    // command again continues where it stopped.
    let mut hashes: Vec<InfoHash> = session.restore().map_err(|e| CliError::failed(&e))?;
    for add in adds {
        let ih = add.source.info_hash();
        let priorities = add.file_priorities.clone();
        match session.add(add) {
            // A magnet link's one line while its metadata is fetched is
            // the progress event ("NAME: fetching the metadata ...").
            Ok(_) => {}
            Err(Error::AlreadyAdded(_)) => {
                // Restored: a selection given now replaces the saved one.
                if let Some(p) = priorities {
                    session
                        .set_file_priorities(&ih, p)
                        .map_err(|e| CliError::failed(&e))?;
                }
                // Restored from the state directory: it may use the new peers.
                if !o.peers.is_empty() {
                    let _ = session.add_peers(&ih, o.peers.clone());
                }
            }
            Err(e) => return Err(CliError::failed(&e)),
        }
        if !hashes.contains(&ih) {
            hashes.push(ih);
        }
    }
    let stop = install_stop_handler()?;
    let exit_when = if o.session.has_seed_goal() {
        ExitWhen::Finished
    } else if o.once {
        ExitWhen::Complete
    } else {
        ExitWhen::Stopped
    };
    let result = watch(
        &session,
        &events,
        &hashes,
        exit_when,
        &stop,
        streams.as_ref(),
    );
    // The session first: a stream body waiting for pieces ends with
    // `Error::Stopped` instead of holding its worker (and `stop`) up.
    session.shutdown();
    if let Some(s) = streams {
        s.stop();
    }
    result
}

/// Ctrl-C and SIGTERM set the returned flag.
pub fn install_stop_handler() -> Result<Arc<AtomicBool>, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::SeqCst))
        .map_err(|e| CliError::Failed(format!("cannot install signal handler: {e}")))?;
    Ok(stop)
}

/// Show progress until stopped, or until every torrent is complete or
/// finished, as `exit_when` says.
/// Completion and failure come as session events; the progress display
/// reads status snapshots on a timer.
pub fn watch(
    session: &Session,
    events: &Receiver<Event>,
    hashes: &[InfoHash],
    exit_when: ExitWhen,
    stop: &AtomicBool,
    streams: Option<&LocalStreams>,
) -> Result<(), CliError> {
    let mut progress = Progress::new();
    let mut complete: HashSet<InfoHash> = HashSet::new();
    let mut port_map_line = String::new();
    // --stream: the torrents whose URLs are printed (once their metadata is here).
    let mut printed: HashSet<InfoHash> = HashSet::new();
    loop {
        if let Some(s) = streams {
            for ih in hashes {
                if !printed.contains(ih) && s.print_urls(session, ih) {
                    printed.insert(*ih);
                }
            }
        }
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Checked {
                info_hash,
                pieces_have,
                pieces_total,
            }) if pieces_have == pieces_total => {
                complete.insert(info_hash);
            }
            Ok(Event::Completed { info_hash }) => {
                complete.insert(info_hash);
            }
            Ok(Event::MetadataReceived { info_hash, name }) if hashes.contains(&info_hash) => {
                eprintln!("got the metadata of {info_hash}: {name}");
            }
            Ok(Event::Error {
                info_hash,
                message,
                stalled: false,
            }) if hashes.contains(&info_hash) => {
                progress.finish();
                let name = session
                    .status(&info_hash)
                    .map_or_else(|| info_hash.to_hex(), |s| s.name);
                return Err(CliError::Failed(format!("{name}: {message}")));
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(CliError::Failed("the session stopped".into()))
            }
        }
        progress.port_mapping(session, &mut port_map_line);
        let statuses: Vec<_> = hashes.iter().filter_map(|h| session.status(h)).collect();
        progress.show(&statuses);
        let done = !hashes.is_empty()
            && match exit_when {
                ExitWhen::Stopped => false,
                ExitWhen::Complete => hashes.iter().all(|h| complete.contains(h)),
                ExitWhen::Finished => {
                    statuses.len() == hashes.len()
                        && statuses.iter().all(|s| s.phase == Phase::Finished)
                }
            };
        if done {
            progress.finish();
            return Ok(());
        }
        if stop.load(Ordering::SeqCst) {
            progress.finish();
            eprintln!("stopping...");
            return Ok(());
        }
    }
}
