//! Our external address: the one place the session records what others
//! tell us about it (the gateway's port mapper, a tracker's `external ip`,
//! peers' `yourip`), and what uses it (BEP 42: the DHT node id follows the
//! best IPv4 address). `Shared::record_external` records a report;
//! `port_map.rs` starts the session's `portmap` thread.

use std::net::IpAddr;

/// Addresses remembered at most (each source's reports of each address).
pub const MAX_EXTERNAL_ADDRESSES: usize = 16;
/// Distinct reporters (peer IPs, trackers) remembered per address: the
/// votes of one address stop growing there.
pub const MAX_REPORTERS: usize = 64;
/// Distinct reporters (peers, trackers) that must agree before their
/// address becomes the best one (the DHT's BEP 42 id follows it): one
/// peer alone cannot move our node id. The gateway needs no votes.
pub const MIN_VOTES: u32 = 2;

/// Who told us our external address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExternalSource {
    /// The gateway (UPnP `GetExternalIPAddress`, NAT-PMP).
    Gateway,
    /// A tracker's `external ip`.
    Tracker,
    /// A peer's extended handshake (`yourip`).
    Peer,
}

impl ExternalSource {
    /// `gateway`, `tracker` or `peer`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ExternalSource::Gateway => "gateway",
            ExternalSource::Tracker => "tracker",
            ExternalSource::Peer => "peer",
        }
    }
}

/// One external address and who reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAddress {
    /// The address.
    pub ip: IpAddr,
    /// Who reported it.
    pub source: ExternalSource,
    /// How many distinct reporters said so (the gateway: how many reports).
    pub votes: u32,
}

/// Who made a report, to count each peer or tracker once: a peer's IP, a
/// tracker's URL, or nothing (the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reporter {
    /// The gateway (every report counts).
    Gateway,
    /// A peer, by IP address (reconnecting does not vote again).
    Peer(IpAddr),
    /// A tracker, by a hash of its announce URL.
    Tracker(u64),
}

impl Reporter {
    /// The tracker at `url`.
    pub(crate) fn tracker(url: &str) -> Reporter {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        url.hash(&mut h);
        Reporter::Tracker(h.finish())
    }

    pub(crate) fn source(&self) -> ExternalSource {
        match self {
            Reporter::Gateway => ExternalSource::Gateway,
            Reporter::Peer(_) => ExternalSource::Peer,
            Reporter::Tracker(_) => ExternalSource::Tracker,
        }
    }
}

/// The reports, bounded; the gateway's word wins, else the most votes
/// (at least [`MIN_VOTES`] distinct reporters).
#[derive(Debug, Default)]
pub(crate) struct ExternalAddresses {
    entries: Vec<ExternalAddress>,
    /// Who voted for each entry (same index as `entries`; at most
    /// [`MAX_REPORTERS`] each).
    reporters: Vec<Vec<Reporter>>,
    /// The latest gateway report per family (it wins while it stands).
    gateway_v4: Option<IpAddr>,
    best_v4: Option<IpAddr>,
}

impl ExternalAddresses {
    /// Record a report. Addresses that are not public (a LAN peer's view
    /// of us, a gateway behind another NAT) are not our external address
    /// and are ignored. Returns the best IPv4 address when it changed.
    pub(crate) fn record(&mut self, ip: IpAddr, by: Reporter) -> Option<IpAddr> {
        let ip = ip.to_canonical();
        if !crate::proto::bep42::is_public(ip) {
            return None;
        }
        let source = by.source();
        if let Some(i) = (0..self.entries.len())
            .find(|&i| self.entries[i].ip == ip && self.entries[i].source == source)
        {
            let voters = &mut self.reporters[i];
            if by == Reporter::Gateway {
                self.entries[i].votes = self.entries[i].votes.saturating_add(1);
            } else if !voters.contains(&by) && voters.len() < MAX_REPORTERS {
                voters.push(by);
                self.entries[i].votes = self.entries[i].votes.saturating_add(1);
            }
        } else {
            if self.entries.len() >= MAX_EXTERNAL_ADDRESSES {
                // Forget the least-voted report that is not the gateway's.
                if let Some(i) = (0..self.entries.len())
                    .filter(|&i| self.entries[i].source != ExternalSource::Gateway)
                    .min_by_key(|&i| self.entries[i].votes)
                {
                    self.entries.swap_remove(i);
                    self.reporters.swap_remove(i);
                } else {
                    return None;
                }
            }
            self.entries.push(ExternalAddress {
                ip,
                source,
                votes: 1,
            });
            self.reporters.push(vec![by]);
        }
        if source == ExternalSource::Gateway && ip.is_ipv4() {
            // A new gateway address replaces the old one's reports.
            if let Some(old) = self.gateway_v4.filter(|&old| old != ip) {
                if let Some(i) = (0..self.entries.len()).find(|&i| {
                    self.entries[i].source == ExternalSource::Gateway && self.entries[i].ip == old
                }) {
                    self.entries.swap_remove(i);
                    self.reporters.swap_remove(i);
                }
            }
            self.gateway_v4 = Some(ip);
        }
        let best = self.gateway_v4.or_else(|| {
            (self.entries.iter())
                .filter(|e| e.ip.is_ipv4() && e.votes >= MIN_VOTES)
                .max_by_key(|e| e.votes)
                .map(|e| e.ip)
        });
        if best != self.best_v4 {
            self.best_v4 = best;
            return best;
        }
        None
    }

    /// Whether `ip` is an external address we believe: the gateway's, or
    /// one that at least [`MIN_VOTES`] distinct peers or trackers agree
    /// on. Such an address is never dialled (it is us); one report alone
    /// cannot make us shun a host.
    pub(crate) fn is_confirmed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.entries
            .iter()
            .any(|e| e.ip == ip && (e.source == ExternalSource::Gateway || e.votes >= MIN_VOTES))
    }

    /// Every report, the best IPv4 address first.
    pub(crate) fn list(&self) -> Vec<ExternalAddress> {
        let mut v = self.entries.clone();
        v.sort_by_key(|e| (Some(e.ip) != self.best_v4, std::cmp::Reverse(e.votes)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn peer(s: &str) -> Reporter {
        Reporter::Peer(ip(s))
    }

    #[test]
    fn gateway_wins_private_ignored_bounded() {
        let mut x = ExternalAddresses::default();
        // A LAN peer's view of us is not our external address.
        assert_eq!(x.record(ip("192.168.1.5"), peer("192.168.1.9")), None);
        assert!(x.list().is_empty());
        // One peer is listed, but does not make the best address.
        assert_eq!(x.record(ip("81.2.3.4"), peer("5.5.5.1")), None);
        assert_eq!(x.list()[0].votes, 1);
        // Nor does it by saying so again (or reconnecting).
        for _ in 0..10 {
            assert_eq!(x.record(ip("81.2.3.4"), peer("5.5.5.1")), None);
        }
        assert_eq!(x.list()[0].votes, 1);
        // A second peer agrees: that is the best address now.
        assert_eq!(
            x.record(ip("81.2.3.4"), peer("5.5.5.2")),
            Some(ip("81.2.3.4"))
        );
        assert_eq!(x.list()[0].votes, 2);
        // A tracker counts apart from the peers, once per URL.
        let t = Reporter::tracker("http://t.example/announce");
        assert_eq!(x.record(ip("81.2.3.4"), t), None);
        assert_eq!(x.record(ip("81.2.3.4"), t), None);
        let tr = x.list();
        let tr = tr.iter().find(|e| e.source == ExternalSource::Tracker);
        assert_eq!(tr.map(|e| e.votes), Some(1));
        // The gateway's word wins over peers' votes at once.
        assert_eq!(
            x.record(ip("84.124.73.14"), Reporter::Gateway),
            Some(ip("84.124.73.14"))
        );
        assert_eq!(x.record(ip("84.124.73.14"), Reporter::Gateway), None);
        assert_eq!(x.list()[0].ip, ip("84.124.73.14"));
        // A new gateway address replaces the old one.
        assert_eq!(
            x.record(ip("84.124.73.15"), Reporter::Gateway),
            Some(ip("84.124.73.15"))
        );
        assert!(!x.list().iter().any(|e| e.ip == ip("84.124.73.14")));
        // A flood of peer reports stays bounded and never evicts the gateway.
        for i in 0..100u8 {
            x.record(
                IpAddr::from([81, 9, 9, i]),
                Reporter::Peer(IpAddr::from([6, 6, 6, i])),
            );
        }
        assert!(x.list().len() <= MAX_EXTERNAL_ADDRESSES);
        assert_eq!(x.list()[0].ip, ip("84.124.73.15"));
    }

    #[test]
    fn votes_per_address_are_bounded_and_the_most_voted_wins() {
        let mut x = ExternalAddresses::default();
        for i in 0..200u8 {
            x.record(ip("81.2.3.4"), Reporter::Peer(IpAddr::from([7, 7, i, 1])));
        }
        assert_eq!(x.list()[0].votes, MAX_REPORTERS as u32);
        // Three peers for another address do not outvote it.
        for i in 0..3u8 {
            assert_eq!(
                x.record(ip("81.2.3.5"), Reporter::Peer(IpAddr::from([8, 8, i, 1]))),
                None
            );
        }
        assert_eq!(x.list()[0].ip, ip("81.2.3.4"));
        // IPv4 peers seen as v4-mapped count as the IPv4 address.
        assert_eq!(x.record(ip("::ffff:81.2.3.4"), peer("9.9.9.9")), None);
        assert_eq!(x.list()[0].votes, MAX_REPORTERS as u32);
    }
}
