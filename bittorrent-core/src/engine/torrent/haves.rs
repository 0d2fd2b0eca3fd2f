//! Announcing verified pieces in batches (issue 31).
//!
//! Each verified piece is news for every peer. Sent one command at a time,
//! a `have` woke each peer thread that lacked the piece, which wrote a
//! 9-byte message that woke the peer's own thread, which handed it to its
//! torrent thread: in a 50-peer flash crowd, a wake-up per piece per peer
//! on both sides, most of a leecher's context switches. Now a `have` for a
//! peer that lacks the piece waits in its connection's [`Conn`] entry and
//! goes out with the next command for that peer (requests, interest, a
//! choke), or, at the latest, [`HAVE_DELAY`] after the oldest one waiting,
//! all of them as one `PeerCmd::Haves` (written as one socket write, read
//! by the peer as one event). That flush wakes only an idle peer thread: a
//! streaming one takes it with its next socket wake-up, within its bounded
//! wait (`STREAMING_WAIT`, 250 ms; 40 ms with a receive low-water mark),
//! so a peer learns of our piece within about 100 ms, 350 ms at worst.
//! (libtorrent writes each `have` at once into the peer's send buffer, but
//! one network thread serves all peers, so that costs it no wake-up.)
//!
//! A `have` for a peer that has the piece is news no one waits for: it goes
//! out quietly with the thread's next wake-up (`Torrent::send_quiet`).

use super::*;

/// Longest a `have` waits for other news to go out with.
pub(super) const HAVE_DELAY: Duration = Duration::from_millis(100);
/// `have`s waiting for one peer at most: past it, they go out at once.
const HAVE_BATCH_MAX: usize = 256;

/// When the `have`s waiting (any peer's) are due.
#[derive(Debug, Default)]
pub(super) struct HaveClock {
    due: Option<Instant>,
}

impl HaveClock {
    /// A `have` was queued at `now`: due `HAVE_DELAY` after the oldest.
    pub(super) fn queued(&mut self, now: Instant) {
        if self.due.is_none() {
            self.due = Some(now + HAVE_DELAY);
        }
    }

    /// When the loop must wake to send them (`None`: none waiting).
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether they are due at `now`; if so, the clock restarts with the
    /// next one queued.
    pub(super) fn take_due(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|d| now >= d) {
            self.due = None;
            return true;
        }
        false
    }
}

/// The `have`s waiting for one peer (in its `Conn`).
#[derive(Debug, Default)]
pub(super) struct PendingHaves(Vec<u32>);

impl PendingHaves {
    /// Queue piece `i`; whether the batch is full (send it now).
    pub(super) fn push(&mut self, i: u32) -> bool {
        self.0.push(i);
        self.0.len() >= HAVE_BATCH_MAX
    }

    /// The command for what waits (emptied), if anything does.
    pub(super) fn take(&mut self) -> Option<PeerCmd> {
        match self.0.len() {
            0 => None,
            1 => self.0.pop().map(PeerCmd::Have),
            _ => Some(PeerCmd::Haves(std::mem::take(&mut self.0))),
        }
    }
}

impl Torrent {
    /// Tell peer `key`, which lacks piece `i`, that we have it: with its
    /// next command, or `HAVE_DELAY` from now at the latest.
    pub(super) fn announce_have(&mut self, key: PeerKey, i: u32) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        self.have_clock.queued(Instant::now());
        if c.haves.push(i) {
            if let Some(cmd) = c.haves.take() {
                self.send_lazy(key, cmd);
            }
        }
    }

    /// Send the `have`s that are due (every peer's: the oldest waited
    /// `HAVE_DELAY`), waking only the peer threads that wait idle.
    pub(super) fn send_due_haves(&mut self, now: Instant) {
        if !self.have_clock.take_due(now) {
            return;
        }
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            if let Some(cmd) = self.conns.get_mut(&k).and_then(|c| c.haves.take()) {
                self.send_lazy(k, cmd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_haves_go_as_one_command() {
        let mut p = PendingHaves::default();
        assert!(p.take().is_none());
        assert!(!p.push(4));
        assert!(matches!(p.take(), Some(PeerCmd::Have(4))));
        assert!(p.take().is_none());
        for i in 0..3 {
            assert!(!p.push(i));
        }
        match p.take() {
            Some(PeerCmd::Haves(v)) => assert_eq!(v, vec![0, 1, 2]),
            other => panic!("expected Haves, got {other:?}"),
        }
        assert!(p.take().is_none());
    }

    #[test]
    fn a_full_batch_asks_to_go_at_once() {
        let mut p = PendingHaves::default();
        let full = (0..HAVE_BATCH_MAX as u32)
            .map(|i| p.push(i))
            .collect::<Vec<_>>();
        assert!(full[..HAVE_BATCH_MAX - 1].iter().all(|f| !f));
        assert!(full[HAVE_BATCH_MAX - 1]);
        match p.take() {
            Some(PeerCmd::Haves(v)) => assert_eq!(v.len(), HAVE_BATCH_MAX),
            other => panic!("expected Haves, got {other:?}"),
        }
    }

    #[test]
    fn haves_are_due_a_delay_after_the_oldest() {
        let t0 = Instant::now();
        let mut clock = HaveClock::default();
        assert_eq!(clock.due(), None);
        assert!(!clock.take_due(t0 + Duration::from_secs(10)));
        clock.queued(t0);
        // A later `have` does not push the deadline back.
        clock.queued(t0 + HAVE_DELAY / 2);
        assert_eq!(clock.due(), Some(t0 + HAVE_DELAY));
        assert!(!clock.take_due(t0 + HAVE_DELAY / 2));
        assert!(clock.take_due(t0 + HAVE_DELAY));
        assert_eq!(clock.due(), None);
        // The next one starts a new delay.
        clock.queued(t0 + 2 * HAVE_DELAY);
        assert_eq!(clock.due(), Some(t0 + 3 * HAVE_DELAY));
    }
}
