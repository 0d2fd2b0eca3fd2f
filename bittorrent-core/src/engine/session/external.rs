//! Our external address: the one place the session records what others
//! tell us about it (the gateway's port mapper today; a tracker's
//! `external ip` and peers' `yourip` can report here too), and what uses
//! it (BEP 42: the DHT node id follows the best IPv4 address). Also the
//! session's `portmap` thread ([`crate::portmap`]).

use super::shared::Shared;
use super::Session;
use crate::portmap::{PortMapConfig, PortMapStatus, PortMapper};
use std::net::IpAddr;
use std::sync::{Arc, Weak};

/// Addresses remembered at most (each source's reports of each address).
pub const MAX_EXTERNAL_ADDRESSES: usize = 16;

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
    /// How many reports (from that source).
    pub votes: u32,
}

/// The reports, bounded; the gateway's word wins, else the most votes.
#[derive(Debug, Default)]
pub(crate) struct ExternalAddresses {
    entries: Vec<ExternalAddress>,
    /// The latest gateway report per family (it wins while it stands).
    gateway_v4: Option<IpAddr>,
    best_v4: Option<IpAddr>,
}

impl ExternalAddresses {
    /// Record a report. Addresses that are not public (a LAN peer's view
    /// of us, a gateway behind another NAT) are not our external address
    /// and are ignored. Returns the best IPv4 address when it changed.
    pub(crate) fn record(&mut self, ip: IpAddr, source: ExternalSource) -> Option<IpAddr> {
        let ip = ip.to_canonical();
        if !crate::proto::bep42::is_public(ip) {
            return None;
        }
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.ip == ip && e.source == source)
        {
            e.votes = e.votes.saturating_add(1);
        } else {
            if self.entries.len() >= MAX_EXTERNAL_ADDRESSES {
                // Forget the least-voted report that is not the gateway's.
                if let Some(i) = (0..self.entries.len())
                    .filter(|&i| self.entries[i].source != ExternalSource::Gateway)
                    .min_by_key(|&i| self.entries[i].votes)
                {
                    self.entries.swap_remove(i);
                } else {
                    return None;
                }
            }
            self.entries.push(ExternalAddress {
                ip,
                source,
                votes: 1,
            });
        }
        if source == ExternalSource::Gateway && ip.is_ipv4() {
            // A new gateway address replaces the old one's reports.
            if self.gateway_v4.is_some_and(|old| old != ip) {
                let old = self.gateway_v4;
                self.entries
                    .retain(|e| !(e.source == ExternalSource::Gateway && Some(e.ip) == old));
            }
            self.gateway_v4 = Some(ip);
        }
        let best = self.gateway_v4.or_else(|| {
            (self.entries.iter())
                .filter(|e| e.ip.is_ipv4())
                .max_by_key(|e| e.votes)
                .map(|e| e.ip)
        });
        if best != self.best_v4 {
            self.best_v4 = best;
            return best;
        }
        None
    }

    /// Every report, the best IPv4 address first.
    pub(crate) fn list(&self) -> Vec<ExternalAddress> {
        let mut v = self.entries.clone();
        v.sort_by_key(|e| (Some(e.ip) != self.best_v4, std::cmp::Reverse(e.votes)));
        v
    }
}

/// Record `ip` as reported by `source`; when the best IPv4 address changes
/// the DHT takes a BEP 42 node id derived from it.
pub(crate) fn record(shared: &Shared, ip: IpAddr, source: ExternalSource) {
    let changed = shared.external.lock().record(ip, source);
    if let Some(best) = changed {
        log::info!("external address {best} (from the {})", source.as_str());
        if let Some(d) = &shared.dht {
            d.set_external_ip(best);
        }
    }
}

/// Start the `portmap` thread for the session's listening port, unless
/// the configuration or `PEER_PORT_MAP=off` says no.
pub(crate) fn start_port_mapper(shared: &Arc<Shared>) -> Option<PortMapper> {
    if !shared.config.port_map {
        return None;
    }
    if crate::portmap::disabled_by_env() {
        log::info!("port mapping off ({}=off)", crate::portmap::ENV_VAR);
        return None;
    }
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let cfg = PortMapConfig {
        port: shared.local_port(),
        ssdp: crate::portmap::ssdp::MULTICAST,
        natpmp_port: crate::portmap::natpmp::PORT,
        on_external: Arc::new(move |ip| {
            if let Some(s) = weak.upgrade() {
                record(&s, ip, ExternalSource::Gateway);
            }
        }),
    };
    match PortMapper::start(cfg) {
        Ok(p) => Some(p),
        Err(e) => {
            log::warn!("port mapping disabled: cannot start its thread: {e}");
            None
        }
    }
}

impl Session {
    /// Our external addresses as reported so far (the gateway, trackers,
    /// peers), the best IPv4 address first. Only public addresses count.
    pub fn external_addresses(&self) -> Vec<ExternalAddress> {
        self.inner.shared.external.lock().list()
    }

    /// Where port mapping stands; `None` when it is off
    /// ([`Config::port_map`](crate::Config::port_map) or `PEER_PORT_MAP=off`).
    pub fn port_mapping(&self) -> Option<PortMapStatus> {
        self.inner.portmap.lock().as_ref().map(PortMapper::status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn gateway_wins_private_ignored_bounded() {
        let mut x = ExternalAddresses::default();
        assert_eq!(x.record(ip("192.168.1.5"), ExternalSource::Peer), None);
        assert_eq!(
            x.record(ip("81.2.3.4"), ExternalSource::Peer),
            Some(ip("81.2.3.4"))
        );
        // The gateway's word wins over peers' votes.
        x.record(ip("81.2.3.4"), ExternalSource::Peer);
        assert_eq!(
            x.record(ip("84.124.73.14"), ExternalSource::Gateway),
            Some(ip("84.124.73.14"))
        );
        assert_eq!(x.record(ip("84.124.73.14"), ExternalSource::Gateway), None);
        assert_eq!(x.list()[0].ip, ip("84.124.73.14"));
        // A new gateway address replaces the old one.
        assert_eq!(
            x.record(ip("84.124.73.15"), ExternalSource::Gateway),
            Some(ip("84.124.73.15"))
        );
        assert!(!x.list().iter().any(|e| e.ip == ip("84.124.73.14")));
        // A flood of peer reports stays bounded and never evicts the gateway.
        for i in 0..100u8 {
            x.record(IpAddr::from([81, 9, 9, i]), ExternalSource::Peer);
        }
        assert!(x.list().len() <= MAX_EXTERNAL_ADDRESSES);
        assert_eq!(x.list()[0].ip, ip("84.124.73.15"));
    }
}
