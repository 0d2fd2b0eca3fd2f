//! SSDP discovery (UPnP Device Architecture 1.1 §1.3): an `M-SEARCH` for
//! Internet Gateway Devices to 239.255.255.250:1900, and the answers'
//! `LOCATION` (the device description's URL).
//!
//! Any host on the LAN can answer, so an answer is believed only as far as
//! this: it fits one datagram of at most [`MAX_REPLY`] bytes (a longer one
//! is refused), it parses as an HTTP response with at most 32 headers, and
//! its `LOCATION` is a plain `http://` URL whose host is the very address
//! the answer came from (a device describes itself; it cannot send us to
//! another host). What we fetch from there is bounded too (see `igd`).

use super::MapError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

/// The SSDP multicast group and port.
pub(crate) const MULTICAST: SocketAddrV4 =
    SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
/// The link-local SSDP multicast group of IPv6 (UDA 1.1 §1.1.2) and port.
pub(crate) const MULTICAST6: SocketAddrV6 =
    SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xc), 1900, 0, 0);
/// Longest answer accepted (one Ethernet frame's worth, with room).
pub(crate) const MAX_REPLY: usize = 1536;
/// Longest `LOCATION` URL accepted.
const MAX_URL: usize = 512;

/// The search targets asked for (IGD version 1 and 2).
const TARGETS: [&str; 2] = [
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
];

/// One device that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Where the answer came from.
    pub(crate) from: IpAddr,
    /// Its description's URL (on `from`).
    pub(crate) location: String,
}

/// The `M-SEARCH` request for `target`.
pub(crate) fn search_request(target: &str) -> String {
    search_request_to(target, "239.255.255.250:1900")
}

/// The `M-SEARCH` request for `target` with `host` as its `HOST`.
fn search_request_to(target: &str, host: &str) -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {host}\r\nST: {target}\r\n\
         MAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n"
    )
}

/// The `LOCATION` of an answer from `from` (checked as the module says).
pub(crate) fn parse_reply(b: &[u8], from: IpAddr) -> Result<Found, String> {
    if b.len() >= MAX_REPLY {
        return Err(format!(
            "SSDP answer from {from} over {MAX_REPLY} bytes: refused"
        ));
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(b) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(format!("SSDP answer from {from}: incomplete"));
        }
        Err(e) => return Err(format!("SSDP answer from {from}: {e}")),
    }
    if resp.code != Some(200) {
        return Err(format!("SSDP answer from {from}: status {:?}", resp.code));
    }
    let location = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location"))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        .ok_or_else(|| format!("SSDP answer from {from}: no LOCATION"))?;
    if location.len() > MAX_URL {
        return Err(format!("SSDP answer from {from}: LOCATION too long"));
    }
    let host = super::igd::url_addr(&location).ok_or_else(|| {
        format!("SSDP answer from {from}: LOCATION {location:?} is not http://IP")
    })?;
    if host.ip() != from {
        return Err(format!(
            "SSDP answer from {from}: LOCATION {location} is on another host: refused"
        ));
    }
    Ok(Found { from, location })
}

/// Ask the LAN for gateways and collect the answers for `wait` (the one
/// from `prefer`, the default gateway, first). Invalid answers are logged
/// (once each) and skipped.
pub(crate) fn search(
    to: SocketAddrV4,
    wait: Duration,
    prefer: Option<Ipv4Addr>,
) -> Result<Vec<Found>, MapError> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(MapError::Io)?;
    let _ = sock.set_multicast_ttl_v4(2);
    for t in TARGETS {
        sock.send_to(search_request(t).as_bytes(), to)
            .map_err(MapError::Io)?;
    }
    collect(&sock, wait, prefer.map(IpAddr::V4))
}

/// The IPv6 search: from a socket bound to `bind` (our address that the
/// pinhole is for: the gateway answers to it, from its own address of that
/// scope, and we talk to the device from it), to `to` (`[ff02::c]:1900`
/// with the interface as its scope; tests use a unicast address).
pub(crate) fn search6(
    bind: Ipv6Addr,
    to: SocketAddrV6,
    wait: Duration,
) -> Result<Vec<Found>, MapError> {
    let sock = UdpSocket::bind((bind, 0)).map_err(MapError::Io)?;
    if to.ip().is_multicast() {
        sock_multicast_if_v6(&sock, to.scope_id());
    }
    for t in TARGETS {
        sock.send_to(search_request_to(t, "[FF02::C]:1900").as_bytes(), to)
            .map_err(MapError::Io)?;
    }
    collect(&sock, wait, None)
}

/// Send multicast on interface `index` (best effort: the destination's
/// scope says it too).
fn sock_multicast_if_v6(sock: &UdpSocket, index: u32) {
    let s = socket2::SockRef::from(sock);
    let _ = s.set_multicast_if_v6(index);
    let _ = s.set_multicast_hops_v6(2);
}

/// The answers to a search sent on `sock`, for `wait` (the one from
/// `prefer` first).
fn collect(
    sock: &UdpSocket,
    wait: Duration,
    prefer: Option<IpAddr>,
) -> Result<Vec<Found>, MapError> {
    let mut found: Vec<Found> = Vec::new();
    let mut buf = [0u8; MAX_REPLY];
    let deadline = Instant::now() + wait;
    // A flood of answers ends the search early; it never grows a list.
    let mut answers = 0;
    while answers < 64 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left)).map_err(MapError::Io)?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(MapError::Io(e)),
        };
        answers += 1;
        let from = match from {
            SocketAddr::V4(a) => IpAddr::V4(*a.ip()),
            SocketAddr::V6(a) => IpAddr::V6(*a.ip()),
        };
        match parse_reply(&buf[..n], from) {
            Ok(f) if !found.contains(&f) && found.len() < 8 => found.push(f),
            Ok(_) => {}
            Err(e) => log::warn!("port mapping: {e}"),
        }
        // The default gateway answered: no need to wait for others.
        if prefer.is_some_and(|g| found.iter().any(|f| f.from == g)) {
            break;
        }
    }
    if let Some(g) = prefer {
        found.sort_by_key(|f| f.from != g);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));

    #[test]
    fn answers_are_checked() {
        let ok = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
                   ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                   Location: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n";
        let f = parse_reply(ok, GW).expect("valid");
        assert_eq!(f.location, "http://192.168.1.1:5000/rootDesc.xml");
        // Another host's LOCATION.
        let other = b"HTTP/1.1 200 OK\r\nLOCATION: http://8.8.8.8/desc.xml\r\n\r\n";
        assert!(parse_reply(other, GW)
            .expect_err("refused")
            .contains("another host"));
        // A name, https, junk.
        for bad in [
            &b"HTTP/1.1 200 OK\r\nLOCATION: http://router.lan/desc.xml\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nLOCATION: https://192.168.1.1/d.xml\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"\x00\x01garbage",
            b"HTTP/1.1 404 Not Found\r\nLOCATION: http://192.168.1.1/d.xml\r\n\r\n",
        ] {
            assert!(
                parse_reply(bad, GW).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Oversized.
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.resize(MAX_REPLY, b'a');
        assert!(parse_reply(&big, GW).expect_err("big").contains("bytes"));
        assert!(search_request(TARGETS[0]).starts_with("M-SEARCH * HTTP/1.1\r\n"));
    }

    #[test]
    fn search_collects_valid_answers_and_skips_bad_ones() {
        // A fake responder on loopback stands in for the multicast group.
        let fake = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = match fake.local_addr().expect("addr") {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        };
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (_, from) = fake.recv_from(&mut buf).expect("search");
            let huge = vec![b'x'; 9000];
            fake.send_to(&huge, from).expect("send");
            let off = b"HTTP/1.1 200 OK\r\nLOCATION: http://10.9.9.9:1/d.xml\r\n\r\n";
            fake.send_to(off, from).expect("send");
            let good = b"HTTP/1.1 200 OK\r\nLOCATION: http://127.0.0.1:5000/d.xml\r\n\r\n";
            fake.send_to(good, from).expect("send");
        });
        let start = Instant::now();
        let found = search(to, Duration::from_millis(800), None).expect("search");
        t.join().expect("join");
        assert_eq!(
            found,
            vec![Found {
                from: IpAddr::V4(Ipv4Addr::LOCALHOST),
                location: "http://127.0.0.1:5000/d.xml".into()
            }]
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn ipv6_answers_must_locate_the_device_on_the_answering_address() {
        let gw: IpAddr = "fd77::1".parse().unwrap();
        let ok = b"HTTP/1.1 200 OK\r\nLOCATION: http://[fd77::1]:40513/rootDesc.xml\r\n\r\n";
        assert_eq!(
            parse_reply(ok, gw).expect("valid").location,
            "http://[fd77::1]:40513/rootDesc.xml"
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\nLOCATION: http://[fd77::9]:1/d.xml\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nLOCATION: http://[fe80::1%25eth0]:1/d.xml\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1:1/d.xml\r\n\r\n",
        ] {
            assert!(
                parse_reply(bad, gw).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A search over IPv6 (a loopback responder stands in for the group).
        let fake = UdpSocket::bind("[::1]:0").expect("bind");
        let SocketAddr::V6(to) = fake.local_addr().expect("addr") else {
            unreachable!()
        };
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (n, from) = fake.recv_from(&mut buf).expect("search");
            assert!(buf[..n].starts_with(b"M-SEARCH * HTTP/1.1\r\nHOST: [FF02::C]:1900\r\n"));
            let good = b"HTTP/1.1 200 OK\r\nLOCATION: http://[::1]:5000/d.xml\r\n\r\n";
            fake.send_to(good, from).expect("send");
        });
        let found = search6(Ipv6Addr::LOCALHOST, to, Duration::from_millis(500)).expect("search");
        t.join().expect("join");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].from, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
}
