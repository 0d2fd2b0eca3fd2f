//! The request pipeline of one connection: how many blocks we keep
//! requested from a peer.
//!
//! Too few and the link idles between a block's arrival and the next
//! request (and on a long fat link the pipeline, not the link, sets the
//! rate: at most `depth / RTT`); too many and a slow peer sits on blocks
//! that others could send. Like TCP, a new connection starts in *slow
//! start*: the depth grows by one block for every block received, so it
//! doubles every round trip, until a one-second tick brings less than 1/8
//! more data than the tick before (the link, not the pipeline, is the
//! limit) or the cap is reached. From then on it follows the measured
//! rate times the measured round-trip time:
//!
//! ```text
//! depth = min(rate x 2 s, 8 MiB) + rate x 2 x RTT, at least MIN_DEPTH
//!         blocks, at most MAX_PIPELINE_BYTES and at most the peer's `reqq`
//! ```
//!
//! `2 x RTT` keeps twice the bandwidth-delay product in flight, so a
//! pipeline-limited connection can still double its rate every tick. The
//! first term covers the time a refill takes to cross the torrent thread,
//! the peer thread and the socket, and the lag of the rate estimate: it is
//! all there is on a LAN, and it is what this pipeline kept before it knew
//! the RTT (2 s of data, at most 500 blocks: loopback ran at 700 MB/s with
//! it), so a LAN keeps the memory it used.
//!
//! The RTT is measured by one probe at a time: the time from sending a
//! request to receiving its block, kept as the least seen on the
//! connection. Later samples also count the time a request waits in the
//! peer's queue behind the ones before it (which grows with the depth), so
//! only the least is the path's round trip; a first request to an idle
//! peer measures it.
//!
//! The torrent thread also bounds all pipelines of a torrent together by
//! its piece-buffer budget: the pieces requests touch must fit it
//! (`PieceBuffers::pieces_room`), and each peer keeps at most its share of
//! it (`PieceBuffers::fair_share`).
//!
//! Measured on loopback (1 GiB, one seeder): starting at a fixed 64 blocks
//! and following the rate only from the first tick, the first second ran
//! at about 100 MB/s (one 1 MiB flight per round trip), then 700 MB/s;
//! with slow start the whole transfer runs at the second speed.

use crate::proto::wire::{BlockRef, BLOCK_SIZE};
use std::time::{Duration, Instant};

/// Depth of a new connection: 1 MiB.
pub const START_DEPTH: usize = 64;
/// Least depth a connection is held to.
pub const MIN_DEPTH: usize = 16;
/// Most bytes requested from one peer: 48 MiB, a 1 Gbit/s link with a
/// 300 ms round trip (37.5 MB in flight) and a quarter to spare.
pub const MAX_PIPELINE_BYTES: u64 = 48 << 20;
/// [`MAX_PIPELINE_BYTES`] in blocks (3,072).
pub const MAX_DEPTH: usize = (MAX_PIPELINE_BYTES / BLOCK_SIZE as u64) as usize;
/// Data kept in flight beyond twice the bandwidth-delay product: this
/// long at the measured rate...
pub const BASE_TIME: Duration = Duration::from_secs(2);
/// ...but at most this many bytes (8 MiB, 500 blocks).
pub const BASE_BYTES: u64 = 500 * BLOCK_SIZE as u64;
/// Outstanding requests assumed for a peer that advertises no `reqq`
/// (what we kept in flight before `reqq` was read; libtorrent's default
/// `max_out_request_queue`).
pub const DEFAULT_REQQ: usize = 500;
/// A probe unanswered this long is dropped (choked, cancelled, lost).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Most blocks [`budget_floor`] keeps requested from a peer while the piece
/// buffers are spent: 512 KiB, half of a 1 MiB piece.
pub const MAX_FLOOR: usize = 2 * MIN_DEPTH;

/// Blocks every peer may keep requested however small its share of the
/// piece buffers (issue 31): half a piece, within `MIN_DEPTH..=MAX_FLOOR`.
///
/// Only within pieces the budget allows (`PieceBuffers::pieces_room`): the
/// floor never starts a piece the budget has no room for. A floor lets the
/// peer thread take a whole batch per wake-up while the next is on its
/// way: with 16 blocks (256 KiB) from each of 32 seeders, every batch was
/// read at once and the thread then slept again until the torrent thread
/// had sent the next one, two sleeps per 256 KiB.
pub fn budget_floor(piece_length: u64) -> usize {
    let blocks = usize::try_from(piece_length / u64::from(BLOCK_SIZE)).unwrap_or(usize::MAX);
    (blocks / 2).clamp(MIN_DEPTH, MAX_FLOOR)
}

/// Fewest blocks a refill sends (unless nothing is outstanding): requests
/// go out in batches, not one per block received.
pub const MIN_BATCH: usize = 4;

/// The pipeline state of one connection.
#[derive(Debug, Clone)]
pub struct Pipeline {
    depth: usize,
    slow_start: bool,
    /// Bytes received in the last tick.
    last_delta: u64,
    /// The least request-to-block time seen.
    rtt: Option<Duration>,
    /// The request being timed, and when it was sent.
    probe: Option<(BlockRef, Instant)>,
    /// Most requests the peer accepts (its `reqq`).
    reqq: usize,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            depth: START_DEPTH,
            slow_start: true,
            last_delta: 0,
            rtt: None,
            probe: None,
            reqq: DEFAULT_REQQ,
        }
    }
}

/// Blocks to keep requested for `rate` bytes a second over a path with
/// this round trip: `min(rate x BASE_TIME, BASE_BYTES) + rate x 2 x rtt`,
/// within `MIN_DEPTH..=cap` (`cap` wins over `MIN_DEPTH`).
pub fn depth_for(rate: u64, rtt: Duration, cap: usize) -> usize {
    let per = |t: Duration| u128::from(rate) * t.as_micros() / 1_000_000;
    let base = per(BASE_TIME).min(u128::from(BASE_BYTES));
    let bytes = base + per(rtt.saturating_mul(2));
    let blocks = bytes / u128::from(BLOCK_SIZE);
    let cap = cap.max(1);
    blocks.clamp(MIN_DEPTH.min(cap) as u128, cap as u128) as usize
}

impl Pipeline {
    /// Blocks to keep requested now.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The path's round trip as measured so far.
    #[cfg(test)]
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The most this connection may have requested: our cap and the peer's
    /// `reqq`.
    fn cap(&self) -> usize {
        MAX_DEPTH.min(self.reqq).max(1)
    }

    /// The peer's extended handshake said how many requests it accepts
    /// (`reqq`); `None` leaves [`DEFAULT_REQQ`].
    pub fn set_reqq(&mut self, reqq: Option<u32>) {
        if let Some(r) = reqq {
            self.reqq = usize::try_from(r).unwrap_or(usize::MAX).max(1);
            self.depth = self.depth.min(self.cap());
        }
    }

    /// Requests were sent at `now`: time the first unless a probe is out.
    pub fn on_sent(&mut self, blocks: &[BlockRef], now: Instant) {
        if let (None, Some(b)) = (&self.probe, blocks.first()) {
            self.probe = Some((*b, now));
        }
    }

    /// A block we requested arrived at `now`.
    pub fn on_block(&mut self, b: &BlockRef, now: Instant) {
        if let Some((p, sent)) = self.probe {
            if p == *b {
                let sample = now.saturating_duration_since(sent);
                self.rtt = Some(self.rtt.map_or(sample, |r| r.min(sample)));
                self.probe = None;
            }
        }
        if self.slow_start {
            self.depth = (self.depth + 1).min(self.cap());
        }
    }

    /// The once-a-second tick at `now`: `delta` bytes arrived since the last
    /// one, `rate` is the connection's smoothed download rate (bytes a
    /// second).
    pub fn on_tick(&mut self, delta: u64, rate: u64, now: Instant) {
        if self
            .probe
            .is_some_and(|(_, sent)| now.saturating_duration_since(sent) > PROBE_TIMEOUT)
        {
            self.probe = None;
        }
        let by_rate = depth_for(rate, self.rtt.unwrap_or_default(), self.cap());
        if self.slow_start {
            if self.depth >= self.cap()
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
    const MS: Duration = Duration::from_millis(1);

    fn blk(i: u32) -> BlockRef {
        BlockRef {
            index: i,
            begin: 0,
            length: BLOCK_SIZE,
        }
    }

    /// Feed `n` blocks that were not probed.
    fn blocks(p: &mut Pipeline, n: usize) {
        let now = Instant::now();
        for _ in 0..n {
            p.on_block(&blk(u32::MAX), now);
        }
    }

    #[test]
    fn the_budget_floor_is_half_a_piece_within_bounds() {
        let b = u64::from(BLOCK_SIZE);
        assert_eq!(budget_floor(16 * b), MIN_DEPTH); // 256 KiB pieces
        assert_eq!(budget_floor(48 * b), 24);
        assert_eq!(budget_floor(64 * b), MAX_FLOOR); // 1 MiB pieces
        assert_eq!(budget_floor(1024 * b), MAX_FLOOR); // 16 MiB pieces
        assert_eq!(budget_floor(1), MIN_DEPTH); // a tiny torrent
    }

    #[test]
    fn slow_start_grows_a_block_per_block_up_to_the_cap() {
        let mut p = Pipeline::default();
        p.set_reqq(Some(100_000));
        assert_eq!(p.depth(), START_DEPTH);
        blocks(&mut p, 10);
        assert_eq!(p.depth(), START_DEPTH + 10);
        blocks(&mut p, 10_000);
        assert_eq!(p.depth(), MAX_DEPTH);
        // At the cap, the next tick ends slow start.
        p.on_tick(500 * MB, 500 * MB, Instant::now());
        assert!(!p.in_slow_start());
    }

    #[test]
    fn the_cap_is_48_mib_enough_for_1_gbit_at_300_ms() {
        assert_eq!(MAX_DEPTH, 3072);
        // 1 Gbit/s x 300 ms = 37.5 MB in flight.
        let bdp = 1_000_000_000u64 / 8 * 3 / 10;
        assert!(MAX_PIPELINE_BYTES > bdp);
        // 400 Mbit/s (50 MB/s) at 300 ms: 8 MiB + twice the 15 MB BDP.
        let d = depth_for(50_000_000, 300 * MS, MAX_DEPTH);
        assert_eq!(d, ((BASE_BYTES + 30_000_000) / 16384) as usize);
        assert!(d as u64 * 16384 > 15_000_000 * 2, "twice the BDP");
        // Past the cap: the cap.
        assert_eq!(depth_for(125_000_000, 300 * MS, MAX_DEPTH), MAX_DEPTH);
        // A slow peer, or none measured: the least depth.
        assert_eq!(depth_for(0, 300 * MS, MAX_DEPTH), MIN_DEPTH);
        assert_eq!(depth_for(50_000, Duration::ZERO, MAX_DEPTH), MIN_DEPTH);
    }

    #[test]
    fn depth_grows_with_the_round_trip() {
        let rate = 25 * MB;
        let lan = depth_for(rate, Duration::ZERO, MAX_DEPTH);
        let wan = depth_for(rate, 100 * MS, MAX_DEPTH);
        let far = depth_for(rate, 300 * MS, MAX_DEPTH);
        // No RTT: what the pipeline kept before (2 s of data, <= 500 blocks).
        assert_eq!(lan, 500);
        assert_eq!(depth_for(MB, Duration::ZERO, MAX_DEPTH), 128);
        assert_eq!(wan, ((BASE_BYTES + 5 * MB) / 16384) as usize);
        assert_eq!(far, ((BASE_BYTES + 15 * MB) / 16384) as usize);
        assert!(lan < wan && wan < far);
    }

    #[test]
    fn the_rtt_is_the_least_request_to_block_time() {
        let mut p = Pipeline::default();
        let t0 = Instant::now();
        assert_eq!(p.rtt(), None);
        p.on_sent(&[blk(1), blk(2)], t0);
        // Another batch while the probe is out is not timed.
        p.on_sent(&[blk(3)], t0 + 50 * MS);
        p.on_block(&blk(3), t0 + 120 * MS);
        assert_eq!(p.rtt(), None);
        p.on_block(&blk(1), t0 + 300 * MS);
        assert_eq!(p.rtt(), Some(300 * MS));
        // A later, queued-behind-others sample does not raise it.
        p.on_sent(&[blk(4)], t0 + 400 * MS);
        p.on_block(&blk(4), t0 + 1400 * MS);
        assert_eq!(p.rtt(), Some(300 * MS));
        // A quicker one lowers it.
        p.on_sent(&[blk(5)], t0 + 2000 * MS);
        p.on_block(&blk(5), t0 + 2250 * MS);
        assert_eq!(p.rtt(), Some(250 * MS));
        // A lost probe is given up and a new one timed.
        p.on_sent(&[blk(6)], t0 + 3000 * MS);
        p.on_tick(0, 0, t0 + 3000 * MS + PROBE_TIMEOUT + MS);
        p.on_sent(&[blk(7)], t0 + 30_000 * MS);
        p.on_block(&blk(7), t0 + 30_200 * MS);
        assert_eq!(p.rtt(), Some(200 * MS));
    }

    #[test]
    fn after_slow_start_the_depth_is_rate_times_rtt() {
        let mut p = Pipeline::default();
        p.set_reqq(Some(4000));
        let t0 = Instant::now();
        p.on_sent(&[blk(1)], t0);
        p.on_block(&blk(1), t0 + 300 * MS);
        blocks(&mut p, 64);
        p.on_tick(MB, MB / 2, t0 + Duration::from_secs(1));
        assert!(p.in_slow_start(), "one tick cannot tell a trend");
        blocks(&mut p, 64);
        p.on_tick(MB, 3 * MB / 4, t0 + Duration::from_secs(2)); // the link is the limit
        assert!(!p.in_slow_start());
        p.on_tick(40 * MB, 40 * MB, t0 + Duration::from_secs(3));
        assert_eq!(p.depth(), depth_for(40 * MB, 300 * MS, MAX_DEPTH));
        assert!(p.depth() > 500, "past the old fixed cap: {}", p.depth());
        // Blocks no longer grow it.
        let d = p.depth();
        blocks(&mut p, 10);
        assert_eq!(p.depth(), d);
    }

    #[test]
    fn the_peers_reqq_is_respected() {
        let mut p = Pipeline::default();
        p.set_reqq(Some(250));
        blocks(&mut p, 10_000);
        assert_eq!(p.depth(), 250);
        p.on_tick(100 * MB, 100 * MB, Instant::now());
        assert_eq!(p.depth(), 250);
        // None given: our default assumption.
        let mut q = Pipeline::default();
        q.set_reqq(None);
        blocks(&mut q, 10_000);
        assert_eq!(q.depth(), DEFAULT_REQQ);
        // A large reqq: our own cap.
        let mut r = Pipeline::default();
        r.set_reqq(Some(100_000));
        blocks(&mut r, 10_000);
        assert_eq!(r.depth(), MAX_DEPTH);
        // Zero is taken as one.
        let mut z = Pipeline::default();
        z.set_reqq(Some(0));
        assert_eq!(z.depth(), 1);
    }

    #[test]
    fn growing_rate_keeps_slow_start_and_the_depth_never_drops_during_it() {
        let mut p = Pipeline::default();
        p.set_reqq(Some(4000));
        blocks(&mut p, 200);
        let now = Instant::now();
        p.on_tick(10 * MB, 0, now);
        // A smoothed rate that lags behind does not shrink the pipeline.
        assert_eq!(p.depth(), START_DEPTH + 200);
        // Still growing (20 MB after 10 MB): slow start goes on, and a
        // rate worth more than the depth raises it (2 s of 15 MB/s, at most
        // 8 MiB, with no RTT measured).
        p.on_tick(20 * MB, 15 * MB, now);
        assert!(p.in_slow_start());
        assert_eq!(p.depth(), 500);
    }

    #[test]
    fn a_silent_or_slow_peer_is_held_to_the_minimum() {
        let mut p = Pipeline::default();
        let now = Instant::now();
        p.on_tick(0, 0, now);
        p.on_tick(0, 0, now);
        // No data at all: slow start has nothing to compare yet...
        assert!(p.in_slow_start());
        // ...and a slow peer that stops growing leaves it.
        p.on_tick(16 * 1024, 8 * 1024, now);
        p.on_tick(16 * 1024, 8 * 1024, now);
        assert!(!p.in_slow_start());
        p.on_tick(16 * 1024, 8 * 1024, now);
        assert_eq!(p.depth(), MIN_DEPTH);
    }
}
