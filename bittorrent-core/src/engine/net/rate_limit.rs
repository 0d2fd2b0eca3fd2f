//! Rate limits: token buckets shared by the peer threads.
//!
//! A [`RateLimiter`] is one bucket (bytes per second, `0` = unlimited)
//! behind a `parking_lot::Mutex`. The session owns one pair (download,
//! upload) and every torrent owns another ([`RatePair`]); a peer thread
//! holds both through its [`Throttle`] and must get past both before it
//! reads from its socket (download) or queues piece data (upload).
//!
//! The buckets run on *debt*: a thread may go ahead as soon as a bucket is
//! not negative, and is then charged what it actually moved, which may
//! take the bucket below zero. The next thread sleeps until the debt is
//! paid back ([`Throttle::wait_ready`] sleeps for exactly the missing
//! time, capped so that the peer thread still serves its inbox). Over any
//! long interval the bytes moved are therefore `rate × time` plus at most
//! one burst (a tenth of a second of data), which keeps the average within
//! a few per cent over ten seconds, with no busy waiting and no need to
//! know a read's size in advance.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most a bucket saves up while idle: this fraction of a second of
/// data (and at least one 16 KiB block).
const BURST_DIVISOR: u64 = 10;
const MIN_BURST: f64 = 16.0 * 1024.0;

#[derive(Debug)]
struct Bucket {
    /// Bytes that may be moved now; negative while in debt.
    tokens: f64,
    last: Instant,
}

/// One token bucket: `rate` bytes per second, `0` meaning unlimited.
#[derive(Debug)]
pub struct RateLimiter {
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(0)
    }
}

fn burst(rate: u64) -> f64 {
    ((rate / BURST_DIVISOR) as f64).max(MIN_BURST)
}

impl RateLimiter {
    /// A bucket of `rate` bytes per second (`0`: unlimited), starting full.
    pub fn new(rate: u64) -> RateLimiter {
        RateLimiter {
            rate: AtomicU64::new(rate),
            bucket: Mutex::new(Bucket {
                tokens: burst(rate),
                last: Instant::now(),
            }),
        }
    }

    /// The limit in bytes per second (`0`: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Change the limit (`0`: unlimited). Takes effect at once; a debt run
    /// up under the old limit is capped at one burst of the new one.
    pub fn set_rate(&self, rate: u64) {
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        self.rate.store(rate, Ordering::Relaxed);
        let cap = burst(rate);
        b.tokens = b.tokens.clamp(-cap, cap);
    }

    fn refill(&self, b: &mut Bucket) {
        let now = Instant::now();
        let rate = self.rate();
        if rate > 0 {
            let dt = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + dt * rate as f64).min(burst(rate));
        }
        b.last = now;
    }

    /// How long until the bucket is no longer in debt (zero: go ahead).
    pub fn time_to_ready(&self) -> Duration {
        let rate = self.rate();
        if rate == 0 {
            return Duration::ZERO;
        }
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate as f64)
        }
    }

    /// Charge `bytes` moved (may put the bucket in debt).
    pub fn charge(&self, bytes: u64) {
        if self.rate() == 0 || bytes == 0 {
            return;
        }
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        b.tokens -= bytes as f64;
    }

    /// How many bytes one read or write may move at most at this rate
    /// (a twentieth of a second of data, from 1 KiB to `max`), so that one
    /// socket read cannot take a large burst at once.
    pub fn chunk(&self, max: usize) -> usize {
        match self.rate() {
            0 => max,
            r => ((r / 20) as usize).clamp(1024, max.max(1024)).min(max),
        }
    }
}

/// A download and an upload bucket (one per session, one per torrent).
#[derive(Debug, Default)]
pub struct RatePair {
    /// Payload and protocol bytes read from peers' sockets.
    pub download: RateLimiter,
    /// Piece data sent to peers.
    pub upload: RateLimiter,
}

impl RatePair {
    /// Buckets with these limits (bytes per second, `0`: unlimited).
    pub fn new(download: u64, upload: u64) -> RatePair {
        RatePair {
            download: RateLimiter::new(download),
            upload: RateLimiter::new(upload),
        }
    }
}

/// What a peer thread waits on: the session's buckets and its torrent's.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    /// The session-wide limits.
    pub session: Arc<RatePair>,
    /// The torrent's own limits.
    pub torrent: Arc<RatePair>,
}

/// Which way bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Reading from peers.
    Download,
    /// Sending piece data to peers.
    Upload,
}

impl Throttle {
    fn pick(&self, dir: Direction) -> [&RateLimiter; 2] {
        match dir {
            Direction::Download => [&self.session.download, &self.torrent.download],
            Direction::Upload => [&self.session.upload, &self.torrent.upload],
        }
    }

    /// Whether both buckets are unlimited in this direction.
    pub fn unlimited(&self, dir: Direction) -> bool {
        self.pick(dir).iter().all(|l| l.rate() == 0)
    }

    /// Sleep until both buckets of `dir` are out of debt, but no longer
    /// than `max_wait`. Returns whether the caller may move bytes now (then
    /// it must [`Throttle::charge`] what it moved).
    pub fn wait_ready(&self, dir: Direction, max_wait: Duration) -> bool {
        let deadline = Instant::now() + max_wait;
        loop {
            let wait = self
                .pick(dir)
                .iter()
                .map(|l| l.time_to_ready())
                .max()
                .unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Sleep for exactly what is missing (capped): no busy waiting.
            std::thread::sleep(wait.min(left).max(Duration::from_millis(1)));
        }
    }

    /// Charge `bytes` moved in direction `dir` to both buckets.
    pub fn charge(&self, dir: Direction, bytes: u64) {
        for l in self.pick(dir) {
            l.charge(bytes);
        }
    }

    /// The largest single read or write allowed now in direction `dir`.
    pub fn chunk(&self, dir: Direction, max: usize) -> usize {
        self.pick(dir)
            .iter()
            .map(|l| l.chunk(max))
            .min()
            .unwrap_or(max)
    }
}

/// Why a rate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateParseError(pub String);

impl std::fmt::Display for RateParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not a rate: {:?} (bytes per second, with an optional K, M or G suffix: 500K, 2M; 0 = unlimited)",
            self.0
        )
    }
}

impl std::error::Error for RateParseError {}

/// Read a rate in bytes per second: `500000`, `500K`, `2M`, `1.5M`, `1G`
/// (binary multiples: K = 1024); `0` means unlimited. A trailing `B`,
/// `/s` or `iB` is allowed (`2MiB/s`).
pub fn parse_rate(s: &str) -> Result<u64, RateParseError> {
    let err = || RateParseError(s.to_string());
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(err());
    }
    let v: f64 = num.parse().map_err(|_| err())?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > (1u64 << 50) as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// A rate for people: `2.0 MiB/s`, `500.0 KiB/s`, `unlimited`.
#[allow(dead_code)] // kept for tests and embedders inside the crate
pub fn format_rate(rate: u64) -> String {
    match rate {
        0 => "unlimited".into(),
        r if r >= 1 << 20 => format!("{:.1} MiB/s", r as f64 / f64::from(1u32 << 20)),
        r if r >= 1 << 10 => format!("{:.1} KiB/s", r as f64 / 1024.0),
        r => format!("{r} B/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("500k"), Ok(500 * 1024));
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert_eq!(parse_rate("1.5M"), Ok(3 << 19));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        assert_eq!(parse_rate("2MiB/s"), Ok(2 << 20));
        assert_eq!(parse_rate("2MB"), Ok(2 << 20));
        for bad in ["", "M", "-1", "2X", "1e3", "two", "1..2K", "9999999999G"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_rates() {
        assert_eq!(format_rate(0), "unlimited");
        assert_eq!(format_rate(2 << 20), "2.0 MiB/s");
        assert_eq!(format_rate(512 * 1024), "512.0 KiB/s");
        assert_eq!(format_rate(10), "10 B/s");
    }

    #[test]
    fn unlimited_never_waits() {
        let t = Throttle::default();
        assert!(t.unlimited(Direction::Download));
        t.charge(Direction::Download, u64::MAX / 2);
        assert!(t.wait_ready(Direction::Download, Duration::ZERO));
        assert_eq!(t.chunk(Direction::Upload, 65536), 65536);
    }

    #[test]
    fn debt_is_paid_back_by_sleeping() {
        let l = RateLimiter::new(100 * 1024); // burst 16 KiB
        l.charge(16 * 1024 + 10 * 1024); // 10 KiB in debt: ~100 ms
        let w = l.time_to_ready();
        assert!(
            w > Duration::from_millis(80) && w <= Duration::from_millis(101),
            "{w:?}"
        );
        let t = Throttle {
            session: Arc::new(RatePair::default()),
            torrent: Arc::new(RatePair {
                download: l,
                upload: RateLimiter::default(),
            }),
        };
        assert!(!t.wait_ready(Direction::Download, Duration::from_millis(10)));
        let start = Instant::now();
        assert!(t.wait_ready(Direction::Download, Duration::from_secs(2)));
        let e = start.elapsed();
        assert!(
            e >= Duration::from_millis(60) && e < Duration::from_millis(500),
            "{e:?}"
        );
        // Uploads are not limited by the download bucket.
        assert!(t.wait_ready(Direction::Upload, Duration::ZERO));
    }

    #[test]
    fn the_stricter_bucket_wins() {
        let t = Throttle {
            session: Arc::new(RatePair::new(1 << 20, 0)),
            torrent: Arc::new(RatePair::new(64 * 1024, 0)),
        };
        assert_eq!(t.chunk(Direction::Download, 65536), 3276);
        t.charge(Direction::Download, 16 * 1024 + 32 * 1024);
        // The torrent's bucket (64 KiB/s) is 32 KiB short: about 0.5 s.
        let w = t.torrent.download.time_to_ready();
        assert!(w > Duration::from_millis(400), "{w:?}");
        assert!(t.session.download.time_to_ready().is_zero());
    }

    #[test]
    fn set_rate_caps_old_debt() {
        let l = RateLimiter::new(1024);
        l.charge(1 << 20); // a huge debt at 1 KiB/s
        assert!(l.time_to_ready() > Duration::from_secs(100));
        l.set_rate(1 << 20);
        assert!(l.time_to_ready() <= Duration::from_millis(101));
        l.set_rate(0);
        assert!(l.time_to_ready().is_zero());
    }

    /// Threads sharing one bucket move `rate × time` between them.
    #[test]
    fn shared_bucket_holds_the_rate_across_threads() {
        let rate = 4u64 << 20;
        let t = Throttle {
            session: Arc::new(RatePair::new(rate, 0)),
            torrent: Arc::new(RatePair::default()),
        };
        let moved = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let run_for = Duration::from_millis(1000);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (t, moved) = (t.clone(), moved.clone());
                std::thread::spawn(move || {
                    while start.elapsed() < run_for {
                        if t.wait_ready(Direction::Download, Duration::from_millis(50)) {
                            let n = t.chunk(Direction::Download, 64 * 1024) as u64;
                            t.charge(Direction::Download, n);
                            moved.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let got = moved.load(Ordering::Relaxed) as f64 / secs;
        // One burst (0.1 s) plus one chunk per thread may run ahead.
        assert!(
            got > rate as f64 * 0.9 && got < rate as f64 * 1.25,
            "{got} B/s for a limit of {rate}"
        );
    }
}
