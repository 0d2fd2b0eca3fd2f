//! The request pipeline of one connection: how many blocks we keep
//! requested from a peer.
//!
//! Too few and the link idles between a block's arrival and the next
//! request (each refill crosses two threads and the socket); too many and
//! a slow peer sits on blocks that others could send. Like TCP, a new
//! connection starts in *slow start*: the depth grows by one block for
//! every block received, so it doubles every round trip, until a one-second
//! tick brings less than 1/8 more data than the tick before (the link, not
//! the pipeline, is the limit) or the cap is reached. From then on it
//! follows the measured rate: about two seconds of data in flight.
//!
//! Measured on loopback (1 GiB, one seeder): starting at a fixed 64 blocks
//! and following the rate only from the first tick, the first second ran
//! at about 100 MB/s (one 1 MiB flight per round trip), then 700 MB/s;
//! with slow start the whole transfer runs at the second speed.

use crate::proto::wire::BLOCK_SIZE;

/// Depth of a new connection: 1 MiB.
pub const START_DEPTH: usize = 64;
/// Least depth a connection is held to.
pub const MIN_DEPTH: usize = 16;
/// Fewest blocks a refill sends (unless nothing is outstanding): requests
/// go out in batches, not one per block received.
pub const MIN_BATCH: usize = 4;
/// Most blocks requested from one peer (8 MiB).
pub const MAX_DEPTH: usize = 500;

/// The pipeline state of one connection.
#[derive(Debug, Clone)]
pub struct Pipeline {
    depth: usize,
    slow_start: bool,
    /// Bytes received in the last tick.
    last_delta: u64,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            depth: START_DEPTH,
            slow_start: true,
            last_delta: 0,
        }
    }
}

impl Pipeline {
    /// Blocks to keep requested now.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// A block we requested arrived.
    pub fn on_block(&mut self) {
        if self.slow_start {
            self.depth = (self.depth + 1).min(MAX_DEPTH);
        }
    }

    /// The once-a-second tick: `delta` bytes arrived since the last one,
    /// `rate` is the connection's smoothed download rate (bytes a second).
    pub fn on_tick(&mut self, delta: u64, rate: u64) {
        let by_rate = (rate.saturating_mul(2) / u64::from(BLOCK_SIZE))
            .clamp(MIN_DEPTH as u64, MAX_DEPTH as u64) as usize;
        if self.slow_start {
            if self.depth >= MAX_DEPTH
                || (self.last_delta > 0 && delta < self.last_delta + self.last_delta / 8)
            {
                self.slow_start = false;
            }
            self.depth = self.depth.max(by_rate);
        } else {
            self.depth = by_rate;
        }
        self.last_delta = delta;
    }

    /// Whether it is still in slow start.
    #[cfg(test)]
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn slow_start_grows_a_block_per_block_up_to_the_cap() {
        let mut p = Pipeline::default();
        assert_eq!(p.depth(), START_DEPTH);
        for _ in 0..10 {
            p.on_block();
        }
        assert_eq!(p.depth(), START_DEPTH + 10);
        for _ in 0..10_000 {
            p.on_block();
        }
        assert_eq!(p.depth(), MAX_DEPTH);
        // At the cap, the next tick ends slow start.
        p.on_tick(500 * MB, 500 * MB);
        assert!(!p.in_slow_start());
    }

    #[test]
    fn slow_start_ends_when_the_rate_stops_growing_then_follows_the_rate() {
        let mut p = Pipeline::default();
        // A 1 MB/s peer: 64 blocks a second.
        for _ in 0..64 {
            p.on_block();
        }
        p.on_tick(MB, MB / 2);
        assert!(p.in_slow_start(), "one tick cannot tell a trend");
        for _ in 0..64 {
            p.on_block();
        }
        p.on_tick(MB, 3 * MB / 4); // no growth: the link is the limit
        assert!(!p.in_slow_start());
        // Depth now follows the rate: 2 s of data, in blocks.
        p.on_tick(MB, MB);
        assert_eq!(p.depth(), (2 * MB / u64::from(BLOCK_SIZE)) as usize);
        // Blocks no longer grow it.
        p.on_block();
        assert_eq!(p.depth(), 128);
    }

    #[test]
    fn growing_rate_keeps_slow_start_and_the_depth_never_drops_during_it() {
        let mut p = Pipeline::default();
        for _ in 0..200 {
            p.on_block();
        }
        p.on_tick(10 * MB, 0);
        // A smoothed rate that lags behind does not shrink the pipeline.
        assert_eq!(p.depth(), START_DEPTH + 200);
        // Still growing (20 MB after 10 MB): slow start goes on, and a
        // rate worth more than the depth raises it.
        p.on_tick(20 * MB, 5 * MB);
        assert!(p.in_slow_start());
        assert_eq!(p.depth(), MAX_DEPTH);
    }

    #[test]
    fn a_silent_or_slow_peer_is_held_to_the_minimum() {
        let mut p = Pipeline::default();
        p.on_tick(0, 0);
        p.on_tick(0, 0);
        // No data at all: slow start has nothing to compare yet...
        assert!(p.in_slow_start());
        // ...and a slow peer that stops growing leaves it.
        p.on_tick(16 * 1024, 8 * 1024);
        p.on_tick(16 * 1024, 8 * 1024);
        assert!(!p.in_slow_start());
        p.on_tick(16 * 1024, 8 * 1024);
        assert_eq!(p.depth(), MIN_DEPTH);
    }
}
