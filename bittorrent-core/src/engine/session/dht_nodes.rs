//! Starting the session's DHT nodes: one on the `udp` thread's socket, and
//! beside a dual-stack listener a second one, IPv6 (BEP 32), on the `udp6`
//! thread's socket, with the same node id. Each bootstraps from the
//! configured nodes and the saved table of its family (`dht.benc`: `nodes`
//! for IPv4, `nodes6` for IPv6).

use crate::discovery::dht::{Dht, DhtConfig};
use crate::engine::session::config::Config;
use crate::proto::krpc::NodeId;
use crate::state::dht_table;
use crossbeam_channel::Receiver;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

/// The saved routing table's file in the state directory.
pub(crate) const TABLE_FILE: &str = "dht.benc";

/// Start a DHT node on (a clone of) `sock`, fed the KRPC datagrams the
/// socket's reader thread passes on `inbound`. None (logged) on failure.
pub(crate) fn start(
    config: &Config,
    sock: &UdpSocket,
    inbound: Receiver<(Vec<u8>, SocketAddr)>,
    id: Option<NodeId>,
) -> Option<Arc<Dht>> {
    let mut bootstrap = config.dht_bootstrap.clone();
    if let Some(dir) = &config.state_dir {
        bootstrap.extend(dht_table::load(&dir.join(TABLE_FILE)));
    }
    let bind = sock.local_addr().ok()?;
    let cfg = DhtConfig {
        bind,
        bootstrap,
        routers: config.dht_routers.clone(),
        resolver: config.dht_resolver.clone(),
        id,
        ..Default::default()
    };
    match sock
        .try_clone()
        .and_then(|s| Dht::start_shared(cfg, s, inbound))
    {
        Ok(d) => {
            let family = if bind.is_ipv6() { "IPv6" } else { "IPv4" };
            log::info!("DHT node ({family}) on {}", d.local_addr());
            Some(Arc::new(d))
        }
        Err(e) => {
            log::warn!("DHT disabled on {bind}: {e}");
            None
        }
    }
}

/// Save the routing tables of both nodes (one file, a key per family).
pub(crate) fn save(dir: &std::path::Path, nodes: [Option<&Arc<Dht>>; 2]) {
    let all: Vec<_> = nodes
        .into_iter()
        .flatten()
        .flat_map(|d| d.routing_table_nodes())
        .collect();
    dht_table::save(&dir.join(TABLE_FILE), &all);
}
