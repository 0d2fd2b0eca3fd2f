//! The session configuration, and the part of it kept in the state
//! directory (`session.benc`).

use crate::discovery::tracker::TrackerConfig;
use crate::engine::conn::peer::PeerLimits;
use crate::engine::net::mse::Encryption;
use crate::engine::net::transport::TransportPolicy;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Session configuration. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. The default `[::]` takes IPv6 and IPv4 peers
    /// on one port (dual stack; `0.0.0.0` on a host without IPv6); any
    /// other address binds only itself (`0.0.0.0`: IPv4 only).
    pub listen_addr: IpAddr,
    /// More addresses to listen on, on the same port (default none). At
    /// most one, of the other family than `listen_addr`: an IPv4 and an
    /// IPv6 address, e.g. one interface of each family. The IPv4 one
    /// carries the UDP tracker and the DHT, the IPv6 one the UDP tracker
    /// over IPv6 and the IPv6 DHT (BEP 32). More than one, two of one
    /// family, or any beside `listen_addr` `[::]` (already both families)
    /// is refused by [`Session::start`](crate::Session::start).
    pub extra_listen_addrs: Vec<IpAddr>,
    /// Port to listen on (default 6881; 0 picks a free port).
    pub listen_port: u16,
    /// The first 8 bytes of our peer id (Azureus style, default `-PE0001-`).
    pub peer_id_prefix: String,
    /// Connected peers per torrent (default 50).
    pub max_peers_per_torrent: usize,
    /// Connections in the whole session (default 500).
    pub max_connections: usize,
    /// Incoming connections from one IP address still in their handshake
    /// (default 8); more are closed at once, so that one host's silent
    /// sockets cannot hold the slots (and threads) others need.
    pub max_handshakes_per_ip: usize,
    /// Connections from this machine (loopback, or an address of one of
    /// its interfaces) skip the per-address limit above: many peers on one
    /// machine dial and announce from one address (default true; the
    /// embedded tracker has its own `tracker.trust_local`).
    pub trust_local: bool,
    /// Regular upload slots per torrent; one optimistic slot is added (default 4).
    pub upload_slots: usize,
    /// Hashing threads (default: the number of cores).
    pub hasher_threads: usize,
    /// Per-peer limits and timeouts.
    pub peer_limits: PeerLimits,
    /// The tracker embedded in this peer (HTTP on the listening TCP port,
    /// BEP 15 on the same UDP port). By default it tracks only the
    /// session's torrents; `open` tracks any info-hash.
    pub tracker: TrackerConfig,
    /// Run the embedded tracker (default true).
    pub enable_tracker: bool,
    /// Local Service Discovery (BEP 14): announce our torrents by multicast
    /// on the LAN and hear other peers' announces (default false for
    /// embedders; the `peer` command turns it on unless `--no-lsd`).
    /// Private torrents are never announced.
    pub lsd: bool,
    /// Download from the torrents' web seeds (BEP 19 `url-list`, HTTP and
    /// HTTPS) beside the peers (default true; `--no-web-seeds` turns it
    /// off). Never for v2-only torrents.
    pub web_seeds: bool,
    /// Run a mainline DHT node (BEP 5) on its own UDP port (default false
    /// for embedders; the `peer` command turns it on unless `--no-dht`).
    /// Public torrents find peers through it; private ones never use it.
    pub dht: bool,
    /// DHT nodes to bootstrap from (besides the routing table saved in the
    /// state directory and peers' `port` messages).
    pub dht_bootstrap: Vec<SocketAddr>,
    /// DHT routers (BEP 5 bootstrap hosts, `HOST:PORT`): asked when the
    /// routing table is empty, or still small a few seconds after the saved
    /// table and `dht_bootstrap` were asked; names are resolved on every
    /// bootstrap, and routers never enter the routing table. Default: the
    /// list in the environment variable `PEER_DHT_BOOTSTRAP` (`none` for
    /// no routers, or comma-separated `HOST:PORT`s) when it is set, else
    /// [`DEFAULT_ROUTERS`](crate::dht_bootstrap::DEFAULT_ROUTERS).
    pub dht_routers: Vec<crate::dht_bootstrap::Router>,
    /// Resolves the routers' host names (default: the system's resolver,
    /// with [`RESOLVE_TIMEOUT`](crate::dht_bootstrap::RESOLVE_TIMEOUT)).
    pub dht_resolver: crate::dht_bootstrap::Resolver,
    /// Where resume data is kept (`torrents/<info-hash>.resume`); `None`
    /// (the default) keeps none, and every start rechecks the data on disk.
    pub state_dir: Option<PathBuf>,
    /// Message Stream Encryption (MSE/PE) for both directions (default
    /// [`Encryption::Prefer`]: accept MSE and plaintext, dial MSE first and
    /// fall back to plaintext; `Require`: MSE with RC4 only; `Off`:
    /// plaintext only).
    pub encryption: Encryption,
    /// Which transport outgoing peer connections use (default
    /// [`TransportPolicy::Both`]: uTP first, TCP dialled beside it when the uTP
    /// handshake has not completed within 500 ms, the first connected wins;
    /// `Utp`: uTP only; `Tcp`: TCP only). Incoming connections are accepted over
    /// both whenever the session has its UDP port (DHT, UDP tracker, or a policy
    /// other than `Tcp`).
    pub transport: TransportPolicy,
    /// Session-wide download limit in bytes per second, over every torrent
    /// (default 0: unlimited). Peer threads wait on it before reading
    /// their sockets. Changed at run time by
    /// [`Session::set_rate_limits`](crate::Session::set_rate_limits).
    pub max_download_rate: u64,
    /// Session-wide upload limit in bytes per second (piece data sent;
    /// default 0: unlimited).
    pub max_upload_rate: u64,
    /// Default seeding goal, ratio: a complete torrent stops seeding once it
    /// has uploaded this many times its size (see
    /// [`SeedGoal`](crate::SeedGoal); `None`, the default: no limit).
    /// [`AddTorrent::seed_ratio`](crate::AddTorrent::seed_ratio) overrides it.
    pub seed_ratio: Option<f64>,
    /// Default seeding goal, time: a complete torrent stops seeding after
    /// seeding this long (`None`: no limit).
    /// [`AddTorrent::seed_time`](crate::AddTorrent::seed_time) overrides it.
    pub seed_time: Option<Duration>,
    /// Default idle limit: a complete torrent stops seeding after this long
    /// without uploading anything (`None`, the default: no limit).
    /// A torrent's own [`SeedLimits`](crate::SeedLimits) override it; both
    /// change at run time ([`Session::set_seed_defaults`](crate::Session::set_seed_defaults)).
    pub seed_idle: Option<Duration>,
    /// Bytes of piece data that all torrents together assemble in memory
    /// while they download (default 64 MiB; each torrent also keeps to
    /// 16 MiB of its own). A piece that finds it spent is written to disk
    /// block by block and read back to be hashed, so memory stays bounded
    /// however many torrents download at once.
    pub piece_buffer_memory: u64,
    /// Map the listening port (TCP and UDP) on the home router with
    /// NAT-PMP or UPnP IGD, renew the mapping and remove it at shutdown;
    /// the external address the router reports feeds
    /// [`Session::external_addresses`](crate::Session::external_addresses)
    /// and the DHT's BEP 42 node id (default false for embedders, as for
    /// `lsd` and `dht`: a library does not talk to the router unless asked;
    /// the `peer` command and daemon turn it on unless `--no-port-map`).
    /// The environment variable `PEER_PORT_MAP=off` turns it off whatever
    /// this says. The state directory's `session.benc` key `port map`
    /// (`on` / `off`, set by hand) overrides the default it is loaded over
    /// (see [`Config::load_state_dir_over`]).
    pub port_map: bool,
    /// Reserve a file's disk blocks (`fallocate`) when a download creates
    /// it (default on). Writes then cost less, the file is not fragmented,
    /// and a disk without room says so at once (the file is then written
    /// sparse, as with this off). Off: files are sparse until written.
    /// tmpfs is always left sparse.
    pub preallocate: bool,
    /// TCP congestion control for every peer connection, dialled or
    /// accepted (`TCP_CONGESTION`, Linux; e.g. `bbr`, `cubic`). `None`, the
    /// default, leaves the system's (`net.ipv4.tcp_congestion_control`).
    /// A name this kernel does not offer or allow this process makes
    /// [`Session::start`](crate::Session::start) fail with
    /// [`CongestionError`](crate::CongestionError)'s message (both of the
    /// kernel's lists). The state directory's `session.benc` key
    /// `tcp congestion` (a name, or `default` for the system's; set by
    /// hand, never written from flags, like `port map`) is read over the
    /// base (see [`Config::load_state_dir_over`]). Measured in
    /// docs/BENCHMARKS.md, "Long fat links".
    pub tcp_congestion: Option<crate::engine::net::congestion::TcpCongestion>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            extra_listen_addrs: Vec::new(),
            listen_port: 6881,
            peer_id_prefix: "-PE0001-".into(),
            max_peers_per_torrent: 50,
            max_connections: 500,
            max_handshakes_per_ip: 8,
            trust_local: true,
            upload_slots: 4,
            hasher_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            peer_limits: PeerLimits::default(),
            tracker: TrackerConfig {
                // A LAN swarm wants newcomers found in minutes, not half hours.
                interval: Duration::from_secs(120),
                min_interval: Duration::from_secs(30),
                peer_timeout: Duration::from_secs(300),
                ..TrackerConfig::default()
            },
            enable_tracker: true,
            state_dir: None,
            lsd: false,
            web_seeds: true,
            dht: false,
            dht_bootstrap: Vec::new(),
            dht_routers: crate::dht_bootstrap::routers_from_env(),
            dht_resolver: crate::dht_bootstrap::Resolver::system(),
            encryption: Encryption::Prefer,
            transport: TransportPolicy::Both,
            max_download_rate: 0,
            max_upload_rate: 0,
            seed_ratio: None,
            seed_time: None,
            seed_idle: None,
            piece_buffer_memory: 64 << 20,
            preallocate: true,
            port_map: false,
            tcp_congestion: None,
        }
    }
}

/// The settings file in a state directory.
pub const SESSION_FILE: &str = "session.benc";

/// The `session.benc` key that turns port mapping `on` or `off`.
const PORT_MAP_KEY: &[u8] = b"port map";

/// The `session.benc` key that names the TCP congestion control
/// (`default`: the system's).
const TCP_CONGESTION_KEY: &[u8] = b"tcp congestion";

/// A `session.benc` that could not be used (see [`Config::load_state_dir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptSettings {
    /// The file that was found.
    pub path: std::path::PathBuf,
    /// Where it was kept (renamed); `None` if it could not be renamed.
    pub kept_as: Option<std::path::PathBuf>,
    /// What was wrong with it.
    pub reason: String,
}

impl std::fmt::Display for CorruptSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is unusable ({})", self.path.display(), self.reason)?;
        match &self.kept_as {
            Some(k) => write!(f, "; kept as {}", k.display()),
            None => f.write_str("; it could not be renamed"),
        }
    }
}

impl Config {
    /// The configuration saved in `state_dir/session.benc` by an earlier
    /// session (listen port, peer-id prefix, connection limits, upload
    /// slots), on top of the defaults, with `state_dir` set. `None` when
    /// there is none or it is unreadable (then the defaults apply).
    pub fn from_state_dir(state_dir: &std::path::Path) -> Option<Config> {
        let bytes = std::fs::read(state_dir.join(SESSION_FILE)).ok()?;
        Config::from_saved(state_dir, &bytes, Config::default()).ok()
    }

    /// Like [`Config::from_state_dir`], but a `session.benc` that exists and
    /// cannot be used is not silently replaced: it is renamed beside itself
    /// (`session.benc.corrupt-<seconds since the epoch>`) and reported, and
    /// the defaults (with `state_dir` set) are returned with the report.
    pub fn load_state_dir(state_dir: &std::path::Path) -> (Config, Option<CorruptSettings>) {
        Config::load_state_dir_over(state_dir, Config::default())
    }

    /// [`Config::load_state_dir`] with `base` in place of the defaults: the
    /// saved settings apply on top of it (the `peer` daemon passes its own
    /// defaults, e.g. port mapping on unless `session.benc` says
    /// `port map` `off`).
    pub fn load_state_dir_over(
        state_dir: &std::path::Path,
        base: Config,
    ) -> (Config, Option<CorruptSettings>) {
        let defaults = || Config {
            state_dir: Some(state_dir.to_path_buf()),
            ..base.clone()
        };
        let path = state_dir.join(SESSION_FILE);
        let reason = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (defaults(), None),
            Err(e) => e.to_string(),
            Ok(bytes) => match Config::from_saved(state_dir, &bytes, base.clone()) {
                Ok(c) => return (c, None),
                Err(e) => e,
            },
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let kept = state_dir.join(format!("{SESSION_FILE}.corrupt-{secs}"));
        let kept_as = std::fs::rename(&path, &kept).ok().map(|()| kept);
        let report = CorruptSettings {
            path,
            kept_as,
            reason,
        };
        (defaults(), Some(report))
    }

    /// Parse the bytes of a `session.benc`.
    fn from_saved(
        state_dir: &std::path::Path,
        bytes: &[u8],
        base: Config,
    ) -> Result<Config, String> {
        let env_set = std::env::var_os(crate::dht_bootstrap::ENV_VAR).is_some();
        Config::from_saved_env(state_dir, bytes, env_set, base)
    }

    /// [`Config::from_saved`], told whether `PEER_DHT_BOOTSTRAP` is set.
    fn from_saved_env(
        state_dir: &std::path::Path,
        bytes: &[u8],
        env_set: bool,
        base: Config,
    ) -> Result<Config, String> {
        use crate::proto::bencode::Value;
        let v = crate::proto::bencode::decode(bytes).map_err(|e| e.to_string())?;
        if v.as_dict().is_none() {
            return Err("not a dictionary".into());
        }
        let int = |k: &[u8]| v.get(k).and_then(Value::as_int);
        let mut c = Config {
            state_dir: Some(state_dir.to_path_buf()),
            ..base
        };
        // `port map`: `on` or `off`, set by hand (never written from flags).
        match v.get(PORT_MAP_KEY).and_then(Value::as_str) {
            Some("on") => c.port_map = true,
            Some("off") => c.port_map = false,
            Some(other) => log::warn!("{SESSION_FILE}: port map: {other:?} is not on or off"),
            None => {}
        }
        // `tcp congestion`: a name or `default`, set by hand.
        match v.get(TCP_CONGESTION_KEY).and_then(Value::as_str) {
            Some("default") => c.tcp_congestion = None,
            Some(name) => match name.parse() {
                Ok(cc) => c.tcp_congestion = Some(cc),
                Err(e) => log::warn!("{SESSION_FILE}: tcp congestion: {e}"),
            },
            None => {}
        }
        if let Some(p) = int(b"listen port").and_then(|p| u16::try_from(p).ok()) {
            c.listen_port = p;
        }
        if let Some(s) = v.get(b"peer id prefix").and_then(Value::as_str) {
            c.peer_id_prefix = s.chars().take(8).collect();
        }
        let count = |k: &[u8]| {
            int(k)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
        };
        if let Some(n) = count(b"max connections") {
            c.max_connections = n.min(10_000);
        }
        if let Some(n) = count(b"max peers per torrent") {
            c.max_peers_per_torrent = n.min(10_000);
        }
        if let Some(n) = count(b"upload slots") {
            c.upload_slots = n.min(1_000);
        }
        if let Some(e) = v
            .get(b"encryption")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            c.encryption = e;
        }
        if let Some(t) = v
            .get(b"transport")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            c.transport = t;
        }
        let rate = |k: &[u8]| int(k).and_then(|n| u64::try_from(n).ok());
        if let Some(r) = rate(b"max download rate") {
            c.max_download_rate = r;
        }
        if let Some(r) = rate(b"max upload rate") {
            c.max_upload_rate = r;
        }
        // `dht bootstrap`: `none` or `host:port,host:port` (the routers in
        // place of the defaults). The environment variable wins over it, so
        // `PEER_DHT_BOOTSTRAP=none` keeps any daemon off the public routers.
        if !env_set {
            if let Some(list) = v.get(b"dht bootstrap").and_then(Value::as_str) {
                c.dht_routers = crate::dht_bootstrap::parse_list(list).unwrap_or_else(|e| {
                    log::warn!("{SESSION_FILE}: dht bootstrap: {e}; no DHT bootstrap routers");
                    Vec::new()
                });
            }
        }
        Ok(c)
    }

    /// Write the persistent part of this configuration to
    /// `state_dir/session.benc` (atomically), with the port actually used.
    pub(crate) fn save(&self, listen_port: u16) -> std::io::Result<()> {
        let env_set = std::env::var_os(crate::dht_bootstrap::ENV_VAR).is_some();
        self.save_env(listen_port, env_set)
    }

    /// [`Config::save`], told whether `PEER_DHT_BOOTSTRAP` is set.
    fn save_env(&self, listen_port: u16, env_set: bool) -> std::io::Result<()> {
        use crate::proto::bencode::OwnedValue;
        let Some(dir) = &self.state_dir else {
            return Ok(());
        };
        let mut v = vec![
            (
                b"listen port".to_vec(),
                OwnedValue::Int(i64::from(listen_port)),
            ),
            (
                b"peer id prefix".to_vec(),
                OwnedValue::bytes(&self.peer_id_prefix),
            ),
            (
                b"max connections".to_vec(),
                OwnedValue::Int(self.max_connections as i64),
            ),
            (
                b"max peers per torrent".to_vec(),
                OwnedValue::Int(self.max_peers_per_torrent as i64),
            ),
            (
                b"upload slots".to_vec(),
                OwnedValue::Int(self.upload_slots as i64),
            ),
            (
                b"encryption".to_vec(),
                OwnedValue::bytes(self.encryption.as_str()),
            ),
            (
                b"transport".to_vec(),
                OwnedValue::bytes(self.transport.as_str()),
            ),
            (
                b"max download rate".to_vec(),
                OwnedValue::Int(self.max_download_rate.min(i64::MAX as u64) as i64),
            ),
            (
                b"max upload rate".to_vec(),
                OwnedValue::Int(self.max_upload_rate.min(i64::MAX as u64) as i64),
            ),
        ];
        // `port map` and `tcp congestion` are the user's: kept as the file
        // has them.
        let path = dir.join(SESSION_FILE);
        if let Ok(d) = crate::proto::bencode::decode(&std::fs::read(&path).unwrap_or_default()) {
            for key in [PORT_MAP_KEY, TCP_CONGESTION_KEY] {
                if let Some(s) = d.get(key).and_then(|l| l.as_str()) {
                    v.push((key.to_vec(), OwnedValue::bytes(s)));
                }
            }
        }
        // Routers other than the defaults are kept (the defaults are not
        // written, so a later release's defaults apply). Routers that came
        // from `PEER_DHT_BOOTSTRAP` are not: the variable is an override for
        // this run, so the file keeps what it had.
        if env_set {
            let path = dir.join(SESSION_FILE);
            let old = std::fs::read(&path).unwrap_or_default();
            if let Ok(d) = crate::proto::bencode::decode(&old) {
                if let Some(list) = d.get(b"dht bootstrap").and_then(|l| l.as_str()) {
                    v.push((b"dht bootstrap".to_vec(), OwnedValue::bytes(list)));
                }
            }
        } else if self.dht_routers != crate::dht_bootstrap::default_routers()
            || !self.dht_bootstrap.is_empty()
        {
            // `--dht-bootstrap IP:PORT` nodes are kept with the routers (they
            // come back as routers: asked first, like any other).
            let names: Vec<String> = (self.dht_bootstrap.iter())
                .map(|a| crate::dht_bootstrap::Router::from(*a).to_string())
                .chain(self.dht_routers.iter().map(|r| r.to_string()))
                .collect();
            let list = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(",")
            };
            v.push((b"dht bootstrap".to_vec(), OwnedValue::bytes(&list)));
        }
        let v = OwnedValue::Dict(v);
        crate::state::write_atomically(&dir.join(SESSION_FILE), &v.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(c: &Config) -> Vec<u8> {
        c.save_env(6881, false).expect("save");
        let dir = c.state_dir.as_ref().expect("state dir");
        std::fs::read(dir.join(SESSION_FILE)).expect("read")
    }

    #[test]
    fn dht_bootstrap_is_kept_in_session_benc_and_the_variable_wins() {
        let dir = std::env::temp_dir().join(format!("peer-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let defaults = crate::dht_bootstrap::default_routers();
        let mut c = Config {
            state_dir: Some(dir.clone()),
            dht_routers: defaults.clone(),
            ..Config::default()
        };
        // The defaults are not written: a later release's defaults apply.
        let bytes = saved(&c);
        assert!(!bytes.windows(13).any(|w| w == b"dht bootstrap"));
        // No key: what `Config::default()` says (the variable, or the defaults).
        let loaded = Config::from_saved_env(&dir, &bytes, false, Config::default()).expect("load");
        assert_eq!(loaded.dht_routers, Config::default().dht_routers);
        // `none` and a list come back, unless the variable is set.
        for list in ["none", "router.example:6881,[2001:db8::1]:25401"] {
            c.dht_routers = crate::dht_bootstrap::parse_list(list).expect("list");
            let bytes = saved(&c);
            let loaded =
                Config::from_saved_env(&dir, &bytes, false, Config::default()).expect("load");
            assert_eq!(loaded.dht_routers, c.dht_routers, "{list}");
            let with_env =
                Config::from_saved_env(&dir, &bytes, true, Config::default()).expect("load");
            if list != "none" {
                assert_ne!(with_env.dht_routers, c.dht_routers, "{list}");
            }
            assert_eq!(with_env.dht_routers, Config::default().dht_routers);
        }
        // Saved while the variable is set: the file keeps its own list.
        c.dht_routers = Vec::new();
        c.save_env(6881, true).expect("save");
        let bytes = std::fs::read(dir.join(SESSION_FILE)).expect("read");
        let loaded = Config::from_saved_env(&dir, &bytes, false, Config::default()).expect("load");
        assert_eq!(loaded.dht_routers.len(), 2);
        // A bad value means no routers (never the public ones by mistake).
        let bad = b"d13:dht bootstrap7:nonsensee";
        let loaded = Config::from_saved_env(&dir, bad, false, Config::default()).expect("load");
        assert!(loaded.dht_routers.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn port_map_key_is_read_over_the_base_and_kept_by_save() {
        let dir = std::env::temp_dir().join(format!("peer-config-pm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let on = Config {
            port_map: true,
            ..Config::default()
        };
        // No key: the base decides.
        let (c, _) = Config::load_state_dir_over(&dir, on.clone());
        assert!(c.port_map);
        let (c, _) = Config::load_state_dir(&dir);
        assert!(!c.port_map);
        // `port map` `off` wins over a base that says on, and survives a save.
        std::fs::write(dir.join(SESSION_FILE), b"d8:port map3:offe").expect("write");
        let (c, corrupt) = Config::load_state_dir_over(&dir, on.clone());
        assert!(corrupt.is_none());
        assert!(!c.port_map);
        c.save_env(6881, false).expect("save");
        let (c, _) = Config::load_state_dir_over(&dir, on);
        assert!(!c.port_map);
        std::fs::write(dir.join(SESSION_FILE), b"d8:port map2:one").expect("write");
        let (c, _) = Config::load_state_dir(&dir);
        assert!(c.port_map);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tcp_congestion_key_is_read_over_the_base_and_kept_by_save() {
        let dir = std::env::temp_dir().join(format!("peer-config-cc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let bbr = Config {
            tcp_congestion: Some("bbr".parse().expect("name")),
            ..Config::default()
        };
        // No key: the base decides.
        let (c, _) = Config::load_state_dir_over(&dir, bbr.clone());
        assert_eq!(
            c.tcp_congestion.map(|c| c.to_string()).as_deref(),
            Some("bbr")
        );
        // A name wins over the base and survives a save; `default` clears it.
        std::fs::write(dir.join(SESSION_FILE), b"d14:tcp congestion5:cubice").expect("write");
        let (c, corrupt) = Config::load_state_dir_over(&dir, bbr.clone());
        assert!(corrupt.is_none());
        assert_eq!(
            c.tcp_congestion.map(|c| c.to_string()).as_deref(),
            Some("cubic")
        );
        c.save_env(6881, false).expect("save");
        let (c, _) = Config::load_state_dir(&dir);
        assert_eq!(
            c.tcp_congestion.map(|c| c.to_string()).as_deref(),
            Some("cubic")
        );
        std::fs::write(dir.join(SESSION_FILE), b"d14:tcp congestion7:defaulte").expect("write");
        let (c, _) = Config::load_state_dir_over(&dir, bbr.clone());
        assert!(c.tcp_congestion.is_none());
        // Not a name: logged, the base stays.
        std::fs::write(dir.join(SESSION_FILE), b"d14:tcp congestion4:a bce").expect("write");
        let (c, _) = Config::load_state_dir_over(&dir, bbr);
        assert_eq!(
            c.tcp_congestion.map(|c| c.to_string()).as_deref(),
            Some("bbr")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
