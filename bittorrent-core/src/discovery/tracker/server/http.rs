//! The embedded tracker over HTTP: sniffing and reading a request head,
//! answering `GET /announce` and `GET /scrape` (BEP 3, 23, 48), and one
//! connection served start to finish.

use super::*;

fn failure_body(reason: &str) -> Vec<u8> {
    OwnedValue::Dict(vec![(
        b"failure reason".to_vec(),
        OwnedValue::bytes(reason),
    )])
    .to_bytes()
}

fn http_response(status: u16, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl TrackerServer {
    /// Answer one HTTP request (the bytes up to and including the blank
    /// line) from `remote`: `GET /announce?…` or `GET /scrape?…`. Returns the
    /// complete HTTP/1.0 response. Tracker refusals are `200` with a
    /// bencoded `failure reason`; malformed requests are `400` with one.
    pub fn handle_http(&self, request: &[u8], remote: SocketAddr) -> Vec<u8> {
        self.handle_http_at(request, remote, Instant::now())
    }

    /// [`TrackerServer::handle_http`] at a given time (for tests).
    pub fn handle_http_at(&self, request: &[u8], remote: SocketAddr, now: Instant) -> Vec<u8> {
        let ip = remote.ip().to_canonical();
        // The request head, parsed by `httparse` (a partial head is fine:
        // only the request line matters here).
        let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = req.parse(request);
        let (Some(method), Some(target), Some(_version)) = (req.method, req.path, req.version)
        else {
            let why = match parsed {
                Err(httparse::Error::Version) => "unsupported HTTP version",
                _ => "malformed request line",
            };
            return http_response(400, &failure_body(why));
        };
        if let Err(e) = parsed {
            return http_response(400, &failure_body(&format!("malformed request: {e}")));
        }
        if method != "GET" {
            return http_response(405, &failure_body("only GET is supported"));
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let last = path.rsplit('/').next().unwrap_or("");
        let params = parse_query(query, 256);
        let is_announce = last.starts_with("announce");
        let is_scrape = last.starts_with("scrape");
        if !is_announce && !is_scrape {
            return http_response(404, &failure_body("unknown path: use /announce or /scrape"));
        }
        let mut g = self.inner.lock();
        if !self.rate_ok(&mut g, ip, now) {
            return http_response(200, &failure_body("rate limit exceeded: slow down"));
        }
        if is_scrape {
            let mut files = Vec::new();
            for (_, v) in params
                .iter()
                .filter(|(k, _)| k == "info_hash")
                .take(MAX_SCRAPE_HASHES)
            {
                let Ok(ih) = <[u8; 20]>::try_from(v.as_slice()) else {
                    return http_response(400, &failure_body("info_hash must be 20 bytes"));
                };
                let (c, d, i) = self.scrape_entry(&g, &InfoHash(ih));
                files.push((
                    ih.to_vec(),
                    OwnedValue::Dict(vec![
                        (b"complete".to_vec(), OwnedValue::Int(c.into())),
                        (b"downloaded".to_vec(), OwnedValue::Int(d.into())),
                        (b"incomplete".to_vec(), OwnedValue::Int(i.into())),
                    ]),
                ));
            }
            let body =
                OwnedValue::Dict(vec![(b"files".to_vec(), OwnedValue::Dict(files))]).to_bytes();
            return http_response(200, &body);
        }
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_slice())
        };
        let num = |k: &str| {
            get(k)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let Some(info_hash) = get("info_hash").and_then(|v| <[u8; 20]>::try_from(v).ok()) else {
            return http_response(400, &failure_body("missing or invalid info_hash"));
        };
        let Some(peer_id) = get("peer_id").and_then(|v| <[u8; 20]>::try_from(v).ok()) else {
            return http_response(400, &failure_body("missing or invalid peer_id"));
        };
        let Some(port) = num("port")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            return http_response(400, &failure_body("missing or invalid port"));
        };
        let event = match get("event") {
            None | Some(b"") | Some(b"empty") | Some(b"paused") => AnnounceEvent::None,
            Some(b"started") => AnnounceEvent::Started,
            Some(b"completed") => AnnounceEvent::Completed,
            Some(b"stopped") => AnnounceEvent::Stopped,
            Some(_) => return http_response(400, &failure_body("invalid event")),
        };
        let params_a = AnnounceParams {
            info_hash: InfoHash(info_hash),
            peer_id,
            port,
            left: num("left").unwrap_or(1),
            event,
            numwant: num("numwant").map(|n| n.min(usize::MAX as u64) as usize),
        };
        let compact = get("compact") != Some(b"0");
        let no_peer_id = get("no_peer_id") == Some(b"1");
        let out = match self.do_announce(&mut g, &params_a, ip, Family::Any, now) {
            Ok(o) => o,
            Err(reason) => return http_response(200, &failure_body(&reason)),
        };
        drop(g);
        let mut d = vec![
            (
                b"interval".to_vec(),
                OwnedValue::Int(self.cfg.interval.as_secs() as i64),
            ),
            (
                b"min interval".to_vec(),
                OwnedValue::Int(self.cfg.min_interval.as_secs() as i64),
            ),
            (b"complete".to_vec(), OwnedValue::Int(out.complete.into())),
            (
                b"incomplete".to_vec(),
                OwnedValue::Int(out.incomplete.into()),
            ),
        ];
        if compact {
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for (a, _) in &out.peers {
                if a.is_ipv4() {
                    v4.extend_from_slice(&compact_addr(a));
                } else {
                    v6.extend_from_slice(&compact_addr(a));
                }
            }
            d.push((b"peers".to_vec(), OwnedValue::Bytes(v4)));
            if !v6.is_empty() {
                d.push((b"peers6".to_vec(), OwnedValue::Bytes(v6)));
            }
        } else {
            let list = out
                .peers
                .iter()
                .map(|(a, id)| {
                    let mut e = vec![
                        (b"ip".to_vec(), OwnedValue::bytes(a.ip().to_string())),
                        (b"port".to_vec(), OwnedValue::Int(a.port().into())),
                    ];
                    if !no_peer_id {
                        e.push((b"peer id".to_vec(), OwnedValue::bytes(id)));
                    }
                    OwnedValue::Dict(e)
                })
                .collect();
            d.push((b"peers".to_vec(), OwnedValue::List(list)));
        }
        http_response(200, &OwnedValue::Dict(d).to_bytes())
    }

    /// Read one HTTP request from `stream` (whose first bytes, already read
    /// while sniffing, are `already_read`), answer it and flush. Gives up at
    /// `deadline`. The caller closes the stream afterwards.
    pub(crate) fn serve_http_connection(
        &self,
        stream: &mut TcpStream,
        already_read: &[u8],
        deadline: Instant,
    ) -> io::Result<()> {
        let remote = crate::engine::net::bind::canonical(stream.peer_addr()?);
        // Short reads: `read_http_request` checks the deadline between them.
        let step = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        stream.set_read_timeout(Some(step))?;
        let mut prefixed = already_read.chain(&mut *stream);
        let request = read_http_request(&mut prefixed, MAX_HTTP_REQUEST, deadline)?;
        let response = self.handle_http(&request, remote);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        stream.set_write_timeout(Some(left))?;
        stream.write_all(&response)?;
        stream.flush()
    }
}

/// True when `first_bytes` (at least one byte) could begin an HTTP request
/// (`GET `, `HEAD `, `POST `) rather than a BitTorrent handshake (which
/// begins with byte 19 and `BitTorrent protocol`).
pub fn looks_like_http(first_bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 3] = [b"GET ", b"HEAD ", b"POST "];
    !first_bytes.is_empty()
        && METHODS.iter().any(|m| {
            let n = first_bytes.len().min(m.len());
            first_bytes[..n] == m[..n]
        })
}

/// Read an HTTP request head (through the blank line) from `stream`.
///
/// Fails with `InvalidData` past `limit` bytes, `TimedOut` at `deadline`,
/// `UnexpectedEof` if the peer closes first. If `stream` is a socket, give it
/// a short read timeout (the deadline is checked between reads).
pub fn read_http_request(
    stream: &mut impl Read,
    limit: usize,
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(p + 4);
            return Ok(buf);
        }
        if buf.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP request too large",
            ));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP request not received in time",
            ));
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the request ended",
                ))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn http_announce_sees_others_not_self() {
        let s = open_server();
        let (st, b) = get(&s, &announce_q(1, 6881, "&event=started"), "10.0.0.1:5000");
        assert_eq!(st, 200);
        assert!(parse_announce_response(&b).unwrap().peers.is_empty());
        let (_, b) = get(&s, &announce_q(2, 6882, ""), "10.0.0.2:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
        assert_eq!(r.incomplete, Some(2));
        // Dictionary model with and without peer ids.
        let (_, b) = get(&s, &announce_q(2, 6882, "&compact=0"), "10.0.0.2:5000");
        let v = decode(&b).unwrap();
        let p = &v.get(b"peers").and_then(Value::as_list).unwrap()[0];
        assert_eq!(
            p.get(b"peer id").and_then(Value::as_bytes),
            Some(&[1u8; 20][..])
        );
        let (_, b) = get(
            &s,
            &announce_q(2, 6882, "&compact=0&no_peer_id=1"),
            "10.0.0.2:5000",
        );
        let v = decode(&b).unwrap();
        assert!(v.get(b"peers").and_then(Value::as_list).unwrap()[0]
            .get(b"peer id")
            .is_none());
        // IPv6 peer shows up in peers6.
        get(&s, &announce_q(3, 6883, ""), "[2001:db8::1]:5000");
        let (_, b) = get(&s, &announce_q(2, 6882, ""), "10.0.0.2:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers.len(), 2);
        assert!(decode(&b).unwrap().get(b"peers6").is_some());
        // Stopped removes.
        get(&s, &announce_q(1, 6881, "&event=stopped"), "10.0.0.1:5000");
        assert_eq!(s.peers(&ih()).len(), 2);
        // numwant clamps.
        let (_, b) = get(&s, &announce_q(2, 6882, "&numwant=0"), "10.0.0.2:5000");
        assert!(parse_announce_response(&b).unwrap().peers.is_empty());
    }

    #[test]
    fn ipv6_announcer_gets_both_families_in_their_own_lists() {
        let s = open_server();
        get(&s, &announce_q(1, 6881, ""), "10.0.0.1:5000");
        // A v4-mapped remote (a dual-stack socket) is the IPv4 address.
        get(&s, &announce_q(3, 6883, ""), "[::ffff:10.0.0.3]:5000");
        get(&s, &announce_q(4, 6884, ""), "[2001:db8::4]:5000");
        let (_, b) = get(&s, &announce_q(5, 6885, ""), "[2001:db8::5]:5000");
        let v = decode(&b).unwrap();
        let v4 = v.get(b"peers").and_then(Value::as_bytes).unwrap();
        let v6 = v.get(b"peers6").and_then(Value::as_bytes).unwrap();
        assert_eq!((v4.len(), v6.len()), (12, 18));
        let mut four = crate::proto::compact::parse_v4(v4);
        four.sort();
        assert_eq!(
            four,
            vec![
                "10.0.0.1:6881".parse().unwrap(),
                "10.0.0.3:6883".parse().unwrap()
            ]
        );
        assert_eq!(
            crate::proto::compact::parse_v6(v6),
            vec!["[2001:db8::4]:6884".parse().unwrap()]
        );
    }

    #[test]
    fn http_errors_and_limits() {
        let s = TrackerServer::new(TrackerConfig {
            max_swarms: 1,
            max_peers_per_swarm: 1,
            max_requests_per_sec_per_ip: 1000,
            ..Default::default()
        });
        let fail = |(st, b): (u16, Vec<u8>)| match parse_announce_response(&b) {
            Err(crate::proto::tracker::ResponseError::Failure(f)) => (st, f),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fail(get(&s, &announce_q(1, 1, ""), "1.1.1.1:1")),
            (200, "unregistered torrent".into())
        );
        s.allow(ih());
        assert_eq!(get(&s, &announce_q(1, 1, ""), "1.1.1.1:1").0, 200);
        // A full swarm makes room: the least recently seen entry goes.
        assert_eq!(get(&s, &announce_q(2, 2, ""), "1.1.1.2:1").0, 200);
        assert_eq!(s.peers(&ih()), vec!["1.1.1.2:2".parse().unwrap()]);
        let (st, _) = fail(get(&s, "info_hash=abc&peer_id=x&port=1", "1.1.1.1:1"));
        assert_eq!(st, 400);
        let (st, _) = fail(get(&s, &announce_q(1, 0, ""), "1.1.1.1:1"));
        assert_eq!(st, 400);
        let r = s.handle_http(b"\x13BitTorrent protocol", "1.1.1.1:1".parse().unwrap());
        assert!(r.starts_with(b"HTTP/1.0 400"));
        let r = s.handle_http(b"GET /foo HTTP/1.0\r\n\r\n", "1.1.1.1:1".parse().unwrap());
        assert!(r.starts_with(b"HTTP/1.0 404"));
        let other = InfoHash([9; 20]);
        s.allow(other);
        let q = announce_q(1, 1, "").replace(&percent_encode(&ih().0), &percent_encode(&other.0));
        assert_eq!(
            fail(get(&s, &q, "1.1.1.1:1")).1,
            "tracker is full: too many torrents"
        );
        // Rate limit.
        let s = TrackerServer::new(TrackerConfig {
            open: true,
            max_requests_per_sec_per_ip: 2,
            ..Default::default()
        })
        .with_local_rule(loopback_only);
        get(&s, &announce_q(1, 1, ""), "1.1.1.1:1");
        get(&s, &announce_q(1, 1, ""), "1.1.1.1:1");
        assert!(fail(get(&s, &announce_q(1, 1, ""), "1.1.1.1:1"))
            .1
            .contains("rate limit"));
    }

    #[test]
    fn left_zero_announcers_are_not_hidden_from_each_other() {
        // A seeder that started complete and a magnet client without
        // metadata both announce `started` with `left=0`: neither is a
        // proven seeder, so each learns of the other and nobody is counted
        // complete (issue 10: rqbit never learned of the seeder).
        let s = open_server();
        let zero =
            |id: u8, port: u16| announce_q(id, port, "&event=started").replace("left=10", "left=0");
        get(&s, &zero(1, 6881), "10.0.0.1:5000");
        let (_, b) = get(&s, &zero(2, 6882), "10.0.0.2:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
        assert_eq!((r.complete, r.incomplete), (Some(0), Some(2)));
        // `completed` proves it: the first one is now a seeder, spared
        // nobody unproven, counted complete.
        let done = announce_q(1, 6881, "&event=completed").replace("left=10", "left=0");
        let (_, b) = get(&s, &done, "10.0.0.1:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!(r.peers, vec!["10.0.0.2:6882".parse().unwrap()]);
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
        // A later plain announce keeps the proof.
        let again = announce_q(1, 6881, "").replace("left=10", "left=0");
        let (_, b) = get(&s, &again, "10.0.0.1:5000");
        let r = parse_announce_response(&b).unwrap();
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    }

    #[test]
    fn sniffing_and_reading() {
        assert!(looks_like_http(b"GET /announce"));
        assert!(looks_like_http(b"GE"));
        assert!(looks_like_http(b"HEAD "));
        assert!(!looks_like_http(b"\x13BitTorrent protocol"));
        assert!(!looks_like_http(b""));
        assert!(!looks_like_http(b"GETX"));
        let far = Instant::now() + Duration::from_secs(5);
        let mut r: &[u8] = b"GET / HTTP/1.0\r\nA: b\r\n\r\nextra";
        assert_eq!(
            read_http_request(&mut r, 100, far).unwrap(),
            b"GET / HTTP/1.0\r\nA: b\r\n\r\n"
        );
        let mut r: &[u8] = &[b'a'; 1000];
        assert_eq!(
            read_http_request(&mut r, 100, far).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut r: &[u8] = b"GET / HTTP/1.0\r\n";
        assert_eq!(
            read_http_request(&mut r, 100, far).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
