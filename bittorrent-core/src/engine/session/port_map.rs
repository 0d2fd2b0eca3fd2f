//! The session's port mapping: starting the `portmap` thread
//! ([`crate::portmap`]) for the listening port, and what the session tells
//! of it and of our external addresses.

use super::shared::Shared;
use super::Session;
use crate::engine::session::external::{ExternalAddress, Reporter};
use crate::portmap::{PortMapConfig, PortMapStatus, PortMapper};
use std::sync::{Arc, Weak};

/// Start the `portmap` thread for the session's listening port, unless
/// the configuration or `PEER_PORT_MAP=off` says no (and `portmap6` for
/// IPv6 pinholes when one of the listeners, `shared.local_addr` or
/// `second`, takes IPv6).
pub(crate) fn start_port_mapper(
    shared: &Arc<Shared>,
    second: Option<std::net::SocketAddr>,
) -> Option<PortMapper> {
    if !shared.config.port_map {
        return None;
    }
    if crate::portmap::disabled_by_env() {
        log::info!("port mapping off ({}=off)", crate::portmap::ENV_VAR);
        return None;
    }
    let listen6 = std::iter::once(shared.local_addr)
        .chain(second)
        .map(|a| a.ip())
        .find(std::net::IpAddr::is_ipv6);
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let cfg = PortMapConfig {
        port: shared.local_port(),
        ssdp: crate::portmap::ssdp::MULTICAST,
        natpmp_port: crate::portmap::natpmp::PORT,
        on_external: Arc::new(move |ip| {
            if let Some(s) = weak.upgrade() {
                s.record_external(ip, Reporter::Gateway);
            }
        }),
        listen6,
        ssdp6: crate::portmap::ssdp::MULTICAST6,
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

    /// Peer connections accepted in this run from public addresses (not
    /// loopback, private, link-local, carrier-grade NAT or unique-local):
    /// (over IPv4, over IPv6). More than zero proves that the listening
    /// port is reachable from the internet over that family; zero proves
    /// nothing (no one may have tried).
    pub fn incoming_from_internet(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.shared.inbound_internet;
        (c[0].load(Relaxed), c[1].load(Relaxed))
    }

    /// Where port mapping stands; `None` when it is off
    /// ([`Config::port_map`](crate::Config::port_map) or `PEER_PORT_MAP=off`).
    pub fn port_mapping(&self) -> Option<PortMapStatus> {
        self.inner.portmap.lock().as_ref().map(PortMapper::status)
    }

    /// Where the IPv6 pinholes stand (`external_ip`: our IPv6 address they
    /// open; `gateway`: the router asked); `None` when port mapping is off
    /// or no listener takes IPv6.
    pub fn pinholes(&self) -> Option<PortMapStatus> {
        self.inner
            .portmap
            .lock()
            .as_ref()
            .and_then(PortMapper::status_v6)
    }
}
