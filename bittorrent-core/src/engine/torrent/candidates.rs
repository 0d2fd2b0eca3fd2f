//! Candidates: addresses we may dial, each with its failures and the time
//! of its next try. The torrent thread and the metadata thread of a magnet
//! link share this table and its one back-off rule ([`backoff`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The first re-dial after a failure (then 2 s, 4 s, ... up to [`BACKOFF_CAP`]).
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two dials of one address.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// The wait before re-dialling a peer it makes no sense to see again soon
/// (both seeds, banned, a duplicate connection).
pub(crate) const HOLD_OFF: Duration = Duration::from_secs(300);
/// A connection that lasted this long was a success: the failure count
/// starts again when it ends.
pub(crate) const GOOD_CONNECTION: Duration = Duration::from_secs(60);

/// The one back-off rule: the wait before the next dial of an address
/// that failed `failures` times in a row (1 s, 2 s, 4 s, ... capped).
pub(crate) fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST.saturating_mul(1u32 << shift).min(BACKOFF_CAP)
}

/// An address we may dial.
#[derive(Debug, Clone)]
struct Candidate {
    failures: u32,
    next_try: Instant,
    /// Dialling or connected (not to be dialled again now).
    busy: bool,
}

/// The candidate table (at most `limit` addresses; more are ignored).
#[derive(Debug)]
pub(crate) struct Candidates {
    map: HashMap<SocketAddr, Candidate>,
    limit: usize,
}

impl Candidates {
    pub(crate) fn new(limit: usize) -> Candidates {
        Candidates {
            map: HashMap::new(),
            limit,
        }
    }

    /// Add new addresses, ready at once (known ones keep their state).
    /// Returns how many were new.
    pub(crate) fn add(
        &mut self,
        addrs: impl IntoIterator<Item = SocketAddr>,
        now: Instant,
    ) -> usize {
        let mut n = 0;
        for a in addrs {
            if self.map.len() >= self.limit && !self.map.contains_key(&a) {
                continue;
            }
            self.map.entry(a).or_insert_with(|| {
                n += 1;
                Candidate {
                    failures: 0,
                    next_try: now,
                    busy: false,
                }
            });
        }
        n
    }

    /// Addresses due for a dial (not busy, next try reached, `ok`), at most
    /// `max`, those that failed least first.
    pub(crate) fn ready(
        &self,
        now: Instant,
        max: usize,
        ok: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<SocketAddr> {
        if max == 0 {
            return Vec::new();
        }
        let mut due: Vec<(&SocketAddr, &Candidate)> = self
            .map
            .iter()
            .filter(|(a, c)| !c.busy && c.next_try <= now && ok(a))
            .collect();
        due.sort_by_key(|(_, c)| (c.failures, c.next_try));
        due.into_iter().take(max).map(|(a, _)| *a).collect()
    }

    /// The earliest time an address not busy and `ok` becomes due (the
    /// torrent thread sleeps until then when it has nothing else to do).
    pub(crate) fn next_due(&self, ok: impl Fn(&SocketAddr) -> bool) -> Option<Instant> {
        self.map
            .iter()
            .filter(|(a, c)| !c.busy && ok(a))
            .map(|(_, c)| c.next_try)
            .min()
    }

    /// Being dialled or connected: not ready until [`Candidates::failed`] or
    /// [`Candidates::ended`].
    pub(crate) fn set_busy(&mut self, a: &SocketAddr) {
        if let Some(c) = self.map.get_mut(a) {
            c.busy = true;
        }
    }

    /// A dial (or a connection that gave nothing) failed: back off.
    pub(crate) fn failed(&mut self, a: &SocketAddr, now: Instant) {
        if let Some(c) = self.map.get_mut(a) {
            c.busy = false;
            c.failures = c.failures.saturating_add(1);
            c.next_try = now + backoff(c.failures);
        }
    }

    /// A connection joined (its failures count on until it proves
    /// useful: see [`Candidates::ended`]).
    pub(crate) fn connected(&mut self, a: &SocketAddr) {
        if let Some(c) = self.map.get_mut(a) {
            c.busy = true;
        }
    }

    /// A connection that lasted `lasted` ended: a short one counts as a
    /// failure (back off), a long one starts the count again.
    pub(crate) fn ended(&mut self, a: &SocketAddr, lasted: Duration, now: Instant) {
        if let Some(c) = self.map.get_mut(a) {
            if lasted >= GOOD_CONNECTION {
                c.failures = 0;
            }
            c.busy = false;
            c.failures = c.failures.saturating_add(1);
            c.next_try = now + backoff(c.failures);
        }
    }

    /// Done with for now and worth asking again at once (it gave what it
    /// was asked for; there is more to ask).
    pub(crate) fn release(&mut self, a: &SocketAddr, now: Instant) {
        if let Some(c) = self.map.get_mut(a) {
            c.busy = false;
            c.failures = 0;
            c.next_try = now;
        }
    }

    /// Not worth dialling again for [`HOLD_OFF`].
    pub(crate) fn hold_off(&mut self, a: &SocketAddr, now: Instant) {
        if let Some(c) = self.map.get_mut(a) {
            c.busy = false;
            c.next_try = now + HOLD_OFF;
        }
    }

    /// Every address may be dialled at once (after a pause, a stall).
    pub(crate) fn retry_all(&mut self, now: Instant) {
        for c in self.map.values_mut() {
            c.next_try = now;
        }
    }

    /// Every known address.
    pub(crate) fn addrs(&self) -> impl Iterator<Item = &SocketAddr> {
        self.map.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_back_off_doubles_from_one_second_and_is_capped() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0), BACKOFF_FIRST);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn failed_dials_come_back_after_1_2_4_seconds() {
        let t0 = Instant::now();
        let mut c = Candidates::new(10);
        c.add([addr(1)], t0);
        let mut at = t0;
        for wait in [1, 2, 4] {
            assert_eq!(c.ready(at, 10, |_| true), [addr(1)]);
            c.set_busy(&addr(1));
            assert!(c.ready(at, 10, |_| true).is_empty(), "busy while dialling");
            c.failed(&addr(1), at);
            let due = at + Duration::from_secs(wait);
            assert!(c
                .ready(due - Duration::from_millis(1), 10, |_| true)
                .is_empty());
            assert_eq!(c.ready(due, 10, |_| true), [addr(1)]);
            at = due;
        }
    }

    #[test]
    fn a_long_connection_resets_the_count_a_short_one_backs_off() {
        let t0 = Instant::now();
        let mut c = Candidates::new(10);
        c.add([addr(1), addr(2)], t0);
        for a in [addr(1), addr(2)] {
            c.failed(&a, t0);
            c.failed(&a, t0);
            c.connected(&a);
        }
        c.ended(&addr(1), GOOD_CONNECTION, t0);
        c.ended(&addr(2), Duration::from_secs(1), t0);
        let at = |s| t0 + Duration::from_secs(s);
        // The long one starts again at 1 s; the short one is a third failure.
        assert_eq!(c.ready(at(1), 10, |_| true), [addr(1)]);
        assert_eq!(c.ready(at(3), 10, |_| true), [addr(1)]);
        c.hold_off(&addr(1), at(1));
        assert_eq!(c.ready(at(4), 10, |_| true), [addr(2)]);
        let before_hold_off_ends = at(1) + HOLD_OFF - Duration::from_secs(1);
        assert!(!c
            .ready(before_hold_off_ends, 10, |_| true)
            .contains(&addr(1)));
    }

    #[test]
    fn ready_prefers_fewer_failures_honours_the_filter_and_the_limits() {
        let t0 = Instant::now();
        let mut c = Candidates::new(3);
        assert_eq!(c.add([addr(1), addr(2), addr(3), addr(4)], t0), 3);
        c.failed(&addr(1), t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(c.ready(later, 2, |a| *a != addr(3)), [addr(2), addr(1)]);
        assert!(c.ready(later, 0, |_| true).is_empty());
        c.retry_all(t0);
        assert_eq!(c.ready(t0, 10, |_| true).len(), 3);
        assert_eq!(c.add([addr(2)], t0), 0, "known addresses keep their state");
    }
}
