//! The torrent thread's peer table: peer events (joined, messages, gone), commands to
//! peer threads, interest and choke state per peer, candidates and dials, PEX, and bans
//! (smart ban's blame and acquittal).

use super::*;

/// How a command wakes its peer thread (`waker::Inbox`).
#[derive(Clone, Copy)]
enum Wake {
    /// At once (`try_send`).
    Now,
    /// Only if it waits idle, not streaming (`try_send_lazy`).
    Lazy,
    /// Not at all: with its next wake-up (`try_send_quiet`).
    Quiet,
}

impl Torrent {
    /// The address of a connected or recently departed peer.
    pub(super) fn addr_of(&self, k: PeerKey) -> Option<SocketAddr> {
        self.conns
            .get(&k)
            .map(|c| c.addr)
            .or_else(|| self.departed.get(&k).copied())
    }

    /// A piece failed its hash check; `contributors[b]` sent block `b` and
    /// `hashes[b]` is that block's SHA-1 on disk. The block hashes are kept
    /// (smart ban). A peer that sent the whole piece alone sent bad data: it
    /// gets a strike. With several contributors nobody is blamed yet: they
    /// are put on parole (whole pieces to themselves) until the culprit is
    /// found, by smart ban when the piece passes or by a strike when a
    /// piece of its own fails.
    pub(super) fn blame(&mut self, piece: u32, contributors: Vec<PeerKey>, hashes: &[[u8; 20]]) {
        let senders: Vec<Option<SocketAddr>> =
            contributors.iter().map(|&k| self.addr_of(k)).collect();
        if hashes.len() == senders.len() {
            self.smart_ban.failed(piece, &senders, hashes);
        }
        let mut distinct: Vec<PeerKey> = Vec::new();
        for &k in &contributors {
            if !distinct.contains(&k) {
                distinct.push(k);
            }
        }
        if let [k] = distinct[..] {
            let Some(addr) = self.addr_of(k) else {
                return;
            };
            let s = self.strikes.entry(addr).or_insert(0);
            *s += 1;
            if *s >= BAN_STRIKES {
                self.ban(addr, "sent pieces that failed their hash check");
            }
            return;
        }
        for k in distinct {
            if let Some(addr) = self.addr_of(k) {
                self.parole.insert(addr);
            }
            self.picker.set_parole(k, true);
        }
    }

    /// A piece passed. With block hashes of an earlier failure of it
    /// (smart ban), whoever had sent a block that differs from the verified
    /// one is banned. A parole peer that sent the whole piece alone is off
    /// parole.
    pub(super) fn acquit(&mut self, piece: u32, contributors: &[PeerKey], good: &[[u8; 20]]) {
        if !good.is_empty() {
            for addr in self.smart_ban.passed(piece, good) {
                self.ban(addr, "sent a block that differs from the verified piece");
            }
        }
        if let Some(&k) = contributors.first() {
            if contributors.iter().all(|&c| c == k) && self.picker.on_parole(k) {
                self.picker.set_parole(k, false);
                if let Some(addr) = self.addr_of(k) {
                    self.parole.remove(&addr);
                }
            }
        }
    }

    /// Ban `addr` (by IP, or by IP:port on loopback) and close its
    /// connections.
    pub(super) fn ban(&mut self, addr: SocketAddr, why: &str) {
        if self.is_banned(&addr) {
            return;
        }
        log::warn!("{}: banning {addr}: {why}", self.me.metainfo.info.name);
        self.banned.insert(addr);
        if !addr.ip().is_loopback() {
            self.banned_ips.insert(addr.ip());
        }
        self.smart_ban.forget_addr(addr);
        self.parole.remove(&addr);
        let victims: Vec<PeerKey> = self
            .conns
            .iter()
            .filter(|(_, c)| self.is_banned(&c.addr))
            .map(|(k, _)| *k)
            .collect();
        for k in victims {
            self.close(k, CloseReason::Banned);
        }
    }

    pub(super) fn is_banned(&self, addr: &SocketAddr) -> bool {
        self.banned.contains(addr) || self.banned_ips.contains(&addr.ip())
    }

    pub(super) fn send(&mut self, key: PeerKey, cmd: PeerCmd) {
        self.send_with(key, cmd, Wake::Now);
    }

    /// Send a command that can wait for the peer thread's next wake-up:
    /// it wakes the thread only if that waits idle (`Inbox::try_send_lazy`).
    pub(super) fn send_lazy(&mut self, key: PeerKey, cmd: PeerCmd) {
        self.send_with(key, cmd, Wake::Lazy);
    }

    /// Send news no one waits for: it goes out with the peer thread's next
    /// wake-up of any kind (`Inbox::try_send_quiet`).
    pub(super) fn send_quiet(&mut self, key: PeerKey, cmd: PeerCmd) {
        self.send_with(key, cmd, Wake::Quiet);
    }

    fn send_with(&mut self, key: PeerKey, cmd: PeerCmd, wake: Wake) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        // `have`s waiting (`haves.rs`) go first, with whatever wakes the
        // thread for this command; a quiet one leaves them to their delay.
        let haves = match wake {
            Wake::Quiet => None,
            Wake::Now | Wake::Lazy => c.haves.take(),
        };
        if let Some(h) = haves {
            self.send_with(key, h, Wake::Quiet);
        }
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        // The inbox is unbounded so that an idle connection holds no
        // preallocated slots; its bound is enforced here.
        if c.inbox.len() >= peer::INBOX_LIMIT {
            self.close(key, CloseReason::TooSlow);
            return;
        }
        let sent = match wake {
            Wake::Now => c.inbox.try_send(cmd),
            Wake::Lazy => c.inbox.try_send_lazy(cmd),
            Wake::Quiet => c.inbox.try_send_quiet(cmd),
        };
        match sent {
            Ok(()) => {}
            // Its thread has ended; its `Left` event is on the way.
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
            Err(crossbeam_channel::TrySendError::Full(_)) => self.close(key, CloseReason::TooSlow),
        }
    }

    /// Close a connection now: tell its thread, wake its blocked read, and
    /// give its requests back to the picker.
    pub(super) fn close(&mut self, key: PeerKey, reason: CloseReason) {
        if let Some(c) = self.conns.remove(&key) {
            log::debug!("closing {}: {reason}", c.addr);
            let _ = c.inbox.try_send(PeerCmd::Close(reason.clone()));
            let _ = c.closer.shutdown(Shutdown::Both);
            self.forget(key, c, &reason);
        }
    }

    pub(super) fn forget(&mut self, key: PeerKey, c: Conn, reason: &CloseReason) {
        self.picker.remove_peer(key, &c.bitfield);
        // Its blocks may still be in pieces not yet hashed.
        self.departed.insert(key, c.addr);
        self.departed_order.push_back(key);
        while self.departed_order.len() > MAX_DEPARTED {
            if let Some(old) = self.departed_order.pop_front() {
                self.departed.remove(&old);
            }
        }
        self.uploaded_closed += c.counters.uploaded.load(Ordering::Relaxed);
        let now = Instant::now();
        for addr in std::iter::once(c.addr).chain(c.listen_addr) {
            match reason {
                // Nothing to gain soon from a seed (we are one) or a cheat.
                CloseReason::BothSeeds | CloseReason::Banned | CloseReason::Duplicate => {
                    self.candidates.hold_off(&addr, now)
                }
                // A connection that ended quickly (refused for lack of room,
                // say) backs off; a long one starts the count again.
                _ => self.candidates.ended(&addr, now - c.joined_at, now),
            }
        }
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
        if self.conns.is_empty() {
            // Nobody left to upload kept pieces to.
            self.me.peer_ctx.recent.clear();
        }
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn on_event(&mut self, key: PeerKey, ev: PeerEvent) {
        match ev {
            PeerEvent::Joined {
                inbox,
                closer,
                transport,
                addr,
                peer_id,
                fast: _,
                outgoing,
                v2,
                counters,
            } => self.on_joined(
                key,
                inbox,
                (closer, transport),
                addr,
                peer_id,
                (outgoing, v2),
                counters,
            ),
            PeerEvent::Left(reason) => {
                // Its blocks were handed over before its `Left`: take them
                // while it is still in the table.
                self.take_blocks();
                if let Some(addr) = self.dialing.remove(&key) {
                    self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                    self.candidates.failed(&addr, Instant::now());
                    log::debug!("dial {addr} failed: {reason}");
                    self.after_dial_failed(addr);
                } else if let Some(c) = self.conns.remove(&key) {
                    log::debug!("peer {} left: {reason}", c.addr);
                    self.forget_relay(key);
                    self.forget(key, c, &reason);
                }
                self.publish_status();
            }
            other => {
                if self.conns.contains_key(&key) {
                    self.on_peer_message(key, other);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_joined(
        &mut self,
        key: PeerKey,
        inbox: Inbox<PeerCmd>,
        (closer, transport): (
            crate::engine::net::transport::Closer,
            crate::engine::net::transport::Transport,
        ),
        addr: SocketAddr,
        peer_id: [u8; 20],
        (outgoing, v2): (bool, bool),
        counters: Arc<PeerCounters>,
    ) {
        let was_dialing = self.dialing.remove(&key).is_some();
        if !was_dialing {
            // Incoming: count it now (outgoing ones were counted at dial).
            self.shared.connections.fetch_add(1, Ordering::Relaxed);
        }
        let refuse = |reason: CloseReason| {
            let _ = inbox.try_send(PeerCmd::Close(reason));
            let _ = closer.shutdown(Shutdown::Both);
        };
        if self.is_banned(&addr) {
            refuse(CloseReason::Banned);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if self.paused || matches!(self.phase, Phase::Failed(_) | Phase::Finished) {
            refuse(CloseReason::Shutdown);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        // Two connections to one peer (both sides dialled): keep the one
        // dialled by the side with the smaller peer id; both sides agree.
        if let Some((&other, oc)) = self.conns.iter().find(|(_, c)| c.peer_id == peer_id) {
            let keep_outgoing = self.shared.peer_id < peer_id;
            let new_wins = outgoing == keep_outgoing && oc.outgoing != keep_outgoing;
            if new_wins {
                self.close(other, CloseReason::Duplicate);
            } else {
                refuse(CloseReason::Duplicate);
                self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
        if self.conns.len() >= self.shared.config.max_peers_per_torrent {
            // Full: make room by evicting a peer that has been useless for a
            // while (no interest either way, nothing exchanged), so that
            // idle connections cannot lock useful peers out.
            match self.idlest_peer() {
                Some(victim) => self.close(victim, CloseReason::TooManyPeers),
                None => {
                    refuse(CloseReason::TooManyPeers);
                    self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        log::debug!(
            "peer {addr} joined ({}{})",
            if outgoing { "out" } else { "in" },
            if v2 { ", v2" } else { "" }
        );
        // The peer thread waits for this before it sends anything.
        if inbox
            .try_send(PeerCmd::Start(self.picker.have().clone()))
            .is_err()
        {
            let _ = closer.shutdown(Shutdown::Both);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.candidates.connected(&addr);
        let n = self.layout.num_pieces as usize;
        self.conns.insert(
            key,
            Conn {
                addr,
                inbox,
                closer,
                transport,
                peer_id,
                outgoing,
                v2,
                bitfield: Bitfield::new(n),
                wanted: 0,
                am_choking: true,
                am_interested: false,
                peer_choking: true,
                peer_interested: false,
                outstanding: HashSet::new(),
                counters,
                last_down: 0,
                last_up: 0,
                down_rate: 0,
                up_rate: 0,
                last_block: Instant::now(),
                pipeline: Pipeline::default(),
                listen_addr: if outgoing { Some(addr) } else { None },
                pex: false,
                holepunch: false,
                client: None,
                pex_sent: HashSet::new(),
                next_pex: Instant::now(),
                allowed_fast: Vec::new(),
                joined_at: Instant::now(),
                given_up: GivenUp::default(),
                requested: EverRequested::default(),
                chokes: 0,
                unrequested: 0,
                refused: seeding::Refused::default(),
                haves: haves::PendingHaves::default(),
            },
        );
        if self.parole.contains(&addr) {
            self.picker.set_parole(key, true);
        }
        self.publish_status();
    }

    /// The connection that has been useless longest (joined over
    /// `IDLE_EVICT_AFTER` ago, no interest either way, no payload moved).
    pub(super) fn idlest_peer(&self) -> Option<PeerKey> {
        let now = Instant::now();
        self.conns
            .iter()
            .filter(|(_, c)| {
                now - c.joined_at >= IDLE_EVICT_AFTER
                    && !c.peer_interested
                    && !c.am_interested
                    && c.counters.downloaded.load(Ordering::Relaxed) == 0
                    && c.counters.uploaded.load(Ordering::Relaxed) == 0
            })
            .min_by_key(|(_, c)| c.joined_at)
            .map(|(k, _)| *k)
    }

    pub(super) fn on_peer_message(&mut self, key: PeerKey, ev: PeerEvent) {
        match ev {
            PeerEvent::Bitfield(bf) => {
                // A bitfield, have-all or have-none replaces what the peer
                // had (a late one too, as aria2 sends): its old pieces leave
                // the availability counts, the new ones enter them.
                let Some(c) = self.conns.get_mut(&key) else {
                    return;
                };
                if bf.len() != c.bitfield.len() {
                    return;
                }
                self.picker.remove_availability(&c.bitfield);
                self.picker.add_availability(&bf);
                // Counted against the pieces written (the shared "have"),
                // as `piece_verified` counts them down once written: the
                // picker's `have` also holds pieces verified and not yet
                // written, which would be counted down twice.
                let have = self.me.peer_ctx.have.read();
                c.wanted = bf
                    .ones()
                    .filter(|&i| !have.get(i) && self.wanted.get(i))
                    .count() as u32;
                drop(have);
                let spread = &self.me.peer_ctx.spread;
                for i in bf.ones() {
                    spread.seen(i as u32, self.picker.availability(i as u32));
                }
                c.bitfield = bf;
                self.after_availability(key);
            }
            PeerEvent::Have(i) => {
                self.peer_has(key, i);
                self.after_availability(key);
            }
            // A read's `have`s: the interest and the requests once for all.
            PeerEvent::Haves(pieces) => {
                for i in pieces {
                    self.peer_has(key, i);
                }
                self.after_availability(key);
            }
            PeerEvent::Interested(v) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.peer_interested = v;
                }
                if v {
                    self.unchoke_if_free_slot(key);
                }
                self.update_steering();
            }
            PeerEvent::ChokedUs(v) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.peer_choking = v;
                    if v {
                        c.chokes = c.chokes.wrapping_add(1);
                        let lost: Vec<_> = c.outstanding.drain().collect();
                        for b in lost {
                            c.given_up.insert(b);
                            self.picker.request_failed(key, &b);
                        }
                    } else {
                        c.last_block = Instant::now();
                    }
                }
                self.fill_requests(key);
            }
            PeerEvent::Rejected(b) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.outstanding.remove(&b);
                    if c.peer_choking {
                        // BEP 6: no longer allowed fast (libtorrent does so too).
                        c.allowed_fast.retain(|&i| i != b.index);
                    } else {
                        // A seeder steering us elsewhere (`seeding.rs`).
                        c.refused.insert(b.index, Instant::now());
                    }
                }
                self.picker.request_failed(key, &b);
            }
            PeerEvent::ExtHandshake {
                listen_port,
                pex,
                holepunch,
                client,
                reqq,
                yourip,
            } => {
                let Some(c) = self.conns.get_mut(&key) else {
                    return;
                };
                c.pipeline.set_reqq(reqq);
                // Our external address as the peer sees it: one vote per
                // peer address (private addresses are ignored there).
                if let Some(ip) = yourip {
                    self.shared.record_external(
                        ip,
                        crate::engine::session::external::Reporter::Peer(c.addr.ip()),
                    );
                }
                c.pex = pex;
                c.holepunch = holepunch;
                c.client = client;
                c.next_pex = Instant::now();
                if let (None, Some(p)) = (c.listen_addr, listen_port) {
                    let la = SocketAddr::new(c.addr.ip(), p);
                    c.listen_addr = Some(la);
                    self.candidates.set_busy(&la);
                }
                // A newcomer hears of the swarm at once, and the others hear
                // of it in their next message (at most one a minute each).
                self.send_pex(Instant::now());
            }
            PeerEvent::AllowedFast(i) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.allowed_fast.len() < 64 && !c.allowed_fast.contains(&i) {
                        c.allowed_fast.push(i);
                    }
                }
                self.fill_requests(key);
            }
            PeerEvent::Pex(added) => {
                self.pex_learned += added.len();
                self.note_pex_relay(key, &added);
                self.add_candidates(added.into_iter().map(|(a, _)| a).collect());
                self.connect_candidates();
            }
            PeerEvent::Holepunch(m) => self.on_holepunch(key, m),
            PeerEvent::Hashes { request, hashes } => self.on_block_hashes(key, request, hashes),
            PeerEvent::Joined { .. } | PeerEvent::Left(_) => {}
        }
    }

    /// Peer `key` has piece `i` (a `have`; the caller then runs
    /// `after_availability`).
    fn peer_has(&mut self, key: PeerKey, i: u32) {
        let we_need = !self.me.peer_ctx.have.read().get(i as usize) && self.wanted.get(i as usize);
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.bitfield.set(i as usize) {
            if we_need {
                c.wanted += 1;
            }
            self.picker.add_have(i);
            let spread = &self.me.peer_ctx.spread;
            spread.seen(i, self.picker.availability(i));
            let recent = &self.me.peer_ctx.recent;
            if recent.contains(i) && self.conns.values().all(|c| c.bitfield.get(i as usize)) {
                recent.forget(i);
            }
        }
    }

    pub(super) fn after_availability(&mut self, key: PeerKey) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if self.phase == Phase::Seeding && c.bitfield.is_full() {
            self.close(key, CloseReason::BothSeeds);
            return;
        }
        self.update_interest(key);
        self.fill_requests(key);
    }

    pub(super) fn update_interest(&mut self, key: PeerKey) {
        let downloading = self.phase == Phase::Downloading;
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let want = downloading && c.wanted > 0;
        if want != c.am_interested {
            c.am_interested = want;
            self.send(key, PeerCmd::Interested(want));
        }
    }

    pub(super) fn unchoke_if_free_slot(&mut self, key: PeerKey) {
        let unchoked = self.conns.values().filter(|c| !c.am_choking).count();
        if unchoked < self.shared.config.upload_slots + 1 {
            self.set_choke(key, false);
        }
    }

    pub(super) fn set_choke(&mut self, key: PeerKey, choke: bool) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.am_choking != choke {
            c.am_choking = choke;
            self.send(key, PeerCmd::Choke(choke));
        }
    }

    pub(super) fn add_candidates(&mut self, addrs: Vec<SocketAddr>) {
        let shared = &self.shared;
        let n = addrs.len();
        let fresh: Vec<SocketAddr> = addrs
            .into_iter()
            .filter_map(|a| shared.dialable(a))
            .collect();
        if fresh.len() < n {
            log::debug!("refused {} undialable addresses", n - fresh.len());
            self.refused_addresses += n - fresh.len();
        }
        self.candidates.add(fresh, Instant::now());
    }

    pub(super) fn connect_candidates(&mut self) {
        if self.paused || !matches!(self.phase, Phase::Downloading | Phase::Seeding) {
            return;
        }
        let now = Instant::now();
        let cfg = &self.shared.config;
        let max_connections = cfg.max_connections;
        let room = cfg
            .max_peers_per_torrent
            .saturating_sub(self.conns.len() + self.dialing.len());
        let connected: HashSet<SocketAddr> = self
            .conns
            .values()
            .flat_map(|c| [Some(c.addr), c.listen_addr])
            .flatten()
            .collect();
        let dialing: HashSet<SocketAddr> = self.dialing.values().copied().collect();
        let ready = self.candidates.ready(now, room, |a| {
            !connected.contains(a) && !dialing.contains(a) && !self.is_banned(a)
        });
        for addr in ready {
            if self.shared.connections.load(Ordering::Relaxed) >= max_connections {
                break;
            }
            self.candidates.set_busy(&addr);
            self.spawn_dial(addr, false);
        }
    }

    /// Start a peer thread dialling `addr` (over uTP only with `utp_only`,
    /// else by the session's transport policy).
    pub(super) fn spawn_dial(&mut self, addr: SocketAddr, utp_only: bool) {
        let key = self.shared.next_key();
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
        self.dialing.insert(key, addr);
        let ctx = self.me.peer_ctx.clone();
        let tx = self.me.to_torrent.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("peer {addr}"))
            .stack_size(peer::PEER_STACK)
            .spawn(move || peer::run_outgoing(addr, key, ctx, tx, utp_only));
        if spawned.is_err() {
            self.dialing.remove(&key);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            self.candidates.failed(&addr, Instant::now());
        }
    }

    /// BEP 11: tell each PEX-speaking peer which peers joined and left
    /// since our last message to it (at most once a minute, 50 of each).
    pub(super) fn send_pex(&mut self, now: Instant) {
        if self.me.metainfo.info.private {
            return;
        }
        // A peer we reach over uTP speaks uTP (its `utp` flag, 0x04).
        let utp: HashSet<SocketAddr> = (self.conns.values())
            .filter(|c| c.transport == crate::engine::net::transport::Transport::Utp)
            .filter_map(|c| c.listen_addr)
            .collect();
        // A peer that advertised `ut_holepunch` (BEP 55) gets the `holepunch` flag (0x08).
        let holepunch: HashSet<SocketAddr> = (self.conns.values())
            .filter(|c| c.holepunch)
            .filter_map(|c| c.listen_addr)
            .collect();
        let listening: Vec<(PeerKey, SocketAddr)> = self
            .conns
            .iter()
            .filter_map(|(k, c)| c.listen_addr.map(|a| (*k, a)))
            .collect();
        let due: Vec<PeerKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.pex && now >= c.next_pex)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let Some(c) = self.conns.get_mut(&k) else {
                continue;
            };
            let current: HashSet<SocketAddr> = listening
                .iter()
                .filter(|(other, _)| *other != k)
                .map(|(_, a)| *a)
                .collect();
            let added: Vec<SocketAddr> = current
                .difference(&c.pex_sent)
                .copied()
                .take(crate::proto::extension::PEX_MAX_PER_MESSAGE)
                .collect();
            let dropped: Vec<SocketAddr> = c
                .pex_sent
                .difference(&current)
                .copied()
                .take(crate::proto::extension::PEX_MAX_PER_MESSAGE)
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            c.next_pex = now + PEX_INTERVAL;
            for a in &added {
                c.pex_sent.insert(*a);
            }
            for d in &dropped {
                c.pex_sent.remove(d);
            }
            use crate::proto::extension::{PEX_FLAG_HOLEPUNCH, PEX_FLAG_REACHABLE, PEX_FLAG_UTP};
            let flag = |a: &SocketAddr| {
                PEX_FLAG_REACHABLE
                    | if utp.contains(a) { PEX_FLAG_UTP } else { 0 }
                    | if holepunch.contains(a) {
                        PEX_FLAG_HOLEPUNCH
                    } else {
                        0
                    }
            };
            let msg = crate::proto::extension::PexMessage {
                added_flags: added.iter().map(flag).collect(),
                added,
                dropped,
            };
            self.send(k, PeerCmd::Pex(msg));
        }
    }

    pub(super) fn close_all(&mut self) {
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
    }
}
