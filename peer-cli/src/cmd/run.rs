//! `peer FILE.torrent|MAGNET... [--dir DIR] [--peer IP:PORT]... [--once] [SESSION OPTIONS]`
//!
//! Checks existing data in DIR, downloads what is missing from the given
//! peers, then seeds until interrupted (Ctrl-C or SIGTERM stop cleanly).
//! With `--once` it exits 0 as soon as every torrent is complete; with a
//! seeding goal (`--seed-ratio`, `--seed-time`) once every torrent has
//! reached it and stopped seeding.

use crate::args::CliError;
use crate::cli::RunArgs;
use crate::progress::Progress;
use bittorrent_core::engine::metadata::fetch_metainfo;
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::{AddTorrent, Config, InfoHash, Phase, Session};
use std::net::ToSocketAddrs;
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
    let mut metas = Vec::new();
    let mut magnets = Vec::new();
    for t in &o.torrents {
        let t = std::path::Path::new(t);
        if let Some(s) = t.to_str().filter(|s| s.starts_with("magnet:")) {
            let m = Magnet::parse(s).map_err(|e| CliError::Failed(format!("{s}: {e}")))?;
            magnets.push(m);
            continue;
        }
        let bytes =
            std::fs::read(t).map_err(|e| CliError::Failed(format!("{}: {e}", t.display())))?;
        let mi = Metainfo::from_bytes(&bytes)
            .map_err(|e| CliError::Failed(format!("{}: {e}", t.display())))?;
        metas.push((mi, bytes));
    }
    let mut config = Config::default();
    o.session.apply(&mut config);
    let session = Session::start(config).map_err(|e| CliError::failed(&e))?;
    if o.session.open_tracker {
        eprintln!(
            "open tracker on {} (HTTP http://IP:{}/announce, UDP udp://IP:{})",
            session.local_addr(),
            session.local_addr().port(),
            session.local_addr().port()
        );
    }
    // With a state directory, the torrents of earlier runs come back first,
    // so running the same command again continues where it stopped.
    let mut hashes: Vec<InfoHash> = session.restore().map_err(|e| CliError::failed(&e))?;
    for (mi, bytes) in metas {
        let ih = mi.info_hash;
        if session.status(&ih).is_some() {
            if !o.peers.is_empty() {
                let _ = session.add_peers(&ih, o.peers.clone());
            }
            if !hashes.contains(&ih) {
                hashes.push(ih);
            }
            continue;
        }
        let mut add = AddTorrent::new(mi, &o.dir).peers(o.peers.clone());
        add.torrent_bytes = Some(bytes);
        let ih = session.add(add).map_err(|e| CliError::failed(&e))?;
        hashes.push(ih);
    }
    let stop = install_stop_handler()?;
    for m in magnets {
        if session.status(&m.info_hash).is_some() {
            // Restored from the state directory: the metadata is already here.
            if !hashes.contains(&m.info_hash) {
                hashes.push(m.info_hash);
            }
            continue;
        }
        eprintln!("fetching the metadata of {} from peers...", m.info_hash);
        let mut from = o.peers.clone();
        if m.peers.is_empty() && m.trackers.is_empty() && o.peers.is_empty() {
            // Nothing else to go on: ask the DHT (bounded), retrying while
            // the node bootstraps.
            for _ in 0..3 {
                from = session.dht_get_peers(&m.info_hash, Duration::from_secs(5));
                if !from.is_empty() || session.dht_addr().is_none() {
                    break;
                }
            }
            if from.is_empty() {
                // Then the LAN (BEP 14): a peer that has it answers our
                // announce within a minute or so.
                from = session.lsd_find(&m.info_hash, Duration::from_secs(90));
            }
        } else {
            from.extend(session.dht_get_peers(&m.info_hash, Duration::from_secs(5)));
        }
        let mi = fetch_metainfo(
            &m,
            &from,
            session.peer_id(),
            session.local_addr().port(),
            Duration::from_secs(120),
        )
        .map_err(|e| CliError::failed(&e))?;
        eprintln!(
            "got the metadata: {} ({} files)",
            mi.info.name,
            mi.info.files.len()
        );
        let mut peers = o.peers.clone();
        peers.extend(
            m.peers
                .iter()
                .filter_map(|p| p.to_socket_addrs().ok()?.next()),
        );
        let ih = mi.info_hash;
        if session.status(&ih).is_some() {
            let _ = session.add_peers(&ih, peers);
        } else {
            session
                .add(AddTorrent::new(mi, &o.dir).peers(peers))
                .map_err(|e| CliError::failed(&e))?;
        }
        if !hashes.contains(&ih) {
            hashes.push(ih);
        }
    }
    let exit_when = if o.session.has_seed_goal() {
        ExitWhen::Finished
    } else if o.once {
        ExitWhen::Complete
    } else {
        ExitWhen::Stopped
    };
    let result = watch(&session, &hashes, exit_when, &stop);
    session.shutdown();
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
pub fn watch(
    session: &Session,
    hashes: &[InfoHash],
    exit_when: ExitWhen,
    stop: &AtomicBool,
) -> Result<(), CliError> {
    let mut progress = Progress::new();
    loop {
        let statuses: Vec<_> = hashes.iter().filter_map(|h| session.status(h)).collect();
        progress.show(&statuses);
        for s in &statuses {
            if let Phase::Failed(reason) = &s.phase {
                progress.finish();
                return Err(CliError::Failed(format!("{}: {reason}", s.name)));
            }
        }
        let all = |want: &[Phase]| {
            !statuses.is_empty() && statuses.iter().all(|s| want.contains(&s.phase))
        };
        let done = match exit_when {
            ExitWhen::Stopped => false,
            // A torrent that reached its goal at once is complete too.
            ExitWhen::Complete => all(&[Phase::Seeding, Phase::Finished]),
            ExitWhen::Finished => all(&[Phase::Finished]),
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
        std::thread::sleep(Duration::from_millis(200));
    }
}
