//! A uTP connection's congestion control (BEP 29), pure and clock-injected: every method that
//! needs the time takes `now`, so the tests drive the clock. Driven by `conn.rs`, one per
//! connection.
//!
//! - [`Rtt`]: `rtt` and `rtt_var` from ACKs of packets sent once, and the retransmission
//!   timeout `max(rtt + 4 * rtt_var, 500 ms)` (1 s before any sample), doubled for each
//!   consecutive timeout up to [`MAX_TIMEOUT`].
//! - [`BaseDelay`]: the sliding minimum of the one-way delay samples (the peer's
//!   `timestamp_difference_microseconds` of our packets) over the last two minutes, kept as
//!   two one-minute buckets. The samples carry the two clocks' offset and wrap around
//!   `u32`, so they are compared with wrapping arithmetic.
//! - [`Ledbat`]: the send window `max_window` in bytes. Per ACK of `acked` bytes:
//!   `max_window += MAX_CWND_INCREASE_BYTES_PER_RTT * off_target / TARGET * acked / max_window`
//!   with `off_target = TARGET - our_delay` (so over one RTT, a full window ACKed, the window
//!   moves by at most 3,000 bytes), after a slow start (the window grows by the bytes ACKed,
//!   doubling per RTT) that ends at the first loss or when `our_delay` reaches 90 % of the
//!   target (then the window is halved: the delay seen was caused by the window of one RTT
//!   before, half the current one). A loss halves the window; a timeout sets it to the smallest packet (150 bytes).
//!   The window stays within [`MIN_WINDOW`] ..= [`MAX_WINDOW`].

use std::time::{Duration, Instant};

/// LEDBAT's target queueing delay (BEP 29's `CCONTROL_TARGET`), microseconds.
pub const TARGET_US: i64 = 100_000;
/// Most the window grows per RTT when the delay is zero, bytes.
pub const MAX_CWND_INCREASE_BYTES_PER_RTT: i64 = 3_000;
/// The smallest window: the smallest uTP packet (BEP 29).
pub const MIN_WINDOW: u32 = 150;
/// The largest window this side keeps in flight, bytes (a bound on memory per connection).
pub const MAX_WINDOW: u32 = 4 << 20;
/// The window a connection starts with: two full-size packets.
pub const INITIAL_WINDOW: u32 = 2 * 1_400;
/// The timeout before any RTT sample.
pub const INITIAL_TIMEOUT: Duration = Duration::from_millis(1_000);
/// The smallest timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(500);
/// The largest timeout, however many timeouts in a row.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the base delay remembers a sample: two buckets of this length.
pub const BASE_DELAY_BUCKET: Duration = Duration::from_secs(60);

/// Round-trip time and retransmission timeout (BEP 29 "timeouts").
#[derive(Debug, Clone, Default)]
pub struct Rtt {
    /// (rtt, rtt_var) in microseconds, once there is a sample.
    est: Option<(u64, u64)>,
    /// Consecutive timeouts since the last sample.
    backoff: u32,
}

impl Rtt {
    /// Feed the RTT of a packet that was sent once and is now ACKed.
    pub fn sample(&mut self, packet_rtt: Duration) {
        let s = u64::try_from(packet_rtt.as_micros()).unwrap_or(u64::MAX / 2);
        let s = s.min(MAX_TIMEOUT.as_micros() as u64);
        self.est = Some(match self.est {
            None => (s, s / 2),
            Some((rtt, var)) => {
                let delta = rtt.abs_diff(s);
                // rtt_var += (|delta| - rtt_var) / 4; rtt += (s - rtt) / 8
                let var = (var * 3 + delta) / 4;
                let rtt = (rtt * 7 + s) / 8;
                (rtt, var)
            }
        });
        self.backoff = 0;
    }

    /// The smoothed RTT, if there was a sample.
    pub fn rtt(&self) -> Option<Duration> {
        self.est.map(|(r, _)| Duration::from_micros(r))
    }

    /// A packet timed out: the next timeout is twice as long.
    pub fn on_timeout(&mut self) {
        self.backoff = (self.backoff + 1).min(16);
    }

    /// The current retransmission timeout.
    pub fn timeout(&self) -> Duration {
        let base = match self.est {
            None => INITIAL_TIMEOUT,
            Some((rtt, var)) => Duration::from_micros(rtt + 4 * var).max(MIN_TIMEOUT),
        };
        base.saturating_mul(1 << self.backoff).min(MAX_TIMEOUT)
    }
}

/// `a` is before `b` on the wrapping `u32` circle.
fn wrapping_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// The sliding minimum of one-way delay samples over the last two minutes.
#[derive(Debug, Clone, Default)]
pub struct BaseDelay {
    /// (start of the bucket, its minimum): the current bucket and the one before.
    current: Option<(Instant, u32)>,
    previous: Option<u32>,
}

impl BaseDelay {
    /// Record a delay sample (microseconds, clock offset included) taken at `now`, and
    /// return `our_delay`: how far it is above the base delay, in microseconds.
    pub fn sample(&mut self, now: Instant, delay_us: u32) -> u32 {
        self.current = Some(match self.current {
            Some((start, min)) if now.saturating_duration_since(start) < BASE_DELAY_BUCKET => (
                start,
                if wrapping_lt(delay_us, min) {
                    delay_us
                } else {
                    min
                },
            ),
            Some((start, min)) => {
                // One bucket passed: the current becomes the previous; two or more: both go.
                let gap = now.saturating_duration_since(start);
                self.previous = (gap < 2 * BASE_DELAY_BUCKET).then_some(min);
                (now, delay_us)
            }
            None => (now, delay_us),
        });
        delay_us.wrapping_sub(self.base().unwrap_or(delay_us))
    }

    /// The base delay: the lowest sample of the current and the previous minute.
    pub fn base(&self) -> Option<u32> {
        let cur = self.current.map(|(_, m)| m)?;
        Some(match self.previous {
            Some(p) if wrapping_lt(p, cur) => p,
            _ => cur,
        })
    }
}

/// LEDBAT's send window (see the module docs).
#[derive(Debug, Clone)]
pub struct Ledbat {
    max_window: u32,
    slow_start: bool,
}

impl Default for Ledbat {
    fn default() -> Self {
        Ledbat {
            max_window: INITIAL_WINDOW,
            slow_start: true,
        }
    }
}

impl Ledbat {
    #[cfg_attr(not(test), allow(dead_code))] // used by tests
    /// The window: bytes that may be in flight.
    pub fn window(&self) -> u32 {
        self.max_window
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests
    /// Still in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// `acked` bytes were ACKed; `our_delay_us` is the latest queueing delay
    /// ([`BaseDelay::sample`]).
    pub fn on_ack(&mut self, acked: u32, our_delay_us: u32) {
        let delay = i64::from(our_delay_us);
        if self.slow_start && delay * 10 >= TARGET_US * 9 {
            // The delay that ends slow start was caused by the window of one RTT ago; the
            // window has doubled since. Without the cut the queue overshoots the target by
            // that second half (measured on a 20 Mbit/s link with a deep queue,
            // `scripts/ledbat-lab.py`: 180 ms, then 3-4 ms less per second), and LEDBAT's
            // at most 3,000 bytes per RTT takes tens of seconds to drain it.
            self.slow_start = false;
            self.max_window = (self.max_window / 2).max(MIN_WINDOW);
            return;
        }
        let w = i64::from(self.max_window);
        let next = if self.slow_start {
            w + i64::from(acked)
        } else {
            let off_target = TARGET_US - delay;
            let acked = i64::from(acked).min(w);
            // MAX_CWND_INCREASE * (off_target / TARGET) * (acked / max_window), in integers.
            let gain = (i128::from(MAX_CWND_INCREASE_BYTES_PER_RTT)
                * i128::from(off_target)
                * i128::from(acked))
                / (i128::from(TARGET_US) * i128::from(w.max(1)));
            w + i64::try_from(gain).unwrap_or(0)
        };
        self.max_window = next.clamp(i64::from(MIN_WINDOW), i64::from(MAX_WINDOW)) as u32;
    }

    /// A packet was lost (a hole reported by selective ACKs or duplicate ACKs): halve the
    /// window, once per RTT at most (the caller's rule), and leave slow start.
    pub fn on_loss(&mut self) {
        self.slow_start = false;
        self.max_window = (self.max_window / 2).max(MIN_WINDOW);
    }

    /// The retransmission timer fired: one smallest packet in flight.
    pub fn on_timeout(&mut self) {
        self.slow_start = false;
        self.max_window = MIN_WINDOW;
    }

    /// Whether a packet of `size` bytes may go now, with `in_flight` bytes unACKed and the
    /// peer advertising `peer_window`. One packet may always go when nothing is in flight
    /// (BEP 29 allows exceeding a window smaller than a packet).
    pub fn can_send(&self, in_flight: u32, size: u32, peer_window: u32) -> bool {
        in_flight == 0 || in_flight.saturating_add(size) <= self.max_window.min(peer_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rtt_follows_the_bep_formula() {
        let mut r = Rtt::default();
        assert_eq!(r.timeout(), INITIAL_TIMEOUT);
        assert_eq!(r.rtt(), None);
        r.sample(200 * MS); // rtt 200, var 100: 200 + 400
        assert_eq!(r.timeout(), 600 * MS);
        r.sample(120 * MS); // delta 80: var 100 + (80 - 100)/4 = 95; rtt 200 + (120-200)/8 = 190
        assert_eq!(r.rtt(), Some(190 * MS));
        assert_eq!(r.timeout(), (190 + 4 * 95) * MS);
        // A steady 10 ms path bottoms out at the 500 ms floor.
        for _ in 0..100 {
            r.sample(10 * MS);
        }
        assert!(r.rtt().unwrap() < 11 * MS);
        assert_eq!(r.timeout(), MIN_TIMEOUT);
    }

    #[test]
    fn consecutive_timeouts_double_until_the_cap_and_a_sample_resets() {
        let mut r = Rtt::default();
        r.sample(300 * MS); // 300 + 600 = 900 ms
        r.on_timeout();
        assert_eq!(r.timeout(), 1_800 * MS);
        r.on_timeout();
        assert_eq!(r.timeout(), 3_600 * MS);
        for _ in 0..40 {
            r.on_timeout();
        }
        assert_eq!(r.timeout(), MAX_TIMEOUT);
        r.sample(300 * MS);
        assert!(r.timeout() < 2_000 * MS);
        // An absurd sample is bounded, not an overflow.
        r.sample(Duration::from_secs(u64::MAX / 4));
        assert_eq!(r.timeout(), MAX_TIMEOUT);
    }

    #[test]
    fn base_delay_is_the_minimum_of_the_last_two_minutes() {
        let t0 = Instant::now();
        let mut b = BaseDelay::default();
        assert_eq!(b.base(), None);
        assert_eq!(b.sample(t0, 50_000), 0);
        assert_eq!(b.sample(t0 + 10 * MS, 80_000), 30_000);
        assert_eq!(b.sample(t0 + 20 * MS, 40_000), 0);
        // Next minute: the old minimum (40 ms) still counts.
        assert_eq!(b.sample(t0 + Duration::from_secs(70), 90_000), 50_000);
        assert_eq!(b.base(), Some(40_000));
        // Two minutes later it is forgotten: 90 ms is the base now.
        assert_eq!(b.sample(t0 + Duration::from_secs(130), 95_000), 5_000);
        assert_eq!(b.base(), Some(90_000));
        // After a long silence both buckets go.
        assert_eq!(b.sample(t0 + Duration::from_secs(600), 120_000), 0);
        assert_eq!(b.base(), Some(120_000));
    }

    #[test]
    fn base_delay_survives_clock_offsets_that_wrap() {
        let t0 = Instant::now();
        let mut b = BaseDelay::default();
        // The two clocks' offset puts the samples around u32::MAX.
        b.sample(t0, u32::MAX - 10_000);
        assert_eq!(b.sample(t0 + MS, 5_000), 15_001);
        assert_eq!(b.sample(t0 + 2 * MS, u32::MAX - 20_000), 0);
        assert_eq!(b.base(), Some(u32::MAX - 20_000));
    }

    #[test]
    fn slow_start_doubles_per_rtt_until_the_delay_nears_the_target() {
        let mut l = Ledbat::default();
        assert_eq!(l.window(), INITIAL_WINDOW);
        for _ in 0..3 {
            let w = l.window();
            l.on_ack(w, 0); // a whole window ACKed in one RTT
            assert_eq!(l.window(), 2 * w);
        }
        assert!(l.in_slow_start());
        l.on_ack(1_400, 89_000);
        assert!(l.in_slow_start());
        let w = l.window();
        l.on_ack(1_400, 90_000);
        assert!(!l.in_slow_start());
        // Leaving slow start on delay halves the window (it doubled since the delay's cause).
        assert_eq!(l.window(), w / 2);
        // From then on the window moves linearly: at the target, not at all.
        l.on_ack(1_400, 100_000);
        assert_eq!(l.window(), w / 2);
    }

    #[test]
    fn ledbat_grows_below_the_target_and_shrinks_above_it() {
        let mut l = Ledbat::default();
        l.on_loss(); // out of slow start
        let w = 100_000u32;
        l.max_window = w;
        // Zero delay, a whole window ACKed: + 3,000 bytes in one RTT.
        for _ in 0..100 {
            l.on_ack(w / 100, 0);
        }
        assert!(
            (w + 2_900..=w + 3_000).contains(&l.window()),
            "{}",
            l.window()
        );
        // At the target: no change.
        let w = l.window();
        l.on_ack(w, 100_000);
        assert_eq!(l.window(), w);
        // 300 ms queueing delay: off_target = -2 targets, - 6,000 bytes per RTT.
        l.on_ack(w, 300_000);
        assert_eq!(l.window(), w - 6_000);
        // Half the target: + 1,500.
        let w = l.window();
        l.on_ack(w, 50_000);
        assert_eq!(l.window(), w + 1_500);
    }

    #[test]
    fn ledbat_stays_within_its_bounds() {
        let mut l = Ledbat::default();
        l.on_loss();
        for _ in 0..10_000 {
            l.on_ack(MAX_WINDOW, u32::MAX); // huge delay
        }
        assert_eq!(l.window(), MIN_WINDOW);
        let mut l = Ledbat::default();
        for _ in 0..100 {
            l.on_ack(MAX_WINDOW, 0); // slow start with huge ACKs
        }
        assert_eq!(l.window(), MAX_WINDOW);
    }

    #[test]
    fn loss_halves_and_timeout_resets_to_one_small_packet() {
        let mut l = Ledbat::default();
        l.on_ack(60_000, 0);
        let w = l.window();
        l.on_loss();
        assert_eq!(l.window(), w / 2);
        assert!(!l.in_slow_start());
        l.on_timeout();
        assert_eq!(l.window(), MIN_WINDOW);
        l.on_loss();
        assert_eq!(l.window(), MIN_WINDOW);
    }

    #[test]
    fn sending_respects_both_windows() {
        let mut l = Ledbat::default();
        l.on_ack(10_000, 0); // 12,800
        assert!(l.can_send(10_000, 1_400, 1 << 20));
        assert!(!l.can_send(12_000, 1_400, 1 << 20));
        // The peer's advertised window caps it too; zero window: only one packet in flight.
        assert!(!l.can_send(1_000, 1_400, 2_000));
        assert!(!l.can_send(1, 1_400, 0));
        assert!(l.can_send(0, 1_400, 0));
        l.on_timeout();
        assert!(l.can_send(0, 1_400, 1 << 20));
        assert!(!l.can_send(150, 1_400, 1 << 20));
    }
}
