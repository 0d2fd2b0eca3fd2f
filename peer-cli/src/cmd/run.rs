//! `peer FILE.torrent... [--dir DIR] [--port N] [--peer IP:PORT]... [--once]`
//!
//! Checks existing data in DIR, downloads what is missing from the given
//! peers, then seeds until interrupted (Ctrl-C or SIGTERM stop cleanly).
//! With `--once` it exits 0 as soon as every torrent is complete.

use crate::args::{Arg, Args, CliError};
use crate::progress::Progress;
use bittorrent_core::{
    AddTorrent, Config, Encryption, Error, Event, InfoHash, Magnet, Metainfo, Session,
    TorrentSource,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::HashSet;
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
    // Read every argument first: a bad one fails before anything starts.
    let mut adds = Vec::new();
    for t in &o.torrents {
        if let Some(s) = t.to_str().filter(|s| s.starts_with("magnet:")) {
            let m = Magnet::parse(s).map_err(|e| CliError::Failed(format!("{s}: {e}")))?;
            adds.push(AddTorrent::magnet(m, &o.dir).peers(o.peers.clone()));
            continue;
        }
        let bytes =
            std::fs::read(t).map_err(|e| CliError::Failed(format!("{}: {e}", t.display())))?;
        let mi = Metainfo::from_bytes(&bytes)
            .map_err(|e| CliError::Failed(format!("{}: {e}", t.display())))?;
        adds.push(
            AddTorrent::new(mi, &o.dir)
                .peers(o.peers.clone())
                .torrent_bytes(bytes),
        );
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
    // Subscribed before anything is added: no event is missed.
    let events = session.events();
    if o.open_tracker {
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
        let magnet = matches!(add.source, TorrentSource::Magnet(_));
        match session.add(add) {
            Ok(_) if magnet => eprintln!("fetching the metadata of {ih} from peers..."),
            Ok(_) => {}
            Err(Error::AlreadyAdded(_)) => {
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
    let result = watch(&session, &events, &hashes, o.once, &stop);
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
/// Completion and failure come as session events; the progress display
/// reads status snapshots on a timer.
pub fn watch(
    session: &Session,
    events: &Receiver<Event>,
    hashes: &[InfoHash],
    once: bool,
    stop: &AtomicBool,
) -> Result<(), CliError> {
    let mut progress = Progress::new();
    let mut complete: HashSet<InfoHash> = HashSet::new();
    loop {
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
        let statuses: Vec<_> = hashes.iter().filter_map(|h| session.status(h)).collect();
        progress.show(&statuses);
        if once && !hashes.is_empty() && hashes.iter().all(|h| complete.contains(h)) {
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
