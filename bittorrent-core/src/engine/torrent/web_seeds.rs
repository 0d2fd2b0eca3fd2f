//! The torrent thread's side of its web seeds (BEP 19): which runs of
//! pieces each one fetches, what it hands back, back-off after a failed
//! request, and dropping a seed whose piece fails its hash check. The
//! threads themselves are `engine/conn/web_seed.rs`.
//!
//! A web seed is started (its thread spawned, under a fresh `PeerKey`)
//! when the torrent downloads and the picker has a run for it
//! (`Picker::pick_web_run`: pieces no connected peer has first); it gets
//! one run at a time. Its pieces go through the picker, the piece buffers
//! and the hashers exactly as a peer's blocks do. A failed run gives its
//! pieces back and the seed waits 2 s, 4 s, 8 s ... up to 5 minutes before
//! its next one (404 included: the file may appear); a good run resets the
//! wait. A piece that fails its hash drops the seed for good. Pausing,
//! stalling, failing or finishing stops the threads (their pieces go
//! back); they are started again when there is work.

use super::*;
use crate::engine::conn::web_seed::{
    self, WebSeedCmd, WebSeedContext, WebSeedEvent, WebSeedHandle, MAX_RUN_BYTES,
};
use crate::engine::torrent::status::{WebSeedState, WebSeedStatus};
use crate::proto::metainfo::Info;
use crossbeam_channel::Sender;

/// The longest wait before a failing web seed is asked again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Web-seed events queued to the torrent thread (a seed thread that finds
/// the channel full waits: backpressure).
const EVENTS_CAPACITY: usize = 8;

struct Seed {
    url: String,
    /// Its thread, while it runs.
    handle: Option<WebSeedHandle>,
    /// Names its current thread in the picker and on the event channel.
    key: PeerKey,
    state: WebSeedState,
    /// The pieces of the run in progress not delivered yet.
    assigned: Vec<u32>,
    failures: u32,
    retry_at: Instant,
    downloaded: u64,
    last_down: u64,
    rate: u64,
    error: Option<String>,
}

/// A torrent's web seeds.
pub(super) struct WebSeeds {
    seeds: Vec<Seed>,
    pub(super) events: Receiver<(PeerKey, WebSeedEvent)>,
    events_tx: Sender<(PeerKey, WebSeedEvent)>,
    info: Option<Arc<Info>>,
}

impl WebSeeds {
    /// The web seeds of `metainfo`, unless `enabled` is off (then none).
    pub(super) fn new(metainfo: &Metainfo, enabled: bool) -> WebSeeds {
        let (events_tx, events) = crossbeam_channel::bounded(EVENTS_CAPACITY);
        let v2_only = metainfo.format() == crate::proto::metainfo::Format::V2;
        let now = Instant::now();
        let seeds = if enabled {
            metainfo
                .url_list
                .iter()
                .map(|url| {
                    let why = if v2_only {
                        Some("web seeds are not supported for v2-only torrents")
                    } else if !crate::proto::web_seed::is_supported(url) {
                        Some("not an http(s) URL")
                    } else {
                        None
                    };
                    Seed {
                        url: url.clone(),
                        handle: None,
                        key: 0,
                        state: if why.is_some() {
                            WebSeedState::Dropped
                        } else {
                            WebSeedState::Idle
                        },
                        assigned: Vec::new(),
                        failures: 0,
                        retry_at: now,
                        downloaded: 0,
                        last_down: 0,
                        rate: 0,
                        error: why.map(str::to_string),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        WebSeeds {
            seeds,
            events,
            events_tx,
            info: None,
        }
    }

    /// Whether `key` is a web seed with a run in progress (its requests in
    /// the picker are real).
    pub(super) fn is_fetching(&self, key: PeerKey) -> bool {
        self.seeds
            .iter()
            .any(|s| s.key == key && s.state == WebSeedState::Fetching)
    }

    /// Whether any seed may still be used (the torrent ticks while so).
    pub(super) fn active(&self) -> bool {
        self.seeds.iter().any(|s| s.state != WebSeedState::Dropped)
    }

    /// The sum of their rates.
    pub(super) fn download_rate(&self) -> u64 {
        self.seeds.iter().map(|s| s.rate).sum()
    }

    /// Their status rows.
    pub(super) fn status(&self) -> Vec<WebSeedStatus> {
        self.seeds
            .iter()
            .map(|s| WebSeedStatus {
                url: s.url.clone(),
                state: s.state,
                downloaded: s.downloaded,
                download_rate: s.rate,
                error: s.error.clone(),
            })
            .collect()
    }

    /// Rates, once a second.
    pub(super) fn on_tick(&mut self) {
        for s in &mut self.seeds {
            s.rate = (s.rate + (s.downloaded - s.last_down)) / 2;
            s.last_down = s.downloaded;
        }
    }

    fn index_of(&self, key: PeerKey) -> Option<usize> {
        self.seeds
            .iter()
            .position(|s| s.key == key && s.handle.is_some())
    }
}

/// The back-off after `failures` failed runs in a row.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 9)).min(MAX_BACKOFF)
}

impl Torrent {
    /// Give every web seed that is free a run of pieces (on the tick and
    /// after each of their events).
    pub(super) fn feed_web_seeds(&mut self) {
        if self.web.seeds.is_empty() {
            return;
        }
        if self.paused || self.phase != Phase::Downloading {
            self.stop_web_seeds();
            return;
        }
        if self.disk.behind() {
            return;
        }
        let now = Instant::now();
        for i in 0..self.web.seeds.len() {
            let s = &mut self.web.seeds[i];
            match s.state {
                WebSeedState::Dropped | WebSeedState::Fetching => continue,
                WebSeedState::BackingOff if now < s.retry_at => continue,
                _ => {}
            }
            if s.handle.is_none() {
                s.key = self.shared.next_key();
            }
            let key = s.key;
            let allowed = if self.all_wanted {
                None
            } else {
                Some(&self.wanted)
            };
            let run = self.picker.pick_web_run(key, allowed, MAX_RUN_BYTES);
            let s = &mut self.web.seeds[i];
            if run.is_empty() {
                // Nothing to give: the thread is not needed now.
                s.handle = None;
                s.state = WebSeedState::Idle;
                continue;
            }
            if s.handle.is_none() {
                let info = self
                    .web
                    .info
                    .get_or_insert_with(|| Arc::new(self.me.metainfo.info.clone()))
                    .clone();
                let ctx = WebSeedContext {
                    url: s.url.clone(),
                    info,
                    layout: self.layout,
                    throttle: self.me.peer_ctx.throttle.clone(),
                    source: self.me.peer_ctx.dialer.source,
                };
                match web_seed::spawn(
                    key,
                    ctx,
                    Rung::new(self.web.events_tx.clone(), self.bell.clone()),
                ) {
                    Ok(h) => s.handle = Some(h),
                    Err(e) => {
                        log::warn!("web seed {}: cannot start its thread: {e}", s.url);
                        self.picker.remove_peer(key, &Bitfield::new(0));
                        return;
                    }
                }
            }
            let sent = s
                .handle
                .as_ref()
                .is_some_and(|h| h.inbox.try_send(WebSeedCmd::Fetch(run.clone())).is_ok());
            if sent {
                s.state = WebSeedState::Fetching;
                s.assigned = run;
            } else {
                s.handle = None;
                s.state = WebSeedState::Idle;
                self.picker.remove_peer(key, &Bitfield::new(0));
            }
        }
    }

    /// Stop every web-seed thread; the pieces they were fetching go back
    /// to the picker.
    pub(super) fn stop_web_seeds(&mut self) {
        for s in &mut self.web.seeds {
            if s.handle.take().is_some() {
                self.picker.remove_peer(s.key, &Bitfield::new(0));
                s.assigned.clear();
                if s.state == WebSeedState::Fetching {
                    s.state = WebSeedState::Idle;
                }
            }
        }
    }

    /// An event from web seed `key`.
    pub(super) fn on_web_event(&mut self, key: PeerKey, ev: WebSeedEvent) {
        // A thread stopped since (its key is no longer current) is ignored.
        let Some(i) = self.web.index_of(key) else {
            if let WebSeedEvent::Piece { blocks, .. } = ev {
                block_pool::global().give_back(blocks);
            }
            return;
        };
        match ev {
            WebSeedEvent::Piece { index, blocks } => {
                let s = &mut self.web.seeds[i];
                let Some(pos) = s.assigned.iter().position(|&p| p == index) else {
                    return;
                };
                s.assigned.remove(pos);
                let len: usize = blocks.iter().map(Vec::len).sum();
                s.downloaded += len as u64;
                if len != self.layout.piece_len(index) as usize {
                    return self.web_seed_failed(i, "a piece of the wrong size".into(), false);
                }
                for (b, data) in blocks.into_iter().enumerate() {
                    let block = self.layout.block(index, b as u32);
                    if data.len() != block.length as usize {
                        self.picker.request_failed(key, &block);
                        continue;
                    }
                    self.accept_block(key, block, data);
                }
            }
            WebSeedEvent::Done => {
                let s = &mut self.web.seeds[i];
                s.state = WebSeedState::Idle;
                s.failures = 0;
                s.error = None;
                // Anything not delivered (none, normally) goes back.
                self.picker.remove_peer(key, &Bitfield::new(0));
                self.web.seeds[i].assigned.clear();
                self.feed_web_seeds();
            }
            WebSeedEvent::Failed { error, not_found } => {
                self.web_seed_failed(i, error, not_found);
                self.feed_web_seeds();
            }
        }
    }

    /// Seed `i`'s run failed: its pieces go back, it waits.
    fn web_seed_failed(&mut self, i: usize, error: String, not_found: bool) {
        let s = &mut self.web.seeds[i];
        s.failures += 1;
        let wait = backoff(s.failures);
        log::info!(
            "{}: web seed {}: {error}{}; next try in {}s",
            self.me.metainfo.info.name,
            s.url,
            if not_found { " (not found)" } else { "" },
            wait.as_secs()
        );
        s.error = Some(error);
        s.state = WebSeedState::BackingOff;
        s.retry_at = Instant::now() + wait;
        s.assigned.clear();
        // The thread stays (its connection may be reused); its pieces go back.
        let key = s.key;
        self.picker.remove_peer(key, &Bitfield::new(0));
    }

    /// A piece failed its hash check: a web seed among its contributors is
    /// dropped (its other pieces go back; the piece is fetched again from
    /// anyone else).
    pub(super) fn web_seed_hash_failed(&mut self, contributors: &[PeerKey]) {
        for s in &mut self.web.seeds {
            if s.state != WebSeedState::Dropped && s.key != 0 && contributors.contains(&s.key) {
                log::warn!(
                    "{}: web seed {} sent a piece that failed its hash check; dropped",
                    self.me.metainfo.info.name,
                    s.url
                );
                s.handle = None;
                s.state = WebSeedState::Dropped;
                s.assigned.clear();
                s.error = Some("sent a piece that failed its hash check".into());
                self.picker.remove_peer(s.key, &Bitfield::new(0));
            }
        }
    }
}
