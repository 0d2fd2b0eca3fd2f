//! The HTTP(S) transport of the announce client, on `ureq` (blocking,
//! TLS through `rustls`): one `GET` with an overall deadline, up to
//! [`MAX_REDIRECTS`] redirects (`http` ↔ `https`), gzip bodies decoded, and
//! a cap on the (decoded) body size.
//!
//! Certificates are checked against the system's roots, read the way
//! OpenSSL does (`rustls-native-certs`: `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! when set, else the distribution's bundle); when none can be found,
//! Mozilla's roots compiled into the binary (`webpki-roots`) are used.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use super::bound_tcp::BoundTcpConnector;
use super::error::{TimeoutPhase, TrackerError};
use crate::util::source::SourceAddrs;

/// Most redirects followed by [`get`].
pub const MAX_REDIRECTS: u32 = 3;

/// The trust roots, loaded once per process.
pub(crate) fn root_certs() -> RootCerts {
    static ROOTS: OnceLock<RootCerts> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in found.errors.iter().take(4) {
                log::debug!("loading system certificates: {e}");
            }
            if found.certs.is_empty() {
                log::info!("no system certificates found; using the built-in Mozilla roots");
                return RootCerts::WebPki;
            }
            let certs: Vec<Certificate<'static>> = found
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            RootCerts::Specific(Arc::new(certs))
        })
        .clone()
}

/// Our HTTP client's set-up, shared by the trackers' agent and the web
/// seeds' (`engine::conn::web_seed`): rustls with [`root_certs`], statuses
/// read rather than turned into errors, at most `max_redirects` redirects,
/// our user agent, no proxy from the environment (servers are reached
/// directly), headers of at most 16 KiB.
pub(crate) fn agent_config(
    max_redirects: u32,
) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(root_certs())
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(max_redirects)
        .user_agent(concat!("peer/", env!("CARGO_PKG_VERSION")))
        .proxy(None)
        .max_response_header_size(16 * 1024)
}

/// The trackers' agent for `source` (no idle connections are kept).
fn agent_for(source: SourceAddrs) -> ureq::Agent {
    shared_agent("trackers", source, || tracker_config().build())
}

/// The agent of `kind` (the trackers', the web seeds') whose TCP connections
/// leave from `source`: made once per `kind` and `source` by `config` and kept
/// for the process (a process has one or two sessions, so at most a few).
/// Where the system chooses the source, ureq's own connectors; else
/// [`BoundTcpConnector`], then TLS.
pub(crate) fn shared_agent(
    kind: &'static str,
    source: SourceAddrs,
    config: impl FnOnce() -> ureq::config::Config,
) -> ureq::Agent {
    use ureq::unversioned::transport::{Connector, RustlsConnector};
    type Agents = Vec<(SourceAddrs, &'static str, ureq::Agent)>;
    static AGENTS: Mutex<Agents> = Mutex::new(Vec::new());
    let mut agents = AGENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, a)) = agents.iter().find(|(s, k, _)| *s == source && *k == kind) {
        return a.clone();
    }
    let a = if source == SourceAddrs::default() {
        config().new_agent()
    } else {
        let connector = ().chain(BoundTcpConnector(source)).chain(RustlsConnector::default());
        ureq::Agent::with_parts(
            config(),
            connector,
            ureq::unversioned::resolver::DefaultResolver::default(),
        )
    };
    agents.push((source, kind, a.clone()));
    a
}

/// The trackers' agent configuration.
fn tracker_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    agent_config(MAX_REDIRECTS)
        // No keep-alive pool: an announce goes out every few minutes at
        // most, long after a tracker has closed an idle connection, and a
        // server that closes right after answering (as many trackers do)
        // must not turn the next request or redirect hop into "peer
        // disconnected". Every request gets a fresh connection.
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
}

fn timeout_phase(t: ureq::Timeout) -> TimeoutPhase {
    match t {
        ureq::Timeout::Resolve => TimeoutPhase::Resolve,
        ureq::Timeout::Connect => TimeoutPhase::Connect,
        ureq::Timeout::SendRequest | ureq::Timeout::SendBody | ureq::Timeout::PerWrite => {
            TimeoutPhase::Send
        }
        _ => TimeoutPhase::Receive,
    }
}

/// A `ureq` error as a [`TrackerError`].
fn map_error(url: &str, e: ureq::Error) -> TrackerError {
    match e {
        ureq::Error::Timeout(t) => TrackerError::Timeout {
            phase: timeout_phase(t),
        },
        ureq::Error::HostNotFound => TrackerError::Resolve(host_of(url)),
        // rustls reports handshake failures (an untrusted certificate...)
        // as `InvalidData` I/O errors.
        ureq::Error::Io(e)
            if e.kind() == std::io::ErrorKind::InvalidData
                && url
                    .get(..8)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https://")) =>
        {
            TrackerError::Tls(e.get_ref().map_or_else(|| e.to_string(), |i| i.to_string()))
        }
        ureq::Error::Io(e) => TrackerError::Io(e),
        ureq::Error::BodyExceedsLimit(_) => TrackerError::TooLarge,
        ureq::Error::TooManyRedirects => {
            TrackerError::Malformed(format!("more than {MAX_REDIRECTS} redirects"))
        }
        ureq::Error::RedirectFailed => TrackerError::Malformed("bad redirect".into()),
        ureq::Error::BadUri(s) => TrackerError::InvalidUrl(s),
        ureq::Error::Rustls(e) => TrackerError::Tls(e.to_string()),
        ureq::Error::Tls(s) => TrackerError::Tls(s.to_string()),
        ureq::Error::ConnectionFailed => TrackerError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection failed",
        )),
        other => TrackerError::Malformed(other.to_string()),
    }
}

fn host_of(url: &str) -> String {
    crate::proto::tracker::url::Url::parse(url).map_or_else(|| url.to_string(), |u| u.host)
}

/// `GET url` (an `http://` or `https://` URL) and return the status code
/// and the body, decoded if it was gzip-compressed and at most `max_body`
/// bytes, all before `deadline`.
pub(crate) fn get(
    url: &str,
    deadline: Instant,
    max_body: usize,
    source: SourceAddrs,
) -> Result<(u16, Vec<u8>), TrackerError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(TrackerError::Timeout {
            phase: TimeoutPhase::Connect,
        });
    }
    let mut resp = agent_for(source)
        .get(url)
        .config()
        .timeout_global(Some(left.max(Duration::from_millis(1))))
        .build()
        .call()
        .map_err(|e| map_error(url, e))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(max_body as u64)
        .read_to_vec()
        .map_err(|e| map_error(url, e))?;
    Ok((status, body))
}
