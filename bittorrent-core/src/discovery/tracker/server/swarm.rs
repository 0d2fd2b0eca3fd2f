//! The swarm table: announces recorded and answered under the limits
//! (peers per swarm and per address, new swarms per address a minute,
//! requests per second per address), and scrape counters.

use super::*;

impl TrackerServer {
    /// Count a new swarm created by `ip`; false when over the per-minute
    /// limit.
    pub(super) fn new_swarm_ok(&self, g: &mut Inner, ip: IpAddr, now: Instant) -> bool {
        if g.new_swarms.len() > 100_000 {
            g.new_swarms
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < Duration::from_secs(60));
        }
        let e = g.new_swarms.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= Duration::from_secs(60) {
            *e = (now, 0);
        }
        if e.1 >= self.cfg.max_new_swarms_per_ip_per_min {
            return false;
        }
        e.1 += 1;
        true
    }

    /// Count a request from `ip`; false when over the per-second limit.
    pub(super) fn rate_ok(&self, g: &mut Inner, ip: IpAddr, now: Instant) -> bool {
        if self.trusted(ip) {
            return true;
        }
        if g.rate.len() > 100_000 {
            g.rate
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < Duration::from_secs(1));
        }
        let e = g.rate.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= Duration::from_secs(1) {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= self.cfg.max_requests_per_sec_per_ip
    }

    pub(super) fn tracked(&self, g: &Inner, ih: &InfoHash) -> bool {
        self.cfg.open || g.allowed.contains(ih)
    }

    pub(super) fn do_announce(
        &self,
        g: &mut Inner,
        p: &AnnounceParams,
        ip: IpAddr,
        family: Family,
        now: Instant,
    ) -> Result<AnnounceOutcome, String> {
        if !self.tracked(g, &p.info_hash) {
            return Err("unregistered torrent".into());
        }
        let me = SocketAddr::new(ip, p.port);
        if !g.swarms.contains_key(&p.info_hash) {
            if p.event == AnnounceEvent::Stopped {
                return Ok(AnnounceOutcome {
                    peers: Vec::new(),
                    complete: 0,
                    incomplete: 0,
                });
            }
            let ours = g.allowed.contains(&p.info_hash);
            if !ours && !self.new_swarm_ok(g, ip, now) {
                return Err("too many new torrents from your address; try again later".into());
            }
            if g.swarms.len() >= self.cfg.max_swarms {
                // Full: the least recently announced swarm that is not one
                // of our own torrents makes room.
                let oldest = g
                    .swarms
                    .iter()
                    .filter(|(ih, _)| !g.allowed.contains(*ih))
                    .min_by_key(|(_, s)| s.last_active)
                    .map(|(ih, _)| *ih);
                match oldest {
                    Some(ih) => {
                        g.swarms.remove(&ih);
                    }
                    None => return Err("tracker is full: too many torrents".into()),
                }
            }
        }
        let timeout = self.cfg.peer_timeout;
        let trusted = self.trusted(ip);
        let own_id = g.own_peer_id;
        let is_local = self.is_local;
        // The session's own entry (a local address, our peer id) is never
        // the one that makes room.
        let evictable = |a: &SocketAddr, e: &PeerEntry| {
            own_id.is_none_or(|id| id != e.peer_id) || !is_local(a.ip())
        };
        let swarm = g.swarms.entry(p.info_hash).or_default();
        swarm.last_active = Some(now);
        if p.event == AnnounceEvent::Stopped {
            swarm.peers.remove(&me);
        } else {
            if !trusted && !swarm.peers.contains_key(&me) {
                // One remote host holds at most a few ports: its least
                // recently seen entry makes room for a new one.
                let mine: Vec<(SocketAddr, Instant)> = swarm
                    .peers
                    .iter()
                    .filter(|(a, e)| a.ip() == ip && evictable(a, e))
                    .map(|(a, e)| (*a, e.last_seen))
                    .collect();
                if mine.len() >= self.cfg.max_peers_per_ip_per_swarm.max(1) {
                    if let Some((old, _)) = mine.iter().min_by_key(|(_, t)| *t) {
                        swarm.peers.remove(old);
                    }
                }
            }
            if !swarm.peers.contains_key(&me) && swarm.peers.len() >= self.cfg.max_peers_per_swarm {
                swarm
                    .peers
                    .retain(|_, e| now.saturating_duration_since(e.last_seen) < timeout);
                if swarm.peers.len() >= self.cfg.max_peers_per_swarm {
                    // Still full: the least recently seen entry makes room,
                    // so newcomers are never locked out.
                    let oldest = swarm
                        .peers
                        .iter()
                        .filter(|(a, e)| evictable(a, e))
                        .min_by_key(|(_, e)| e.last_seen)
                        .map(|(a, _)| *a);
                    if let Some(a) = oldest {
                        swarm.peers.remove(&a);
                    }
                }
            }
            if p.event == AnnounceEvent::Completed {
                swarm.downloaded = swarm.downloaded.saturating_add(1);
            }
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let leeched = p.left > 0
                || p.event == AnnounceEvent::Completed
                || swarm.peers.get(&me).is_some_and(|e| e.leeched);
            swarm.peers.insert(
                me,
                PeerEntry {
                    peer_id: p.peer_id,
                    seeder: p.left == 0 && leeched,
                    leeched,
                    last_seen: now,
                },
            );
        }
        let (complete, incomplete) = swarm.counts();
        let want = p.numwant.unwrap_or(50).min(self.cfg.max_numwant);
        let mut peers: Vec<(SocketAddr, [u8; 20])> =
            if p.event == AnnounceEvent::Stopped || want == 0 {
                Vec::new()
            } else {
                // Only a proven seeder is spared the other seeders; an
                // announcer with `left=0` and no history may have nothing.
                let seeder = swarm.peers.get(&me).is_some_and(|e| e.seeder);
                swarm
                    .peers
                    .iter()
                    .filter(|(a, e)| {
                        **a != me
                            && e.peer_id != p.peer_id
                            && !(seeder && e.seeder)
                            && now.saturating_duration_since(e.last_seen) < timeout
                            && match family {
                                Family::Any => true,
                                Family::V4 => a.is_ipv4(),
                                Family::V6 => a.is_ipv6(),
                            }
                    })
                    .map(|(a, e)| (*a, e.peer_id))
                    .collect()
            };
        if peers.len() > want {
            // Partial Fisher–Yates: a random subset of `want` peers.
            for i in 0..want {
                let j = i + (crate::util::rng::random_u64() % (peers.len() - i) as u64) as usize;
                peers.swap(i, j);
            }
            peers.truncate(want);
        }
        Ok(AnnounceOutcome {
            peers,
            complete,
            incomplete,
        })
    }

    pub(super) fn scrape_entry(&self, g: &Inner, ih: &InfoHash) -> (u32, u32, u32) {
        match g.swarms.get(ih) {
            Some(s) if self.tracked(g, ih) => {
                let (c, i) = s.counts();
                (c, s.downloaded, i)
            }
            _ => (0, 0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn one_host_holds_a_few_ports_per_swarm() {
        let s = open_server();
        let t0 = Instant::now();
        // 144 ports from one remote host (the review's figure): 16 entries
        // stay, the most recent ones.
        for port in 1..=144u16 {
            let at = t0 + Duration::from_millis(u64::from(port));
            assert!(!refused(&announce_at(&s, 1, port, "10.9.9.9:1", at)));
        }
        let mut held: Vec<u16> = s
            .peers(&InfoHash([1; 20]))
            .iter()
            .map(|a| a.port())
            .collect();
        held.sort_unstable();
        assert_eq!(held, (129..=144).collect::<Vec<u16>>());
        // Others still get in; peers on this machine are not capped.
        assert!(!refused(&announce_at(&s, 1, 7000, "10.1.1.1:1", t0)));
        for port in 1..=40 {
            announce_at(&s, 1, port, "127.0.0.1:1", t0);
        }
        assert_eq!(s.peers(&InfoHash([1; 20])).len(), 16 + 1 + 40);
    }

    #[test]
    fn open_tracker_limits_new_swarms_per_host_and_evicts_oldest() {
        let s = TrackerServer::new(TrackerConfig {
            open: true,
            max_requests_per_sec_per_ip: 100_000,
            max_swarms: 12,
            ..Default::default()
        })
        .with_local_rule(loopback_only);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for n in 0..10 {
            assert!(!refused(&announce_at(
                &s,
                n,
                1,
                "10.0.0.1:1",
                ms(u64::from(n))
            )));
        }
        // The 11th new swarm in a minute from one host is refused...
        assert!(refused(&announce_at(&s, 10, 1, "10.0.0.1:1", ms(20))));
        // ...but announces to its existing swarms are fine, and so are
        // other hosts; a minute later it may create again.
        assert!(!refused(&announce_at(&s, 3, 2, "10.0.0.1:1", ms(30))));
        assert!(!refused(&announce_at(&s, 20, 1, "10.0.0.2:1", ms(40))));
        let later = t0 + Duration::from_secs(61);
        assert!(!refused(&announce_at(&s, 10, 1, "10.0.0.1:1", later)));
        // The table holds 12: each newcomer evicts the least recently
        // announced swarm (0, then 1) instead of being refused.
        assert!(!refused(&announce_at(&s, 21, 1, "10.0.0.3:1", later)));
        assert!(!refused(&announce_at(&s, 22, 1, "10.0.0.3:1", later)));
        assert!(s.peers(&InfoHash([0; 20])).is_empty());
        assert!(s.peers(&InfoHash([1; 20])).is_empty());
        assert!(!s.peers(&InfoHash([2; 20])).is_empty());
        assert!(!s.peers(&InfoHash([3; 20])).is_empty());
        assert_eq!(s.peers(&InfoHash([22; 20])).len(), 1);
    }

    #[test]
    fn a_completed_swarm_expires_with_its_last_peer() {
        let s = open_server();
        get(
            &s,
            &announce_q(1, 1, "&event=completed").replace("left=10", "left=0"),
            "1.1.1.1:1",
        );
        s.expire(Instant::now() + Duration::from_secs(4000));
        assert!(s.inner.lock().swarms.is_empty());
    }

    #[test]
    fn scrape_and_expiry() {
        let s = open_server();
        get(
            &s,
            &announce_q(1, 1, "&event=completed").replace("left=10", "left=0"),
            "1.1.1.1:1",
        );
        get(&s, &announce_q(2, 2, ""), "1.1.1.2:1");
        let req = format!(
            "GET /scrape?info_hash={} HTTP/1.0\r\n\r\n",
            percent_encode(&ih().0)
        );
        let resp = s.handle_http(req.as_bytes(), "1.1.1.1:1".parse().unwrap());
        let (_, b) = split_response(&resp);
        let r = crate::proto::tracker::parse_scrape_response(&b).unwrap();
        assert_eq!(r[0].1.complete, 1);
        assert_eq!(r[0].1.incomplete, 1);
        assert_eq!(r[0].1.downloaded, 1);
        assert_eq!(s.peers(&ih()).len(), 2);
        s.expire(Instant::now() + Duration::from_secs(4000));
        assert!(s.peers(&ih()).is_empty());
    }

    /// The mission's classroom: 200 peers on the tracker's own machine, all
    /// in the same instant (far past 20 requests a second and 16 entries
    /// per address), are all served and all listed.
    #[test]
    fn two_hundred_peers_on_this_machine_are_all_listed() {
        let s = TrackerServer::new(TrackerConfig::default()).with_local_rule(loopback_only);
        s.allow(ih());
        let t0 = Instant::now();
        for n in 0..200u32 {
            let body = announce_n(&s, n, 10_000 + n as u16, "127.0.0.1:40000", t0);
            let r = parse_announce_response(&body).unwrap();
            // Everyone before it, none dropped.
            assert_eq!(r.peers.len(), n as usize, "announce {n}");
        }
        assert_eq!(s.peers(&ih()).len(), 200);
        // A newcomer (here from another loopback address) hears of all 200.
        let body = announce_n(&s, 999, 9999, "127.0.0.2:1", t0);
        let mut ports: Vec<u16> = parse_announce_response(&body)
            .unwrap()
            .peers
            .iter()
            .map(|a| a.port())
            .collect();
        ports.sort_unstable();
        assert_eq!(ports, (10_000..10_200).collect::<Vec<u16>>());
    }

    /// A remote host keeps today's protection: 20 requests a second, then
    /// refusals; 16 entries per swarm at most. And a tracker configured not
    /// to trust this machine treats loopback the same way.
    #[test]
    fn a_remote_host_is_still_rate_limited_and_capped() {
        let s = TrackerServer::new(TrackerConfig::default()).with_local_rule(loopback_only);
        s.allow(ih());
        let t0 = Instant::now();
        let served = (0..200u32)
            .filter(|&n| !refused(&announce_n(&s, n, 10_000 + n as u16, "203.0.113.7:1", t0)))
            .count();
        assert_eq!(served, 20);
        for n in 0..200u32 {
            let at = t0 + Duration::from_secs(2 + u64::from(n));
            assert!(!refused(&announce_n(
                &s,
                n,
                20_000 + n as u16,
                "203.0.113.7:1",
                at
            )));
        }
        assert_eq!(s.peers(&ih()).len(), 16);

        let strict = TrackerServer::new(TrackerConfig {
            trust_local: false,
            ..TrackerConfig::default()
        })
        .with_local_rule(loopback_only);
        strict.allow(ih());
        let served = (0..200u32)
            .filter(|&n| {
                !refused(&announce_n(
                    &strict,
                    n,
                    10_000 + n as u16,
                    "127.0.0.1:1",
                    t0,
                ))
            })
            .count();
        assert_eq!(served, 20);
        assert_eq!(strict.peers(&ih()).len(), 16);
    }

    /// The session's own entry stays, however full the swarm gets; the same
    /// peer id from a remote address is an ordinary entry.
    #[test]
    fn the_sessions_own_entry_is_never_evicted() {
        let s = TrackerServer::new(TrackerConfig {
            max_peers_per_swarm: 5,
            ..TrackerConfig::default()
        })
        .with_local_rule(loopback_only);
        s.allow(ih());
        let mut own = [b'p'; 20];
        own[..4].copy_from_slice(&7u32.to_be_bytes());
        s.set_own_peer_id(own);
        let t0 = Instant::now();
        announce_n(&s, 7, 6881, "127.0.0.1:1", t0);
        announce_n(&s, 7, 6881, "10.7.7.7:1", t0);
        for n in 0..50u32 {
            let at = t0 + Duration::from_secs(1 + u64::from(n));
            let ip = format!("10.0.{}.{}:1", n / 200, n % 200 + 1);
            assert!(!refused(&announce_n(&s, 100 + n, 7000, &ip, at)));
        }
        let peers = s.peers(&ih());
        assert_eq!(peers.len(), 5);
        assert!(peers.contains(&"127.0.0.1:6881".parse().unwrap()));
        assert!(!peers.contains(&"10.7.7.7:6881".parse().unwrap()));
    }
}
