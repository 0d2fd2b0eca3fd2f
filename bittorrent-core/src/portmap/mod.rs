//! Port mapping: ask the home router to forward our listening port (TCP
//! and UDP) to us, with PCP (RFC 6887), NAT-PMP (RFC 6886) or UPnP IGD,
//! and learn our external address from it.
//!
//! One thread per session, named `portmap` ([`PortMapper::start`]). It
//! finds the IPv4 default gateway, asks it over PCP first (a MAP per
//! protocol, given up after 1.75 s of silence), then, when the gateway
//! speaks no PCP (silence, a NAT-PMP "unsupported version"), over NAT-PMP
//! (the same bound), then over UPnP (SSDP search for 2 s,
//! the device description, SOAP calls; every HTTP request times out after
//! [`igd::HTTP_TIMEOUT`]). A mapping is renewed at half its lease and
//! deleted when the session stops. A gateway that refuses (no gateway, no
//! answer, mapping disabled, a private external address: double NAT) gets
//! one line in the log and in [`PortMapStatus::message`], and the thread
//! waits [`RETRY_FIRST`] before it tries again, doubling up to
//! [`RETRY_MAX`]: never a tight loop.
//!
//! Tests and CI set `PEER_PORT_MAP=off` ([`ENV_VAR`]): then no SSDP, PCP
//! or NAT-PMP packet ever leaves the machine, whatever the configuration.

pub(crate) mod gateway;
pub(crate) mod igd;
pub(crate) mod natpmp;
pub(crate) mod pcp;
pub(crate) mod ssdp;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable that turns port mapping off for every session
/// of the process (`off`, `0`, `no` or `false`), whatever the configuration.
pub const ENV_VAR: &str = "PEER_PORT_MAP";
/// First wait after a refusal.
pub const RETRY_FIRST: Duration = Duration::from_secs(5 * 60);
/// Longest wait after refusals in a row.
pub const RETRY_MAX: Duration = Duration::from_secs(60 * 60);
/// Lease asked for (UPnP and NAT-PMP; RFC 6886 recommends two hours).
pub const LEASE: Duration = Duration::from_secs(2 * 60 * 60);
/// The environment variable that asks for a shorter (or longer) lease, in
/// seconds (20 to 604800): for tests and for watching renewals by hand.
pub const LEASE_ENV_VAR: &str = "PEER_PORT_MAP_LEASE";

/// The lease to ask for: [`LEASE`], or `PEER_PORT_MAP_LEASE` seconds.
pub fn lease_asked() -> Duration {
    lease_from(std::env::var(LEASE_ENV_VAR).ok().as_deref())
}

/// The lease a value of `PEER_PORT_MAP_LEASE` asks for (unset or not a
/// number: [`LEASE`]; clamped to 20 s .. 7 days).
fn lease_from(v: Option<&str>) -> Duration {
    v.and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(LEASE, |s| Duration::from_secs(s.clamp(20, 604_800)))
}
/// Shortest wait before a renewal (a gateway granting a few seconds is
/// renewed this often, not in a tight loop).
pub const RENEW_FLOOR: Duration = Duration::from_secs(10);
/// How long the SSDP search waits for answers.
pub const SSDP_WAIT: Duration = Duration::from_secs(2);
/// Longest a stop waits for the thread to remove a mapping it holds.
pub const STOP_WAIT_MAPPED: Duration = Duration::from_secs(5);
/// Longest a stop waits for a thread that holds no mapping.
pub const STOP_WAIT_SEARCHING: Duration = Duration::from_millis(200);

/// The environment variable that turns PCP off (`off`, `0`, `no`,
/// `false`): NAT-PMP and UPnP only, as before PCP (tests use it to keep
/// the NAT-PMP path covered against a gateway that speaks both).
pub const PCP_ENV_VAR: &str = "PEER_PORT_MAP_PCP";

/// Whether `PEER_PORT_MAP` turns port mapping off.
pub fn disabled_by_env() -> bool {
    std::env::var(ENV_VAR).is_ok_and(|v| is_off(&v))
}

/// Whether `PEER_PORT_MAP_PCP` turns PCP off.
fn pcp_disabled_by_env() -> bool {
    std::env::var(PCP_ENV_VAR).is_ok_and(|v| is_off(&v))
}

/// Whether a value of `PEER_PORT_MAP` means off.
fn is_off(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "off" | "0" | "no" | "false" | "none"
    )
}

/// A transport protocol to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (peer connections, the embedded HTTP tracker).
    Tcp,
    /// UDP (the DHT, the UDP tracker).
    Udp,
}

impl Protocol {
    /// `TCP` or `UDP`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// Why a gateway could not map the port.
#[derive(Debug)]
pub(crate) enum MapError {
    /// No answer (NAT-PMP), no device found (UPnP).
    NoAnswer,
    /// The gateway said no, or sent something we refuse.
    Refused(String),
    /// A UPnP error from the gateway.
    Upnp { code: u32, desc: String },
    /// HTTP failed (connection, timeout, status).
    Http(String),
    /// A socket error.
    Io(std::io::Error),
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::NoAnswer => f.write_str("no answer"),
            MapError::Refused(s) | MapError::Http(s) => f.write_str(s),
            MapError::Upnp { code, desc } => write!(f, "UPnP error {code} ({desc})"),
            MapError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Where port mapping stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMapState {
    /// Looking for a gateway (the first attempt has not ended).
    Searching,
    /// The port is mapped.
    Mapped,
    /// The gateway refused or none was found; retried after a back-off.
    Refused,
    /// Stopped (the session is shutting down and removed its mappings).
    Stopped,
}

impl PortMapState {
    /// `searching`, `mapped`, `refused` or `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PortMapState::Searching => "searching",
            PortMapState::Mapped => "mapped",
            PortMapState::Refused => "refused",
            PortMapState::Stopped => "stopped",
        }
    }
}

/// The port mapper's state, as [`Session::port_mapping`](crate::Session::port_mapping) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapStatus {
    /// Where it stands.
    pub state: PortMapState,
    /// `upnp`, `nat-pmp` or `pcp` once a gateway answered.
    pub method: Option<&'static str>,
    /// The gateway asked (the default gateway, or the UPnP device).
    pub gateway: Option<IpAddr>,
    /// Our external address as the gateway reports it.
    pub external_ip: Option<IpAddr>,
    /// The external ports mapped (TCP, UDP) when mapped.
    pub tcp_port: Option<u16>,
    /// See `tcp_port`.
    pub udp_port: Option<u16>,
    /// Seconds the mapping is leased for (0: permanent).
    pub lease_secs: u64,
    /// One line saying what happened (the same line as in the log).
    pub message: String,
}

impl PortMapStatus {
    fn searching() -> PortMapStatus {
        PortMapStatus {
            state: PortMapState::Searching,
            method: None,
            gateway: None,
            external_ip: None,
            tcp_port: None,
            udp_port: None,
            lease_secs: 0,
            message: "looking for a gateway".into(),
        }
    }
}

/// What the port mapper needs to know.
#[derive(Clone)]
pub(crate) struct PortMapConfig {
    /// The port to map (TCP and UDP, same number outside).
    pub(crate) port: u16,
    /// Where the SSDP search goes (the multicast group; tests use another).
    pub(crate) ssdp: SocketAddrV4,
    /// The gateway's NAT-PMP and PCP port.
    pub(crate) natpmp_port: u16,
    /// Called with the external address whenever the gateway reports it.
    pub(crate) on_external: Arc<dyn Fn(IpAddr) + Send + Sync>,
}

/// A mapping held: how to renew and remove it.
enum Held {
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

/// Handle to the `portmap` thread. Dropping it stops the thread, which
/// removes its mappings first (bounded by the request timeouts).
pub(crate) struct PortMapper {
    stop: Option<Sender<()>>,
    status: Arc<Mutex<PortMapStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl PortMapper {
    /// Start the `portmap` thread.
    pub(crate) fn start(cfg: PortMapConfig) -> std::io::Result<PortMapper> {
        let (stop, stop_rx) = crossbeam_channel::bounded(1);
        let status = Arc::new(Mutex::new(PortMapStatus::searching()));
        let st = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("portmap".into())
            .stack_size(crate::util::SERVICE_STACK)
            .spawn(move || run(&cfg, &st, &stop_rx))?;
        Ok(PortMapper {
            stop: Some(stop),
            status,
            thread: Some(thread),
        })
    }

    /// The current status.
    pub(crate) fn status(&self) -> PortMapStatus {
        self.status.lock().clone()
    }

    /// Tell the thread to stop (it removes the mappings); [`PortMapper::stop`]
    /// waits for it.
    pub(crate) fn request_stop(&mut self) {
        self.stop.take();
    }

    /// Stop the thread (deleting the mappings) and wait for it: as long as
    /// it takes ([`STOP_WAIT_MAPPED`]) when a mapping is held, so that it is
    /// removed before the process exits; otherwise at most
    /// [`STOP_WAIT_SEARCHING`]: a thread still searching (an SSDP wait of
    /// 2 s, NAT-PMP retries) holds nothing to remove, and `peer --once`
    /// must not wait for its search to end. Such a thread is left to end
    /// by itself (it sees the stop after its round).
    pub(crate) fn stop(&mut self) {
        self.stop.take();
        let Some(t) = self.thread.take() else {
            return;
        };
        let limit = if self.status.lock().state == PortMapState::Mapped {
            STOP_WAIT_MAPPED
        } else {
            STOP_WAIT_SEARCHING
        };
        let deadline = std::time::Instant::now() + limit;
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            log::debug!("port mapping: not waiting for the search to end");
        }
    }
}

impl Drop for PortMapper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Publish a new status (and its one log line when the line changed).
fn publish(shared: &Mutex<PortMapStatus>, st: PortMapStatus) {
    let changed = {
        let mut cur = shared.lock();
        let changed = cur.state != st.state || cur.message != st.message;
        *cur = st.clone();
        changed
    };
    if changed {
        match st.state {
            PortMapState::Refused => log::warn!("port mapping: {}", st.message),
            _ => log::info!("port mapping: {}", st.message),
        }
    }
}

/// The thread: map, renew at half the lease, back off after refusals,
/// remove the mappings when told to stop.
fn run(cfg: &PortMapConfig, shared: &Mutex<PortMapStatus>, stop: &Receiver<()>) {
    let mut backoff = RETRY_FIRST;
    let mut held: Option<Held> = None;
    loop {
        let wait = match attempt(cfg, held.as_ref()) {
            Ok((h, st)) => {
                backoff = RETRY_FIRST;
                if held.is_some() {
                    log::info!(
                        "port mapping: renewed with {} for {} s",
                        st.method.unwrap_or("?"),
                        st.lease_secs
                    );
                }
                let lease = Duration::from_secs(st.lease_secs);
                if let Some(ip) = st.external_ip {
                    (cfg.on_external)(ip);
                }
                publish(shared, st);
                held = Some(h);
                // Renew at half the lease; a permanent mapping is checked
                // again after the longest lease we would ask for.
                if lease.is_zero() {
                    lease_asked()
                } else {
                    (lease / 2).max(RENEW_FLOOR)
                }
            }
            Err(st) => {
                let mut st = *st;
                if let Some(ip) = st.external_ip {
                    (cfg.on_external)(ip);
                }
                let mins = backoff.as_secs() / 60;
                st.message = format!("{}; trying again in {mins} min", st.message);
                publish(shared, st);
                held = None;
                let w = backoff;
                backoff = (backoff * 2).min(RETRY_MAX);
                w
            }
        };
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(h) = held {
        remove(cfg, &h);
        let mut st = shared.lock().clone();
        st.state = PortMapState::Stopped;
        st.tcp_port = None;
        st.udp_port = None;
        st.message = format!("mappings of port {} removed", cfg.port);
        publish(shared, st);
    }
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
fn private_external(ip: Ipv4Addr) -> bool {
    !crate::proto::bep42::is_public(IpAddr::V4(ip))
}

/// PCP (unless `PEER_PORT_MAP_PCP=off` or the mapping held is NAT-PMP's),
/// then NAT-PMP when the gateway speaks no PCP. The error names the
/// method that answered.
fn map_pcp_or_natpmp(
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
    for (i, protocol) in [Protocol::Tcp, Protocol::Udp].into_iter().enumerate() {
        let req = pcp::MapRequest {
            client,
            nonce: nonces[i],
            protocol,
            internal_port: cfg.port,
            external_port: cfg.port,
            external_ip: Ipv4Addr::UNSPECIFIED,
            lifetime: lease_asked().as_secs() as u32,
        };
        let m = pcp::exchange(gw, cfg.natpmp_port, &req)?;
        ports[i] = Some(m.external_port);
        lease = lease.min(m.lifetime);
        ext = m.external_ip;
        if private_external(ext) {
            // Nothing is reachable through it: take back what we got.
            for (j, nonce) in nonces.iter().enumerate().take(i + 1) {
                let _ = pcp::exchange(gw, cfg.natpmp_port, &pcp_removal(cfg, client, *nonce, j));
            }
            return Err(MapError::Refused(format!(
                "external address {ext} is not public (double NAT?): no mapping"
            )));
        }
    }
    let message = format!(
        "PCP gateway {gw}: external address {ext}, TCP {} and UDP {} mapped to port {} for {} s",
        ports[0].unwrap_or(0),
        ports[1].unwrap_or(0),
        cfg.port,
        lease
    );
    Ok((
        Held::Pcp {
            gateway: gw,
            client,
            nonces,
        },
        PortMapStatus {
            state: PortMapState::Mapped,
            method: Some("pcp"),
            gateway: Some(gw.into()),
            external_ip: Some(ext.into()),
            tcp_port: ports[0],
            udp_port: ports[1],
            lease_secs: u64::from(lease),
            message,
        },
    ))
}

/// The PCP request that deletes mapping `i` (0 TCP, 1 UDP): lifetime 0,
/// the mapping's nonce.
fn pcp_removal(
    cfg: &PortMapConfig,
    client: Ipv4Addr,
    nonce: [u8; 12],
    i: usize,
) -> pcp::MapRequest {
    pcp::MapRequest {
        client,
        nonce,
        protocol: if i == 0 { Protocol::Tcp } else { Protocol::Udp },
        internal_port: cfg.port,
        external_port: 0,
        external_ip: Ipv4Addr::UNSPECIFIED,
        lifetime: 0,
    }
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
    let message = format!(
        "NAT-PMP gateway {gw}: external address {ext}, TCP {} and UDP {} mapped to port {} for {} s",
        ports[0].unwrap_or(0),
        ports[1].unwrap_or(0),
        cfg.port,
        lease
    );
    Ok((
        Held::NatPmp { gateway: gw },
        PortMapStatus {
            state: PortMapState::Mapped,
            method: Some("nat-pmp"),
            gateway: Some(gw.into()),
            external_ip: Some(ext.into()),
            tcp_port: ports[0],
            udp_port: ports[1],
            lease_secs: u64::from(lease),
            message,
        },
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
                match igd::fetch_service(&f.location, f.from) {
                    Ok(s) => {
                        got = Some((f.from, s));
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
        PortMapStatus {
            state: PortMapState::Mapped,
            method: Some("upnp"),
            gateway: dev.map(IpAddr::V4),
            external_ip: Some(ext.into()),
            tcp_port: Some(cfg.port),
            udp_port: Some(cfg.port),
            lease_secs: u64::from(lease),
            message,
        },
    ))
}

/// Remove our mappings (each request bounded by its timeout).
fn remove(cfg: &PortMapConfig, h: &Held) {
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
                &pcp_removal(cfg, *client, nonces[i], i),
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

#[cfg(test)]
mod fallback_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_and_private_external_addresses() {
        for v in ["off", "OFF", " 0", "no", "false", "none"] {
            assert!(is_off(v), "{v}");
        }
        for v in ["on", "", "1", "yes"] {
            assert!(!is_off(v), "{v}");
        }
        assert!(private_external(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(private_external(Ipv4Addr::new(100, 64, 0, 1)));
        assert!(!private_external(Ipv4Addr::new(84, 124, 73, 14)));
    }

    #[test]
    fn lease_env_is_clamped_and_defaults_to_two_hours() {
        assert_eq!(lease_from(None), LEASE);
        assert_eq!(lease_from(Some("soon")), LEASE);
        assert_eq!(lease_from(Some(" 60 ")), Duration::from_secs(60));
        assert_eq!(lease_from(Some("1")), Duration::from_secs(20));
        assert_eq!(lease_from(Some("99999999")), Duration::from_secs(604_800));
    }
}
