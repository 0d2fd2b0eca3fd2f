//! The IPv4 port mapping: PCP, NAT-PMP, then UPnP IGD (the
//! `portmap` thread's [`Family`] for IPv4; see the module above).

use super::*;

/// The IPv4 family of the `portmap` thread.
pub(crate) struct V4 {
    pub(crate) cfg: PortMapConfig,
}

impl Family for V4 {
    type Held = Held;
    const LABEL: &'static str = "port mapping";
    const AGAIN: &'static str = "trying again in";

    fn attempt(&self, held: Option<&Held>) -> Attempt {
        attempt(&self.cfg, held)
    }

    fn remove(&self, held: &Held) {
        remove(&self.cfg, held);
    }

    fn reported(&self, st: &PortMapStatus) {
        if let Some(ip) = st.external_ip {
            (self.cfg.on_external)(ip);
        }
    }

    fn removed(&self) -> String {
        format!("mappings of port {} removed", self.cfg.port)
    }
}

/// A mapping held: how to renew and remove it.
pub(crate) enum Held {
    NatPmp {
        gateway: Ipv4Addr,
    },
    Pcp {
        gateway: Ipv4Addr,
        /// Our address towards the gateway (the requests' client address).
        client: Ipv4Addr,
        /// The nonces of the TCP and UDP mappings (repeated in renewals
        /// and removals).
        nonces: [[u8; 12]; 2],
    },
    Upnp {
        service: igd::Service,
        client: Ipv4Addr,
    },
}

type Attempt = Result<(Held, PortMapStatus), Box<PortMapStatus>>;

/// One try: PCP, NAT-PMP, then UPnP. `held`: the mapping to renew (same method).
fn attempt(cfg: &PortMapConfig, held: Option<&Held>) -> Attempt {
    let refused = |gateway: Option<IpAddr>, method, ext: Option<IpAddr>, message: String| {
        Box::new(PortMapStatus {
            state: PortMapState::Refused,
            method,
            gateway,
            external_ip: ext,
            tcp_port: None,
            udp_port: None,
            lease_secs: 0,
            message,
        })
    };
    let Some(gw) = gateway::default_gateway() else {
        return Err(refused(None, None, None, "no IPv4 default gateway".into()));
    };
    if !matches!(held, Some(Held::Upnp { .. })) {
        match map_pcp_or_natpmp(cfg, gw, held) {
            Ok(r) => return Ok(r),
            Err((_, MapError::NoAnswer)) => {}
            Err((method, e)) => {
                // A gateway that speaks PCP or NAT-PMP and refuses: UPnP may
                // still work (some routers have one of them turned off).
                return match map_upnp(cfg, Some(gw), held) {
                    Ok(r) => Ok(r),
                    Err((_, ext, MapError::NoAnswer)) => Err(refused(
                        Some(gw.into()),
                        Some(method),
                        ext,
                        format!("gateway {gw} refused: {e}"),
                    )),
                    Err((_, ext, u)) => Err(refused(
                        Some(gw.into()),
                        Some(method),
                        ext,
                        format!("gateway {gw} refused: {e}; UPnP: {u}"),
                    )),
                };
            }
        }
    }
    map_upnp(cfg, Some(gw), held).map_err(|(dev, ext, e)| {
        let g = dev.unwrap_or(gw);
        let msg = match e {
            MapError::NoAnswer => {
                format!("no PCP, NAT-PMP or UPnP gateway answered (default gateway {gw})")
            }
            e => format!("UPnP gateway {g} refused: {e}"),
        };
        refused(Some(g.into()), dev.map(|_| "upnp"), ext, msg)
    })
}

/// Whether an external address is one a mapping is useless behind.
pub(crate) fn private_external(ip: Ipv4Addr) -> bool {
    !crate::proto::bep42::is_public(IpAddr::V4(ip))
}

/// PCP (unless `PEER_PORT_MAP_PCP=off` or the mapping held is NAT-PMP's),
/// then NAT-PMP when the gateway speaks no PCP. The error names the
/// method that answered.
pub(crate) fn map_pcp_or_natpmp(
    cfg: &PortMapConfig,
    gw: Ipv4Addr,
    held: Option<&Held>,
) -> Result<(Held, PortMapStatus), (&'static str, MapError)> {
    if !matches!(held, Some(Held::NatPmp { .. })) && !pcp_disabled_by_env() {
        match map_pcp(cfg, gw, held) {
            Err(MapError::NoAnswer) => {
                log::debug!("port mapping: gateway {gw} speaks no PCP; trying NAT-PMP");
            }
            r => return r.map_err(|e| ("pcp", e)),
        }
    }
    map_natpmp(cfg, gw).map_err(|e| ("nat-pmp", e))
}

/// Map TCP and UDP with PCP MAP requests (renewals repeat the nonces).
fn map_pcp(
    cfg: &PortMapConfig,
    gw: Ipv4Addr,
    held: Option<&Held>,
) -> Result<(Held, PortMapStatus), MapError> {
    let (client, nonces) = match held {
        Some(Held::Pcp {
            gateway,
            client,
            nonces,
        }) if *gateway == gw => (*client, *nonces),
        _ => (
            gateway::local_addr_towards(gw).map_err(MapError::Io)?,
            [pcp::new_nonce(), pcp::new_nonce()],
        ),
    };
    let mut ports = [None, None];
    let mut lease = u32::MAX;
    let mut ext = Ipv4Addr::UNSPECIFIED;
    for i in 0..2 {
        let lifetime = lease_asked().as_secs() as u32;
        let req = pcp::MapRequest::ours(client.into(), nonces[i], i, cfg.port, lifetime);
        let m = pcp::exchange(gw, cfg.natpmp_port, &req)?;
        ports[i] = Some(m.external_port);
        lease = lease.min(m.lifetime);
        // `decode` gives an IPv4 answer to an IPv4 request.
        ext = match m.external_ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => {
                return Err(MapError::Refused(format!(
                    "PCP assigned a non-IPv4 external address {v6}"
                )))
            }
        };
        if private_external(ext) {
            // Nothing is reachable through it: take back what we got.
            for (j, nonce) in nonces.iter().enumerate().take(i + 1) {
                let _ = pcp::exchange(
                    gw,
                    cfg.natpmp_port,
                    &pcp::MapRequest::ours(client.into(), *nonce, j, cfg.port, 0),
                );
            }
            return Err(MapError::Refused(format!(
                "external address {ext} is not public (double NAT?): no mapping"
            )));
        }
    }
    Ok((
        Held::Pcp {
            gateway: gw,
            client,
            nonces,
        },
        small_mapped("PCP", "pcp", cfg, gw, ext, ports, lease),
    ))
}

/// The status of a PCP or NAT-PMP (`name`) mapping of `ports` (TCP, UDP).
fn small_mapped(
    name: &str,
    method: &'static str,
    cfg: &PortMapConfig,
    gw: Ipv4Addr,
    ext: Ipv4Addr,
    ports: [Option<u16>; 2],
    lease: u32,
) -> PortMapStatus {
    let message = format!(
        "{name} gateway {gw}: external address {ext}, TCP {} and UDP {} mapped to port {} for {lease} s",
        ports[0].unwrap_or(0),
        ports[1].unwrap_or(0),
        cfg.port,
    );
    PortMapStatus::mapped(method, Some(gw.into()), ext.into(), ports, lease, message)
}

fn map_natpmp(cfg: &PortMapConfig, gw: Ipv4Addr) -> Result<(Held, PortMapStatus), MapError> {
    let ext = match natpmp::exchange(gw, cfg.natpmp_port, natpmp::Request::ExternalAddress)? {
        natpmp::Answer::ExternalAddress(ip) => ip,
        natpmp::Answer::Mapped { .. } => return Err(MapError::NoAnswer),
    };
    if private_external(ext) {
        return Err(MapError::Refused(format!(
            "external address {ext} is not public (double NAT?): no mapping"
        )));
    }
    let mut ports = [None, None];
    let mut lease = u32::MAX;
    for (i, protocol) in [Protocol::Tcp, Protocol::Udp].into_iter().enumerate() {
        let req = natpmp::Request::Map {
            protocol,
            internal_port: cfg.port,
            external_port: cfg.port,
            lifetime: lease_asked().as_secs() as u32,
        };
        if let natpmp::Answer::Mapped {
            external_port,
            lifetime,
            ..
        } = natpmp::exchange(gw, cfg.natpmp_port, req)?
        {
            ports[i] = Some(external_port);
            lease = lease.min(lifetime);
        }
    }
    Ok((
        Held::NatPmp { gateway: gw },
        small_mapped("NAT-PMP", "nat-pmp", cfg, gw, ext, ports, lease),
    ))
}

type UpnpError = (Option<Ipv4Addr>, Option<IpAddr>, MapError);

fn map_upnp(
    cfg: &PortMapConfig,
    gw: Option<Ipv4Addr>,
    held: Option<&Held>,
) -> Result<(Held, PortMapStatus), UpnpError> {
    let (service, client) = match held {
        Some(Held::Upnp { service, client }) => (service.clone(), *client),
        _ => {
            let found = ssdp::search(cfg.ssdp, SSDP_WAIT, gw).map_err(|e| (None, None, e))?;
            let mut last = MapError::NoAnswer;
            let mut got = None;
            for f in found {
                let IpAddr::V4(from) = f.from else { continue };
                match igd::fetch_service(&f.location, f.from) {
                    Ok(s) => {
                        got = Some((from, s));
                        break;
                    }
                    Err(e) => {
                        log::warn!("port mapping: UPnP device {}: {e}", f.from);
                        last = e;
                    }
                }
            }
            let Some((dev, service)) = got else {
                return Err((None, None, last));
            };
            let client =
                gateway::local_addr_towards(dev).map_err(|e| (Some(dev), None, MapError::Io(e)))?;
            (service, client)
        }
    };
    let dev = igd::url_host(&service.control_url).map(|h| *h.ip());
    let err = |ext: Option<IpAddr>| move |e| (dev, ext, e);
    let ext = igd::external_ip(&service).map_err(err(None))?;
    if private_external(ext) {
        return Err((
            dev,
            Some(ext.into()),
            MapError::Refused(format!(
                "external address {ext} is not public (double NAT?): no mapping"
            )),
        ));
    }
    let mut lease = lease_asked().as_secs() as u32;
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        match igd::add_mapping(&service, protocol, cfg.port, client, lease) {
            Ok(()) => {}
            // OnlyPermanentLeasesSupported: ask for a permanent one.
            Err(MapError::Upnp { code: 725, .. }) => {
                lease = 0;
                igd::add_mapping(&service, protocol, cfg.port, client, 0)
                    .map_err(err(Some(ext.into())))?;
            }
            Err(e) => return Err((dev, Some(ext.into()), e)),
        }
    }
    let g = dev.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let message = format!(
        "UPnP gateway {g}: external address {ext}, TCP and UDP port {} mapped to {client} ({})",
        cfg.port,
        if lease == 0 {
            "permanent".to_string()
        } else {
            format!("for {lease} s")
        }
    );
    Ok((
        Held::Upnp { service, client },
        PortMapStatus::mapped(
            "upnp",
            dev.map(IpAddr::V4),
            ext.into(),
            [Some(cfg.port); 2],
            lease,
            message,
        ),
    ))
}

/// Remove our mappings (each request bounded by its timeout).
pub(crate) fn remove(cfg: &PortMapConfig, h: &Held) {
    let start = Instant::now();
    for (i, protocol) in [Protocol::Tcp, Protocol::Udp].into_iter().enumerate() {
        let r = match h {
            Held::Pcp {
                gateway,
                client,
                nonces,
            } => pcp::exchange(
                *gateway,
                cfg.natpmp_port,
                &pcp::MapRequest::ours((*client).into(), nonces[i], i, cfg.port, 0),
            )
            .map(|_| ()),
            Held::NatPmp { gateway } => natpmp::exchange(
                *gateway,
                cfg.natpmp_port,
                natpmp::Request::Map {
                    protocol,
                    internal_port: cfg.port,
                    external_port: 0,
                    lifetime: 0,
                },
            )
            .map(|_| ()),
            Held::Upnp { service, .. } => igd::delete_mapping(service, protocol, cfg.port),
        };
        if let Err(e) = r {
            log::warn!(
                "port mapping: removing the {} mapping: {e}",
                protocol.as_str()
            );
        }
    }
    log::debug!("port mapping: removed in {:?}", start.elapsed());
}
