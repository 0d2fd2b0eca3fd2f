//! Progress output: a bar per torrent on a terminal, plain periodic log
//! lines otherwise.

use bittorrent_core::{Phase, TorrentStatus};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Renders torrent statuses to stderr.
pub struct Progress {
    tty: bool,
    lines_drawn: usize,
    last: Option<Instant>,
    interval: Duration,
}

impl Progress {
    /// Detects whether stderr is a terminal.
    pub fn new() -> Progress {
        let tty = std::io::stderr().is_terminal();
        Progress {
            tty,
            lines_drawn: 0,
            last: None,
            interval: if tty {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(5)
            },
        }
    }

    /// Draw (rate-limited).
    pub fn show(&mut self, statuses: &[TorrentStatus]) {
        if self.last.is_some_and(|t| t.elapsed() < self.interval) {
            return;
        }
        self.last = Some(Instant::now());
        self.draw(statuses);
    }

    fn draw(&mut self, statuses: &[TorrentStatus]) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            if self.lines_drawn > 0 {
                let _ = write!(err, "\x1b[{}A", self.lines_drawn);
            }
            for s in statuses {
                let _ = writeln!(err, "\x1b[2K{}", bar_line(s));
            }
            self.lines_drawn = statuses.len();
        } else {
            for s in statuses {
                let _ = writeln!(err, "{}", plain_line(s));
            }
        }
    }

    /// Leave the last state on screen.
    pub fn finish(&mut self) {
        self.last = None;
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

/// `12.3 MiB` style sizes.
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
    match &s.phase {
        Phase::Metadata => "fetching metadata".into(),
        Phase::Checking => "checking".into(),
        Phase::Downloading => "downloading".into(),
        Phase::Seeding => "seeding".into(),
        Phase::Failed(r) => format!("failed: {r}"),
        Phase::Stalled(r) => format!("stalled: {r} (retrying)"),
    }
}

fn eta(s: &TorrentStatus) -> String {
    match s.eta() {
        Some(d) if d.is_zero() => "done".into(),
        Some(d) => format!("{}:{:02}", d.as_secs() / 60, d.as_secs() % 60),
        None => "--:--".into(),
    }
}

fn bar_line(s: &TorrentStatus) -> String {
    let p = percent(s);
    let width = 24;
    let filled = ((p / 100.0) * width as f64).round() as usize;
    let name: String = s.name.chars().take(24).collect();
    format!(
        "{name:<24} [{}{}] {p:5.1}%  down {}/s  up {}/s  peers {}  eta {}  {}{}",
        "#".repeat(filled.min(width)),
        "-".repeat(width - filled.min(width)),
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
        (None, Some(u), Some(a)) => format!("  tracker {u}: {} peers {a}s ago", t.peers_returned),
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
