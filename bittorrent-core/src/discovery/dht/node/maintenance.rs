//! Routing-table maintenance: the bootstrap (the configured nodes, then
//! the routers), BEP 42 id changes, the periodic tick (timeouts, late
//! lookups) and the pings and refreshes of the table.

use super::lookup::Purpose;
use super::{
    Node, BOOTSTRAP_RETRY, BOOTSTRAP_TIME, MAINTENANCE_EVERY, MAX_ROUTER_ADDRS,
    PINGS_PER_MAINTENANCE, QUERY_TIMEOUT, ROUTER_GRACE,
};
use crate::discovery::dht::bootstrap::{self, Router, RESOLVE_TIMEOUT};
use crate::discovery::dht::routing::K;
use crate::proto::krpc::Query;
use crossbeam_channel::TryRecvError;
use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

impl Node {
    /// Look up our own id through the configured nodes (the saved table
    /// first); the routers are asked at once when there is nothing else,
    /// else after [`ROUTER_GRACE`] if the table is still small.
    pub(super) fn bootstrap(&mut self, now: Instant) {
        self.last_bootstrap = now;
        let seeds = self.cfg.bootstrap.clone();
        if !seeds.is_empty() || !self.table.is_empty() {
            self.start_lookup(self.id, Purpose::FindNode, BOOTSTRAP_TIME, &seeds, now);
        }
        if seeds.is_empty() && self.table.len() < K {
            self.ask_routers(now);
        } else {
            self.routers_due = Some(now + ROUTER_GRACE);
        }
    }

    /// `""` for the IPv4 node, `" (IPv6)"` for the IPv6 one (BEP 32): two
    /// nodes of one session resolve the same routers, and the log tells
    /// their lines apart.
    pub(super) fn family_tag(&self) -> &'static str {
        match self.socket.local_addr() {
            Ok(a) if a.is_ipv6() => " (IPv6)",
            _ => "",
        }
    }

    /// Resolve the routers (on a `dht-resolve` thread) unless that is in
    /// progress; [`Node::poll_routers`] starts a lookup through each.
    pub(super) fn ask_routers(&mut self, now: Instant) {
        self.routers_due = None;
        if self.resolving.is_some() {
            return;
        }
        if self.cfg.routers.is_empty() {
            if !self.logged_no_routers {
                self.logged_no_routers = true;
                log::info!("DHT bootstrap{}: no routers configured", self.family_tag());
            }
            return;
        }
        let names: Vec<String> = self.cfg.routers.iter().map(Router::to_string).collect();
        log::info!(
            "DHT bootstrap{}: asking routers {}",
            self.family_tag(),
            names.join(", ")
        );
        let routers = self.cfg.routers.clone();
        match bootstrap::spawn_resolution(routers.clone(), self.cfg.resolver.clone()) {
            Ok(rx) => self.resolving = Some((rx, now + RESOLVE_TIMEOUT, routers)),
            Err(e) => log::warn!(
                "DHT bootstrap{}: cannot start the resolver thread: {e}",
                self.family_tag()
            ),
        }
    }

    /// Take the routers resolved so far and look up our id through them.
    pub(super) fn poll_routers(&mut self, now: Instant) {
        if self.routers_due.is_some_and(|t| now >= t) {
            self.routers_due = None;
            if self.table.len() < K {
                self.ask_routers(now);
            }
        }
        let Some((rx, deadline, mut waiting)) = self.resolving.take() else {
            return;
        };
        let mut done = false;
        loop {
            match rx.try_recv() {
                Ok((router, got)) => {
                    waiting.retain(|r| *r != router);
                    self.router_resolved(router, got, now);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    done = true;
                    break;
                }
            }
        }
        if done || waiting.is_empty() {
            return;
        }
        if now >= deadline {
            for r in waiting {
                let e = io::Error::new(io::ErrorKind::TimedOut, "name resolution timed out");
                self.router_resolved(r, Err(e), now);
            }
            return;
        }
        self.resolving = Some((rx, deadline, waiting));
    }

    pub(super) fn router_resolved(
        &mut self,
        router: Router,
        got: io::Result<Vec<SocketAddr>>,
        now: Instant,
    ) {
        let v4_socket = self.socket.local_addr().map_or(true, |a| a.is_ipv4());
        let addrs: Vec<SocketAddr> = match got {
            Ok(a) => a
                .into_iter()
                .filter(|a| a.is_ipv4() == v4_socket)
                .take(K)
                .collect(),
            Err(e) => {
                if self.router_failures.insert(router.clone()) {
                    log::warn!(
                        "DHT bootstrap{}: cannot resolve router {router}: {e}",
                        self.family_tag()
                    );
                } else {
                    log::debug!(
                        "DHT bootstrap{}: cannot resolve router {router}: {e}",
                        self.family_tag()
                    );
                }
                return;
            }
        };
        if addrs.is_empty() {
            if self.router_failures.insert(router.clone()) {
                log::warn!(
                    "DHT bootstrap{}: router {router} has no address of our IP version",
                    self.family_tag()
                );
            }
            return;
        }
        log::debug!(
            "DHT bootstrap{}: router {router} is {addrs:?}",
            self.family_tag()
        );
        if self.router_addrs.len() + addrs.len() > MAX_ROUTER_ADDRS {
            self.router_addrs.clear();
        }
        self.router_addrs.extend(addrs.iter().copied());
        self.start_lookup(self.id, Purpose::FindNode, BOOTSTRAP_TIME, &addrs, now);
    }

    /// BEP 42: take an id derived from our public external address
    /// (unless ours already is), keep the routing table's nodes, and look
    /// the new id up so the nodes near it learn of us.
    pub(super) fn external_ip(&mut self, ip: IpAddr, now: Instant) {
        let ip = ip.to_canonical();
        if !crate::proto::bep42::is_public(ip) || crate::proto::bep42::is_valid(&self.id, ip) {
            return;
        }
        let id = crate::proto::bep42::random_secure_id(ip);
        log::info!("DHT: external address {ip}: new node id {id:?} (BEP 42)");
        self.id = id;
        *self.shared_id.lock() = id;
        self.table = self.table.rebuilt(id, now);
        if !self.table.is_empty() {
            self.start_lookup(id, Purpose::FindNode, BOOTSTRAP_TIME, &[], now);
        }
    }

    pub(super) fn tick(&mut self, now: Instant) {
        let expired: Vec<[u8; 2]> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.sent) >= QUERY_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for tid in expired {
            if let Some(p) = self.pending.remove(&tid) {
                if let Some(id) = p.id {
                    self.table.failed(&id, now);
                }
                if let Some(key) = p.lookup {
                    self.lookup_failed(key, p.addr, now);
                }
            }
        }
        let late: Vec<u64> = self
            .lookups
            .iter()
            .filter(|(_, l)| now >= l.deadline)
            .map(|(k, _)| *k)
            .collect();
        for key in late {
            if let Some(l) = self.lookups.remove(&key) {
                self.finish(l, now);
            }
        }
        self.poll_routers(now);
        if now.saturating_duration_since(self.last_maintenance) >= MAINTENANCE_EVERY {
            self.last_maintenance = now;
            self.maintenance(now);
        }
    }

    pub(super) fn maintenance(&mut self, now: Instant) {
        self.tokens.maybe_rotate(now);
        self.store.purge(now);
        self.rate
            .retain(|_, (t, _)| now.saturating_duration_since(*t) < Duration::from_secs(1));
        if self.table.is_empty() {
            if now.saturating_duration_since(self.last_bootstrap) >= BOOTSTRAP_RETRY {
                self.bootstrap(now);
            }
            return;
        }
        let busy: HashSet<SocketAddr> = self.pending.values().map(|p| p.addr).collect();
        for (id, addr) in self.table.questionable(PINGS_PER_MAINTENANCE, now) {
            if !busy.contains(&addr) {
                self.send_query(addr, Some(id), Query::Ping { id: self.id }, None, now);
            }
        }
        if let Some(depth) = self.table.stale_buckets(1, now).first().copied() {
            self.table.touch_bucket(depth, now);
            let target = self.id.random_with_prefix(depth);
            self.start_lookup(target, Purpose::FindNode, BOOTSTRAP_TIME, &[], now);
        }
    }
}
