//! The requests a peer has queued with us (the upload side of a connection),
//! in the order they came, each at most once.
//!
//! Its length is bounded by the connection's `max_upload_queue` (the `reqq`
//! we advertise), checked by the caller before each push. Only the requests
//! are kept (a `BlockRef` each, plus one entry in a set to find duplicates
//! in O(1)): the data is read from disk lazily, a chunk at a time, as the
//! socket drains (`peer::uploads`). So a peer that fills its queue and
//! never reads pins the requests (about 40 bytes each: 160 KiB for 4,096)
//! and one output burst, not the data it asked for.

use crate::proto::wire::BlockRef;
use std::collections::{HashSet, VecDeque};

/// A FIFO of distinct requests.
#[derive(Debug, Default)]
pub(crate) struct RequestQueue {
    order: VecDeque<BlockRef>,
    set: HashSet<BlockRef>,
}

impl RequestQueue {
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub(crate) fn contains(&self, b: &BlockRef) -> bool {
        self.set.contains(b)
    }

    /// Queue `b` unless it is queued already (false then).
    pub(crate) fn push_back(&mut self, b: BlockRef) -> bool {
        if !self.set.insert(b) {
            return false;
        }
        self.order.push_back(b);
        true
    }

    pub(crate) fn front(&self) -> Option<&BlockRef> {
        self.order.front()
    }

    pub(crate) fn pop_front(&mut self) -> Option<BlockRef> {
        let b = self.order.pop_front()?;
        self.set.remove(&b);
        Some(b)
    }

    /// Remove `b` (a cancel); whether it was queued.
    pub(crate) fn remove(&mut self, b: &BlockRef) -> bool {
        if !self.set.remove(b) {
            return false;
        }
        self.order.retain(|q| q != b);
        true
    }

    /// Take every request out, in order (and give the memory back).
    pub(crate) fn take_all(&mut self) -> Vec<BlockRef> {
        self.set = HashSet::new();
        std::mem::take(&mut self.order).into()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &BlockRef> {
        self.order.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(i: u32) -> BlockRef {
        BlockRef {
            index: i,
            begin: 0,
            length: 16384,
        }
    }

    #[test]
    fn keeps_order_and_refuses_duplicates() {
        let mut q = RequestQueue::default();
        assert!(q.push_back(b(1)));
        assert!(q.push_back(b(2)));
        assert!(!q.push_back(b(1)));
        assert!(q.push_back(b(3)));
        assert_eq!(q.len(), 3);
        assert!(q.remove(&b(2)));
        assert!(!q.remove(&b(2)));
        assert!(!q.contains(&b(2)));
        assert_eq!(q.pop_front(), Some(b(1)));
        // Popped: may be asked again.
        assert!(q.push_back(b(1)));
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![b(3), b(1)]);
        assert_eq!(q.take_all(), vec![b(3), b(1)]);
        assert!(q.is_empty() && !q.contains(&b(3)));
    }
}
