//! The embedded tracker over UDP (BEP 15): connection ids, announce and
//! scrape packets, and the socket loop that also keeps the tables tidy.

use super::*;

fn udp_error(tid: u32, msg: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + msg.len());
    p.extend_from_slice(&3u32.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(msg.as_bytes());
    p
}

impl TrackerServer {
    fn connection_id(&self, ip: IpAddr, window: u64) -> u64 {
        let mut h = sha1_smol::Sha1::new();
        h.update(&self.secret);
        match ip {
            IpAddr::V4(v4) => h.update(&v4.octets()),
            IpAddr::V6(v6) => h.update(&v6.octets()),
        }
        h.update(&window.to_be_bytes());
        let d = h.digest().bytes();
        // The UDP socket is shared with the DHT: an id we issue never begins
        // with `d` (a KRPC dictionary) nor like a uTP header.
        let first = crate::discovery::udp::tracker_first_byte(d[0]);
        u64::from_be_bytes([first, d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    fn window(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / CONNECTION_ID_WINDOW_SECS
    }

    /// Answer one BEP 15 packet from `remote`, or `None` to stay silent
    /// (too short, not a tracker packet, or an error reply to an
    /// unauthenticated packet that would be larger than it). Connection ids are derived from a
    /// secret, the client's IP and the minute, so no per-client state is kept;
    /// an id is accepted for two to three minutes.
    pub fn handle_udp(&self, packet: &[u8], remote: SocketAddr) -> Option<Vec<u8>> {
        self.handle_udp_at(packet, remote, Instant::now())
    }

    /// [`TrackerServer::handle_udp`] at a given time (for tests).
    pub fn handle_udp_at(
        &self,
        packet: &[u8],
        remote: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if packet.len() < 16 {
            return None;
        }
        let ip = remote.ip().to_canonical();
        let cid = be64(packet, 0);
        let action = be32(packet, 8);
        let tid = be32(packet, 12);
        if action == 0 && cid != UDP_PROTOCOL_ID {
            return None;
        }
        // Replies that precede authentication are never larger than the
        // request, so a spoofed source address cannot be used to amplify.
        let unauthenticated = |reply: Vec<u8>| (reply.len() <= packet.len()).then_some(reply);
        let mut g = self.inner.lock();
        if !self.rate_ok(&mut g, ip, now) {
            return unauthenticated(udp_error(tid, "rate limit exceeded: slow down"));
        }
        let w = self.window(now);
        if action == 0 {
            let mut p = Vec::with_capacity(16);
            p.extend_from_slice(&0u32.to_be_bytes());
            p.extend_from_slice(&tid.to_be_bytes());
            p.extend_from_slice(&self.connection_id(ip, w).to_be_bytes());
            return Some(p);
        }
        let valid = (0..3).any(|back| w >= back && self.connection_id(ip, w - back) == cid);
        if !valid {
            return unauthenticated(udp_error(tid, "invalid connection id"));
        }
        match action {
            1 => {
                if packet.len() < 98 {
                    return Some(udp_error(tid, "announce packet too short"));
                }
                let mut info_hash = [0u8; 20];
                info_hash.copy_from_slice(&packet[16..36]);
                let mut peer_id = [0u8; 20];
                peer_id.copy_from_slice(&packet[36..56]);
                let event = match be32(packet, 80) {
                    0 => AnnounceEvent::None,
                    1 => AnnounceEvent::Completed,
                    2 => AnnounceEvent::Started,
                    3 => AnnounceEvent::Stopped,
                    _ => return Some(udp_error(tid, "invalid event")),
                };
                let numwant = be32(packet, 92) as i32;
                let port = u16::from_be_bytes([packet[96], packet[97]]);
                if port == 0 {
                    return Some(udp_error(tid, "invalid port"));
                }
                let params = AnnounceParams {
                    info_hash: InfoHash(info_hash),
                    peer_id,
                    port,
                    left: be64(packet, 64),
                    event,
                    numwant: (numwant >= 0).then_some(numwant as usize),
                };
                let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
                let out = match self.do_announce(&mut g, &params, ip, family, now) {
                    Ok(o) => o,
                    Err(reason) => return Some(udp_error(tid, &reason)),
                };
                drop(g);
                let mut p = Vec::with_capacity(20 + 18 * out.peers.len());
                p.extend_from_slice(&1u32.to_be_bytes());
                p.extend_from_slice(&tid.to_be_bytes());
                p.extend_from_slice(
                    &(self.cfg.interval.as_secs().min(u32::MAX as u64) as u32).to_be_bytes(),
                );
                p.extend_from_slice(&out.incomplete.to_be_bytes());
                p.extend_from_slice(&out.complete.to_be_bytes());
                for (a, _) in &out.peers {
                    p.extend_from_slice(&compact_addr(a));
                }
                Some(p)
            }
            2 => {
                let mut p = Vec::with_capacity(8 + 12 * MAX_SCRAPE_HASHES);
                p.extend_from_slice(&2u32.to_be_bytes());
                p.extend_from_slice(&tid.to_be_bytes());
                for h in packet[16..].chunks_exact(20).take(MAX_SCRAPE_HASHES) {
                    let mut ih = [0u8; 20];
                    ih.copy_from_slice(h);
                    let (c, d, i) = self.scrape_entry(&g, &InfoHash(ih));
                    p.extend_from_slice(&c.to_be_bytes());
                    p.extend_from_slice(&d.to_be_bytes());
                    p.extend_from_slice(&i.to_be_bytes());
                }
                Some(p)
            }
            _ => Some(udp_error(tid, "unknown action")),
        }
    }

    /// Serve BEP 15 on `socket` until `stop` is set (checked every 100 ms).
    /// Also expires stale peers, swarms and rate-limit entries every 10 s
    /// (this thread is the tracker's housekeeper).
    #[allow(dead_code)] // kept for tests and embedders inside the crate
    pub(crate) fn run_udp(&self, socket: &UdpSocket, stop: &AtomicBool) -> io::Result<()> {
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut buf = [0u8; 2048];
        let mut last_expire = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_expire.elapsed() >= Duration::from_secs(10) {
                last_expire = Instant::now();
                self.expire(last_expire);
            }
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Some(reply) = self.handle_udp(&buf[..n], from) {
                        if let Err(e) = socket.send_to(&reply, from) {
                            log::debug!("tracker UDP send to {from}: {e}");
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                // ICMP errors from earlier sends surface here on some systems.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_support::*;
    use super::*;

    /// A BEP 15 connect request (transaction id 7).
    fn connect_packet() -> Vec<u8> {
        let mut conn = Vec::new();
        conn.extend_from_slice(&UDP_PROTOCOL_ID.to_be_bytes());
        conn.extend_from_slice(&0u32.to_be_bytes());
        conn.extend_from_slice(&7u32.to_be_bytes());
        conn
    }

    /// A `started` announce of peer id `[1; 20]` on port 6881.
    fn started() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: ih(),
            peer_id: [1; 20],
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 5,
            event: AnnounceEvent::Started,
            numwant: 50,
            key: 1,
        }
    }

    /// BEP 15 over IPv6: an announce from an IPv6 address gets 18-byte
    /// entries, and only the IPv6 peers (IPv4 ones would not fit).
    #[test]
    fn udp_announce_over_ipv6_gets_ipv6_peers() {
        let s = open_server();
        let conn = connect_packet();
        let mut req = started();
        let from: [(SocketAddr, u8); 3] = [
            ("10.0.0.1:7000".parse().unwrap(), 1),
            ("[2001:db8::2]:7000".parse().unwrap(), 2),
            ("[2001:db8::3]:7000".parse().unwrap(), 3),
        ];
        let mut last = Vec::new();
        for (a, id) in from {
            let cid = be64(&s.handle_udp(&conn, a).unwrap(), 8);
            req.peer_id = [id; 20];
            req.port = 6880 + u16::from(id);
            last = s.handle_udp(&udp_announce_packet(cid, 9, &req), a).unwrap();
        }
        assert_eq!(last.len(), 20 + 18);
        assert_eq!(
            parse_udp_announce_response(&last, true).unwrap().peers,
            vec!["[2001:db8::2]:6882".parse().unwrap()]
        );
    }

    #[test]
    fn udp_connect_announce_scrape() {
        let s = open_server();
        let a: SocketAddr = "10.0.0.1:7000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7000".parse().unwrap();
        let conn = connect_packet();
        let ra = s.handle_udp(&conn, a).unwrap();
        assert_eq!(ra.len(), 16);
        assert_eq!(be32(&ra, 4), 7);
        let cid_a = be64(&ra, 8);
        let cid_b = be64(&s.handle_udp(&conn, b).unwrap(), 8);
        assert_ne!(cid_a, cid_b);
        let mut req = started();
        let r = s
            .handle_udp(&udp_announce_packet(cid_a, 9, &req), a)
            .unwrap();
        assert_eq!(be32(&r, 4), 9);
        assert!(parse_udp_announce_response(&r, false)
            .unwrap()
            .peers
            .is_empty());
        req.peer_id = [2; 20];
        let r = s
            .handle_udp(&udp_announce_packet(cid_b, 10, &req), b)
            .unwrap();
        assert_eq!(
            parse_udp_announce_response(&r, false).unwrap().peers,
            vec!["10.0.0.1:6881".parse().unwrap()]
        );
        // Wrong connection id (a's id used from b) → error action 3.
        let r = s
            .handle_udp(&udp_announce_packet(cid_a, 11, &req), b)
            .unwrap();
        assert_eq!(be32(&r, 0), 3);
        // Id expires after three windows.
        let later = Instant::now() + Duration::from_secs(240);
        let r = s
            .handle_udp_at(&udp_announce_packet(cid_b, 12, &req), b, later)
            .unwrap();
        assert_eq!(be32(&r, 0), 3);
        // Scrape.
        let mut sc = cid_a.to_be_bytes().to_vec();
        sc.extend_from_slice(&2u32.to_be_bytes());
        sc.extend_from_slice(&13u32.to_be_bytes());
        sc.extend_from_slice(&ih().0);
        let r = s.handle_udp(&sc, a).unwrap();
        assert_eq!(r.len(), 20);
        assert_eq!((be32(&r, 8), be32(&r, 16)), (0, 2));
        // No amplification: a 16-byte packet with a bad id gets no (longer) error.
        let mut bad = 1u64.to_be_bytes().to_vec();
        bad.extend_from_slice(&1u32.to_be_bytes());
        bad.extend_from_slice(&1u32.to_be_bytes());
        assert!(s.handle_udp(&bad, a).is_none());
        // Junk.
        assert!(s.handle_udp(b"short", a).is_none());
        assert!(s.handle_udp(&[0u8; 16], a).is_none());
        for n in 0..120 {
            let _ = s.handle_udp(&vec![0xAB; n], a);
        }
    }
}
