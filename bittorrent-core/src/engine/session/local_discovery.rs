//! The session's Local Service Discovery (BEP 14): the `lsd` thread
//! ([`crate::discovery::lsd`]) announcing on the families we listen on,
//! and the `lsd-router` thread handing the peers it hears about to their
//! torrents and magnet links.

use crate::discovery::lsd::{Lsd, LsdConfig};
use crate::engine::session::shared::Shared;
use crate::error::{Error, Result};
use crate::proto::metainfo::InfoHash;
use crate::util::SERVICE_STACK;
use crossbeam_channel::Receiver;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Start LSD for a session listening on `listens` (the first address's
/// port is announced): the IPv6 group too when one of them is IPv6, each
/// family on the interface of its specific address if one is bound
/// (`--bind`). With LSD off
/// in the configuration, or when no multicast socket can be set up
/// (logged), nothing runs.
pub(super) fn start(
    shared: &Arc<Shared>,
    listens: &[SocketAddr],
) -> Result<(Option<Lsd>, Option<JoinHandle<()>>)> {
    let Some(first) = listens.first() else {
        return Ok((None, None));
    };
    if !shared.config.lsd {
        return Ok((None, None));
    }
    let cfg = LsdConfig {
        port: first.port(),
        // A failure to join one family's group is logged and LSD goes on
        // over the other alone.
        ipv6: listens.iter().any(|a| a.is_ipv6()),
        bind_ip: listens.iter().find_map(|a| match a.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() && !ip.is_loopback() => Some(ip),
            _ => None,
        }),
        bind_ip6: listens.iter().find_map(|a| match a.ip() {
            IpAddr::V6(ip) if !ip.is_unspecified() && !ip.is_loopback() => Some(ip),
            _ => None,
        }),
        ..Default::default()
    };
    let (found_tx, found_rx) = crossbeam_channel::bounded(256);
    match Lsd::start(cfg, found_tx) {
        Ok(l) => {
            let s = shared.clone();
            let router = std::thread::Builder::new()
                .name("lsd-router".into())
                .stack_size(SERVICE_STACK)
                .spawn(move || route(found_rx, s))
                .map_err(|e| Error::io("start LSD router thread", e))?;
            Ok((Some(l), Some(router)))
        }
        Err(e) => {
            log::warn!("local service discovery disabled: {e}");
            Ok((None, None))
        }
    }
}

/// Hand peers found by LSD to their torrents (never private ones) and to
/// magnet links looking for their metadata, until the session stops.
fn route(found: Receiver<(InfoHash, SocketAddr)>, shared: Arc<Shared>) {
    // Blocks until the lsd thread reports something; its end (at session
    // stop) disconnects the channel and ends this loop.
    while let Ok((ih, addr)) = found.recv() {
        if shared.is_shutting_down() {
            return;
        }
        let private = shared
            .registry
            .read()
            .get(&ih.0)
            .is_some_and(|t| t.metainfo.info.private);
        if !private && shared.add_peers(&ih, vec![addr]) {
            log::debug!("lsd: {addr} has {ih}");
        }
    }
}
