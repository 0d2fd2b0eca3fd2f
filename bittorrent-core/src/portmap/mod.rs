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
pub(crate) mod pinhole;
mod pinhole_igd;
pub(crate) mod ssdp;
mod v4;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, SocketAddrV6};
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
    /// A mapping in place: external `ports` (TCP, UDP) leased `lease` s.
    fn mapped(
        method: &'static str,
        gateway: Option<IpAddr>,
        external_ip: IpAddr,
        ports: [Option<u16>; 2],
        lease: u32,
        message: String,
    ) -> PortMapStatus {
        PortMapStatus {
            state: PortMapState::Mapped,
            method: Some(method),
            gateway,
            external_ip: Some(external_ip),
            tcp_port: ports[0],
            udp_port: ports[1],
            lease_secs: u64::from(lease),
            message,
        }
    }

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
    /// The listening address that takes IPv6 (`[::]` or a specific IPv6
    /// address); `None`: no IPv6 listener, so no pinholes.
    pub(crate) listen6: Option<IpAddr>,
    /// Where the IPv6 SSDP search goes (`[ff02::c]:1900` on the default
    /// route's interface; tests use another).
    pub(crate) ssdp6: SocketAddrV6,
}

/// One address family's mapping, run by [`run`]: how to make, renew and
/// remove it, and how its lines read.
pub(crate) trait Family {
    /// What is held between renewals.
    type Held;
    /// The log lines' prefix: `port mapping` or `IPv6 pinhole`.
    const LABEL: &'static str;
    /// The refusal's last words (`trying again in` N min).
    const AGAIN: &'static str;
    /// One try (`held`: the mapping to renew).
    fn attempt(
        &self,
        held: Option<&Self::Held>,
    ) -> Result<(Self::Held, PortMapStatus), Box<PortMapStatus>>;
    /// Remove what is held (each request bounded by its timeout).
    fn remove(&self, held: &Self::Held);
    /// A status was reached (the IPv4 family reports the external address).
    fn reported(&self, _st: &PortMapStatus) {}
    /// The status line after the removal at exit.
    fn removed(&self) -> String;
    /// Whether a refusal is logged as a warning (else as information:
    /// the IPv6 family on a host with no IPv6 to open, where no router
    /// was asked).
    fn warns(&self, _st: &PortMapStatus) -> bool {
        true
    }
}

/// One thread and its status.
struct Worker {
    status: Arc<Mutex<PortMapStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start<F: Family + Send + 'static>(
        name: &str,
        family: F,
        stop: Receiver<()>,
    ) -> std::io::Result<Worker> {
        let status = Arc::new(Mutex::new(PortMapStatus::searching()));
        let st = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .stack_size(crate::util::SERVICE_STACK)
            .spawn(move || run(&family, &st, &stop))?;
        Ok(Worker {
            status,
            thread: Some(thread),
        })
    }
}

/// Handle to the `portmap` thread (IPv4 mappings) and the `portmap6`
/// thread (IPv6 pinholes, when we listen on IPv6). Dropping it stops the
/// threads, which remove their mappings first (bounded by the request
/// timeouts).
pub(crate) struct PortMapper {
    stop: Option<Sender<()>>,
    v4: Worker,
    v6: Option<Worker>,
}

impl PortMapper {
    /// Start the `portmap` thread, and `portmap6` when `cfg.listen6` is set.
    pub(crate) fn start(cfg: PortMapConfig) -> std::io::Result<PortMapper> {
        // Both threads see the stop when the sender is dropped.
        let (stop, stop_rx) = crossbeam_channel::bounded(1);
        let v6 = match cfg.listen6 {
            Some(listen) => Some(Worker::start(
                "portmap6",
                pinhole::Pinholes {
                    cfg: cfg.clone(),
                    listen,
                },
                stop_rx.clone(),
            )?),
            None => None,
        };
        let v4 = Worker::start("portmap", v4::V4 { cfg }, stop_rx)?;
        Ok(PortMapper {
            stop: Some(stop),
            v4,
            v6,
        })
    }

    /// The current status (IPv4).
    pub(crate) fn status(&self) -> PortMapStatus {
        self.v4.status.lock().clone()
    }

    /// The IPv6 pinholes' status; `None` without an IPv6 listener.
    pub(crate) fn status_v6(&self) -> Option<PortMapStatus> {
        self.v6.as_ref().map(|w| w.status.lock().clone())
    }

    /// Tell the threads to stop (they remove the mappings);
    /// [`PortMapper::stop`] waits for them.
    pub(crate) fn request_stop(&mut self) {
        self.stop.take();
    }

    /// Stop the threads (deleting the mappings) and wait for them: as long
    /// as it takes ([`STOP_WAIT_MAPPED`]) when a mapping is held, so that
    /// it is removed before the process exits; otherwise at most
    /// [`STOP_WAIT_SEARCHING`]: a thread still searching (an SSDP wait of
    /// 2 s, NAT-PMP retries) holds nothing to remove, and `peer --once`
    /// must not wait for its search to end. Such a thread is left to end
    /// by itself (it sees the stop after its round).
    pub(crate) fn stop(&mut self) {
        self.stop.take();
        let start = Instant::now();
        for w in std::iter::once(&mut self.v4).chain(self.v6.as_mut()) {
            let Some(t) = w.thread.take() else {
                continue;
            };
            let limit = if w.status.lock().state == PortMapState::Mapped {
                STOP_WAIT_MAPPED
            } else {
                STOP_WAIT_SEARCHING
            };
            let deadline = start + limit;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::debug!("port mapping: not waiting for the search to end");
            }
        }
    }
}

impl Drop for PortMapper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Publish a new status (and its one log line, prefixed with `label`,
/// when the line changed; a refusal as a warning when `warn`).
fn publish(label: &str, shared: &Mutex<PortMapStatus>, st: PortMapStatus, warn: bool) {
    let changed = {
        let mut cur = shared.lock();
        let changed = cur.state != st.state || cur.message != st.message;
        *cur = st.clone();
        changed
    };
    if changed {
        match st.state {
            PortMapState::Refused if warn => log::warn!("{label}: {}", st.message),
            _ => log::info!("{label}: {}", st.message),
        }
    }
}

/// A thread: map, renew at half the lease, back off after refusals,
/// remove the mappings when told to stop.
fn run<F: Family>(family: &F, shared: &Mutex<PortMapStatus>, stop: &Receiver<()>) {
    let label = F::LABEL;
    let mut backoff = RETRY_FIRST;
    let mut held: Option<F::Held> = None;
    loop {
        let wait = match family.attempt(held.as_ref()) {
            Ok((h, st)) => {
                backoff = RETRY_FIRST;
                if held.is_some() {
                    log::info!(
                        "{label}: renewed with {} for {} s",
                        st.method.unwrap_or("?"),
                        st.lease_secs
                    );
                }
                let lease = Duration::from_secs(st.lease_secs);
                family.reported(&st);
                publish(label, shared, st, true);
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
                family.reported(&st);
                let mins = backoff.as_secs() / 60;
                st.message = format!("{}; {} {mins} min", st.message, F::AGAIN);
                let warn = family.warns(&st);
                publish(label, shared, st, warn);
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
        family.remove(&h);
        let mut st = shared.lock().clone();
        st.state = PortMapState::Stopped;
        st.tcp_port = None;
        st.udp_port = None;
        st.message = family.removed();
        publish(label, shared, st, true);
    }
}

#[cfg(test)]
mod fallback_tests;

#[cfg(test)]
mod tests {
    use super::v4::private_external;
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
