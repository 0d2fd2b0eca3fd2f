//! Events: what happened in a session, for embedders that would rather
//! wait than poll ([`Session::events`](crate::Session::events)).
//!
//! Every subscriber gets its own bounded channel
//! ([`EVENT_QUEUE`] events). A subscriber that falls that far behind loses
//! the newest events (each send is a `try_send`), never slows the engine
//! down and never makes it hold more memory; a dropped receiver is
//! forgotten at the next event.

use crate::proto::metainfo::InfoHash;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

/// Events queued per subscriber before new ones are dropped for it.
pub const EVENT_QUEUE: usize = 1024;

/// Something that happened to a torrent of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A torrent (or a magnet link, still without its metadata) was added.
    Added {
        /// The torrent.
        info_hash: InfoHash,
        /// Its name (the magnet's `dn`, or the info-hash, before the metadata).
        name: String,
    },
    /// A magnet link's info dictionary arrived and matched its info-hash;
    /// the torrent now checks its data and downloads.
    MetadataReceived {
        /// The torrent.
        info_hash: InfoHash,
        /// Its name, from the info dictionary.
        name: String,
    },
    /// The start-up check (or the resume data) is done.
    Checked {
        /// The torrent.
        info_hash: InfoHash,
        /// Pieces verified.
        pieces_have: u32,
        /// Pieces in all.
        pieces_total: u32,
    },
    /// The last missing piece was verified: the torrent is complete.
    Completed {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// The torrent stopped on an error (phase `Failed`) or stalled (phase
    /// `Stalled`: retried by itself).
    Error {
        /// The torrent.
        info_hash: InfoHash,
        /// What went wrong.
        message: String,
        /// Whether it is retried (a full disk) rather than final.
        stalled: bool,
    },
    /// The torrent was removed from the session.
    Removed {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// The torrent was paused.
    Paused {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// The torrent was resumed.
    Resumed {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// An announce round to the torrent's trackers ended.
    TrackerAnnounce {
        /// The torrent.
        info_hash: InfoHash,
        /// The tracker that answered (or was tried last).
        url: Option<String>,
        /// Peers it returned.
        peers: usize,
        /// The error, when the round failed.
        error: Option<String>,
    },
}

impl Event {
    /// The torrent the event is about.
    pub fn info_hash(&self) -> InfoHash {
        match self {
            Event::Added { info_hash, .. }
            | Event::MetadataReceived { info_hash, .. }
            | Event::Checked { info_hash, .. }
            | Event::Completed { info_hash }
            | Event::Error { info_hash, .. }
            | Event::Removed { info_hash }
            | Event::Paused { info_hash }
            | Event::Resumed { info_hash }
            | Event::TrackerAnnounce { info_hash, .. } => *info_hash,
        }
    }
}

/// The subscribers of a session.
#[derive(Default)]
pub(crate) struct EventBus {
    subscribers: Mutex<Vec<Sender<Event>>>,
}

impl EventBus {
    /// A new subscriber.
    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        self.subscribers.lock().push(tx);
        rx
    }

    /// Give `event` to every subscriber that has room; forget the gone ones.
    pub(crate) fn publish(&self, event: Event) {
        let mut subs = self.subscribers.lock();
        if subs.is_empty() {
            return;
        }
        subs.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn every_subscriber_gets_every_event() {
        let bus = EventBus::default();
        let (a, b) = (bus.subscribe(), bus.subscribe());
        bus.publish(Event::Completed { info_hash: ih(1) });
        assert_eq!(a.try_recv(), Ok(Event::Completed { info_hash: ih(1) }));
        assert_eq!(b.try_recv(), Ok(Event::Completed { info_hash: ih(1) }));
    }

    #[test]
    fn a_slow_subscriber_loses_the_newest_and_others_go_on() {
        let bus = EventBus::default();
        let slow = bus.subscribe();
        let fast = bus.subscribe();
        for i in 0..EVENT_QUEUE + 10 {
            bus.publish(Event::Removed {
                info_hash: ih((i % 250) as u8),
            });
            assert!(fast.try_recv().is_ok());
        }
        assert_eq!(slow.len(), EVENT_QUEUE);
        assert_eq!(slow.try_recv(), Ok(Event::Removed { info_hash: ih(0) }));
    }

    #[test]
    fn a_dropped_subscriber_is_forgotten() {
        let bus = EventBus::default();
        drop(bus.subscribe());
        let kept = bus.subscribe();
        bus.publish(Event::Paused { info_hash: ih(2) });
        assert_eq!(bus.subscribers.lock().len(), 1);
        assert_eq!(kept.len(), 1);
    }
}
