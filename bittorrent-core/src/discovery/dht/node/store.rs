//! The announced peers we keep (`announce_peer`), with expiry and limits.

use super::PEER_TTL;
use crate::proto::metainfo::InfoHash;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Announced peers per info-hash, with expiry; bounded both ways.
pub(super) struct PeerStore {
    pub(super) map: HashMap<InfoHash, Vec<(SocketAddr, Instant)>>,
    pub(super) max_hashes: usize,
    pub(super) max_peers: usize,
}

impl PeerStore {
    pub(super) fn add(&mut self, ih: InfoHash, peer: SocketAddr, now: Instant) {
        let expires = now + PEER_TTL;
        if !self.map.contains_key(&ih) {
            if self.map.len() >= self.max_hashes {
                self.purge(now);
            }
            if self.map.len() >= self.max_hashes || self.max_peers == 0 {
                return;
            }
        }
        let v = self.map.entry(ih).or_default();
        if let Some(e) = v.iter_mut().find(|(p, _)| *p == peer) {
            e.1 = expires;
            return;
        }
        if v.len() >= self.max_peers {
            if let Some(oldest) = v
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                v.swap_remove(oldest);
            }
        }
        v.push((peer, expires));
    }

    pub(super) fn get(&self, ih: &InfoHash, now: Instant, max: usize) -> Vec<SocketAddr> {
        self.map
            .get(ih)
            .map(|v| {
                v.iter()
                    .filter(|(_, t)| *t > now)
                    .take(max)
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn purge(&mut self, now: Instant) {
        self.map.retain(|_, v| {
            v.retain(|(_, t)| *t > now);
            !v.is_empty()
        });
    }
}
