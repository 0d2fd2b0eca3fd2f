//! Progress output. On a terminal: one `indicatif` bar per torrent (bytes
//! verified, rates, peers, ETA, state). Otherwise (a pipe, a log file):
//! a line at once whenever a torrent changes phase (checking done,
//! complete, error, stalled, finished, paused) plus every torrent's full
//! line every few seconds.

use bittorrent_core::{Phase, TorrentStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Between two full plain lines per torrent.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Renders torrent statuses to stderr.
pub struct Progress {
    out: Output,
    /// The last phase seen per torrent (plain mode's event lines).
    seen: HashMap<Key, PhaseKey>,
}

enum Output {
    Bars {
        multi: MultiProgress,
        bars: HashMap<Key, ProgressBar>,
    },
    Plain {
        last: Option<Instant>,
    },
}

/// What a torrent is doing, for noticing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PhaseKey {
    phase: Phase,
    paused: bool,
}

/// A torrent's identity in the display (the demo shows one torrent per
/// session under different names, so the info-hash alone is not enough).
/// (No text formatting: the daemon calls this for every torrent several
/// times a second.)
type Key = ([u8; 20], String);

fn key(s: &TorrentStatus) -> Key {
    (s.info_hash.0, s.name.clone())
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Progress {
        let out = if std::io::stderr().is_terminal() {
            Output::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)),
                bars: HashMap::new(),
            }
        } else {
            Output::Plain { last: None }
        };
        Progress {
            out,
            seen: HashMap::new(),
        }
    }

    /// Whether the next [`Progress::show`] prints every torrent's full
    /// plain line (a caller may skip `show` when no status changed, but
    /// not then).
    pub fn full_lines_due(&self) -> bool {
        match &self.out {
            Output::Plain { last } => last.is_none_or(|t| t.elapsed() >= PLAIN_INTERVAL),
            Output::Bars { .. } => false,
        }
    }

    /// Show the current statuses (called often: bars redraw at most 4
    /// times a second, full plain lines every 5 s, event lines at once).
    pub fn show(&mut self, statuses: &[TorrentStatus]) {
        let events: Vec<String> = statuses
            .iter()
            .filter_map(|s| {
                let now = PhaseKey {
                    phase: s.phase.clone(),
                    paused: s.paused,
                };
                let before = self.seen.insert(key(s), now.clone());
                event_line(s, before.as_ref(), &now)
            })
            .collect();
        match &mut self.out {
            Output::Bars { multi, bars } => {
                for line in events {
                    let _ = multi.println(line);
                }
                let keys: Vec<Key> = statuses.iter().map(key).collect();
                bars.retain(|k, b| {
                    let keep = keys.contains(k);
                    if !keep {
                        b.finish_and_clear();
                        multi.remove(b);
                    }
                    keep
                });
                for s in statuses {
                    match bars.get(&key(s)) {
                        Some(bar) => update_bar(bar, s),
                        None => {
                            // Complete before it is drawn for the first time.
                            let bar = new_bar(s);
                            update_bar(&bar, s);
                            bars.insert(key(s), multi.add(bar));
                        }
                    }
                }
            }
            Output::Plain { last } => {
                let mut err = std::io::stderr().lock();
                for line in events {
                    let _ = writeln!(err, "{line}");
                }
                if last.is_none_or(|t| t.elapsed() >= PLAIN_INTERVAL) {
                    *last = Some(Instant::now());
                    // A magnet link fetching its metadata has said so in
                    // its event line: nothing more until the metadata comes.
                    for s in statuses.iter().filter(|s| s.phase != Phase::Metadata) {
                        let _ = writeln!(err, "{}", plain_line(s));
                    }
                }
            }
        }
    }

    /// One line of news (above the bars, or plain).
    pub fn line(&mut self, text: &str) {
        match &mut self.out {
            Output::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
            Output::Plain { .. } => eprintln!("{text}"),
        }
    }

    /// A new port-mapping line, once per change of the session's port
    /// mapping (mapped, refused, stopped): `last` is the line shown before.
    /// The IPv6 pinholes' line (`IPv6 pinhole: ...`) the same way; `last`
    /// holds both lines' messages.
    pub fn port_mapping(&mut self, session: &bittorrent_core::Session, last: &mut String) {
        let (mut v4, mut v6) = match last.split_once('\0') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (last.clone(), String::new()),
        };
        if let Some(st) = session.port_mapping() {
            if st.message != v4 {
                self.line(&format!("port mapping: {}", st.message));
                v4 = st.message;
            }
        }
        if let Some(st) = session.pinholes() {
            if st.message != v6 {
                self.line(&format!("IPv6 pinhole: {}", st.message));
                v6 = st.message;
            }
        }
        *last = format!("{v4}\0{v6}");
    }

    /// Leave the last state on screen (bars stay drawn; the next plain
    /// call prints full lines at once).
    pub fn finish(&mut self) {
        match &mut self.out {
            Output::Bars { bars, .. } => {
                for b in bars.values() {
                    b.abandon();
                }
                bars.clear();
            }
            Output::Plain { last } => *last = None,
        }
    }
}

fn update_bar(bar: &ProgressBar, s: &TorrentStatus) {
    bar.set_length(s.total_length.max(1));
    bar.set_position(s.bytes_have);
    bar.set_message(bar_message(s));
}

fn new_bar(s: &TorrentStatus) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix:24!} [{bar:24.cyan/blue}] {percent:>3}%  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
    let bar =
        ProgressBar::with_draw_target(Some(s.total_length.max(1)), ProgressDrawTarget::hidden())
            .with_style(style);
    bar.set_prefix(s.name.clone());
    bar
}

/// The line printed at once when a torrent's phase changes (`None` when
/// nothing worth a line happened).
fn event_line(s: &TorrentStatus, before: Option<&PhaseKey>, now: &PhaseKey) -> Option<String> {
    if before == Some(now) {
        return None;
    }
    let name = &s.name;
    if let Some(b) = before {
        if b.paused != now.paused {
            return Some(format!(
                "{name}: {}",
                if now.paused { "paused" } else { "resumed" }
            ));
        }
    }
    let was = before.map(|b| &b.phase);
    let text = match (&now.phase, was) {
        (Phase::Metadata, _) => "fetching the metadata from peers".to_string(),
        (Phase::Checking, Some(Phase::Metadata)) => "got the metadata, checking".to_string(),
        (Phase::Checking, _) => "checking the data on disk".to_string(),
        (Phase::Downloading, Some(Phase::Checking)) if s.pieces_have == 0 => {
            "checking done: nothing on disk yet, downloading".to_string()
        }
        (Phase::Downloading, Some(Phase::Checking)) => format!(
            "checking done: {} of {} present, downloading",
            s.pieces_have,
            plural(s.pieces_total as u64, "piece")
        ),
        (Phase::Downloading, Some(Phase::Stalled(_))) => "downloading again".to_string(),
        (Phase::Downloading, _) if s.pieces_have == 0 => {
            "downloading (nothing on disk yet)".to_string()
        }
        (Phase::Downloading, _) => format!(
            "downloading ({} of {} present)",
            s.pieces_have,
            plural(s.pieces_total as u64, "piece")
        ),
        (Phase::Seeding, Some(Phase::Checking)) => "checking done: complete, seeding".to_string(),
        (Phase::Seeding, Some(Phase::Downloading | Phase::Stalled(_))) => {
            format!("download complete ({}), seeding", human(s.total_length))
        }
        (Phase::Seeding, Some(Phase::Finished)) => "seeding again".to_string(),
        (Phase::Seeding, _) => "seeding".to_string(),
        (Phase::Finished, _) => format!(
            "seeding goal reached (uploaded {}, ratio {:.2}), finished",
            human(s.uploaded),
            ratio(s)
        ),
        (Phase::Failed(r), _) => format!("error: {r}"),
        (Phase::Stalled(r), _) => format!("stalled: {r} (retrying)"),
    };
    Some(format!("{name}: {text}"))
}

fn ratio(s: &TorrentStatus) -> f64 {
    if s.total_length == 0 {
        0.0
    } else {
        s.uploaded as f64 / s.total_length as f64
    }
}

fn percent(s: &TorrentStatus) -> f64 {
    if s.phase == Phase::Metadata {
        return 0.0;
    }
    if s.total_length == 0 {
        return 100.0;
    }
    s.bytes_have as f64 * 100.0 / s.total_length as f64
}

/// `1 torrent`, `2 torrents`, `0 peers`: a count and its noun (regular
/// English plurals only).
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `12.3 MiB` style sizes: the one size format of every command.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn phase(s: &TorrentStatus) -> String {
    if s.paused {
        return "paused".into();
    }
    let (missing, fetched) = (s.piece_layers_missing, s.piece_layers_fetched);
    match &s.phase {
        // A v2 torrent's second stage (BEP 52 piece layers).
        Phase::Metadata if missing > 0 => {
            format!("fetching piece layers ({fetched} of {})", missing + fetched)
        }
        Phase::Metadata => "fetching metadata".into(),
        Phase::Checking => "checking".into(),
        // A hybrid fetching its layers beside the download.
        Phase::Downloading if missing > 0 => {
            format!("downloading ({} piece layers missing)", missing)
        }
        Phase::Downloading => "downloading".into(),
        Phase::Seeding if !s.is_complete() => "seeding (selected files complete)".into(),
        Phase::Seeding => "seeding".into(),
        Phase::Finished => "finished".into(),
        Phase::Failed(r) => format!("failed: {r}"),
        Phase::Stalled(r) => format!("stalled: {r} (retrying)"),
    }
}

fn eta(s: &TorrentStatus) -> String {
    match s.eta() {
        _ if s.is_complete() => "done".into(),
        Some(d) if d.as_secs() >= 3600 => format!(
            "{}:{:02}:{:02}",
            d.as_secs() / 3600,
            d.as_secs() / 60 % 60,
            d.as_secs() % 60
        ),
        Some(d) => format!("{}:{:02}", d.as_secs() / 60, d.as_secs() % 60),
        None => "--:--".into(),
    }
}

fn bar_message(s: &TorrentStatus) -> String {
    format!(
        "down {}/s  up {}/s  peers {}  eta {}  {}{}",
        human(s.download_rate),
        human(s.upload_rate),
        s.peers,
        eta(s),
        phase(s),
        tracker_part(s)
    )
}

/// `tracker: URL 12 peers 30s ago` or the last error.
fn tracker_part(s: &TorrentStatus) -> String {
    let t = &s.tracker;
    let ago = t.last_announce.and_then(|at| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        Some(now.saturating_sub(at))
    });
    match (&t.error, &t.url, ago) {
        (Some(e), _, Some(a)) => format!("  tracker error {a}s ago: {e}"),
        (None, Some(u), Some(a)) => format!(
            "  tracker {u}: {} {a}s ago",
            plural(t.peers_returned as u64, "peer")
        ),
        _ => String::new(),
    }
}

fn plain_line(s: &TorrentStatus) -> String {
    format!(
        "{} {} {:.1}% ({}/{} pieces) down {}/s up {}/s downloaded {} uploaded {} peers {} eta {}{}",
        s.name,
        phase(s),
        percent(s),
        s.pieces_have,
        s.pieces_total,
        human(s.download_rate),
        human(s.upload_rate),
        human(s.downloaded),
        human(s.uploaded),
        s.peers,
        eta(s),
        tracker_part(s)
    )
}

#[cfg(test)]
mod plural_tests {
    use super::plural;

    #[test]
    fn one_is_singular_the_rest_plural() {
        assert_eq!(plural(0, "torrent"), "0 torrents");
        assert_eq!(plural(1, "torrent"), "1 torrent");
        assert_eq!(plural(2, "piece"), "2 pieces");
    }
}
