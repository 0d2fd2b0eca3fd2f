//! BEP 55 hole punching on the torrent thread: relaying a `rendezvous`
//! between two peers we are connected to, dialling over uTP on `connect`,
//! and asking a relay for a rendezvous when a uTP dial to a peer that PEX
//! flagged as holepunch-capable fails.
//!
//! Bounded: `connect` messages acted on per torrent per second
//! ([`CONNECTS_PER_SECOND`]), one rendezvous per address while it stays a
//! candidate, at most [`MAX_VIA`] addresses remembered with their relay. A
//! `connect` is only dialled for a torrent we share (the message arrived on
//! one of its connections), never to an address `Shared::dialable` or the
//! ban list refuses, and never when that peer is already connected.

use super::*;
use crate::engine::conn::peer::PeerCmd;
use crate::proto::holepunch::{HolepunchErrorCode, HolepunchKind, HolepunchMessage};

/// `connect` messages acted on per torrent per second.
pub(super) const CONNECTS_PER_SECOND: u32 = 4;
/// Addresses learned by PEX from a holepunch-capable peer, kept with that peer.
pub(super) const MAX_VIA: usize = 2000;

/// What a relay does with a `rendezvous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relay {
    /// Send `connect` to the target (key) with this address of the initiator,
    /// and `connect` to the initiator with the target's address.
    Connect {
        target: PeerKey,
        initiator_addr: SocketAddr,
        target_addr: SocketAddr,
    },
    /// Answer the initiator with this error.
    Error(HolepunchErrorCode),
}

/// One connection as the relay decision sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Known {
    pub key: PeerKey,
    /// The connection's remote address.
    pub addr: SocketAddr,
    /// Where it listens (its extended handshake's `p`), if known.
    pub listen_addr: Option<SocketAddr>,
    /// It advertised `ut_holepunch`.
    pub holepunch: bool,
    /// The connection runs over uTP.
    pub utp: bool,
}

impl Known {
    /// The address the other side should dial: over uTP the connection's
    /// own address (behind a NAT, the mapping of the peer's UDP socket, the
    /// one a punch can go through); else where it said it listens (the uTP
    /// port is the listening port), else the connection's address.
    fn reachable(&self) -> SocketAddr {
        if self.utp {
            return self.addr;
        }
        self.listen_addr.unwrap_or(self.addr)
    }

    fn is(&self, a: SocketAddr) -> bool {
        self.addr == a || self.listen_addr == Some(a)
    }
}

/// BEP 55's relay rule for a `rendezvous` to `target` from `from`.
pub(super) fn relay(
    from: &Known,
    target: SocketAddr,
    conns: &[Known],
    is_own: impl Fn(&SocketAddr) -> bool,
) -> Relay {
    let target = crate::engine::net::bind::canonical(target);
    if is_own(&target) {
        return Relay::Error(HolepunchErrorCode::NoSelf);
    }
    if target.port() == 0 || target.ip().is_unspecified() || from.is(target) {
        return Relay::Error(HolepunchErrorCode::NoSuchPeer);
    }
    let Some(t) = conns.iter().find(|c| c.key != from.key && c.is(target)) else {
        return Relay::Error(HolepunchErrorCode::NotConnected);
    };
    if !t.holepunch {
        return Relay::Error(HolepunchErrorCode::NoSupport);
    }
    Relay::Connect {
        target: t.key,
        initiator_addr: from.reachable(),
        target_addr: t.reachable(),
    }
}

impl Torrent {
    fn known(&self) -> Vec<Known> {
        self.conns
            .iter()
            .map(|(k, c)| Known {
                key: *k,
                addr: c.addr,
                listen_addr: c.listen_addr,
                holepunch: c.holepunch,
                utp: c.transport == crate::engine::net::transport::Transport::Utp,
            })
            .collect()
    }

    /// A `ut_holepunch` message from peer `key` (the peer thread checked it
    /// advertised the extension and the per-connection rate).
    pub(super) fn on_holepunch(&mut self, key: PeerKey, m: HolepunchMessage) {
        let known = self.known();
        let Some(from) = known.iter().find(|k| k.key == key).copied() else {
            return;
        };
        match m.kind {
            HolepunchKind::Rendezvous => {
                self.holepunch.rendezvous_in += 1;
                let shared = &self.shared;
                match relay(&from, m.addr, &known, |a| shared.is_own_address(a)) {
                    Relay::Connect {
                        target,
                        initiator_addr,
                        target_addr,
                    } => {
                        log::debug!("holepunch: relaying {} <-> {target_addr}", from.addr);
                        self.send(
                            target,
                            PeerCmd::Holepunch(HolepunchMessage::connect(initiator_addr)),
                        );
                        self.send(
                            key,
                            PeerCmd::Holepunch(HolepunchMessage::connect(target_addr)),
                        );
                        self.holepunch.relayed += 1;
                    }
                    Relay::Error(code) => {
                        log::debug!("holepunch: rendezvous for {} refused: {code:?}", m.addr);
                        self.send(
                            key,
                            PeerCmd::Holepunch(HolepunchMessage::error(m.addr, code)),
                        );
                    }
                }
            }
            HolepunchKind::Connect => self.on_holepunch_connect(m.addr),
            HolepunchKind::Error => {
                self.holepunch.errors_in += 1;
                log::debug!(
                    "holepunch: relay {} answered {:?} for {}",
                    from.addr,
                    m.error,
                    m.addr
                );
            }
        }
    }

    /// `connect`: dial `addr` over uTP at once (it dials us at the same
    /// time), unless refused, already connected, or over the rate.
    fn on_holepunch_connect(&mut self, addr: SocketAddr) {
        let now = Instant::now();
        let b = &mut self.holepunch.connect_budget;
        if now.duration_since(b.0) >= Duration::from_secs(1) {
            *b = (now, 0);
        }
        if b.1 >= CONNECTS_PER_SECOND {
            return;
        }
        b.1 += 1;
        if self.paused || !matches!(self.phase, Phase::Downloading | Phase::Seeding) {
            return;
        }
        let Some(addr) = self.shared.dialable(addr) else {
            return;
        };
        if self.is_banned(&addr)
            || self.me.peer_ctx.dialer.utp.is_empty()
            || self.dialing.values().any(|a| *a == addr)
            || (self.conns.values()).any(|c| c.addr == addr || c.listen_addr == Some(addr))
            || self.conns.len() + self.dialing.len() >= self.shared.config.max_peers_per_torrent
            || self.shared.connections.load(Ordering::Relaxed) >= self.shared.config.max_connections
        {
            return;
        }
        self.holepunch.connects_dialled += 1;
        log::debug!("holepunch: connect to {addr} over uTP");
        self.candidates.add(vec![addr], now);
        self.candidates.set_busy(&addr);
        self.spawn_dial(addr, true);
    }

    /// PEX from `key` named these addresses with their flags: remember the
    /// holepunch-capable ones with this peer as their relay.
    pub(super) fn note_pex_relay(&mut self, key: PeerKey, added: &[(SocketAddr, u8)]) {
        use crate::proto::extension::PEX_FLAG_HOLEPUNCH;
        if !self.conns.get(&key).is_some_and(|c| c.holepunch) {
            return;
        }
        for (a, flags) in added {
            if flags & PEX_FLAG_HOLEPUNCH != 0 && self.holepunch.via.len() < MAX_VIA {
                let a = crate::engine::net::bind::canonical(*a);
                self.holepunch.via.entry(a).or_insert(key);
            }
        }
    }

    /// A dial to `addr` failed: if PEX named it holepunch-capable through a
    /// peer still connected, ask that peer for a rendezvous (once per address).
    pub(super) fn after_dial_failed(&mut self, addr: SocketAddr) {
        let Some(relay) = self.holepunch.via.get(&addr).copied() else {
            return;
        };
        if !self.conns.get(&relay).is_some_and(|c| c.holepunch)
            || self.me.peer_ctx.dialer.utp.is_empty()
            || !self.holepunch.asked.insert(addr)
        {
            return;
        }
        self.holepunch.rendezvous_out += 1;
        log::debug!("holepunch: asking a relay for a rendezvous with {addr}");
        self.send(
            relay,
            PeerCmd::Holepunch(HolepunchMessage::rendezvous(addr)),
        );
    }

    /// A connection left: forget it as a relay.
    pub(super) fn forget_relay(&mut self, key: PeerKey) {
        self.holepunch.via.retain(|_, k| *k != key);
    }
}

/// The torrent thread's holepunch state and counters.
#[derive(Debug)]
pub(super) struct HolepunchState {
    /// Holepunch-capable addresses learned by PEX, and the peer that named them.
    pub via: HashMap<SocketAddr, PeerKey>,
    /// Addresses we asked a rendezvous for (once each).
    pub asked: HashSet<SocketAddr>,
    /// `connect` messages acted on this second.
    pub connect_budget: (Instant, u32),
    pub rendezvous_in: u64,
    pub relayed: u64,
    pub rendezvous_out: u64,
    pub connects_dialled: u64,
    pub errors_in: u64,
}

impl Default for HolepunchState {
    fn default() -> Self {
        HolepunchState {
            via: HashMap::new(),
            asked: HashSet::new(),
            connect_budget: (Instant::now(), 0),
            rendezvous_in: 0,
            relayed: 0,
            rendezvous_out: 0,
            connects_dialled: 0,
            errors_in: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn known(key: u64, addr: &str, listen: Option<&str>, hp: bool) -> Known {
        Known {
            key,
            addr: a(addr),
            listen_addr: listen.map(a),
            holepunch: hp,
            utp: false,
        }
    }

    #[test]
    fn relay_connects_both_sides_with_each_others_address() {
        let init = known(1, "10.0.0.1:40000", Some("10.0.0.1:6881"), true);
        let target = known(2, "10.0.0.2:51413", None, true);
        let conns = [init, target];
        assert_eq!(
            relay(&init, a("10.0.0.2:51413"), &conns, |_| false),
            Relay::Connect {
                target: 2,
                initiator_addr: a("10.0.0.1:6881"),
                target_addr: a("10.0.0.2:51413"),
            }
        );
        // the target named by its listening address, not the connection's
        let t2 = known(3, "10.0.0.3:50001", Some("10.0.0.3:7000"), true);
        let conns = [init, t2];
        assert!(matches!(
            relay(&init, a("10.0.0.3:7000"), &conns, |_| false),
            Relay::Connect { target: 3, .. }
        ));
        // Over uTP each side is told the other's connection address (a NAT's
        // mapping of its UDP socket), not the listening port it announced.
        let init_utp = Known {
            utp: true,
            ..known(1, "198.51.100.1:61000", Some("198.51.100.1:6881"), true)
        };
        let t_utp = Known {
            utp: true,
            ..known(4, "203.0.113.9:62000", Some("203.0.113.9:6881"), true)
        };
        assert_eq!(
            relay(&init_utp, a("203.0.113.9:6881"), &[init_utp, t_utp], |_| {
                false
            }),
            Relay::Connect {
                target: 4,
                initiator_addr: a("198.51.100.1:61000"),
                target_addr: a("203.0.113.9:62000"),
            }
        );
    }

    #[test]
    fn relay_error_codes() {
        let init = known(1, "10.0.0.1:40000", None, true);
        let nosupport = known(2, "10.0.0.2:6881", None, false);
        let conns = [init, nosupport];
        let err = |t: &str, own: bool| relay(&init, a(t), &conns, |_| own);
        assert_eq!(
            err("10.0.0.9:6881", false),
            Relay::Error(HolepunchErrorCode::NotConnected)
        );
        assert_eq!(
            err("10.0.0.2:6881", false),
            Relay::Error(HolepunchErrorCode::NoSupport)
        );
        assert_eq!(
            err("10.0.0.5:6881", true),
            Relay::Error(HolepunchErrorCode::NoSelf)
        );
        assert_eq!(
            err("0.0.0.0:6881", false),
            Relay::Error(HolepunchErrorCode::NoSuchPeer)
        );
        assert_eq!(
            err("10.0.0.2:0", false),
            Relay::Error(HolepunchErrorCode::NoSuchPeer)
        );
        // the initiator itself is no target
        assert_eq!(
            err("10.0.0.1:40000", false),
            Relay::Error(HolepunchErrorCode::NoSuchPeer)
        );
    }
}
