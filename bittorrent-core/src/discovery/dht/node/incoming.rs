//! Incoming KRPC: answering queries (rate-limited per IP, bounded for
//! unverified queriers), and the responses and errors to our queries.

use super::lookup::CState;
use super::{Node, Pending, MAX_AMPLIFICATION, MAX_LOOKUP_PEERS, MAX_RATE_ENTRIES};
use crate::discovery::dht::family::{bound_answer, compact_nodes, own_ip_towards, usable_nodes};
use crate::discovery::dht::routing::{Contact, K};
use crate::proto::krpc::{self, Body, Message, Query, Response, ERROR_PROTOCOL, MAX_VALUES};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

impl Node {
    pub(super) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let limit = self.cfg.max_queries_per_ip_per_sec;
        if limit == 0 {
            return true;
        }
        if self.rate.len() >= MAX_RATE_ENTRIES && !self.rate.contains_key(&ip) {
            self.rate
                .retain(|_, (t, _)| now.saturating_duration_since(*t) < Duration::from_secs(1));
            if self.rate.len() >= MAX_RATE_ENTRIES {
                self.rate.clear();
            }
        }
        let e = self.rate.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= Duration::from_secs(1) {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= limit
    }

    pub(super) fn packet(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                log::debug!("dht: bad packet from {from}: {e}");
                if let Some(reply) = e.reply() {
                    if self.allow(from.ip(), now) {
                        self.send(&reply, from);
                    }
                }
                return;
            }
        };
        match msg.body {
            Body::Query(q) => {
                if self.allow(from.ip(), now) {
                    self.query(msg.tid, q, from, data.len(), now);
                }
            }
            Body::Response(r) => self.response(&msg.tid, r, from, now),
            Body::Error(e) => {
                let Some(p) = self.take_pending(&msg.tid, from) else {
                    return;
                };
                log::debug!("dht: error {} {:?} from {from}", e.code, e.msg);
                if let Some(key) = p.lookup {
                    self.lookup_failed(key, from, now);
                }
            }
        }
    }

    pub(super) fn take_pending(&mut self, tid: &[u8], from: SocketAddr) -> Option<Pending> {
        let tid: [u8; 2] = tid.try_into().ok()?;
        if self.pending.get(&tid)?.addr != from {
            return None;
        }
        self.pending.remove(&tid)
    }

    pub(super) fn query(
        &mut self,
        tid: Vec<u8>,
        q: Query,
        from: SocketAddr,
        size: usize,
        now: Instant,
    ) {
        let qid = q.id();
        // A querier whose address answered one of our queries is verified;
        // anyone else may be spoofing a victim's address, so its answer is
        // kept within MAX_AMPLIFICATION times its query.
        let verified = self
            .table
            .get(&qid)
            .is_some_and(|e| e.responded && e.addr == from);
        if qid != self.id && !self.router_addrs.contains(&from) {
            self.table.insert(qid, from, Contact::Queried, now);
        }
        let body = match q {
            Query::Ping { .. } => Body::Response(Response::id_only(self.id)),
            Query::FindNode { target, want, .. } => {
                let closest = self.table.closest(&target, K, now);
                let (nodes, nodes6) = compact_nodes(closest, self.v6, want);
                Body::Response(Response {
                    nodes,
                    nodes6,
                    ..Response::id_only(self.id)
                })
            }
            Query::GetPeers {
                info_hash, want, ..
            } => {
                // Peers of the querier's family only (BEP 32).
                let mut values: Vec<SocketAddr> = self
                    .store
                    .get(&info_hash, now, MAX_VALUES)
                    .into_iter()
                    .filter(|p| p.is_ipv6() == from.is_ipv6())
                    .collect();
                if let Some(&port) = self.own.get(&info_hash) {
                    if let Some(me) = own_ip_towards(from) {
                        values.insert(0, SocketAddr::new(me, port));
                        values.truncate(MAX_VALUES);
                    }
                }
                let closest = self.table.closest(&info_hash.into(), K, now);
                let (nodes, nodes6) = compact_nodes(closest, self.v6, want);
                Body::Response(Response {
                    id: self.id,
                    nodes,
                    nodes6,
                    values,
                    token: Some(self.tokens.token(from.ip(), now)),
                })
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                token,
                implied_port,
                ..
            } => {
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.verify(from.ip(), &token, now) {
                    protocol_error("Bad token")
                } else if port == 0 {
                    protocol_error("Bad port")
                } else {
                    self.store
                        .add(info_hash, SocketAddr::new(from.ip(), port), now);
                    Body::Response(Response::id_only(self.id))
                }
            }
        };
        let mut msg = Message { tid, body };
        if !verified {
            bound_answer(&mut msg, size.saturating_mul(MAX_AMPLIFICATION));
        }
        self.send(&msg, from);
    }

    pub(super) fn response(&mut self, tid: &[u8], r: Response, from: SocketAddr, now: Instant) {
        let Some(p) = self.take_pending(tid, from) else {
            return;
        };
        if r.id == self.id {
            return;
        }
        // Routers answer but store nothing: never in the table.
        if !self.router_addrs.contains(&from) {
            self.table.insert(r.id, from, Contact::Responded, now);
        }
        let Some(key) = p.lookup else {
            return;
        };
        let own = self.id;
        let nodes = usable_nodes(&r, self.v6);
        let Some(l) = self.lookups.get_mut(&key) else {
            return;
        };
        if let Some(c) = l.candidates.iter_mut().find(|c| c.addr == from) {
            c.state = CState::Answered;
            c.id = Some(r.id);
            c.token = r.token;
        }
        for (id, addr) in nodes {
            l.add_candidate(&own, Some(id), addr);
        }
        for v in r.values {
            if l.peers.len() < MAX_LOOKUP_PEERS && !l.peers.contains(&v) {
                l.peers.push(v);
            }
        }
        // The answering node's id may have moved it in the order.
        let mut cs = std::mem::take(&mut l.candidates);
        cs.sort_by_key(|c| l.key(c));
        l.candidates = cs;
        self.step(key, now);
    }
}

fn protocol_error(msg: &str) -> Body {
    Body::Error(krpc::Error {
        code: ERROR_PROTOCOL,
        msg: msg.to_string(),
    })
}
