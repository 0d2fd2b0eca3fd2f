//! Rate limits: token buckets shared by the peer threads.
//!
//! A [`RateLimiter`] is one bucket (bytes per second, `0` = unlimited)
//! behind a `parking_lot::Mutex`. The session owns one pair (download,
//! upload) and every torrent owns another ([`RatePair`]); a peer thread
//! holds both through its [`Throttle`] and must get past both before it
//! reads from its socket (download) or queues piece data (upload).
//!
//! The buckets run on *debt*, paid in advance: a peer thread that wants to
//! move bytes [reserves](Throttle::reserve) them, which charges both
//! buckets at once (possibly below zero) and tells the thread how long
//! until the bytes it reserved are covered. The thread then sleeps *once*
//! for that long (or waits for its socket or inbox until then) and moves
//! them. Because the charge is taken when the thread reserves, not when it
//! wakes, threads sharing a bucket queue up in order (each wakes at its own
//! time) instead of waking together, finding the bucket emptied by
//! whichever ran first and sleeping again. Uploads reserve a send quantum
//! ([`Throttle::upload_quantum`]: whole blocks, up to 64 KiB and at most a
//! burst) so that a capped thread wakes once per quantum, not once per
//! block or per millisecond slice. Over any long interval the bytes moved
//! are therefore `rate × time` plus at most one burst (a tenth of a second
//! of data), with no busy waiting and no polling of the bucket.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most a bucket saves up while idle: this fraction of a second of
/// data (and at least one 16 KiB block).
const BURST_DIVISOR: u64 = 10;
const MIN_BURST: f64 = 16.0 * 1024.0;
/// One block of piece data.
const BLOCK: u64 = 16 * 1024;
/// The most an upload-limited peer thread reserves (and then sends) at
/// once: four blocks.
pub const MAX_SEND_QUANTUM: u64 = 64 * 1024;

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
    #[cfg(test)]
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
    #[cfg(test)]
    pub fn charge(&self, bytes: u64) {
        if self.rate() == 0 || bytes == 0 {
            return;
        }
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        b.tokens -= bytes as f64;
    }

    /// Charge `bytes` now and return how long until the bucket has paid
    /// for them (zero: move them now). Bytes reserved are paid in advance,
    /// so reservations queue up in order.
    pub fn reserve(&self, bytes: u64) -> Duration {
        let rate = self.rate();
        if rate == 0 {
            return Duration::ZERO;
        }
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        b.tokens -= bytes as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate as f64)
        }
    }

    /// Give back `bytes` reserved but never moved (at most one burst is
    /// kept, as always).
    pub fn refund(&self, bytes: u64) {
        if self.rate() == 0 || bytes == 0 {
            return;
        }
        let mut b = self.bucket.lock();
        self.refill(&mut b);
        b.tokens = (b.tokens + bytes as f64).min(burst(self.rate()));
    }

    /// The burst of this bucket in bytes (`u64::MAX`: unlimited).
    fn burst_bytes(&self) -> u64 {
        match self.rate() {
            0 => u64::MAX,
            r => burst(r) as u64,
        }
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

    /// The stricter limit in direction `dir`, bytes per second (0: none).
    pub fn limit(&self, dir: Direction) -> u64 {
        self.pick(dir)
            .iter()
            .map(|l| l.rate())
            .filter(|&r| r > 0)
            .min()
            .unwrap_or(0)
    }

    /// Reserve `bytes` in both buckets of `dir` (paid now, in advance) and
    /// return how long until they may move: the caller sleeps once for
    /// that long (or waits for other work until then), then moves them
    /// without charging again; what it does not move it may
    /// [`refund`](Throttle::refund).
    pub fn reserve(&self, dir: Direction, bytes: u64) -> Duration {
        self.pick(dir)
            .iter()
            .map(|l| l.reserve(bytes))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Give back `bytes` reserved in direction `dir` and not moved.
    pub fn refund(&self, dir: Direction, bytes: u64) {
        for l in self.pick(dir) {
            l.refund(bytes);
        }
    }

    /// How many bytes an upload-limited peer thread reserves at once:
    /// whole 16 KiB blocks, at most [`MAX_SEND_QUANTUM`] and at most one
    /// burst of the stricter bucket, at least one block. One wake-up per
    /// quantum (16 a second at 1 MiB/s for the whole bucket) instead of one
    /// or more per block; a burst bounds it so a quantum never runs ahead
    /// of the limit by more than the bucket already allows.
    pub fn upload_quantum(&self) -> u64 {
        let burst = self
            .pick(Direction::Upload)
            .iter()
            .map(|l| l.burst_bytes())
            .min()
            .unwrap_or(u64::MAX);
        let blocks = burst.min(MAX_SEND_QUANTUM) / BLOCK;
        blocks.max(1) * BLOCK
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

/// Bytes a peer thread has reserved ([`Throttle::reserve`]) and not moved
/// yet, and when they are paid for: a thread holds at most one reservation
/// per direction and sleeps (or waits for its socket and inbox) until it is
/// due, once, instead of asking the bucket again and again.
#[derive(Debug, Default)]
pub struct Credit {
    bytes: u64,
    due: Option<Instant>,
}

impl Credit {
    /// Whether `need` bytes may move now in direction `dir`. Below `need`,
    /// the credit is topped up to `want` (at least `need`) by a new
    /// reservation; `false` while that reservation is not yet due
    /// ([`Credit::wait`] says for how long). Always `true` when unlimited.
    pub fn take(&mut self, t: &Throttle, dir: Direction, need: u64, want: u64) -> bool {
        if t.unlimited(dir) {
            self.release(t, dir);
            return true;
        }
        let now = Instant::now();
        if let Some(due) = self.due {
            if due > now {
                return false;
            }
            self.due = None;
        }
        if self.bytes < need {
            let add = want.max(need) - self.bytes;
            let wait = t.reserve(dir, add);
            self.bytes += add;
            if !wait.is_zero() {
                self.due = Some(now + wait);
                return false;
            }
        }
        true
    }

    /// Bytes reserved and paid for (moving them needs no new reservation).
    pub fn available(&self) -> u64 {
        if self.due.is_some() {
            0
        } else {
            self.bytes
        }
    }

    /// Record `bytes` moved out of the credit.
    pub fn spend(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// How long until the pending reservation is due (`None`: nothing to
    /// wait for).
    pub fn wait(&self) -> Option<Duration> {
        self.due
            .map(|d| d.saturating_duration_since(Instant::now()))
            .filter(|w| !w.is_zero())
    }

    /// Give the unspent credit back to the buckets (nothing left to move).
    pub fn release(&mut self, t: &Throttle, dir: Direction) {
        if self.bytes > 0 {
            t.refund(dir, self.bytes);
        }
        self.bytes = 0;
        self.due = None;
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
        t.torrent.download.charge(u64::MAX / 2);
        assert!(t.reserve(Direction::Download, 1 << 30).is_zero());
        assert_eq!(t.upload_quantum(), MAX_SEND_QUANTUM);
        assert_eq!(t.chunk(Direction::Upload, 65536), 65536);
    }

    #[test]
    fn reservations_pay_the_debt_and_queue_up() {
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
        // A reservation waits for the debt and for itself: 10 + 16 KiB.
        let w = t.reserve(Direction::Download, 16 * 1024);
        assert!(
            w > Duration::from_millis(230) && w <= Duration::from_millis(261),
            "{w:?}"
        );
        // The next one queues up behind it (no thread wakes for nothing).
        let w2 = t.reserve(Direction::Download, 16 * 1024);
        assert!(w2 >= w + Duration::from_millis(150), "{w:?} {w2:?}");
        // Given back, the second reservation no longer counts.
        t.refund(Direction::Download, 16 * 1024);
        let w3 = l_wait(&t);
        assert!(w3 <= w + Duration::from_millis(5), "{w:?} {w3:?}");
        // Uploads are not limited by the download bucket.
        assert!(t.reserve(Direction::Upload, 1 << 20).is_zero());
    }

    fn l_wait(t: &Throttle) -> Duration {
        t.torrent.download.time_to_ready()
    }

    #[test]
    fn credit_waits_once_then_moves_what_it_reserved() {
        let t = Throttle {
            session: Arc::new(RatePair::new(0, 160 * 1024)), // burst 16 KiB
            torrent: Arc::new(RatePair::default()),
        };
        let mut c = Credit::default();
        // The burst pays for the first block at once.
        assert!(c.take(&t, Direction::Upload, 16 * 1024, 16 * 1024));
        assert_eq!(c.available(), 16 * 1024);
        c.spend(16 * 1024);
        // The next 32 KiB: 200 ms away, reserved once.
        assert!(!c.take(&t, Direction::Upload, 16 * 1024, 32 * 1024));
        let w = c.wait().unwrap();
        assert!(w > Duration::from_millis(150) && w <= Duration::from_millis(200));
        assert!(!c.take(&t, Direction::Upload, 16 * 1024, 32 * 1024));
        assert_eq!(c.available(), 0);
        std::thread::sleep(w);
        assert!(c.take(&t, Direction::Upload, 16 * 1024, 32 * 1024));
        assert_eq!(c.wait(), None);
        assert_eq!(c.available(), 32 * 1024);
        c.spend(16 * 1024);
        // Released, the rest goes back to the bucket.
        c.release(&t, Direction::Upload);
        assert_eq!(c.available(), 0);
        assert!(t.session.upload.time_to_ready().is_zero());
    }

    #[test]
    fn upload_quantum_is_whole_blocks_within_a_burst() {
        let q = |rate| {
            Throttle {
                session: Arc::new(RatePair::new(0, rate)),
                torrent: Arc::new(RatePair::default()),
            }
            .upload_quantum()
        };
        assert_eq!(q(0), 64 * 1024);
        assert_eq!(q(1 << 20), 64 * 1024); // burst 102 KiB
        assert_eq!(q(400 * 1024), 32 * 1024); // burst 40 KiB
        assert_eq!(q(10 * 1024), 16 * 1024); // burst 16 KiB (the minimum)
    }

    #[test]
    fn the_stricter_bucket_wins() {
        let t = Throttle {
            session: Arc::new(RatePair::new(1 << 20, 0)),
            torrent: Arc::new(RatePair::new(64 * 1024, 0)),
        };
        assert_eq!(t.chunk(Direction::Download, 65536), 3276);
        t.reserve(Direction::Download, 16 * 1024 + 32 * 1024);
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
                    let mut wakes = 0u32;
                    while start.elapsed() < run_for {
                        // Reserve a chunk, sleep once for it, move it.
                        let n = t.chunk(Direction::Download, 64 * 1024) as u64;
                        let w = t.reserve(Direction::Download, n);
                        if !w.is_zero() {
                            std::thread::sleep(w);
                            wakes += 1;
                        }
                        moved.fetch_add(n, Ordering::Relaxed);
                    }
                    wakes
                })
            })
            .collect();
        let mut wakes = 0;
        for h in handles {
            wakes += h.join().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let got = moved.load(Ordering::Relaxed) as f64 / secs;
        // At most one sleep per 64 KiB chunk (no thread wakes for nothing).
        let chunks = (moved.load(Ordering::Relaxed) / (64 * 1024)) as u32;
        assert!(wakes <= chunks + 4, "{wakes} sleeps for {chunks} chunks");
        // One burst (0.1 s) plus one chunk per thread may run ahead.
        assert!(
            got > rate as f64 * 0.9 && got < rate as f64 * 1.25,
            "{got} B/s for a limit of {rate}"
        );
    }
}
