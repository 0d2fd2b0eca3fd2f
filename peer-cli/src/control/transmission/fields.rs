//! `torrent-get`: the fields of Transmission's torrent object, computed from
//! the library's [`TorrentStatus`] (and, only for the fields that need them,
//! the torrent's metainfo, files and peers), in the `objects` or `table`
//! format. docs/API.md lists each field's source and the ones we cannot
//! know (answered with Transmission's "unknown" value, e.g. `0` for a date).

use super::{norm, Args, Rpc, RpcResult};
use bittorrent_core::{FileStatus, Metainfo, PeerInfo, Phase, SeedLimit, Session, TorrentStatus};
use serde_json::{json, Value};
use std::cell::OnceCell;
use std::time::Duration;

/// Transmission's status codes.
pub mod status {
    /// Stopped (paused, finished seeding, or failed).
    pub const STOPPED: u8 = 0;
    /// Checking the data on disk.
    pub const CHECK: u8 = 2;
    /// Waiting to download: ours waits for the disk.
    pub const DOWNLOAD_WAIT: u8 = 3;
    /// Downloading (or fetching a magnet link's metadata).
    pub const DOWNLOAD: u8 = 4;
    /// Seeding.
    pub const SEED: u8 = 6;
}

/// Every field name of rpc-version 17 (as spelled there).
pub const FIELDS: &[&str] = &[
    "activityDate",
    "addedDate",
    "bandwidthPriority",
    "comment",
    "corruptEver",
    "creator",
    "dateCreated",
    "desiredAvailable",
    "doneDate",
    "downloadDir",
    "downloadLimit",
    "downloadLimited",
    "downloadedEver",
    "editDate",
    "error",
    "errorString",
    "eta",
    "etaIdle",
    "file-count",
    "fileStats",
    "files",
    "group",
    "hashString",
    "haveUnchecked",
    "haveValid",
    "honorsSessionLimits",
    "id",
    "isFinished",
    "isPrivate",
    "isStalled",
    "labels",
    "leftUntilDone",
    "magnetLink",
    "manualAnnounceTime",
    "maxConnectedPeers",
    "metadataPercentComplete",
    "name",
    "peer-limit",
    "peers",
    "peersConnected",
    "peersFrom",
    "peersGettingFromUs",
    "peersSendingToUs",
    "percentComplete",
    "percentDone",
    "pieceCount",
    "pieceSize",
    "pieces",
    "primary-mime-type",
    "priorities",
    "queuePosition",
    "rateDownload",
    "rateUpload",
    "recheckProgress",
    "secondsDownloading",
    "secondsSeeding",
    "seedIdleLimit",
    "seedIdleMode",
    "seedRatioLimit",
    "seedRatioMode",
    "sizeWhenDone",
    "startDate",
    "status",
    "torrentFile",
    "totalSize",
    "trackerList",
    "trackerStats",
    "trackers",
    "uploadLimit",
    "uploadLimited",
    "uploadRatio",
    "uploadedEver",
    "wanted",
    "webseeds",
    "webseedsSendingToUs",
];

const PEERS_TIMEOUT: Duration = Duration::from_secs(2);

/// One torrent, with what only some fields need fetched on first use.
struct Ctx<'a> {
    rpc: &'a Rpc,
    session: &'a Session,
    id: u64,
    s: &'a TorrentStatus,
    mi: OnceCell<Option<Metainfo>>,
    files: OnceCell<Vec<FileStatus>>,
    peers: OnceCell<Vec<PeerInfo>>,
    /// Queue positions and the torrents the queue holds (computed once per call).
    queue: &'a OnceCell<QueueView>,
}

/// The download queue as `torrent-get` reads it.
struct QueueView {
    positions: std::collections::HashMap<bittorrent_core::InfoHash, usize>,
    held: std::collections::HashSet<bittorrent_core::InfoHash>,
}

impl Ctx<'_> {
    fn mi(&self) -> Option<&Metainfo> {
        self.mi
            .get_or_init(|| self.session.metainfo(&self.s.info_hash))
            .as_ref()
    }
    /// The files but BEP 47 padding (Transmission's file indices).
    fn files(&self) -> &[FileStatus] {
        self.files.get_or_init(|| {
            let mut f = self.session.files(&self.s.info_hash).unwrap_or_default();
            f.retain(|f| !f.pad);
            f
        })
    }
    fn peers(&self) -> &[PeerInfo] {
        self.peers.get_or_init(|| {
            if self.s.peers == 0 {
                // No connection: no need to ask the torrent's thread (a
                // round trip per torrent in a list of thousands).
                return Vec::new();
            }
            self.session
                .peers(&self.s.info_hash, PEERS_TIMEOUT)
                .unwrap_or_default()
        })
    }
    fn metadata(&self) -> bool {
        self.s.phase == Phase::Metadata
    }
    fn size_when_done(&self) -> u64 {
        if self.metadata() {
            0
        } else {
            self.s.wanted_length
        }
    }
    fn left_until_done(&self) -> u64 {
        let s = self.s;
        if self.metadata() {
            return 0;
        }
        if s.wanted_length >= s.total_length {
            return s.total_length.saturating_sub(s.bytes_have);
        }
        self.files()
            .iter()
            .filter(|f| f.priority.is_wanted())
            .map(|f| f.length.saturating_sub(f.bytes_have))
            .sum()
    }
    /// Transmission's `error`: 0 none, 2 tracker error, 3 local error.
    fn error(&self) -> (u8, String) {
        match &self.s.phase {
            Phase::Failed(e) | Phase::Stalled(e) => (3, e.clone()),
            _ => match &self.s.tracker.error {
                Some(e) => (2, e.clone()),
                None => (0, String::new()),
            },
        }
    }
    fn queue(&self) -> &QueueView {
        self.queue.get_or_init(|| {
            let (order, held) = self.rpc.queue.snapshot();
            QueueView {
                positions: order.into_iter().enumerate().map(|(i, h)| (h, i)).collect(),
                held,
            }
        })
    }
    fn status(&self) -> u8 {
        let s = self.s;
        if s.phase == Phase::Checking {
            // Stopped or queued torrents are checked too (`torrent-verify`).
            return status::CHECK;
        }
        if s.paused && self.queue().held.contains(&s.info_hash) {
            // Queued to download.
            return status::DOWNLOAD_WAIT;
        }
        if s.paused && !self.metadata() {
            return status::STOPPED;
        }
        match s.phase {
            Phase::Checking => status::CHECK,
            Phase::Metadata => status::DOWNLOAD,
            Phase::Downloading | Phase::Stalled(_) if s.waiting_for_disk => status::DOWNLOAD_WAIT,
            Phase::Downloading | Phase::Stalled(_) => status::DOWNLOAD,
            Phase::Seeding => status::SEED,
            Phase::Finished | Phase::Failed(_) => status::STOPPED,
        }
    }
    fn trackers(&self) -> Vec<(usize, String)> {
        // Not the whole metainfo (its piece hashes) for each torrent.
        let tiers = self.session.trackers(&self.s.info_hash).unwrap_or_default();
        tiers
            .into_iter()
            .enumerate()
            .flat_map(|(t, urls)| urls.into_iter().map(move |u| (t, u)))
            .collect()
    }

    fn value(&self, field: &str) -> Value {
        let s = self.s;
        match field {
            "id" => json!(self.id),
            "hashstring" => json!(s.info_hash.to_hex()),
            "name" => json!(s.name),
            "totalsize" => json!(s.total_length),
            "sizewhendone" => json!(self.size_when_done()),
            "leftuntildone" => json!(self.left_until_done()),
            "desiredavailable" => json!(self.left_until_done()),
            "havevalid" => json!(s.bytes_have),
            "haveunchecked" => json!(0),
            "percentdone" => {
                let total = self.size_when_done();
                if total == 0 {
                    json!(if self.metadata() { 0.0 } else { 1.0 })
                } else {
                    json!((total - self.left_until_done().min(total)) as f64 / total as f64)
                }
            }
            "percentcomplete" => json!(if s.total_length == 0 {
                0.0
            } else {
                s.bytes_have as f64 / s.total_length as f64
            }),
            "metadatapercentcomplete" => json!(if self.metadata() { 0.0 } else { 1.0 }),
            "recheckprogress" => json!(if s.phase == Phase::Checking && s.pieces_total > 0 {
                f64::from(s.checked_pieces) / f64::from(s.pieces_total)
            } else {
                0.0
            }),
            "status" => json!(self.status()),
            "error" => json!(self.error().0),
            "errorstring" => json!(self.error().1),
            "isstalled" => json!(matches!(s.phase, Phase::Stalled(_)) || s.waiting_for_disk),
            "isfinished" => json!(s.phase == Phase::Finished),
            "isprivate" => json!(self.mi().is_some_and(|m| m.info.private)),
            // -1: not available (paused, no rate, or fetching metadata).
            "eta" => json!(if s.paused { -1 } else { s.eta().map_or(-1, |d| d.as_secs() as i64) }),
            "etaidle" => json!(-1),
            "ratedownload" => json!(s.download_rate),
            "rateupload" => json!(s.upload_rate),
            "uploadedever" => json!(s.uploaded),
            "downloadedever" => json!(s.downloaded),
            "corruptever" => json!(u64::from(s.hash_failures)
                * self.mi().map_or(0, |m| m.info.piece_length)),
            "uploadratio" => {
                let base = if s.downloaded > 0 { s.downloaded } else { s.bytes_have };
                json!(if base == 0 { -1.0 } else { s.uploaded as f64 / base as f64 })
            }
            // Modes: 0 the session's limit, 1 the torrent's own, 2 none.
            "seedratiolimit" => json!(match s.seed_limits.ratio {
                SeedLimit::Limit(r) => r,
                // Not its own: the session's value.
                _ => self.rpc.seed_values.lock().0,
            }),
            "seedratiomode" => json!(mode(s.seed_limits.ratio)),
            // Minutes.
            "seedidlelimit" => json!(match s.seed_limits.idle {
                SeedLimit::Limit(d) => d.as_secs() / 60,
                _ => self.rpc.seed_values.lock().1,
            }),
            "seedidlemode" => json!(mode(s.seed_limits.idle)),
            "secondsseeding" => json!(s.seeding_time.as_secs()),
            "secondsdownloading" | "activitydate" | "addeddate" | "donedate" | "startdate"
            | "editdate" | "manualannouncetime" | "bandwidthpriority" => json!(0),
            "webseedssendingtous" => json!(s
                .web_seeds
                .iter()
                .filter(|w| w.state == bittorrent_core::WebSeedState::Fetching)
                .count()),
            // A torrent the queue has not seen yet goes to the back.
            "queueposition" => {
                let q = self.queue();
                json!(q.positions.get(&s.info_hash).copied().unwrap_or(q.positions.len()))
            }
            "datecreated" => json!(self.mi().and_then(|m| m.creation_date).unwrap_or(0)),
            "comment" => json!(self.mi().and_then(|m| m.comment.clone()).unwrap_or_default()),
            "creator" => json!(self.mi().and_then(|m| m.created_by.clone()).unwrap_or_default()),
            "downloaddir" => json!(s.save_path.to_string_lossy()),
            "downloadlimit" => json!(s.max_download_rate / super::session_methods::KB),
            "downloadlimited" => json!(s.max_download_rate > 0),
            "uploadlimit" => json!(s.max_upload_rate / super::session_methods::KB),
            "uploadlimited" => json!(s.max_upload_rate > 0),
            "honorssessionlimits" => json!(true),
            "group" | "primarymimetype" | "torrentfile" => json!(""),
            "labels" => json!(self.rpc.labels.get(&s.info_hash.to_hex())),
            "magnetlink" => json!(format!(
                "magnet:?xt=urn:btih:{}&dn={}",
                s.info_hash.to_hex(),
                percent_encode(&s.name)
            )),
            "maxconnectedpeers" | "peerlimit" => json!(self.rpc.config.max_peers_per_torrent),
            "peersconnected" => json!(s.peers),
            "peersgettingfromus" => {
                json!(self.peers().iter().filter(|p| !p.am_choking && p.peer_interested).count())
            }
            "peerssendingtous" => {
                json!(self.peers().iter().filter(|p| !p.peer_choking && p.am_interested).count())
            }
            "peersfrom" => {
                let incoming = self.peers().iter().filter(|p| !p.outgoing).count();
                json!({
                    "fromCache": 0, "fromDht": 0, "fromIncoming": incoming, "fromLpd": 0,
                    "fromLtep": 0, "fromPex": s.peers_from_pex,
                    "fromTracker": self.peers().len() - incoming,
                })
            }
            "peers" => Value::Array(self.peers().iter().map(|p| self.peer(p)).collect()),
            "piececount" => json!(s.pieces_total),
            "piecesize" => json!(self.mi().map_or(0, |m| m.info.piece_length)),
            "pieces" => {
                use base64::Engine;
                let bits = self.session.pieces(&s.info_hash);
                json!(base64::engine::general_purpose::STANDARD
                    .encode(bits.as_ref().map_or(&[][..], |b| b.as_bytes())))
            }
            "filecount" => json!(self.files().len()),
            "files" => Value::Array(
                self.files()
                    .iter()
                    .map(|f| json!({"name": self.file_name(f), "length": f.length, "bytesCompleted": f.bytes_have}))
                    .collect(),
            ),
            "filestats" => Value::Array(
                self.files()
                    .iter()
                    .map(|f| json!({"bytesCompleted": f.bytes_have, "wanted": f.priority.is_wanted(), "priority": 0}))
                    .collect(),
            ),
            "priorities" => json!(vec![0; self.files().len()]),
            "wanted" => Value::Array(
                self.files()
                    .iter()
                    .map(|f| json!(u8::from(f.priority.is_wanted())))
                    .collect(),
            ),
            "trackers" => Value::Array(
                self.trackers()
                    .iter()
                    .enumerate()
                    .map(|(id, (tier, url))| json!({"id": id, "tier": tier, "announce": url, "scrape": "", "sitename": host(url)}))
                    .collect(),
            ),
            "trackerlist" => {
                let mut out = String::new();
                let mut last = None;
                for (tier, url) in self.trackers() {
                    if last.is_some_and(|l| l != tier) {
                        out.push('\n');
                    }
                    out.push_str(&url);
                    out.push('\n');
                    last = Some(tier);
                }
                json!(out)
            }
            "trackerstats" => Value::Array(
                self.trackers()
                    .iter()
                    .enumerate()
                    .map(|(id, (tier, url))| {
                        let ours = s.tracker.url.as_deref() == Some(url.as_str());
                        let last = if ours { s.tracker.last_announce.unwrap_or(0) } else { 0 };
                        json!({
                            "id": id, "tier": tier, "announce": url, "host": host(url),
                            "sitename": host(url), "scrape": "", "isBackup": false,
                            "announceState": 0, "scrapeState": 0,
                            "hasAnnounced": ours && last > 0,
                            "lastAnnounceTime": last,
                            "lastAnnounceSucceeded": ours && last > 0 && s.tracker.error.is_none(),
                            "lastAnnounceResult": if ours { s.tracker.error.clone().unwrap_or_else(|| "Success".into()) } else { String::new() },
                            "lastAnnouncePeerCount": if ours { s.tracker.peers_returned } else { 0 },
                            "lastAnnounceTimedOut": false, "lastAnnounceStartTime": last,
                            "nextAnnounceTime": 0, "hasScraped": false, "lastScrapeTime": 0,
                            "lastScrapeSucceeded": false, "lastScrapeResult": "",
                            "lastScrapeStartTime": 0, "lastScrapeTimedOut": false,
                            "nextScrapeTime": 0, "seederCount": -1, "leecherCount": -1,
                            "downloadCount": -1,
                        })
                    })
                    .collect(),
            ),
            "webseeds" => json!(self.mi().map(|m| m.url_list.clone()).unwrap_or_default()),
            _ => Value::Null,
        }
    }

    fn file_name(&self, f: &FileStatus) -> String {
        match self.mi() {
            Some(m) if m.info.multi_file && !f.path.starts_with(&format!("{}/", m.info.name)) => {
                format!("{}/{}", m.info.name, f.path)
            }
            _ => f.path.clone(),
        }
    }

    fn peer(&self, p: &PeerInfo) -> Value {
        let total = self.s.pieces_total;
        json!({
            "address": p.addr.ip().to_string(),
            "port": p.addr.port(),
            "clientName": crate::cmd::details::client_name(p.client.as_deref(), &p.peer_id),
            "flagStr": crate::cmd::details::flags(p, total),
            "progress": if total == 0 { 0.0 } else { f64::from(p.pieces.min(total)) / f64::from(total) },
            "rateToClient": p.download_rate,
            "rateToPeer": p.upload_rate,
            "clientIsChoked": p.am_choking,
            "clientIsInterested": p.am_interested,
            "peerIsChoked": p.peer_choking,
            "peerIsInterested": p.peer_interested,
            "isDownloadingFrom": !p.peer_choking && p.am_interested,
            "isUploadingTo": !p.am_choking && p.peer_interested,
            "isIncoming": !p.outgoing,
            "isEncrypted": false,
            "isUTP": p.transport == bittorrent_core::Transport::Utp,
        })
    }
}

/// A magnet link's `dn`: unreserved characters as they are, the rest `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Transmission's limit mode: 0 the session's, 1 the torrent's own, 2 none.
fn mode<T>(l: SeedLimit<T>) -> u8 {
    match l {
        SeedLimit::Session => 0,
        SeedLimit::Limit(_) => 1,
        SeedLimit::Unlimited => 2,
    }
}

fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or("").to_string()
}

/// `torrent-get`: `fields` (required), `ids`, `format` (`objects` or `table`).
pub fn torrent_get(rpc: &Rpc, session: &Session, a: &Args) -> RpcResult {
    let Some(Value::Array(names)) = a.get("fields") else {
        return Err("torrent-get: \"fields\" must be a list of field names".into());
    };
    let mut fields: Vec<(String, String)> = Vec::with_capacity(names.len());
    for n in names {
        let Some(name) = n.as_str() else {
            return Err(format!("torrent-get: not a field name: {n}"));
        };
        let key = norm(name);
        if !FIELDS.iter().any(|f| norm(f) == key) {
            return Err(format!("torrent-get: unknown field {name}"));
        }
        fields.push((name.to_string(), key));
    }
    let table = match a.str("format")? {
        None | Some("objects") => false,
        Some("table") => true,
        Some(f) => {
            return Err(format!(
                "torrent-get: format must be objects or table, not {f}"
            ))
        }
    };
    let (torrents, removed) = rpc.select(session, a)?;
    let queue = OnceCell::new();
    let ctx = |id: u64, s| Ctx {
        queue: &queue,
        rpc,
        session,
        id,
        s,
        mi: OnceCell::new(),
        files: OnceCell::new(),
        peers: OnceCell::new(),
    };
    let list: Vec<Value> = if table {
        let mut rows = Vec::with_capacity(torrents.len() + 1);
        rows.push(json!(fields.iter().map(|(n, _)| n).collect::<Vec<_>>()));
        for (id, s) in &torrents {
            let c = ctx(*id, s);
            rows.push(Value::Array(
                fields.iter().map(|(_, k)| c.value(k)).collect(),
            ));
        }
        rows
    } else {
        torrents
            .iter()
            .map(|(id, s)| {
                let c = ctx(*id, s);
                Value::Object(
                    fields
                        .iter()
                        .map(|(n, k)| (n.clone(), c.value(k)))
                        .collect(),
                )
            })
            .collect()
    };
    let mut out = json!({"torrents": list});
    if let Some(r) = removed {
        out["removed"] = json!(r);
    }
    Ok(out)
}
