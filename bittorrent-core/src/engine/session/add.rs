//! Adding to a session: what to add ([`AddTorrent`], [`TorrentSource`]), and the
//! session's side of it: a torrent with its metainfo gets its storage, shared state and
//! torrent thread; a magnet link gets its metadata thread, which calls back here
//! ([`resolved`]) once the info dictionary checked out.

use super::*;
use crate::engine::torrent::status::PieceOrderPrefs;

/// What to add: a torrent whose metainfo we have, or a magnet link whose
/// info dictionary is fetched from peers first.
#[derive(Debug, Clone)]
pub enum TorrentSource {
    /// A parsed `.torrent`.
    Metainfo(Box<Metainfo>),
    /// A magnet link (BEP 9): the torrent shows in phase
    /// [`Phase::Metadata`](crate::Phase::Metadata) until its info
    /// dictionary arrives and matches the info-hash.
    Magnet(Magnet),
}

impl TorrentSource {
    /// The info-hash.
    pub fn info_hash(&self) -> InfoHash {
        match self {
            TorrentSource::Metainfo(m) => m.info_hash,
            TorrentSource::Magnet(m) => m.info_hash,
        }
    }
}

/// The seeding goal of a torrent: its own limits, else what it was added
/// with, else the session's.
pub(super) fn seed_goal(
    shared: &Shared,
    ratio: Option<f64>,
    time: Option<Duration>,
    limits: SeedLimits,
) -> SeedGoal {
    let (session_ratio, session_idle) = *shared.seed_defaults.lock();
    SeedGoal {
        ratio: limits.ratio.resolve(ratio.or(session_ratio)),
        time: time.or(shared.config.seed_time),
        idle: limits.idle.resolve(session_idle),
    }
}

/// A torrent to add to the session.
#[derive(Debug, Clone)]
pub struct AddTorrent {
    /// The torrent, or a magnet link.
    pub source: TorrentSource,
    /// Directory its files live in (created if missing).
    pub dir: PathBuf,
    /// Peers to dial at once (for a magnet link: asked for the metadata
    /// first, after the link's own `x.pe`; kept in the state directory as
    /// `x.pe` until the metadata is here).
    pub peers: Vec<SocketAddr>,
    /// Start paused (a magnet link still fetches its metadata, then the
    /// torrent is added paused).
    pub paused: bool,
    /// The original `.torrent` bytes, kept in the state directory (when
    /// `None`, a torrent is written from the info dictionary and trackers).
    pub torrent_bytes: Option<Vec<u8>>,
    /// Which files to download: one priority per entry of `info.files`.
    /// `None`: `file_selector` if given, else the selection saved in the
    /// torrent's resume data, else every file.
    pub file_priorities: Option<Vec<FilePriority>>,
    /// Which files to download, by pattern and index, resolved once the
    /// file list is known (for a magnet link: when its metadata arrives).
    pub file_selector: Option<Selector>,
    /// The torrent's own download limit, bytes per second (0: none; the
    /// session's limit applies too).
    pub max_download_rate: u64,
    /// The torrent's own upload limit, bytes per second (0: none).
    pub max_upload_rate: u64,
    /// This torrent's seeding goal, ratio (`None`: the session's
    /// [`Config::seed_ratio`]).
    pub seed_ratio: Option<f64>,
    /// This torrent's seeding goal, time (`None`: the session's
    /// [`Config::seed_time`]).
    pub seed_time: Option<Duration>,
    /// This torrent's own seeding limits, kept in the state directory
    /// (ratio: wins over `seed_ratio` unless [`SeedLimit::Session`]).
    pub seed_limits: SeedLimits,
    /// Sequential download and first/last-piece priority (both off by
    /// default; see [`PieceOrderPrefs`]; changed later with
    /// [`Session::set_piece_order`](crate::Session::set_piece_order)). Not
    /// kept in the resume data: give it again after a restart.
    pub piece_order: PieceOrderPrefs,
}

impl AddTorrent {
    /// A torrent saved under `dir`.
    pub fn new(metainfo: Metainfo, dir: impl Into<PathBuf>) -> AddTorrent {
        AddTorrent::from_source(TorrentSource::Metainfo(Box::new(metainfo)), dir)
    }
    /// A magnet link whose torrent is saved under `dir`.
    pub fn magnet(magnet: Magnet, dir: impl Into<PathBuf>) -> AddTorrent {
        AddTorrent::from_source(TorrentSource::Magnet(magnet), dir)
    }
    fn from_source(source: TorrentSource, dir: impl Into<PathBuf>) -> AddTorrent {
        AddTorrent {
            source,
            dir: dir.into(),
            peers: Vec::new(),
            paused: false,
            torrent_bytes: None,
            file_priorities: None,
            file_selector: None,
            max_download_rate: 0,
            max_upload_rate: 0,
            seed_ratio: None,
            seed_time: None,
            seed_limits: SeedLimits::default(),
            piece_order: PieceOrderPrefs::default(),
        }
    }
    /// Peers to dial at once.
    pub fn peers(mut self, peers: Vec<SocketAddr>) -> AddTorrent {
        self.peers = peers;
        self
    }
    /// Start paused (or not).
    pub fn paused(mut self, paused: bool) -> AddTorrent {
        self.paused = paused;
        self
    }
    /// Download in (nearly) ascending piece order ([`PieceOrderPrefs::sequential`]).
    pub fn sequential(mut self, on: bool) -> AddTorrent {
        self.piece_order.sequential = on;
        self
    }
    /// Fetch the first and last piece of every wanted file first
    /// ([`PieceOrderPrefs::first_last_piece`]).
    pub fn first_last_piece(mut self, on: bool) -> AddTorrent {
        self.piece_order.first_last_piece = on;
        self
    }
    /// The original `.torrent` bytes, to keep in the state directory.
    pub fn torrent_bytes(mut self, bytes: Vec<u8>) -> AddTorrent {
        self.torrent_bytes = Some(bytes);
        self
    }
}

impl Inner {
    /// Add a torrent with its metainfo. `new` is false for a magnet link
    /// whose metadata just arrived (already announced as added).
    pub(super) fn add_torrent(self: &Arc<Self>, add: AddTorrent, new: bool) -> Result<InfoHash> {
        let TorrentSource::Metainfo(metainfo) = add.source else {
            return Err(Error::Stopped); // not reached: callers pass a metainfo
        };
        let mut metainfo = *metainfo;
        if v2_only::lacks_layers(&metainfo) {
            // Its piece layers are fetched from peers first (hash
            // requests), as a magnet link's metadata is.
            let add = AddTorrent {
                source: TorrentSource::Metainfo(Box::new(metainfo)),
                ..add
            };
            return self.add_fetching(add, new);
        }
        // Before the v2 alignment: the raw names are those of the files as listed.
        let ours = self
            .state_dir()
            .is_some_and(|d| crate::state::renames::exists(d, &metainfo.info_hash));
        // (Names given by `Session::rename_path` are not worth a warning.)
        for (raw, used) in metainfo.renamed_files().into_iter().filter(|_| !ours) {
            log::warn!("{}: file {raw:?} is saved as {used:?}", metainfo.info.name);
        }
        // Files renamed earlier (`Session::rename_path`) keep their names.
        if let Some(dir) = self.state_dir() {
            crate::state::renames::apply(dir, &mut metainfo);
            crate::state::renames::apply_trackers(dir, &mut metainfo);
        }
        // A v2-only torrent is transferred in its piece-aligned view; the
        // file indices the caller gave are those of the files as listed
        // (`peer info`), mapped onto that view below.
        let listed = v2_only::align(&mut metainfo)?;
        let ih = metainfo.info_hash;
        self.check_addable(&ih, new)?;
        let info = &metainfo.info;
        let bad = |source| Error::Selection {
            name: info.name.clone(),
            source,
        };
        let given = listed.as_ref().unwrap_or(info);
        let priorities = match (&add.file_priorities, &add.file_selector) {
            (Some(p), _) => {
                selection::check(given, p).map_err(bad)?;
                v2_only::spread(info, p)
            }
            (None, Some(sel)) if !sel.is_empty() => {
                v2_only::spread(info, &sel.priorities(given).map_err(bad)?)
            }
            _ => self
                .saved_priorities(&ih)
                .filter(|p| selection::check(info, p).is_ok())
                .unwrap_or_else(|| vec![FilePriority::Normal; info.files.len()]),
        };
        let part = add.dir.join(format!(".{ih}.parts"));
        let storage = Storage::open_selected(&add.dir, info, &priorities, Some(part))
            .map_err(|e| Error::Storage {
                name: metainfo.info.name.clone(),
                source: e,
            })?
            .with_preallocation(self.shared.config.preallocate);
        if let Some(dir) = self.state_dir() {
            let bytes = add
                .torrent_bytes
                .clone()
                .unwrap_or_else(|| saved::torrent_file_bytes(&metainfo));
            saved::save_torrent(dir, &ih, &bytes)
                .map_err(|e| Error::io("save the torrent in the state directory", e))?;
        }
        let name = metainfo.info.name.clone();
        // `Added` goes out before the torrent thread starts: its own events
        // (`Checked` may come at once) must follow it.
        if new {
            self.shared.events.publish(Event::Added {
                info_hash: ih,
                name,
            });
        }
        let gone = |e: Error| {
            if new {
                self.shared.events.publish(Event::Removed { info_hash: ih });
            }
            e
        };
        let first_peers = add.peers.clone();
        let (t, handle) = torrent::spawn(
            self.shared.clone(),
            metainfo,
            Arc::new(storage),
            add.peers,
            add.paused,
            priorities,
            Arc::new(RatePair::new(add.max_download_rate, add.max_upload_rate)),
            seed_goal(&self.shared, add.seed_ratio, add.seed_time, add.seed_limits),
            add.piece_order,
        )
        .map_err(|e| gone(Error::io("start torrent thread", e)))?;
        t.status.lock().seed_limits = add.seed_limits;
        {
            // Checked under the registry lock that `stop` reads after
            // setting the flag: a torrent is either refused or shut down.
            let mut reg = self.shared.registry.write();
            if self.shared.is_shutting_down() {
                let (tx, _rx) = crossbeam_channel::bounded(1);
                let _ = t.commands.send(Command::Shutdown(tx));
                drop(reg);
                let _ = handle.join();
                return Err(gone(Error::Stopped));
            }
            reg.insert(ih.0, t.clone());
            self.shared.torrents_changed();
        }
        self.shared.tracker.allow(ih);
        let target: Arc<dyn AnnounceTarget> = t.clone();
        self.announcer.add(target);
        if let Some(alias) = super::hybrid::v2_alias(&t) {
            // A hybrid: in the v2 swarm too (tracker, DHT, handshakes).
            self.shared.aliases.write().insert(alias.0, ih.0);
            self.shared.tracker.allow(alias);
            self.announcer.add(Arc::new(super::hybrid::V2Announce {
                torrent: t.clone(),
                alias,
            }));
        }
        self.threads.lock().torrents.push((ih, handle));
        // A hybrid without its piece layers fetches them while it downloads.
        super::hybrid_layers::spawn_if_needed(
            &self.shared,
            &t,
            first_peers,
            self.state_dir().map(Into::into),
        );
        self.update_lsd();
        self.save_entry(&t)?;
        Ok(ih)
    }

    /// `Stopped` while the session shuts down; `AlreadyAdded` when `ih` is
    /// running, or (`with_fetching`) is still fetching its metadata or layers.
    fn check_addable(&self, ih: &InfoHash, with_fetching: bool) -> Result<()> {
        if self.shared.is_shutting_down() {
            return Err(Error::Stopped);
        }
        if self.shared.registry.read().contains_key(&ih.0)
            || (with_fetching && self.shared.magnets.read().contains_key(ih))
        {
            return Err(Error::AlreadyAdded(*ih));
        }
        Ok(())
    }

    /// Add a magnet link: its metadata thread looks for the info dictionary.
    pub(super) fn add_magnet(self: &Arc<Self>, add: AddTorrent) -> Result<InfoHash> {
        let TorrentSource::Magnet(mut magnet) = add.source.clone() else {
            return Err(Error::Stopped); // not reached: callers pass a magnet
        };
        let ih = magnet.info_hash;
        self.check_addable(&ih, true)?;
        // The caller's peers travel with the link (and are saved with it).
        for p in &add.peers {
            let s = p.to_string();
            if !magnet.peers.contains(&s) {
                magnet.peers.push(s);
            }
        }
        if let Some(dir) = self.state_dir() {
            saved::save_magnet(dir, &ih, &magnet.to_uri())
                .and_then(|()| {
                    let limits = (add.max_download_rate, add.max_upload_rate);
                    saved::save_entry(dir, &ih, &add.dir, add.paused, limits, add.seed_limits)
                })
                .map_err(|e| Error::io("save the torrent list", e))?;
        }
        let name = magnet.display_name.clone().unwrap_or_else(|| ih.to_hex());
        self.start_fetching(magnet, name, None, add, true)
    }

    /// Add a v2-only torrent lacking piece layers: like a magnet link whose
    /// info dictionary is known, its metadata thread fetches the layers
    /// (hash requests), then adds it with them. The `.torrent` as given is
    /// kept in the state directory until then (a restart fetches again).
    fn add_fetching(self: &Arc<Self>, add: AddTorrent, new: bool) -> Result<InfoHash> {
        let TorrentSource::Metainfo(mi) = &add.source else {
            return Err(Error::Stopped); // not reached: the caller passes a metainfo
        };
        let ih = mi.info_hash;
        self.check_addable(&ih, true)?;
        let mut trackers: Vec<String> = mi.announce.iter().cloned().collect();
        for t in mi.announce_list.iter().flatten() {
            if !trackers.contains(t) {
                trackers.push(t.clone());
            }
        }
        let magnet = Magnet {
            info_hash: ih,
            info_hash_v2: mi.info_hash_v2,
            display_name: Some(mi.info.name.clone()),
            trackers,
            peers: add.peers.iter().map(ToString::to_string).collect(),
        };
        if let Some(dir) = self.state_dir() {
            let bytes = add
                .torrent_bytes
                .clone()
                .unwrap_or_else(|| saved::torrent_file_bytes(mi));
            let limits = (add.max_download_rate, add.max_upload_rate);
            saved::save_torrent(dir, &ih, &bytes)
                .and_then(|()| {
                    saved::save_entry(dir, &ih, &add.dir, add.paused, limits, add.seed_limits)
                })
                .map_err(|e| Error::io("save the torrent list", e))?;
        }
        let name = mi.info.name.clone();
        let known = mi.clone();
        self.start_fetching(magnet, name, Some(known), add, new)
    }

    /// Register a magnet link (or a torrent whose metainfo is `known` but
    /// incomplete) and start its metadata thread.
    fn start_fetching(
        self: &Arc<Self>,
        magnet: Magnet,
        name: String,
        known: Option<Box<Metainfo>>,
        add: AddTorrent,
        new: bool,
    ) -> Result<InfoHash> {
        let ih = magnet.info_hash;
        let mut status = TorrentStatus::metadata(ih, name.clone(), add.dir.clone());
        status.paused = add.paused;
        let (found_tx, found_rx) = crossbeam_channel::bounded(1024);
        let me = Arc::new(MagnetShared {
            magnet,
            status: StatusCell::new(status, self.shared.status_changes.clone()),
            found: found_tx,
            stop: Arc::new(AtomicBool::new(false)),
            known: Mutex::new(known),
        });
        self.shared.magnets.write().insert(ih, me.clone());
        self.shared.torrents_changed();
        let weak = Arc::downgrade(self);
        // What applies once the metadata is here: everything the caller
        // gave but the source (and the peers, found again by then).
        let template = AddTorrent {
            peers: Vec::new(),
            torrent_bytes: None,
            ..add
        };
        let on_resolved: metadata::OnResolved =
            Box::new(move |mi, peers| resolved(&weak, mi, template, peers));
        match metadata::spawn(self.shared.clone(), me, found_rx, Vec::new(), on_resolved) {
            Ok(h) => self.threads.lock().magnets.push((ih, h)),
            Err(e) => {
                self.shared.magnets.write().remove(&ih);
                self.shared.torrents_changed();
                return Err(Error::io("start metadata thread", e));
            }
        }
        self.update_lsd();
        if new {
            self.shared.events.publish(Event::Added {
                info_hash: ih,
                name,
            });
        }
        Ok(ih)
    }
}

/// A magnet link's info dictionary arrived and checked out: add the
/// torrent in its place (on the metadata thread).
pub(super) fn resolved(
    weak: &Weak<Inner>,
    mi: Metainfo,
    template: AddTorrent,
    peers: Vec<SocketAddr>,
) {
    let Some(inner) = weak.upgrade() else {
        return;
    };
    let (ih, name) = (mi.info_hash, mi.info.name.clone());
    inner.shared.events.publish(Event::MetadataReceived {
        info_hash: ih,
        name: name.clone(),
    });
    // The `.torrent` written to the state directory holds the piece
    // layers fetched (`torrent_file_bytes`): a restart does not fetch them
    // again.
    let complete =
        (mi.format() == crate::proto::metainfo::Format::V2).then(|| saved::torrent_file_bytes(&mi));
    let add = AddTorrent {
        source: TorrentSource::Metainfo(Box::new(mi)),
        peers,
        torrent_bytes: None,
        ..template
    };
    match inner.add_torrent(add, false) {
        Ok(_) => {
            if let (Some(dir), Some(bytes)) = (inner.state_dir(), complete) {
                // A `.torrent` saved without its piece layers is replaced.
                if let Err(e) = saved::replace_torrent(dir, &ih, &bytes) {
                    log::warn!("{name}: cannot save the piece layers: {e}");
                }
            }
            inner.shared.magnets.write().remove(&ih);
            inner.shared.torrents_changed();
            inner.update_lsd();
        }
        Err(Error::Stopped) => {}
        Err(e) => {
            log::error!("{name}: {e}");
            if let Some(m) = inner.shared.magnets.read().get(&ih) {
                let mut st = m.status.lock();
                st.name = name;
                st.phase = crate::Phase::Failed(e.to_string());
            }
            inner.shared.events.publish(Event::Error {
                info_hash: ih,
                message: e.to_string(),
                stalled: false,
            });
        }
    }
}
