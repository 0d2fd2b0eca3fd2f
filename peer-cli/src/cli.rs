//! The command line, declared with `clap` (derive). Every subcommand is one
//! struct; the session flags shared by `peer FILE...` and `peer daemon` are
//! one struct ([`SessionArgs`]) flattened into both and turned into the
//! library's [`Config`] in one place ([`SessionArgs::apply`]). Adding a flag
//! is adding a field (and, for a session flag, one line in `apply`).

use bittorrent_core::{Config, Encryption, TcpCongestion, TransportPolicy};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Examples shown after `peer --help`.
const MAIN_EXAMPLES: &str = "\
Examples:
  peer file.torrent --dir downloads           download, then seed (Ctrl-C stops)
  peer \"magnet:?xt=urn:btih:...\" --once       download a magnet link and exit
  peer file.torrent --seed-ratio 2            seed until 2x the size is uploaded, then exit
  peer movie.torrent --stream                 print URLs to play it while it downloads
  peer create file --announce 192.168.1.10:6881
  peer daemon &  peer add file.torrent  peer list
  peer help create                            help on one command";

/// `peer`: a BitTorrent peer. Every peer is also a tracker (HTTP and UDP on
/// its own port).
#[derive(Parser, Debug)]
#[command(
    name = "peer",
    version,
    about = "A BitTorrent peer: download, seed and create torrents; every peer is also a tracker",
    long_about = None,
    after_help = MAIN_EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "COMMAND",
    override_usage = "peer [OPTIONS] <FILE.torrent|MAGNET>...\n       peer <COMMAND> [OPTIONS]"
)]
pub struct Cli {
    /// A subcommand; without one, the arguments are torrents to run.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `peer FILE.torrent|MAGNET... [OPTIONS]`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every torrent of the state directory and serve the control API
    #[command(after_help = "\
Examples:
  peer daemon                                 state in $XDG_DATA_HOME/peer or ~/.local/share/peer
  peer daemon --state /srv/peer --port 51413
  peer daemon --seed-ratio 1.5 --seed-time 120")]
    Daemon(DaemonArgs),
    /// Add torrents to the running daemon
    #[command(after_help = "\
Examples:
  peer add file.torrent --dir ~/Downloads
  peer add \"magnet:?xt=urn:btih:...\" --paused")]
    Add(AddArgs),
    /// List the daemon's torrents (ID, state, %, rates, peers, name)
    #[command(after_help = "Examples:\n  peer list\n  peer list --json")]
    List(JsonArgs),
    /// Show the daemon's session (address, peer id, counts, totals)
    #[command(after_help = "Examples:\n  peer status\n  peer status --json")]
    Status(JsonArgs),
    /// Pause a torrent of the daemon
    #[command(after_help = "Examples:\n  peer pause 2c0e3ce9")]
    Pause(IdArgs),
    /// Resume a paused (or finished) torrent of the daemon
    #[command(after_help = "Examples:\n  peer resume 2c0e")]
    Resume(IdArgs),
    /// Check every piece of a daemon's torrent on disk again (missing or
    /// damaged pieces are downloaded again)
    #[command(after_help = "Examples:\n  peer verify 2c0e3ce9")]
    Verify(IdArgs),
    /// Remove a torrent from the daemon
    #[command(
        after_help = "Examples:\n  peer remove 2c0e3ce9\n  peer remove 2c0e3ce9 --delete-data"
    )]
    Remove(RemoveArgs),
    /// Print a one-time login link to the daemon's web interface
    #[command(after_help = "Examples:\n  peer web\n  peer web --open")]
    Web(WebArgs),
    /// A seeder and leechers on loopback; checks every copy byte for byte
    #[command(after_help = "Examples:\n  peer demo\n  peer demo --size 256 --leechers 8")]
    Demo(DemoArgs),
    /// Show what a torrent file or a magnet link describes
    #[command(
        after_help = "Examples:\n  peer info file.torrent\n  peer info file.torrent --json\n  peer info \"magnet:?xt=urn:btih:...\""
    )]
    Info(InfoArgs),
    /// Make a torrent of a file or a directory
    #[command(after_help = "\
Examples:
  peer create movie.mkv --announce 192.168.1.10:6881
  peer create dir -o dir.torrent --announce https://tracker.example/announce --private
  peer create big.iso --piece-length 4M --threads 2
  peer create dir --hybrid          # BitTorrent v1 and v2 (BEP 52) in one torrent")]
    Create(CreateArgs),
    /// Print a shell completion script (bash, zsh or fish)
    #[command(after_help = "\
Examples:
  peer completions bash > ~/.local/share/bash-completion/completions/peer
  peer completions zsh > ~/.zfunc/_peer
  peer completions fish > ~/.config/fish/completions/peer.fish")]
    Completions(CompletionsArgs),
}

/// `peer FILE.torrent|MAGNET... [OPTIONS]`: download and seed.
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// Torrent files and magnet links to download (then seed)
    #[arg(value_name = "FILE.torrent|MAGNET")]
    pub torrents: Vec<OsString>,
    /// Where the data goes (or already is: it is checked first)
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Dial this peer (repeatable; IPv6 as [v6]:PORT, e.g. [::1]:6881)
    #[arg(long = "peer", value_name = "IP:PORT", value_parser = socket_addr)]
    pub peers: Vec<SocketAddr>,
    /// Exit (status 0) as soon as every torrent is complete (its selected files)
    #[arg(long)]
    pub once: bool,
    /// Download pieces in (nearly) ascending order, to watch or play a file
    /// while it downloads (peers with no piece near the front still serve rarest-first)
    #[arg(long)]
    pub sequential: bool,
    /// Fetch the first and the last piece of every wanted file before the others
    #[arg(long)]
    pub first_last_piece: bool,
    /// Serve the torrents' files over HTTP on 127.0.0.1 while they download
    /// (Range requests; a read fetches its bytes first) and print each file's
    /// URL and an M3U playlist URL, with a random token, once the metadata is known
    #[arg(long)]
    pub stream: bool,
    /// The port of --stream (default: any free port)
    #[arg(long, value_name = "PORT", requires = "stream")]
    pub stream_port: Option<u16>,
    /// Which files to download (cmd/select.rs)
    #[command(flatten)]
    pub select: crate::cmd::select::Selection,
    /// Session options
    #[command(flatten)]
    pub session: SessionArgs,
}

/// The session flags of `peer FILE...` and `peer daemon`: parsed once,
/// applied to the library's [`Config`] by [`SessionArgs::apply`].
#[derive(Args, Debug, Default, Clone)]
pub struct SessionArgs {
    /// State directory: torrent list, resume data, settings
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Port for peers and tracker requests, TCP and UDP [default: 6881]
    #[arg(short, long, value_name = "N")]
    pub port: Option<u16>,
    /// Listen on this address only (e.g. 192.168.1.5, fd00::5, 0.0.0.0 for all
    /// of IPv4 alone); given twice, an IPv4 and an IPv6 address, both on --port
    /// [default: [::], both families]
    #[arg(long, value_name = "ADDR", value_parser = ip_addr)]
    pub bind: Vec<IpAddr>,
    /// Turn off Local Service Discovery (LAN multicast)
    #[arg(long)]
    pub no_lsd: bool,
    /// Turn off the DHT
    #[arg(long)]
    pub no_dht: bool,
    /// Do not download from the torrents' web seeds (BEP 19 url-list)
    #[arg(long)]
    pub no_web_seeds: bool,
    /// Do not map the port on the router (UPnP IGD, NAT-PMP); also
    /// $PEER_PORT_MAP=off
    #[arg(long)]
    pub no_port_map: bool,
    /// A DHT node or router to join through, or `none` (repeatable; replaces the
    /// default routers and $PEER_DHT_BOOTSTRAP)
    #[arg(long, value_name = "HOST:PORT|none", value_parser = dht_bootstrap)]
    pub dht_bootstrap: Vec<DhtBootstrap>,
    /// The embedded tracker answers for any info-hash
    #[arg(long)]
    pub open_tracker: bool,
    /// Message Stream Encryption: prefer (default), require or off
    #[arg(long, value_name = "prefer|require|off", value_parser = encryption)]
    pub encryption: Option<Encryption>,
    /// Outgoing peer connections over both (default: uTP first, TCP beside it
    /// after 500 ms, the first connected wins), utp or tcp; incoming ones are
    /// accepted over both
    #[arg(long, value_name = "tcp|utp|both", value_parser = transport)]
    pub transport: Option<TransportPolicy>,
    /// Stop seeding a torrent once it has uploaded R times its size
    #[arg(long, value_name = "R", value_parser = seed_ratio)]
    pub seed_ratio: Option<f64>,
    /// Stop seeding a torrent after seeding this many minutes
    #[arg(long, value_name = "MINUTES", value_parser = minutes)]
    pub seed_time: Option<Duration>,
    /// Leave new files sparse: do not reserve their disk blocks
    #[arg(long)]
    pub no_preallocate: bool,
    /// TCP congestion control for peer connections (e.g. bbr, cubic; Linux),
    /// or `default` for the system's [default: the system's]; a name the
    /// kernel does not offer or allow is an error at start-up
    #[arg(long, value_name = "NAME|default", value_parser = tcp_congestion)]
    pub tcp_congestion: Option<CongestionChoice>,
    /// The session's rate limits (cmd/select.rs)
    #[command(flatten)]
    pub rates: crate::cmd::select::Rates,
}

impl SessionArgs {
    /// Apply the flags given to `config` (flags not given leave it as is).
    pub fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.state {
            config.state_dir = Some(dir.clone());
        }
        if let Some(p) = self.port {
            config.listen_port = p;
        }
        if let Some((first, more)) = self.bind.split_first() {
            // More than two, or two of one family: Session::start says so.
            config.listen_addr = *first;
            config.extra_listen_addrs = more.to_vec();
        }
        config.lsd = !self.no_lsd;
        config.dht = !self.no_dht;
        config.web_seeds = !self.no_web_seeds;
        if self.no_port_map {
            config.port_map = false;
        }
        config.preallocate = !self.no_preallocate;
        if !self.dht_bootstrap.is_empty() {
            // Given on the command line: replaces the default routers and
            // $PEER_DHT_BOOTSTRAP (`none` alone: no bootstrap at all).
            config.dht_bootstrap.clear();
            config.dht_routers.clear();
            for b in &self.dht_bootstrap {
                match b {
                    DhtBootstrap::None => {}
                    DhtBootstrap::Node(a) => config.dht_bootstrap.push(*a),
                    DhtBootstrap::Router(r) => config.dht_routers.push(r.clone()),
                }
            }
        }
        config.tracker.open = self.open_tracker;
        if let Some(e) = self.encryption {
            config.encryption = e;
        }
        if let Some(CongestionChoice(cc)) = self.tcp_congestion {
            config.tcp_congestion = cc;
        }
        if let Some(t) = self.transport {
            config.transport = t;
        }
        if self.seed_ratio.is_some() {
            config.seed_ratio = self.seed_ratio;
        }
        if self.seed_time.is_some() {
            config.seed_time = self.seed_time;
        }
        if let Some(r) = self.rates.max_download_rate {
            config.max_download_rate = r;
        }
        if let Some(r) = self.rates.max_upload_rate {
            config.max_upload_rate = r;
        }
    }

    /// Whether a seeding goal was given.
    pub fn has_seed_goal(&self) -> bool {
        self.seed_ratio.is_some() || self.seed_time.is_some()
    }
}

/// `peer daemon [OPTIONS]`.
#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Session options (--state defaults to $XDG_DATA_HOME/peer or ~/.local/share/peer;
    /// --port to the port of the last run)
    #[command(flatten)]
    pub session: SessionArgs,
    /// Port of the control API, web interface and Transmission RPC on 127.0.0.1
    /// [default: `rpc-port` of STATE/settings.json, else a free port]
    #[arg(long, value_name = "N")]
    pub rpc_port: Option<u16>,
    /// Add the .torrent and .magnet files dropped in DIR [default: `watch-dir` of
    /// STATE/settings.json]
    #[arg(long, value_name = "DIR")]
    pub watch_dir: Option<PathBuf>,
    /// Delete the files the watch folder added instead of renaming them *.added
    #[arg(long)]
    pub watch_dir_delete: bool,
}

/// `--state DIR` of the control commands.
#[derive(Args, Debug)]
pub struct StateArg {
    /// The daemon's state directory [default: $XDG_DATA_HOME/peer or ~/.local/share/peer]
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

/// `peer add FILE.torrent|MAGNET... [OPTIONS]`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// Torrent files and magnet links
    #[arg(value_name = "FILE.torrent|MAGNET", required = true)]
    pub torrents: Vec<String>,
    /// Where the data goes [default: the current directory]
    #[arg(short, long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Add them paused
    #[arg(long)]
    pub paused: bool,
    /// Which files to download (cmd/select.rs)
    #[command(flatten)]
    pub select: crate::cmd::select::Selection,
    /// The torrents' own rate limits (cmd/select.rs)
    #[command(flatten)]
    pub rates: crate::cmd::select::Rates,
    /// Print the API's JSON answer
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArg,
}

/// `peer list|status [--json]`.
#[derive(Args, Debug)]
pub struct JsonArgs {
    /// Print the API's JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArg,
}

/// `peer pause|resume|verify ID`.
#[derive(Args, Debug)]
pub struct IdArgs {
    /// The info-hash in hex or a unique prefix of it (4+ characters)
    pub id: String,
    #[command(flatten)]
    pub state: StateArg,
}

/// `peer remove ID [--delete-data]`.
#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The info-hash in hex or a unique prefix of it (4+ characters)
    pub id: String,
    /// Delete the torrent's files too
    #[arg(long)]
    pub delete_data: bool,
    #[command(flatten)]
    pub state: StateArg,
}

/// `peer web [--open]`.
#[derive(Args, Debug)]
pub struct WebArgs {
    /// Also open the link in a browser (xdg-open)
    #[arg(long)]
    pub open: bool,
    #[command(flatten)]
    pub state: StateArg,
}

/// `peer demo [OPTIONS]`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Size of the generated file in MiB
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub size: u64,
    /// Number of leechers
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=16))]
    pub leechers: u64,
    /// Keep the files in DIR (default: a temporary directory, removed)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `peer info FILE.torrent|MAGNET [--json]`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A torrent file or a magnet link
    #[arg(value_name = "FILE.torrent|MAGNET")]
    pub input: OsString,
    /// One JSON object (name, info_hash, total_length, piece_length,
    /// num_pieces, private, trackers, files)
    #[arg(long)]
    pub json: bool,
}

/// `peer create PATH [OPTIONS]`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The file or directory to share
    pub path: PathBuf,
    /// Where to write the torrent [default: NAME.torrent]
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Tracker URL (http, https, udp) or IP:PORT of a peer's tracker (repeatable: BEP 12 tiers)
    #[arg(long, value_name = "URL|IP:PORT")]
    pub announce: Vec<String>,
    /// Piece length: a power of two from 16K to 1G (bytes, or K/M/G suffix)
    #[arg(long, value_name = "BYTES", value_parser = piece_length)]
    pub piece_length: Option<u64>,
    /// Set the private flag (BEP 27)
    #[arg(long)]
    pub private: bool,
    /// A comment
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// A web seed URL (BEP 19, repeatable)
    #[arg(long, value_name = "URL")]
    pub web_seed: Vec<String>,
    /// Hashing threads [default: the number of cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Overwrite OUT if it exists (without it, an existing OUT is an error)
    #[arg(long)]
    pub force: bool,
    /// Make a BitTorrent v2-only torrent (BEP 52: SHA-256 merkle trees per file)
    #[arg(long, conflicts_with = "hybrid")]
    pub v2: bool,
    /// Make a hybrid v1+v2 torrent (BEP 52, with BEP 47 pad files in the v1 view)
    #[arg(long)]
    pub hybrid: bool,
}

/// `peer completions SHELL`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: Shell,
}

/// Shells `peer completions` writes for.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// An `--bind` address: IPv4, or IPv6 with or without brackets.
fn ip_addr(s: &str) -> Result<IpAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse()
        .map_err(|_| format!("not an IP address: {s} (e.g. 192.168.1.5, fd00::5 or [fd00::5])"))
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    // `::1:6881` is itself an IPv6 address (and the resolver would take it
    // for host `::1`, port 6881): IPv6 goes in brackets.
    if !s.starts_with('[') && s.matches(':').count() > 1 {
        return Err(format!(
            "not an address: {s} (IPv6 goes in brackets: [v6]:PORT)"
        ));
    }
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("not an address: {s}"))
}

/// One `--dht-bootstrap` value.
#[derive(Debug, Clone, PartialEq)]
pub enum DhtBootstrap {
    /// `none`: no default routers.
    None,
    /// `IP:PORT` or `[v6]:PORT`: a DHT node (as before host names were
    /// accepted; it may enter the routing table).
    Node(SocketAddr),
    /// `HOST:PORT`: a router, resolved by the DHT thread on every
    /// bootstrap, never in the routing table.
    Router(bittorrent_core::dht_bootstrap::Router),
}

fn dht_bootstrap(s: &str) -> Result<DhtBootstrap, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(DhtBootstrap::None);
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(DhtBootstrap::Node(a));
    }
    s.parse::<bittorrent_core::dht_bootstrap::Router>()
        .map(DhtBootstrap::Router)
        .map_err(|e| e.to_string())
}

/// `--tcp-congestion`: a name, or `default` (`None`: the system's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CongestionChoice(pub Option<TcpCongestion>);

fn tcp_congestion(s: &str) -> Result<CongestionChoice, String> {
    if s == "default" {
        return Ok(CongestionChoice(None));
    }
    s.parse()
        .map(|cc| CongestionChoice(Some(cc)))
        .map_err(|e: bittorrent_core::CongestionError| e.to_string())
}

fn encryption(s: &str) -> Result<Encryption, String> {
    s.parse()
        .map_err(|e: <Encryption as std::str::FromStr>::Err| e.to_string())
}

fn transport(s: &str) -> Result<TransportPolicy, String> {
    s.parse()
}

fn seed_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a ratio (a number >= 0, e.g. 1.5)")),
    }
}

fn minutes(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(m) if (0.0..=1e7).contains(&m) => Ok(Duration::from_secs_f64(m * 60.0)),
        _ => Err(format!("{s:?} is not a number of minutes (e.g. 90 or 0.5)")),
    }
}

/// Bytes, or a number with a binary suffix: `262144`, `256K`, `256KiB`, `1M`, `1MiB`.
pub fn piece_length(s: &str) -> Result<u64, String> {
    let bad =
        || format!("{s:?} is not a power of two from 16K to 1G (bytes, or with a K/M/G suffix)");
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    bittorrent_core::create::validate_piece_length(bytes).map_err(|_| bad())
}

/// Write the completion script for `shell` to stdout (a closed pipe ends
/// quietly: [`crate::args::output_failed`]).
pub fn print_completions(shell: Shell) {
    use clap::CommandFactory;
    use std::io::Write;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "peer", &mut script);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&script).and_then(|()| out.flush()) {
        crate::args::output_failed(e)
    }
}

/// The subcommand `word` is probably a typo of (`peer daemn` is taken as a
/// torrent file by the bare `peer FILE...` form; when no such file exists
/// and a subcommand is one or two edits away, say so instead).
pub fn subcommand_typo(word: &std::ffi::OsStr) -> Option<String> {
    let w = word.to_str()?;
    if w.is_empty() || w.contains(['.', '/', ':']) || std::path::Path::new(w).exists() {
        return None;
    }
    use clap::CommandFactory;
    let cmd = Cli::command();
    cmd.get_subcommands()
        .map(|c| c.get_name().to_string())
        .chain(std::iter::once("help".to_string()))
        .map(|name| (edit_distance(w, &name), name))
        .filter(|(d, name)| *d <= 2 && *d < name.len())
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance (short words only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn peer_takes_ipv6_in_brackets() {
        let cli = Cli::try_parse_from([
            "peer",
            "x.torrent",
            "--peer",
            "[::1]:6881",
            "--peer",
            "127.0.0.1:6882",
        ])
        .unwrap();
        let want: Vec<SocketAddr> = vec![
            "[::1]:6881".parse().unwrap(),
            "127.0.0.1:6882".parse().unwrap(),
        ];
        assert_eq!(cli.run.peers, want);
        assert!(Cli::try_parse_from(["peer", "x.torrent", "--peer", "::1:6881"]).is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn typos_of_subcommands() {
        assert_eq!(subcommand_typo("daemn".as_ref()).as_deref(), Some("daemon"));
        assert_eq!(
            subcommand_typo("craete".as_ref()).as_deref(),
            Some("create")
        );
        assert_eq!(subcommand_typo("file.torrent".as_ref()), None);
        assert_eq!(subcommand_typo("zzzzzzzzzz".as_ref()), None);
    }

    #[test]
    fn session_flags_reach_the_config() {
        let cli = Cli::try_parse_from([
            "peer",
            "a.torrent",
            "--port",
            "7000",
            "--no-lsd",
            "--state",
            "/s",
            "--dht-bootstrap",
            "127.0.0.1:9",
            "--open-tracker",
            "--seed-ratio",
            "1.5",
            "--seed-time",
            "0.5",
            "--no-preallocate",
            "--no-web-seeds",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let mut c = Config::default();
        assert!(c.preallocate && c.web_seeds);
        cli.run.session.apply(&mut c);
        assert_eq!(c.listen_port, 7000);
        assert!(!c.lsd && c.dht && c.tracker.open && !c.preallocate && !c.web_seeds);
        assert_eq!(c.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(c.dht_bootstrap.len(), 1);
        assert_eq!(c.seed_ratio, Some(1.5));
        assert_eq!(c.seed_time, Some(Duration::from_secs(30)));
        let cli = Cli::try_parse_from(["peer", "daemon", "--port", "7001", "--no-dht"]).unwrap();
        let Some(Command::Daemon(d)) = cli.command else {
            panic!("not the daemon")
        };
        let mut c = Config::default();
        d.session.apply(&mut c);
        assert_eq!((c.listen_port, c.dht, c.lsd), (7001, false, true));
    }

    #[test]
    fn bind_addresses() {
        let config = |args: &[&str]| {
            let mut argv = vec!["peer", "a.torrent"];
            argv.extend(args);
            let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
            let mut c = Config::default();
            cli.run.session.apply(&mut c);
            Ok::<_, String>((c.listen_addr, c.extra_listen_addrs))
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(config(&[]).unwrap(), (ip("::"), vec![]));
        assert_eq!(
            config(&["--bind", "10.0.0.5"]).unwrap(),
            (ip("10.0.0.5"), vec![])
        );
        assert_eq!(
            config(&["--bind", "0.0.0.0", "--bind", "[fd00::5]"]).unwrap(),
            (ip("0.0.0.0"), vec![ip("fd00::5")])
        );
        assert_eq!(
            config(&["--bind", "fd00::5"]).unwrap(),
            (ip("fd00::5"), vec![])
        );
        for bad in ["10.0.0.5:6881", "[::1]:6881", "host", "[::1"] {
            assert!(config(&["--bind", bad]).is_err(), "{bad}");
        }
        let cli = Cli::try_parse_from(["peer", "daemon", "--bind", "127.0.0.1"]).unwrap();
        let Some(Command::Daemon(d)) = cli.command else {
            panic!("not the daemon")
        };
        let mut c = Config::default();
        d.session.apply(&mut c);
        assert_eq!(c.listen_addr, ip("127.0.0.1"));
    }

    #[test]
    fn dht_bootstrap_forms() {
        use bittorrent_core::dht_bootstrap::{routers_from, Router};
        let parse = |args: &[&str]| {
            let mut argv = vec!["peer", "a.torrent"];
            for a in args {
                argv.extend(["--dht-bootstrap", a]);
            }
            let cli = Cli::try_parse_from(argv).unwrap();
            // Start from the defaults, whatever the environment says.
            let mut c = Config {
                dht_routers: routers_from(None),
                ..Config::default()
            };
            cli.run.session.apply(&mut c);
            c
        };
        // No flag: the defaults stay.
        assert_eq!(parse(&[]).dht_routers.len(), 4);
        // IP:PORT as before, [v6]:PORT, a name: they replace the defaults.
        let c = parse(&["127.0.0.1:9", "[::1]:10", "router.example.org:6881"]);
        assert_eq!(
            c.dht_bootstrap,
            vec![
                "127.0.0.1:9".parse::<SocketAddr>().unwrap(),
                "[::1]:10".parse().unwrap()
            ]
        );
        assert_eq!(
            c.dht_routers,
            vec!["router.example.org:6881".parse::<Router>().unwrap()]
        );
        let c = parse(&["none"]);
        assert!(c.dht_bootstrap.is_empty() && c.dht_routers.is_empty());
        for bad in ["router.example.org", "::1:6881", "host:0", "a b:1"] {
            let argv = ["peer", "a.torrent", "--dht-bootstrap", bad];
            assert!(Cli::try_parse_from(argv).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn piece_length_suffixes() {
        assert_eq!(piece_length("262144").unwrap(), 262_144);
        assert_eq!(piece_length("256K").unwrap(), 262_144);
        assert_eq!(piece_length("256kib").unwrap(), 262_144);
        assert_eq!(piece_length("1M").unwrap(), 1 << 20);
        assert_eq!(piece_length("1G").unwrap(), 1 << 30);
        for bad in [
            "",
            "K",
            "1000",
            "8K",
            "1.5M",
            "2T",
            "-16K",
            "99999999999999999999G",
        ] {
            assert!(piece_length(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seed_goal_values() {
        assert!(
            seed_ratio("-1").is_err() && seed_ratio("nan").is_err() && seed_ratio("x").is_err()
        );
        assert_eq!(minutes("90").unwrap(), Duration::from_secs(5400));
        assert!(minutes("-1").is_err());
    }
}
