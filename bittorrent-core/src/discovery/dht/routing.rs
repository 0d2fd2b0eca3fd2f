//! The Kademlia routing table (BEP 5): 160-bit ids, XOR distance and
//! k-buckets of [`K`] nodes.
//!
//! Bucket `i` (for `i` below the last) holds the nodes whose id shares
//! exactly `i` leading bits with ours; the last bucket holds everything
//! closer, i.e. it is the one whose range contains our own id, and it is
//! the only one ever split. So the table never holds more than
//! `160 * K` nodes plus `160 * K` replacement candidates.
//!
//! Node states follow BEP 5: a node is *good* if it answered one of our
//! queries in the last 15 minutes, or has answered at some point and sent
//! us a query in the last 15 minutes; *bad* after [`MAX_FAILURES`]
//! unanswered queries in a row; *questionable* otherwise.

pub use crate::proto::krpc::{NodeId, ID_BITS};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Nodes per bucket.
pub const K: usize = 8;
/// Inactivity after which a good node becomes questionable.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Unanswered queries in a row after which a node is bad.
pub const MAX_FAILURES: u32 = 2;
/// BEP 5 node state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Recently active.
    Good,
    /// Not heard from in 15 minutes (or never answered us).
    Questionable,
    /// Failed to answer several queries in a row.
    Bad,
}

/// How we heard from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// It answered one of our queries.
    Responded,
    /// It sent us a query.
    Queried,
}

/// One routing table entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The node's id.
    pub id: NodeId,
    /// The node's UDP address.
    pub addr: SocketAddr,
    /// Whether it has ever answered one of our queries.
    pub responded: bool,
    /// Last time it answered us (or queried us, once it has answered).
    pub last_active: Option<Instant>,
    /// Unanswered queries in a row.
    pub failures: u32,
    /// Whether its id is the one BEP 42 gives its address (or the
    /// address is local, hence exempt).
    pub verified: bool,
}

impl Entry {
    fn new(id: NodeId, addr: SocketAddr) -> Entry {
        Entry {
            id,
            addr,
            responded: false,
            last_active: None,
            failures: 0,
            verified: crate::proto::bep42::is_valid(&id, addr.ip()),
        }
    }

    /// The BEP 5 state at `now`.
    pub fn status(&self, now: Instant) -> Status {
        if self.failures >= MAX_FAILURES {
            return Status::Bad;
        }
        match self.last_active {
            Some(t) if self.responded && now.saturating_duration_since(t) < GOOD_FOR => {
                Status::Good
            }
            _ => Status::Questionable,
        }
    }

    fn touch(&mut self, how: Contact, now: Instant) {
        match how {
            Contact::Responded => {
                self.responded = true;
                self.failures = 0;
                self.last_active = Some(now);
            }
            Contact::Queried => {
                if self.responded {
                    self.last_active = Some(now);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: VecDeque<Entry>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            nodes: Vec::with_capacity(K),
            replacements: VecDeque::new(),
            last_changed: now,
        }
    }
}

/// What [`RoutingTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Already present; timestamps updated.
    Updated,
    /// Added to a bucket.
    Added,
    /// Took the place of a bad node, or of a node whose id BEP 42 does
    /// not verify.
    Replaced,
    /// Bucket full: kept as a replacement candidate.
    Pending,
    /// Ignored (our own id, or an id already known at another address).
    Ignored,
}

/// The routing table of one node.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table for our id `own`.
    pub fn new(own: NodeId) -> RoutingTable {
        RoutingTable {
            own,
            buckets: vec![Bucket::new(Instant::now())],
        }
    }

    #[allow(dead_code)] // not used by the engine yet
    /// Our id.
    pub fn own_id(&self) -> NodeId {
        self.own
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        self.own
            .common_prefix_len(id)
            .min(self.buckets.len().saturating_sub(1))
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// Number of buckets (1..=160).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Number of nodes in buckets (not counting replacements).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Whether no node is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record contact with node `id` at `addr`.
    ///
    /// Known nodes are refreshed. New nodes go into their bucket if it has
    /// room; a full bucket containing our id is split (up to 160 buckets);
    /// otherwise a bad node is replaced, or else the newcomer waits in the
    /// bucket's bounded replacement list (its questionable nodes get pinged
    /// by the caller, see [`RoutingTable::questionable`]).
    pub fn insert(&mut self, id: NodeId, addr: SocketAddr, how: Contact, now: Instant) -> Inserted {
        if id == self.own {
            return Inserted::Ignored;
        }
        let idx = self.bucket_index(&id);
        let bucket = &mut self.buckets[idx];
        if let Some(e) = bucket.nodes.iter_mut().find(|e| e.id == id) {
            if e.addr != addr {
                return Inserted::Ignored;
            }
            e.touch(how, now);
            bucket.last_changed = now;
            return Inserted::Updated;
        }
        let mut entry = Entry::new(id, addr);
        entry.touch(how, now);
        self.place(entry, now)
    }

    /// Put a node not yet in a bucket into the table (see
    /// [`RoutingTable::insert`]). BEP 42, as libtorrent does by default
    /// (`dht_prefer_verified_node_ids`): a node whose id matches its
    /// address (or is exempt, on a local address) takes the place of one
    /// whose id does not when its bucket is full; the one it displaces
    /// waits among the replacements. Unverified nodes are still admitted
    /// while there is room (libtorrent's `dht_enforce_node_id` is off by
    /// default too), and every query is answered whatever the id.
    fn place(&mut self, entry: Entry, now: Instant) -> Inserted {
        let id = entry.id;
        loop {
            let last = self.buckets.len() - 1;
            let idx = self.bucket_index(&id);
            let bucket = &mut self.buckets[idx];
            if bucket.nodes.len() < K {
                bucket.replacements.retain(|e| e.id != id);
                bucket.nodes.push(entry);
                bucket.last_changed = now;
                return Inserted::Added;
            }
            if idx == last && self.buckets.len() < ID_BITS {
                self.split_last(now);
                continue;
            }
            let bucket = &mut self.buckets[idx];
            if let Some(pos) = bucket
                .nodes
                .iter()
                .position(|e| e.status(now) == Status::Bad)
            {
                bucket.nodes[pos] = entry;
                bucket.last_changed = now;
                return Inserted::Replaced;
            }
            if let Some(pos) = bucket.replacements.iter().position(|e| e.id == id) {
                bucket.replacements.remove(pos);
            }
            let displaced = if entry.verified {
                bucket.nodes.iter().position(|e| !e.verified)
            } else {
                None
            };
            let waiting = match displaced {
                Some(pos) => {
                    let old = std::mem::replace(&mut bucket.nodes[pos], entry);
                    bucket.last_changed = now;
                    old
                }
                None => entry,
            };
            if bucket.replacements.len() >= K {
                bucket.replacements.pop_front();
            }
            bucket.replacements.push_back(waiting);
            return match displaced {
                Some(_) => Inserted::Replaced,
                None => Inserted::Pending,
            };
        }
    }

    /// The same nodes in a table for a new own id (BEP 42: our id changes
    /// with our external address). Every node keeps its state; the buckets
    /// are rebuilt around the new id, so some nodes may end up waiting as
    /// replacements (never more than the table's bounds).
    pub fn rebuilt(&self, own: NodeId, now: Instant) -> RoutingTable {
        let mut t = RoutingTable::new(own);
        let all = self.buckets.iter().flat_map(|b| b.nodes.iter());
        let waiting = self.buckets.iter().flat_map(|b| b.replacements.iter());
        for e in all.chain(waiting) {
            if e.id != own {
                t.place(e.clone(), now);
            }
        }
        t
    }

    fn split_last(&mut self, now: Instant) {
        let depth = self.buckets.len() - 1;
        let mut new = Bucket::new(now);
        let own = self.own;
        if let Some(last) = self.buckets.last_mut() {
            let (stay, go): (Vec<Entry>, Vec<Entry>) = last
                .nodes
                .drain(..)
                .partition(|e| own.common_prefix_len(&e.id) == depth);
            last.nodes = stay;
            new.nodes = go;
            let (stay, go): (VecDeque<Entry>, VecDeque<Entry>) = last
                .replacements
                .drain(..)
                .partition(|e| own.common_prefix_len(&e.id) == depth);
            last.replacements = stay;
            new.replacements = go;
        }
        self.buckets.push(new);
    }

    /// Record that `id` did not answer a query. A node that becomes bad is
    /// swapped for the newest replacement candidate, if any.
    pub fn failed(&mut self, id: &NodeId, now: Instant) {
        let idx = self.bucket_index(id);
        let bucket = &mut self.buckets[idx];
        let Some(pos) = bucket.nodes.iter().position(|e| e.id == *id) else {
            bucket.replacements.retain(|e| e.id != *id);
            return;
        };
        bucket.nodes[pos].failures = bucket.nodes[pos].failures.saturating_add(1);
        if bucket.nodes[pos].status(now) == Status::Bad {
            if let Some(r) = bucket.replacements.pop_back() {
                bucket.nodes[pos] = r;
                bucket.last_changed = now;
            }
        }
    }

    #[allow(dead_code)] // not used by the engine yet
    /// Forget a node entirely.
    pub fn remove(&mut self, id: &NodeId) {
        let idx = self.bucket_index(id);
        let b = &mut self.buckets[idx];
        b.nodes.retain(|e| e.id != *id);
        b.replacements.retain(|e| e.id != *id);
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// The entry for `id`, if in a bucket.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        let idx = self.bucket_index(id);
        self.buckets[idx].nodes.iter().find(|e| e.id == *id)
    }

    /// Up to `n` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, target: &NodeId, n: usize, now: Instant) -> Vec<(NodeId, SocketAddr)> {
        let mut all: Vec<&Entry> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.status(now) != Status::Bad)
            .collect();
        all.sort_by_key(|e| e.id.distance(target));
        all.into_iter().take(n).map(|e| (e.id, e.addr)).collect()
    }

    /// Every node in a bucket, for persistence.
    pub fn nodes(&self) -> Vec<(NodeId, SocketAddr)> {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .map(|e| (e.id, e.addr))
            .collect()
    }

    /// Up to `max` questionable nodes in full buckets with waiting
    /// replacements, or that have never answered: these should be pinged.
    pub fn questionable(&self, max: usize, now: Instant) -> Vec<(NodeId, SocketAddr)> {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.status(now) == Status::Questionable)
            .take(max)
            .map(|e| (e.id, e.addr))
            .collect()
    }

    /// Depths of buckets unchanged for 15 minutes (to refresh with a
    /// lookup of [`NodeId::random_with_prefix`]), at most `max`.
    pub fn stale_buckets(&self, max: usize, now: Instant) -> Vec<usize> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| now.saturating_duration_since(b.last_changed) >= GOOD_FOR)
            .map(|(i, _)| i)
            .take(max)
            .collect()
    }

    /// Mark bucket `depth` as refreshed.
    pub fn touch_bucket(&mut self, depth: usize, now: Instant) {
        if let Some(b) = self.buckets.get_mut(depth) {
            b.last_changed = now;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881))
    }

    #[test]
    fn splits_only_own_bucket_and_is_bounded() {
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own);
        let now = Instant::now();
        // 100 nodes all far away (first bit set): only K fit, the rest wait.
        for i in 0..100 {
            let mut id = NodeId::random();
            id.0[0] |= 0x80;
            t.insert(id, addr(i), Contact::Responded, now);
        }
        // The far bucket got split off once; it holds K.
        assert_eq!(t.len(), K);
        assert!(t.bucket_count() <= 2);
        // Many random nodes: bounded by buckets * K.
        for i in 0..5000 {
            t.insert(NodeId::random(), addr(i), Contact::Responded, now);
        }
        assert!(t.len() <= t.bucket_count() * K);
        assert!(t.bucket_count() <= ID_BITS);
        for b in &t.buckets {
            assert!(b.nodes.len() <= K && b.replacements.len() <= K);
        }
        // Every bucket but the last holds only ids at exactly its depth.
        let last = t.bucket_count() - 1;
        for (i, b) in t.buckets.iter().enumerate() {
            for e in &b.nodes {
                let cpl = own.common_prefix_len(&e.id);
                if i < last {
                    assert_eq!(cpl, i);
                } else {
                    assert!(cpl >= i);
                }
            }
        }
        assert_eq!(
            t.insert(own, addr(1), Contact::Responded, now),
            Inserted::Ignored
        );
    }

    #[test]
    fn states_and_replacement() {
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own);
        let now = Instant::now();
        // Fill a far bucket with questionable nodes (they only queried us).
        let far = |i: u8| {
            let mut id = [0u8; 20];
            id[0] = 0x80;
            id[19] = i;
            NodeId(id)
        };
        for i in 0..K as u8 {
            t.insert(far(i), addr(i.into()), Contact::Queried, now);
        }
        t.insert(NodeId([1; 20]), addr(200), Contact::Responded, now);
        assert_eq!(t.get(&far(0)).unwrap().status(now), Status::Questionable);
        assert_eq!(t.get(&NodeId([1; 20])).unwrap().status(now), Status::Good);
        assert_eq!(
            t.get(&NodeId([1; 20])).unwrap().status(now + GOOD_FOR),
            Status::Questionable
        );
        // Full bucket of questionable nodes: newcomer waits.
        assert_eq!(
            t.insert(far(100), addr(100), Contact::Responded, now),
            Inserted::Pending
        );
        assert!(!t.questionable(16, now).is_empty());
        // far(0) fails twice: bad, replaced by the waiting node.
        t.failed(&far(0), now);
        assert!(t.get(&far(0)).is_some());
        t.failed(&far(0), now);
        assert!(t.get(&far(0)).is_none());
        assert!(t.get(&far(100)).is_some());
        // Same id at another address is ignored.
        assert_eq!(
            t.insert(far(1), addr(99), Contact::Responded, now),
            Inserted::Ignored
        );
    }

    #[test]
    fn closest_sorted() {
        let own = NodeId::random();
        let mut t = RoutingTable::new(own);
        let now = Instant::now();
        for i in 0..300 {
            t.insert(NodeId::random(), addr(i), Contact::Responded, now);
        }
        let target = NodeId::random();
        let c = t.closest(&target, K, now);
        assert_eq!(c.len(), K);
        for w in c.windows(2) {
            assert!(w[0].0.distance(&target) <= w[1].0.distance(&target));
        }
        // Nothing in the table is closer than the K-th returned.
        let kth = c[K - 1].0.distance(&target);
        let closer = t
            .nodes()
            .iter()
            .filter(|(id, _)| id.distance(&target) < kth)
            .count();
        assert_eq!(closer, K - 1);
    }

    #[test]
    fn bep42_verified_nodes_displace_unverified_ones_in_a_full_bucket() {
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own);
        let now = Instant::now();
        let public = |i: u8| SocketAddr::from(([124, 31, 75, i], 6881));
        // A far bucket full of good nodes whose ids do not match their
        // (public) addresses: admitted while there was room.
        let far = |i: u8| {
            let mut id = [0u8; 20];
            id[0] = 0x80;
            id[18] = i;
            NodeId(id)
        };
        for i in 0..K as u8 {
            assert_eq!(
                t.insert(far(i), public(i), Contact::Responded, now),
                Inserted::Added
            );
            assert!(!t.get(&far(i)).unwrap().verified);
        }
        // Another unverified node waits.
        assert_eq!(
            t.insert(far(50), public(50), Contact::Responded, now),
            Inserted::Pending
        );
        // A verified one (BEP 42 id for its address, in the same far
        // bucket) takes an unverified node's place.
        let ip = public(100);
        let mut id = crate::proto::bep42::random_secure_id(ip.ip());
        while id.0[0] & 0x80 == 0 {
            id = crate::proto::bep42::random_secure_id(ip.ip());
        }
        assert_eq!(
            t.insert(id, ip, Contact::Responded, now),
            Inserted::Replaced
        );
        assert!(t.get(&id).unwrap().verified);
        assert_eq!(t.len(), K);
        // Nodes on local addresses are exempt (verified whatever the id).
        let mut local = RoutingTable::new(own);
        local.insert(far(1), addr(1), Contact::Responded, now);
        assert!(local.get(&far(1)).unwrap().verified);
    }

    #[test]
    fn rebuilt_keeps_nodes_and_their_state_around_a_new_id() {
        let mut t = RoutingTable::new(NodeId::random());
        let now = Instant::now();
        for i in 0..300 {
            t.insert(NodeId::random(), addr(i), Contact::Responded, now);
        }
        // Known before: the buckets' nodes and their replacements.
        let before: Vec<(NodeId, SocketAddr)> = (t.buckets.iter())
            .flat_map(|b| b.nodes.iter().chain(b.replacements.iter()))
            .map(|e| (e.id, e.addr))
            .collect();
        let new_own = NodeId::random();
        let r = t.rebuilt(new_own, now);
        assert_eq!(r.own_id(), new_own);
        // The new table is shaped around the new id and still bounded...
        assert!(r.len() <= r.bucket_count() * K);
        for b in &r.buckets {
            assert!(b.nodes.len() <= K && b.replacements.len() <= K);
        }
        // ...and every node it holds was known, with its state kept.
        for (id, a) in r.nodes() {
            assert!(before.contains(&(id, a)));
            assert_eq!(r.get(&id).unwrap().status(now), Status::Good);
        }
        // The nodes closest to the new id are kept (those buckets split).
        assert!(r.len() >= K);
    }
}
