//! `peer FILE.torrent... [--dir DIR] [--port N] [--peer IP:PORT]... [--once]`
//!
//! Checks existing data in DIR, downloads what is missing from the given
//! peers, then seeds until interrupted (Ctrl-C or SIGTERM stop cleanly).
//! With `--once` it exits 0 as soon as every torrent is complete.

use crate::args::{Arg, Args, CliError};
use crate::progress::Progress;
use bittorrent_core::engine::metadata::fetch_metainfo;
use bittorrent_core::proto::magnet::Magnet;
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::{AddTorrent, Config, Encryption, InfoHash, Phase, Session};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Options of the foreground run.
pub struct RunOptions {
    /// Torrent files.
    pub torrents: Vec<PathBuf>,
    /// Download (and seed) directory.
    pub dir: PathBuf,
    /// Listening port.
    pub port: u16,
    /// Peers to dial.
    pub peers: Vec<SocketAddr>,
    /// Exit when everything is complete.
    pub once: bool,
    /// Track any info-hash, not only ours.
    pub open_tracker: bool,
    /// Where resume data is kept.
    pub state: Option<PathBuf>,
    /// Local Service Discovery (on unless `--no-lsd`).
    pub lsd: bool,
    /// The DHT (on unless `--no-dht`).
    pub dht: bool,
    /// DHT bootstrap nodes.
    pub dht_bootstrap: Vec<SocketAddr>,
    /// Message Stream Encryption policy (`--encryption prefer|require|off`).
    pub encryption: Encryption,
}

/// Parse `peer FILE.torrent... [flags]`.
pub fn parse(mut args: Args) -> Result<RunOptions, CliError> {
    let mut o = RunOptions {
        torrents: Vec::new(),
        dir: PathBuf::from("."),
        port: 6881,
        peers: Vec::new(),
        once: false,
        open_tracker: false,
        state: None,
        lsd: true,
        dht: true,
        dht_bootstrap: Vec::new(),
        encryption: Encryption::Prefer,
    };
    while let Some(arg) = args.next() {
        match arg {
            Arg::Flag(f) => match f.as_str() {
                "--dir" | "-d" => o.dir = PathBuf::from(args.value(&f)?),
                "--port" | "-p" => o.port = args.parsed(&f)?,
                "--peer" => {
                    let v = args.value(&f)?;
                    let addr = v
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| CliError::Usage(format!("--peer: not an address: {v}")))?;
                    o.peers.push(addr);
                }
                "--once" => o.once = true,
                "--open-tracker" => o.open_tracker = true,
                "--state" => o.state = Some(PathBuf::from(args.value(&f)?)),
                "--no-lsd" => o.lsd = false,
                "--encryption" => {
                    o.encryption = args
                        .value(&f)?
                        .parse()
                        .map_err(|e| CliError::Usage(format!("--encryption: {e}")))?
                }
                "--no-dht" => o.dht = false,
                "--dht-bootstrap" => {
                    let v = args.value(&f)?;
                    let addr = v
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| {
                            CliError::Usage(format!("--dht-bootstrap: not an address: {v}"))
                        })?;
                    o.dht_bootstrap.push(addr);
                }
                _ => return Err(CliError::Usage(format!("unknown flag {f}"))),
            },
            Arg::Positional(p) => o.torrents.push(PathBuf::from(p)),
        }
    }
    if o.torrents.is_empty() && !o.open_tracker {
        return Err(CliError::Usage("no torrent given".into()));
    }
    Ok(o)
}

/// Run `peer FILE.torrent...`.
pub fn run(args: Args) -> Result<(), CliError> {
    let o = parse(args)?;
    let mut metas = Vec::new();
    let mut magnets = Vec::new();
    for t in &o.torrents {
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
    let mut config = Config {
        listen_port: o.port,
        ..Config::default()
    };
    config.tracker.open = o.open_tracker;
    config.state_dir = o.state.clone();
    config.lsd = o.lsd;
    config.encryption = o.encryption;
    config.dht = o.dht;
    config.dht_bootstrap = o.dht_bootstrap.clone();
    let session = Session::start(config).map_err(|e| CliError::failed(&e))?;
    if o.open_tracker {
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
    let result = watch(&session, &hashes, o.once, &stop);
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

/// Show progress until stopped (or, with `once`, until all are complete).
pub fn watch(
    session: &Session,
    hashes: &[InfoHash],
    once: bool,
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
        if once && !statuses.is_empty() && statuses.iter().all(|s| s.phase == Phase::Seeding) {
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
