//! IPv6 pinholes: ask the IPv6 router to let inbound TCP and UDP reach
//! our listening port through its firewall (there is no NAT to map, the
//! address stays ours). The `portmap6` thread ([`super::PortMapper`]),
//! started when we listen on IPv6, runs the same loop as the IPv4 one
//! (renewal at half the lease, back-off after refusals, removal at exit).
//!
//! Which address: the one IPv6 peers reach us at, the listening address
//! when it is a specific IPv6 address, else the source address the
//! routing table picks for a global destination
//! ([`probe_own_v6`](crate::engine::net::own_v6::probe_own_v6)). It must
//! be global or unique-local ([`pinhole_worthy`]): never loopback,
//! link-local, multicast, v4-mapped or deprecated site-local. A
//! unique-local address (`fc00::/7`) is accepted: it is what a lab or a
//! site without a global prefix has, a router between ULA sites forwards
//! it, and a home router with a global prefix never sees it asked for
//! (RFC 6724 makes the global address the source towards a global
//! destination).
//!
//! How: PCP first (RFC 6887 MAP with our IPv6 address as the client and
//! `::` as the suggested external address, to the IPv6 default router's
//! port 5351, from our address; renewal and removal with the mappings'
//! nonces), then UPnP IGD v2 (`WANIPv6FirewallControl`, see
//! `pinhole_igd`: an SSDP search on `[ff02::c]:1900` from our address,
//! the answering device's description, `GetFirewallStatus`, `AddPinhole`
//! per protocol, `UpdatePinhole` to renew, `DeletePinhole` at exit), the
//! same fallback as IPv4: a router silent on PCP is asked over UPnP, one
//! that refuses over PCP too, and both refusals make the one line.

use super::igd::Service;
use super::*;
use crate::portmap::pinhole_igd as fw;
use std::net::{Ipv6Addr, SocketAddr};

/// The `portmap6` thread's family.
pub(crate) struct Pinholes {
    pub(crate) cfg: PortMapConfig,
    /// The listening address that takes IPv6.
    pub(crate) listen: IpAddr,
}

/// Pinholes held: how to renew and remove them.
pub(crate) enum Held6 {
    Pcp {
        router: SocketAddrV6,
        client: Ipv6Addr,
        /// The TCP and UDP mappings' nonces.
        nonces: [[u8; 12]; 2],
    },
    Upnp {
        service: Service,
        client: Ipv6Addr,
        /// The TCP and UDP pinholes' `UniqueID`s.
        ids: [u16; 2],
    },
}

impl Held6 {
    fn client(&self) -> Ipv6Addr {
        match self {
            Held6::Pcp { client, .. } | Held6::Upnp { client, .. } => *client,
        }
    }
}

type Attempt6 = Result<(Held6, PortMapStatus), Box<PortMapStatus>>;

impl Family for Pinholes {
    type Held = Held6;
    const LABEL: &'static str = "IPv6 pinhole";
    const AGAIN: &'static str = "asking again in";

    fn attempt(&self, held: Option<&Held6>) -> Attempt6 {
        attempt(&self.cfg, self.listen, held)
    }

    fn remove(&self, held: &Held6) {
        remove(&self.cfg, held);
    }

    fn removed(&self) -> String {
        format!("pinholes for port {} removed", self.cfg.port)
    }

    /// No router asked (no IPv6 address worth a pinhole, no IPv6 default
    /// route): information, not a warning, on every IPv4-only host.
    fn warns(&self, st: &PortMapStatus) -> bool {
        st.gateway.is_some()
    }
}

/// Whether a pinhole for `ip` makes sense: a global or unique-local
/// unicast address (see the module).
pub(crate) fn pinhole_worthy(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let site_local = s[0] & 0xffc0 == 0xfec0;
    let v4_inside = s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff);
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || gateway::is_link_local(ip)
        || site_local
        || v4_inside)
}

/// Our address to open (see the module), `None` when we have none worth it.
fn our_address(listen: IpAddr) -> Option<Ipv6Addr> {
    crate::engine::net::own_v6::probe_own_v6(listen).filter(|v6| pinhole_worthy(*v6))
}

fn refused(
    router: Option<IpAddr>,
    method: Option<&'static str>,
    message: String,
) -> Box<PortMapStatus> {
    Box::new(PortMapStatus {
        state: PortMapState::Refused,
        method,
        gateway: router,
        external_ip: None,
        tcp_port: None,
        udp_port: None,
        lease_secs: 0,
        message,
    })
}

/// One try: PCP, then UPnP. `held`: the pinholes to renew (same method).
fn attempt(cfg: &PortMapConfig, listen: IpAddr, held: Option<&Held6>) -> Attempt6 {
    let Some(client) = our_address(listen) else {
        return Err(refused(
            None,
            None,
            format!("no global or unique-local IPv6 address to open (listening on {listen})"),
        ));
    };
    // Our address changed: what was held expires by itself.
    let held = held.filter(|h| h.client() == client);
    let Some((router, ifindex)) = gateway::default_gateway_v6() else {
        return Err(refused(None, None, "no IPv6 default route".into()));
    };
    let r = IpAddr::V6(*router.ip());
    if !matches!(held, Some(Held6::Upnp { .. })) && !pcp_disabled_by_env() {
        match map_pcp(cfg, router, client, held) {
            Ok(ok) => return Ok(ok),
            Err(MapError::NoAnswer) => {
                log::debug!("IPv6 pinhole: router {r} speaks no PCP; trying UPnP");
            }
            Err(e) => {
                return match map_upnp(cfg, client, ifindex, None) {
                    Ok(ok) => Ok(ok),
                    Err((_, MapError::NoAnswer)) => Err(refused(
                        Some(r),
                        Some("pcp"),
                        format!("router {r} refused: {e}"),
                    )),
                    Err((_, u)) => Err(refused(
                        Some(r),
                        Some("pcp"),
                        format!("router {r} refused: {e}; UPnP: {u}"),
                    )),
                };
            }
        }
    }
    map_upnp(cfg, client, ifindex, held).map_err(|(dev, e)| {
        let msg = match e {
            MapError::NoAnswer => {
                format!("no PCP or UPnP IPv6 router answered (default router {r})")
            }
            e => format!("UPnP gateway {} refused: {e}", dev.unwrap_or(r)),
        };
        refused(Some(dev.unwrap_or(r)), dev.map(|_| "upnp"), msg)
    })
}

/// The router's PCP address (its scope: the interface of the route).
fn pcp_at(cfg: &PortMapConfig, router: SocketAddrV6) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        *router.ip(),
        cfg.natpmp_port,
        0,
        router.scope_id(),
    ))
}

/// Open (or renew) the TCP and UDP pinholes with PCP MAP requests.
fn map_pcp(
    cfg: &PortMapConfig,
    router: SocketAddrV6,
    client: Ipv6Addr,
    held: Option<&Held6>,
) -> Result<(Held6, PortMapStatus), MapError> {
    let nonces = match held {
        Some(Held6::Pcp {
            router: r, nonces, ..
        }) if r.ip() == router.ip() => *nonces,
        _ => [pcp::new_nonce(), pcp::new_nonce()],
    };
    let to = pcp_at(cfg, router);
    let lifetime = lease_asked().as_secs().min(u64::from(u32::MAX)) as u32;
    let mut lease = u32::MAX;
    let mut ext = IpAddr::V6(client);
    let mut ports = [None, None];
    for i in 0..2 {
        match pcp::exchange_at(
            to,
            &pcp::MapRequest::ours(client.into(), nonces[i], i, cfg.port, lifetime),
        ) {
            Ok(m) => {
                lease = lease.min(m.lifetime);
                ext = m.external_ip;
                ports[i] = Some(m.external_port);
            }
            Err(e) => {
                // Take back the TCP pinhole when the UDP one failed.
                for (j, nonce) in nonces.iter().enumerate().take(i) {
                    let _ = pcp::exchange_at(
                        to,
                        &pcp::MapRequest::ours(client.into(), *nonce, j, cfg.port, 0),
                    );
                }
                return Err(e);
            }
        }
    }
    let r = router.ip();
    let message = format!(
        "PCP router {r}: TCP {} and UDP {} open to [{client}]:{} for {lease} s",
        ports[0].unwrap_or(0),
        ports[1].unwrap_or(0),
        cfg.port
    );
    Ok((
        Held6::Pcp {
            router,
            client,
            nonces,
        },
        PortMapStatus::mapped("pcp", Some(IpAddr::V6(*r)), ext, ports, lease, message),
    ))
}

type Upnp6Error = (Option<IpAddr>, MapError);

/// The firewall control service of the IPv6 UPnP device that answers
/// first.
fn find_service(
    cfg: &PortMapConfig,
    client: Ipv6Addr,
    ifindex: u32,
) -> Result<Service, Upnp6Error> {
    let to = if cfg.ssdp6.ip().is_multicast() {
        SocketAddrV6::new(*cfg.ssdp6.ip(), cfg.ssdp6.port(), 0, ifindex)
    } else {
        cfg.ssdp6
    };
    let found = ssdp::search6(client, to, SSDP_WAIT).map_err(|e| (None, e))?;
    let mut last = (None, MapError::NoAnswer);
    for f in found {
        match fw::fetch(&f.location, f.from) {
            Ok(s) => return Ok(s),
            Err(e) => {
                log::warn!("IPv6 pinhole: UPnP device {}: {e}", f.from);
                last = (Some(f.from), e);
            }
        }
    }
    Err(last)
}

/// Open (or renew) the TCP and UDP pinholes over UPnP.
fn map_upnp(
    cfg: &PortMapConfig,
    client: Ipv6Addr,
    ifindex: u32,
    held: Option<&Held6>,
) -> Result<(Held6, PortMapStatus), Upnp6Error> {
    let lease = lease_asked().as_secs().min(u64::from(fw::MAX_LEASE)) as u32;
    // A renewal: `UpdatePinhole`; a pinhole the device forgot is added again.
    if let Some(Held6::Upnp { service, ids, .. }) = held {
        let renewed = ids
            .iter()
            .all(|id| match fw::update_pinhole(service, *id, lease) {
                Ok(()) => true,
                Err(e) => {
                    log::info!("IPv6 pinhole: UpdatePinhole {id}: {e}; adding it again");
                    false
                }
            });
        if renewed {
            return Ok(upnp_status(cfg, service.clone(), client, *ids, lease));
        }
    }
    let service = match held {
        Some(Held6::Upnp { service, .. }) => service.clone(),
        _ => find_service(cfg, client, ifindex)?,
    };
    open_upnp(cfg, service, client, lease)
}

/// Check the firewall's status and add the TCP and UDP pinholes (the
/// first taken back when the second fails).
fn open_upnp(
    cfg: &PortMapConfig,
    service: Service,
    client: Ipv6Addr,
    lease: u32,
) -> Result<(Held6, PortMapStatus), Upnp6Error> {
    let dev = igd::url_addr(&service.control_url).map(|a| a.ip());
    let err = |e| (dev, e);
    let st = fw::firewall_status(&service).map_err(err)?;
    if !st.enabled {
        return Err(err(MapError::Refused(
            "its IPv6 firewall is off (inbound IPv6 is not filtered): no pinhole needed".into(),
        )));
    }
    if !st.inbound_allowed {
        return Err(err(MapError::Refused(
            "it allows no inbound pinholes (InboundPinholeAllowed 0)".into(),
        )));
    }
    let mut ids = [0u16; 2];
    for (i, protocol) in [Protocol::Tcp, Protocol::Udp].into_iter().enumerate() {
        match fw::add_pinhole(&service, client, cfg.port, protocol, lease) {
            Ok(id) => ids[i] = id,
            Err(e) => {
                for id in ids.iter().take(i) {
                    let _ = fw::delete_pinhole(&service, *id);
                }
                return Err(err(e));
            }
        }
    }
    Ok(upnp_status(cfg, service, client, ids, lease))
}

fn upnp_status(
    cfg: &PortMapConfig,
    service: Service,
    client: Ipv6Addr,
    ids: [u16; 2],
    lease: u32,
) -> (Held6, PortMapStatus) {
    let dev = igd::url_addr(&service.control_url).map(|a| a.ip());
    let message = format!(
        "UPnP gateway {}: TCP and UDP port {} open to {client} for {lease} s (pinholes {} and {})",
        dev.map_or_else(|| "?".to_string(), |d| d.to_string()),
        cfg.port,
        ids[0],
        ids[1]
    );
    (
        Held6::Upnp {
            service,
            client,
            ids,
        },
        PortMapStatus::mapped(
            "upnp",
            dev,
            IpAddr::V6(client),
            [Some(cfg.port); 2],
            lease,
            message,
        ),
    )
}

/// Close our pinholes (each request bounded by its timeout).
fn remove(cfg: &PortMapConfig, h: &Held6) {
    for i in 0..2 {
        let r = match h {
            Held6::Pcp {
                router,
                client,
                nonces,
            } => pcp::exchange_at(
                pcp_at(cfg, *router),
                &pcp::MapRequest::ours((*client).into(), nonces[i], i, cfg.port, 0),
            )
            .map(|_| ()),
            Held6::Upnp { service, ids, .. } => fw::delete_pinhole(service, ids[i]),
        };
        if let Err(e) = r {
            log::warn!(
                "IPv6 pinhole: removing the {} pinhole: {e}",
                ["TCP", "UDP"][i]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn only_global_and_unique_local_addresses_get_pinholes() {
        for ok in ["2001:db8::5", "2a01:e34::1", "fd77::2", "fc00::1"] {
            assert!(pinhole_worthy(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "::",
            "::1",
            "fe80::1",
            "ff02::1",
            "fec0::1",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
        ] {
            assert!(!pinhole_worthy(bad.parse().unwrap()), "{bad}");
        }
    }

    fn config(pcp_port: u16) -> PortMapConfig {
        PortMapConfig {
            port: 6881,
            ssdp: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
            natpmp_port: pcp_port,
            on_external: Arc::new(|_| {}),
            listen6: Some(Ipv6Addr::LOCALHOST.into()),
            ssdp6: SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0, 0),
        }
    }

    /// The (nonce, lifetime) of each request a fake router saw.
    type Seen = Vec<([u8; 12], u32)>;

    /// A fake PCP router on `[::1]` answering MAPs with the client's own
    /// address (or `answer_with`), recording (nonce, lifetime) per request.
    fn fake_router(answer_with: Option<Ipv6Addr>) -> (u16, std::thread::JoinHandle<Seen>) {
        let sock = UdpSocket::bind("[::1]:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 1200];
            sock.set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let b = &buf[..n];
                if n != pcp::MAP_LEN || b[..2] != [2, 1] {
                    continue;
                }
                let mut nonce = [0u8; 12];
                nonce.copy_from_slice(&b[24..36]);
                seen.push((nonce, u32::from_be_bytes([b[4], b[5], b[6], b[7]])));
                let mut a = vec![2, 129, 0, 0];
                a.extend_from_slice(&b[4..8]);
                a.extend_from_slice(&[0, 0, 0, 7]);
                a.extend_from_slice(&[0; 12]);
                a.extend_from_slice(&b[24..44]);
                match answer_with {
                    Some(ip) => a.extend_from_slice(&ip.octets()),
                    None => a.extend_from_slice(&b[8..24]),
                }
                sock.send_to(&a, from).expect("answer");
            }
            seen
        });
        (port, t)
    }

    #[test]
    fn pcp_pinholes_are_opened_renewed_and_closed_with_their_nonces() {
        let (port, t) = fake_router(None);
        let cfg = config(port);
        let router = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0);
        let me = Ipv6Addr::LOCALHOST;
        let (held, st) = map_pcp(&cfg, router, me, None).expect("open");
        assert_eq!(st.method, Some("pcp"));
        assert_eq!(st.external_ip, Some(IpAddr::V6(me)));
        assert_eq!((st.tcp_port, st.udp_port), (Some(6881), Some(6881)));
        let (held2, _) = map_pcp(&cfg, router, me, Some(&held)).expect("renew");
        remove(&cfg, &held2);
        let seen = t.join().expect("router");
        let [tcp, udp, tcp2, udp2, del_tcp, del_udp] = seen[..] else {
            panic!("{seen:?}");
        };
        assert_ne!(tcp.0, udp.0);
        assert_eq!((tcp2.0, udp2.0), (tcp.0, udp.0), "renewal: same nonces");
        assert_eq!(
            (del_tcp.0, del_udp.0),
            (tcp.0, udp.0),
            "removal: same nonces"
        );
        assert_eq!((del_tcp.1, del_udp.1), (0, 0));
    }

    /// A fake firewall control service on `[::1]`: answers the `n`th SOAP
    /// request, for `action`, with `answer(action, n)` (status, body);
    /// returns its control URL and the actions it was asked, in order,
    /// after `max` requests.
    fn fake_service(
        answer: fn(&str, usize) -> (u16, String),
        max: usize,
    ) -> (Service, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("[::1]:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(false).expect("blocking");
        let t = std::thread::spawn(move || {
            let mut asked = Vec::new();
            // `max` requests, each on its own connection.
            for _ in 0..max {
                let Ok((mut c, _)) = l.accept() else { break };
                c.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head and a body of Content-Length bytes.
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(h) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if req.len() >= h + 4 + len {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let action = text
                    .split("#")
                    .nth(1)
                    .and_then(|a| a.split('"').next())
                    .unwrap_or("")
                    .to_string();
                let (status, body) = answer(&action, asked.len());
                asked.push(action);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(resp.as_bytes());
            }
            asked
        });
        let service = Service {
            service_type: fw::FIREWALL_SERVICE.into(),
            control_url: format!("http://[::1]:{port}/ctl/IP6FCtl"),
        };
        (service, t)
    }

    fn status_ok() -> (u16, String) {
        (
            200,
            "<u:GetFirewallStatusResponse><FirewallEnabled>1</FirewallEnabled>\
             <InboundPinholeAllowed>1</InboundPinholeAllowed></u:GetFirewallStatusResponse>"
                .into(),
        )
    }

    #[test]
    fn upnp_pinholes_against_a_fake_router_and_its_hostile_answers() {
        // A good router: two pinholes, then their removal.
        let (service, t) = fake_service(
            |a, n| match a {
                "GetFirewallStatus" => status_ok(),
                "AddPinhole" => (200, format!("<UniqueID>{n}</UniqueID>")),
                _ => (200, String::new()),
            },
            5,
        );
        let cfg = config(9);
        let (held, st) = open_upnp(&cfg, service, Ipv6Addr::LOCALHOST, 20).expect("open");
        assert_eq!(st.method, Some("upnp"));
        assert_eq!(st.external_ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(
            st.message
                .contains("open to ::1 for 20 s (pinholes 1 and 2)"),
            "{}",
            st.message
        );
        remove(&cfg, &held);
        assert_eq!(
            t.join().expect("router"),
            [
                "GetFirewallStatus",
                "AddPinhole",
                "AddPinhole",
                "DeletePinhole",
                "DeletePinhole"
            ]
        );
        // A hostile UniqueID for UDP: refused, and the TCP pinhole taken back.
        let (service, t) = fake_service(
            |a, n| match (a, n) {
                ("GetFirewallStatus", _) => status_ok(),
                ("AddPinhole", 1) => (200, "<UniqueID>5</UniqueID>".into()),
                ("AddPinhole", _) => (200, "<UniqueID>99999</UniqueID>".into()),
                _ => (200, String::new()),
            },
            4,
        );
        let e = open_upnp(&cfg, service, Ipv6Addr::LOCALHOST, 20)
            .map(|_| ())
            .expect_err("refused");
        assert!(matches!(e.1, MapError::Refused(_)), "{}", e.1);
        assert!(e.1.to_string().contains("no usable UniqueID"), "{}", e.1);
        assert_eq!(
            t.join().expect("router"),
            [
                "GetFirewallStatus",
                "AddPinhole",
                "AddPinhole",
                "DeletePinhole"
            ]
        );
        // Inbound pinholes not allowed: refused with the reason, nothing added.
        let (service, t) = fake_service(
            |_, _| {
                (
                200,
                "<FirewallEnabled>1</FirewallEnabled><InboundPinholeAllowed>0</InboundPinholeAllowed>"
                    .into(),
            )
            },
            1,
        );
        let e = open_upnp(&cfg, service, Ipv6Addr::LOCALHOST, 20)
            .map(|_| ())
            .expect_err("refused");
        assert!(
            e.1.to_string().contains("allows no inbound pinholes"),
            "{}",
            e.1
        );
        assert_eq!(t.join().expect("router"), ["GetFirewallStatus"]);
        // A UPnP error (606 Action not authorized) is the router's word.
        let (service, t) = fake_service(
            |a, _| {
                match a {
            "GetFirewallStatus" => status_ok(),
            _ => (
                500,
                "<s:Fault><detail><UPnPError><errorCode>606</errorCode>\
                 <errorDescription>Action not authorized</errorDescription></UPnPError></detail></s:Fault>"
                    .into(),
            ),
        }
            },
            2,
        );
        let e = open_upnp(&cfg, service, Ipv6Addr::LOCALHOST, 20)
            .map(|_| ())
            .expect_err("refused");
        assert_eq!(e.1.to_string(), "UPnP error 606 (Action not authorized)");
        assert_eq!(
            t.join().expect("router"),
            ["GetFirewallStatus", "AddPinhole"]
        );
    }

    #[test]
    fn a_router_answering_an_ipv4_address_for_a_pinhole_is_refused() {
        let (port, t) = fake_router(Some(Ipv4Addr::new(84, 124, 73, 14).to_ipv6_mapped()));
        let cfg = config(port);
        let router = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0);
        let e = map_pcp(&cfg, router, Ipv6Addr::LOCALHOST, None)
            .map(|_| ())
            .expect_err("refused");
        assert!(e.to_string().contains("not a usable IPv6 address"), "{e}");
        drop(t.join());
    }
}
