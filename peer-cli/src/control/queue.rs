//! The daemon's download queue (Transmission's `download-queue-size`): with
//! the queue on, at most `size` torrents download at once, in queue order;
//! the others wait paused ("queued", Transmission's status 3) and start, in
//! order, as slots free up. Seeding torrents are not counted, a torrent
//! stopped by its user is skipped, and one started with `torrent-start-now`
//! runs outside the queue.
//!
//! Kept in `STATE/queue.json`: `{"enabled": bool, "size": N, "order": [hex...],
//! "held": [hex...]}` (`held`: the torrents the queue paused, so that a
//! restart tells them from torrents their user stopped). The queue acts
//! through `Session::pause` / `resume` ([`Queue::rebalance`], called after
//! each RPC call and every second by the daemon).

use bittorrent_core::{InfoHash, Phase, Session, TorrentStatus};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The file's name in the state directory.
pub const QUEUE_FILE: &str = "queue.json";
/// Transmission's default queue size.
pub const DEFAULT_SIZE: usize = 5;

#[derive(Debug, Clone, PartialEq)]
struct State {
    enabled: bool,
    size: usize,
    order: Vec<InfoHash>,
    held: HashSet<InfoHash>,
    forced: HashSet<InfoHash>,
}

/// What `queue.json` holds: enabled, size, order, held (sorted).
type Saved = (bool, usize, Vec<InfoHash>, Vec<InfoHash>);

/// The download queue of a daemon.
pub struct Queue {
    path: PathBuf,
    state: Mutex<State>,
    /// What `queue.json` holds (written again when the state differs).
    saved: Mutex<Option<Saved>>,
}

/// Where `queue-move-*` moves torrents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// To the front.
    Top,
    /// One place forward.
    Up,
    /// One place back.
    Down,
    /// To the back.
    Bottom,
}

/// Whether a torrent still wants a download slot.
fn wants_download(s: &TorrentStatus) -> bool {
    matches!(
        s.phase,
        Phase::Metadata | Phase::Checking | Phase::Downloading | Phase::Stalled(_)
    )
}

/// Move the torrents of `which` in `order` (pure).
pub fn move_in(order: &mut Vec<InfoHash>, which: &HashSet<InfoHash>, m: Move) {
    match m {
        Move::Top | Move::Bottom => {
            let (mut moved, rest): (Vec<InfoHash>, Vec<InfoHash>) =
                order.iter().partition(|ih| which.contains(*ih));
            *order = if m == Move::Top {
                moved.extend(rest);
                moved
            } else {
                let mut r = rest;
                r.extend(moved);
                r
            };
        }
        Move::Up => {
            for i in 1..order.len() {
                if which.contains(&order[i]) && !which.contains(&order[i - 1]) {
                    order.swap(i, i - 1);
                }
            }
        }
        Move::Down => {
            for i in (0..order.len().saturating_sub(1)).rev() {
                if which.contains(&order[i]) && !which.contains(&order[i + 1]) {
                    order.swap(i, i + 1);
                }
            }
        }
    }
}

/// What the queue sees of a torrent.
#[derive(Debug, Clone, Copy)]
struct Seen {
    ih: InfoHash,
    paused: bool,
    wants: bool,
}

impl From<&TorrentStatus> for Seen {
    fn from(s: &TorrentStatus) -> Seen {
        Seen {
            ih: s.info_hash,
            paused: s.paused,
            wants: wants_download(s),
        }
    }
}

/// What the queue should do: (torrents to pause, torrents to resume) (pure).
fn plan(st: &mut State, all: &[Seen]) -> (Vec<InfoHash>, Vec<InfoHash>) {
    // The order follows the torrents present: new ones at the back.
    let present: HashSet<InfoHash> = all.iter().map(|s| s.ih).collect();
    st.order.retain(|ih| present.contains(ih));
    st.held.retain(|ih| present.contains(ih));
    st.forced.retain(|ih| present.contains(ih));
    let known: HashSet<InfoHash> = st.order.iter().copied().collect();
    for s in all {
        if !known.contains(&s.ih) {
            st.order.push(s.ih);
        }
    }
    let by_hash: std::collections::HashMap<InfoHash, &Seen> =
        all.iter().map(|s| (s.ih, s)).collect();
    let (mut pause, mut resume) = (Vec::new(), Vec::new());
    let mut slots = 0;
    for ih in &st.order {
        let Some(s) = by_hash.get(ih) else { continue };
        let held = st.held.contains(ih);
        if s.paused && !held {
            continue; // stopped by its user
        }
        let run = !st.enabled
            || !s.wants
            || st.forced.contains(ih)
            || if slots < st.size {
                slots += 1;
                true
            } else {
                false
            };
        match (run, held) {
            (true, true) => resume.push(*ih),
            (false, false) => pause.push(*ih),
            _ => {}
        }
    }
    (pause, resume)
}

impl Queue {
    /// The queue saved in `state` (none: off, Transmission's size).
    pub fn load(state: &Path) -> Queue {
        let path = state.join(QUEUE_FILE);
        let mut st = State {
            enabled: false,
            size: DEFAULT_SIZE,
            order: Vec::new(),
            held: HashSet::new(),
            forced: HashSet::new(),
        };
        let v: Option<Value> = std::fs::read(&path)
            .ok()
            .filter(|b| b.len() <= 16 * 1024 * 1024)
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(v) = v {
            let hashes = |k: &str| -> Vec<InfoHash> {
                v[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|h| h.as_str().and_then(InfoHash::from_hex))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            st.enabled = v["enabled"].as_bool().unwrap_or(false);
            st.size = v["size"]
                .as_u64()
                .map_or(DEFAULT_SIZE, |n| n.min(100_000) as usize);
            st.order = hashes("order");
            st.held = hashes("held").into_iter().collect();
        } else if path.exists() {
            log::warn!("{}: unreadable; the download queue is off", path.display());
        }
        Queue {
            path,
            state: Mutex::new(st),
            saved: Mutex::new(None),
        }
    }

    /// Write `queue.json` if it does not hold `st` already.
    fn save(&self, st: &State) {
        let mut held: Vec<InfoHash> = st.held.iter().copied().collect();
        held.sort_by_key(|h| h.0);
        let now = (st.enabled, st.size, st.order.clone(), held);
        let mut saved = self.saved.lock();
        if saved.as_ref() == Some(&now) {
            return;
        }
        let hex = |l: &[InfoHash]| -> Vec<String> { l.iter().map(|h| h.to_hex()).collect() };
        let v = json!({
            "enabled": now.0,
            "size": now.1,
            "order": hex(&now.2),
            "held": hex(&now.3),
        });
        let tmp = self.path.with_extension("json.tmp");
        let r =
            std::fs::write(&tmp, v.to_string()).and_then(|()| std::fs::rename(&tmp, &self.path));
        match r {
            Ok(()) => *saved = Some(now),
            Err(e) => log::warn!("{}: {e}", self.path.display()),
        }
    }

    /// (enabled, size).
    pub fn settings(&self) -> (bool, usize) {
        let st = self.state.lock();
        (st.enabled, st.size)
    }

    /// Turn the queue on or off, change its size (`None`: keep).
    pub fn configure(&self, session: &Session, enabled: Option<bool>, size: Option<usize>) {
        {
            let mut st = self.state.lock();
            st.enabled = enabled.unwrap_or(st.enabled);
            st.size = size.unwrap_or(st.size);
        }
        self.rebalance(session);
    }

    /// The queue order and the torrents it holds back.
    pub fn snapshot(&self) -> (Vec<InfoHash>, HashSet<InfoHash>) {
        let st = self.state.lock();
        (st.order.clone(), st.held.clone())
    }

    /// `torrent-start` (`now`: `torrent-start-now`, outside the queue).
    pub fn start(
        &self,
        session: &Session,
        ih: &InfoHash,
        now: bool,
    ) -> bittorrent_core::Result<()> {
        let queued = {
            let mut st = self.state.lock();
            if now {
                st.forced.insert(*ih);
            }
            let paused = session.status(ih).is_some_and(|s| s.paused);
            // Through the queue: it starts when its turn comes.
            let queued = st.enabled && !now && paused;
            if queued {
                st.held.insert(*ih);
            } else {
                st.held.remove(ih);
            }
            queued
        };
        if !queued {
            session.resume(ih)?;
        }
        self.rebalance(session);
        Ok(())
    }

    /// `torrent-stop`: stopped by its user, out of the queue's hands.
    pub fn stop(&self, session: &Session, ih: &InfoHash) -> bittorrent_core::Result<()> {
        {
            let mut st = self.state.lock();
            st.held.remove(ih);
            st.forced.remove(ih);
        }
        session.pause(ih)?;
        self.rebalance(session);
        Ok(())
    }

    /// `queue-move-*`.
    pub fn move_torrents(&self, session: &Session, which: &[InfoHash], m: Move) {
        self.rebalance(session); // every torrent has its place
        {
            let mut st = self.state.lock();
            let set: HashSet<InfoHash> = which.iter().copied().collect();
            move_in(&mut st.order, &set, m);
        }
        self.rebalance(session);
    }

    /// `torrent-set queuePosition`.
    pub fn set_position(&self, session: &Session, ih: &InfoHash, pos: usize) {
        self.rebalance(session);
        {
            let mut st = self.state.lock();
            st.order.retain(|h| h != ih);
            let at = pos.min(st.order.len());
            st.order.insert(at, *ih);
        }
        self.rebalance(session);
    }

    /// Pause and resume torrents so that the queue's rule holds; saves the
    /// queue when it changed.
    pub fn rebalance(&self, session: &Session) {
        let all: Vec<Seen> = session.torrents().iter().map(Seen::from).collect();
        let mut st = self.state.lock();
        let (pause, resume) = plan(&mut st, &all);
        for ih in pause {
            if session.pause(&ih).is_ok() {
                st.held.insert(ih);
            }
        }
        for ih in resume {
            if session.resume(&ih).is_ok() {
                st.held.remove(&ih);
            }
        }
        self.save(&st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    #[test]
    fn moves_keep_the_others_in_order() {
        let mut o: Vec<InfoHash> = (1..=5).map(ih).collect();
        let which: HashSet<InfoHash> = [ih(3), ih(5)].into_iter().collect();
        move_in(&mut o, &which, Move::Top);
        assert_eq!(o, [3, 5, 1, 2, 4].map(ih));
        move_in(&mut o, &which, Move::Bottom);
        assert_eq!(o, [1, 2, 4, 3, 5].map(ih));
        move_in(&mut o, &which, Move::Up);
        assert_eq!(o, [1, 2, 3, 5, 4].map(ih));
        move_in(&mut o, &which, Move::Up);
        assert_eq!(o, [1, 3, 5, 2, 4].map(ih));
        move_in(&mut o, &which, Move::Down);
        assert_eq!(o, [1, 2, 3, 5, 4].map(ih));
        // At the ends, nothing moves past them.
        let first: HashSet<InfoHash> = [ih(1)].into_iter().collect();
        move_in(&mut o, &first, Move::Up);
        assert_eq!(o[0], ih(1));
    }

    fn status(n: u8, phase: Phase, paused: bool) -> Seen {
        Seen {
            ih: ih(n),
            paused,
            wants: matches!(phase, Phase::Downloading),
        }
    }

    #[test]
    fn plan_keeps_size_downloads_running_in_order() {
        let mut st = State {
            enabled: true,
            size: 1,
            order: Vec::new(),
            held: HashSet::new(),
            forced: HashSet::new(),
        };
        let all = vec![
            status(1, Phase::Seeding, false),
            status(2, Phase::Downloading, false),
            status(3, Phase::Downloading, false),
            status(4, Phase::Downloading, true), // stopped by its user
        ];
        let (pause, resume) = plan(&mut st, &all);
        assert_eq!((pause, resume), (vec![ih(3)], vec![]));
        assert_eq!(st.order, [1, 2, 3, 4].map(ih));
        // 3 is held; 2 completes: 3 starts.
        st.held.insert(ih(3));
        let all = vec![
            status(1, Phase::Seeding, false),
            status(2, Phase::Seeding, false),
            status(3, Phase::Downloading, true),
            status(4, Phase::Downloading, true),
        ];
        assert_eq!(plan(&mut st, &all), (vec![], vec![ih(3)]));
        // Off: every held torrent starts.
        st.enabled = false;
        assert_eq!(plan(&mut st, &all), (vec![], vec![ih(3)]));
        // A forced torrent runs outside the queue.
        st.enabled = true;
        st.forced.insert(ih(3));
        let all = vec![
            status(2, Phase::Downloading, false),
            status(3, Phase::Downloading, true),
        ];
        assert_eq!(plan(&mut st, &all), (vec![], vec![ih(3)]));
        assert_eq!(st.order, [2, 3].map(ih));
    }
}
