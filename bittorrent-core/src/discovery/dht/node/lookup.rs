//! Iterative lookups (`find_node`, `get_peers`): candidates by XOR
//! distance, ALPHA queries in flight, convergence, and the announces
//! (`announce_peer`) that end a `get_peers` lookup.

use super::{Node, ALPHA, MAX_CANDIDATES, MAX_LOOKUPS, MAX_LOOKUP_QUERIES, MAX_LOOKUP_TIME};
use crate::discovery::dht::routing::K;
use crate::proto::krpc::MAX_VALUES;
use crate::proto::krpc::{NodeId, Query, Want};
use crate::proto::metainfo::InfoHash;
use crossbeam_channel::Sender;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CState {
    New,
    InFlight,
    Answered,
    Failed,
}

pub(super) struct Candidate {
    pub(super) id: Option<NodeId>,
    pub(super) addr: SocketAddr,
    pub(super) state: CState,
    pub(super) token: Option<Vec<u8>>,
}

pub(super) enum Purpose {
    FindNode,
    GetPeers {
        reply: Option<Sender<Vec<SocketAddr>>>,
        announce: Option<u16>,
    },
}

pub(super) struct Lookup {
    pub(super) target: NodeId,
    pub(super) purpose: Purpose,
    pub(super) candidates: Vec<Candidate>,
    pub(super) deadline: Instant,
    pub(super) sent: usize,
    pub(super) peers: Vec<SocketAddr>,
}

impl Lookup {
    pub(super) fn key(&self, c: &Candidate) -> [u8; 20] {
        c.id.map(|id| id.distance(&self.target))
            .unwrap_or([0xff; 20])
    }

    pub(super) fn add_candidate(&mut self, own: &NodeId, id: Option<NodeId>, addr: SocketAddr) {
        if id.as_ref() == Some(own) || addr.port() == 0 || addr.ip().is_unspecified() {
            return;
        }
        if self
            .candidates
            .iter()
            .any(|c| c.addr == addr || (id.is_some() && c.id == id))
        {
            return;
        }
        self.candidates.push(Candidate {
            id,
            addr,
            state: CState::New,
            token: None,
        });
        let mut cs = std::mem::take(&mut self.candidates);
        cs.sort_by_key(|c| self.key(c));
        cs.truncate(MAX_CANDIDATES);
        self.candidates = cs;
    }

    pub(super) fn in_flight(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| c.state == CState::InFlight)
            .count()
    }

    /// Indexes of New candidates among the K closest not failed.
    pub(super) fn next_to_query(&self) -> Vec<usize> {
        self.candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state != CState::Failed)
            .take(K)
            .filter(|(_, c)| c.state == CState::New)
            .map(|(i, _)| i)
            .collect()
    }
}

impl Node {
    pub(super) fn start_lookup(
        &mut self,
        target: NodeId,
        purpose: Purpose,
        timeout: Duration,
        seeds: &[SocketAddr],
        now: Instant,
    ) {
        let mut l = Lookup {
            target,
            purpose,
            candidates: Vec::new(),
            deadline: now + timeout.min(MAX_LOOKUP_TIME),
            sent: 0,
            peers: Vec::new(),
        };
        if self.lookups.len() >= MAX_LOOKUPS {
            self.finish(l, now);
            return;
        }
        let known = self.table.closest(&target, K * 2, now);
        // A young table (the bootstrap has not answered yet): ask the
        // bootstrap nodes too, so a lookup right after start still works.
        let young = known.len() < K;
        for (id, addr) in known {
            l.add_candidate(&self.id, Some(id), addr);
        }
        let bootstrap: Vec<SocketAddr> = if young {
            let routers = self.router_addrs.iter().copied();
            self.cfg
                .bootstrap
                .iter()
                .copied()
                .chain(routers)
                .take(K)
                .collect()
        } else {
            Vec::new()
        };
        for addr in seeds.iter().chain(bootstrap.iter()) {
            l.add_candidate(&self.id, None, *addr);
        }
        let key = self.next_lookup;
        self.next_lookup = self.next_lookup.wrapping_add(1);
        self.lookups.insert(key, l);
        self.step(key, now);
    }

    /// Send queries for lookup `key` and finish it if it is done.
    pub(super) fn step(&mut self, key: u64, now: Instant) {
        let Some(mut l) = self.lookups.remove(&key) else {
            return;
        };
        let mut in_flight = l.in_flight();
        for i in l.next_to_query() {
            if in_flight >= ALPHA || l.sent >= MAX_LOOKUP_QUERIES {
                break;
            }
            let q = match l.purpose {
                Purpose::FindNode => Query::FindNode {
                    id: self.id,
                    target: l.target,
                    want: Want::default(),
                },
                Purpose::GetPeers { .. } => Query::GetPeers {
                    id: self.id,
                    info_hash: InfoHash(l.target.0),
                    want: Want::default(),
                },
            };
            let c = &mut l.candidates[i];
            if self.send_query(c.addr, c.id, q, Some(key), now) {
                c.state = CState::InFlight;
                l.sent += 1;
                in_flight += 1;
            } else {
                break;
            }
        }
        // Converged: the K closest live candidates have all answered
        // (slower, farther nodes still in flight are not waited for).
        let converged = l
            .candidates
            .iter()
            .filter(|c| c.state != CState::Failed)
            .take(K)
            .all(|c| c.state == CState::Answered);
        let exhausted = l.next_to_query().is_empty() || l.sent >= MAX_LOOKUP_QUERIES;
        if converged || (in_flight == 0 && exhausted) || now >= l.deadline {
            self.finish(l, now);
        } else {
            self.lookups.insert(key, l);
        }
    }

    pub(super) fn finish(&mut self, l: Lookup, now: Instant) {
        let Purpose::GetPeers { reply, announce } = l.purpose else {
            return;
        };
        if let Some(reply) = reply {
            let mut peers = l.peers;
            for p in self.store.get(&InfoHash(l.target.0), now, MAX_VALUES) {
                if !peers.contains(&p) {
                    peers.push(p);
                }
            }
            let _ = reply.try_send(peers);
        }
        if let Some(port) = announce {
            let targets: Vec<(SocketAddr, Option<NodeId>, Vec<u8>)> = l
                .candidates
                .iter()
                .filter(|c| c.state == CState::Answered)
                .filter(|c| !self.router_addrs.contains(&c.addr))
                .filter_map(|c| c.token.clone().map(|t| (c.addr, c.id, t)))
                .take(K)
                .collect();
            log::debug!("dht announce to {} nodes", targets.len());
            for (addr, id, token) in targets {
                let q = Query::AnnouncePeer {
                    id: self.id,
                    info_hash: InfoHash(l.target.0),
                    port,
                    token,
                    implied_port: false,
                };
                self.send_query(addr, id, q, None, now);
            }
        }
    }

    pub(super) fn lookup_failed(&mut self, key: u64, addr: SocketAddr, now: Instant) {
        if let Some(l) = self.lookups.get_mut(&key) {
            if let Some(c) = l.candidates.iter_mut().find(|c| c.addr == addr) {
                c.state = CState::Failed;
            }
            self.step(key, now);
        }
    }
}
