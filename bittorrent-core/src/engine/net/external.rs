//! Our external addresses as peers see them: the `yourip` of their
//! extended handshakes (BEP 10), counted as votes. An address is believed
//! once [`CONFIRMING_VOTES`] different hosts have reported it, so that one
//! peer cannot make us believe anything. Bounded: at most
//! [`MAX_CANDIDATES`] addresses are counted, each with at most
//! [`MAX_VOTERS`] voters; when full, the address with the fewest votes
//! makes room.
//!
//! `Session::external_addresses` reads it (status, control API, and what
//! needs our external address: BEP 42 node ids); the session never dials
//! an address of this list (`Shared::is_own_address`).

use parking_lot::Mutex;
use std::collections::HashSet;
use std::net::IpAddr;

/// Different hosts that must report an address before we believe it.
pub const CONFIRMING_VOTES: usize = 2;
/// Addresses counted at once.
const MAX_CANDIDATES: usize = 16;
/// Voters remembered per address (more add nothing).
const MAX_VOTERS: usize = 32;

/// The votes (one per voting host).
#[derive(Debug, Default)]
pub struct ExternalAddrs {
    votes: Mutex<Vec<(IpAddr, HashSet<IpAddr>)>>,
}

impl ExternalAddrs {
    /// The host `voter` (a peer's address, canonical) says our address is
    /// `reported`. Unusable reports (unspecified, multicast, link-local,
    /// or another family than the connection's) are ignored. True when
    /// this vote confirmed `reported`.
    pub fn vote(&self, voter: IpAddr, reported: IpAddr) -> bool {
        let voter = voter.to_canonical();
        let reported = reported.to_canonical();
        if voter.is_ipv4() != reported.is_ipv4() || !crate::engine::net::bind::dialable_ip(reported)
        {
            return false;
        }
        let mut v = self.votes.lock();
        let i = match v.iter().position(|(a, _)| *a == reported) {
            Some(i) => i,
            None => {
                if v.len() >= MAX_CANDIDATES {
                    // Make room: drop the least voted address.
                    if let Some(weakest) = (0..v.len()).min_by_key(|&i| v[i].1.len()) {
                        v.swap_remove(weakest);
                    }
                }
                v.push((reported, HashSet::new()));
                v.len() - 1
            }
        };
        let voters = &mut v[i].1;
        if voters.len() >= MAX_VOTERS || !voters.insert(voter) {
            return false;
        }
        let confirmed = voters.len() == CONFIRMING_VOTES;
        if confirmed {
            log::info!("external address {reported} (reported by {CONFIRMING_VOTES} peers)");
        }
        confirmed
    }

    /// The confirmed addresses, most voted first (IPv4 and IPv6 mixed).
    pub fn confirmed(&self) -> Vec<IpAddr> {
        let v = self.votes.lock();
        let mut c: Vec<(usize, IpAddr)> = v
            .iter()
            .filter(|(_, s)| s.len() >= CONFIRMING_VOTES)
            .map(|(a, s)| (s.len(), *a))
            .collect();
        c.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        c.into_iter().map(|(_, a)| a).collect()
    }

    /// Whether `ip` is one of our confirmed external addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.votes
            .lock()
            .iter()
            .any(|(a, s)| *a == ip && s.len() >= CONFIRMING_VOTES)
    }
}

/// Whether `ip` is worth telling peers as our IPv6 address (BEP 10's
/// `ipv6`): not loopback, unspecified, multicast or link-local.
pub fn advertisable_v6(ip: std::net::Ipv6Addr) -> bool {
    let ip = IpAddr::V6(ip);
    !ip.is_loopback() && crate::engine::net::bind::dialable_ip(ip) && ip.to_canonical() == ip
}

/// Our own IPv6 address for the extended handshake: the listening address
/// when it is a specific usable IPv6 address; else the source address the
/// routing table picks for a global destination (a UDP `connect` sends
/// nothing), when it is usable. None without IPv6.
pub fn probe_own_v6(listen: IpAddr) -> Option<std::net::Ipv6Addr> {
    match listen {
        IpAddr::V6(v6) if !v6.is_unspecified() => return advertisable_v6(v6).then_some(v6),
        IpAddr::V4(_) => return None,
        _ => {}
    }
    let s = std::net::UdpSocket::bind("[::]:0").ok()?;
    // 2001:db8::/32 is the documentation prefix: only the route is looked up.
    s.connect("[2001:db8::1]:6881").ok()?;
    match s.local_addr().ok()?.ip() {
        IpAddr::V6(v6) if advertisable_v6(v6) => Some(v6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn needs_two_different_hosts() {
        let e = ExternalAddrs::default();
        assert!(!e.vote(ip("10.0.0.1"), ip("203.0.113.9")));
        // The same host again (another port, or v4-mapped) is one vote.
        assert!(!e.vote(ip("::ffff:10.0.0.1"), ip("203.0.113.9")));
        assert!(e.confirmed().is_empty());
        assert!(e.vote(ip("10.0.0.2"), ip("::ffff:203.0.113.9")));
        assert_eq!(e.confirmed(), vec![ip("203.0.113.9")]);
        assert!(e.contains(ip("203.0.113.9")));
        assert!(!e.vote(ip("10.0.0.3"), ip("203.0.113.9")), "confirmed once");
        assert!(!e.vote(ip("2001:db8::5"), ip("2001:db8::1")));
        assert!(e.vote(ip("2001:db8::6"), ip("2001:db8::1")));
        assert_eq!(e.confirmed(), vec![ip("203.0.113.9"), ip("2001:db8::1")]);
    }

    #[test]
    fn refuses_garbage_and_stays_bounded() {
        let e = ExternalAddrs::default();
        for bad in ["0.0.0.0", "224.0.0.1", "fe80::1", "ff02::1", "::"] {
            let voter = if bad.contains(':') {
                "2001:db8::7"
            } else {
                "10.0.0.7"
            };
            assert!(!e.vote(ip(voter), ip(bad)));
            assert!(!e.vote(ip("10.9.9.9"), ip(bad)));
        }
        // Family mismatch: an IPv4 connection cannot see our IPv6 address.
        e.vote(ip("10.0.0.1"), ip("2001:db8::1"));
        e.vote(ip("10.0.0.2"), ip("2001:db8::1"));
        assert!(e.confirmed().is_empty());
        // A flood of different claims keeps at most MAX_CANDIDATES.
        for i in 0..1000u32 {
            let claim = IpAddr::from((0xc633_6400u32 + i).to_be_bytes());
            e.vote(ip("10.0.0.1"), claim);
        }
        assert!(e.votes.lock().len() <= MAX_CANDIDATES);
        // Voters per address are bounded too.
        for i in 0..1000u32 {
            e.vote(
                IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()),
                ip("198.51.100.1"),
            );
        }
        let v = e.votes.lock();
        assert!(v.iter().all(|(_, s)| s.len() <= MAX_VOTERS));
    }

    #[test]
    fn own_v6_never_loopback_or_link_local() {
        assert_eq!(probe_own_v6(ip("::1")), None);
        assert_eq!(probe_own_v6(ip("fe80::1")), None);
        assert_eq!(probe_own_v6(ip("127.0.0.1")), None);
        assert_eq!(
            probe_own_v6(ip("2001:db8::3")),
            Some("2001:db8::3".parse().unwrap())
        );
        if let Some(v6) = probe_own_v6(ip("::")) {
            assert!(advertisable_v6(v6));
        }
    }
}
