//! The DHT's default bootstrap routers, tried for real but safely: `peer`
//! runs in a network namespace holding only `lo`, so resolving the routers'
//! names fails on the spot and nothing leaves the machine. Checks from the
//! log that the four default routers were tried, that `PEER_DHT_BOOTSTRAP`
//! replaces them (a list) or turns them off (`none`), and that
//! `--dht-bootstrap` wins over the variable. Needs root and `ip`
//! (iproute2): without them a loud SKIP by hand, a failure under CI=true.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

const DEFAULTS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];
/// A trackerless magnet link: only the DHT (and LSD, off here) can resolve it.
const MAGNET: &str = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";

/// A network namespace with only `lo` (up); removed on drop.
struct LoOnly(String);

impl LoOnly {
    fn new() -> Result<LoOnly, String> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("pdht{}x{seq}", std::process::id() % 100_000);
        ip(&["netns", "add", &name])?;
        let ns = LoOnly(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for LoOnly {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn namespace_or_skip() -> Option<LoOnly> {
    if find_on_path("ip").is_none() {
        skip_or_fail("ip (iproute2)", "apt-get install iproute2");
        return None;
    }
    match LoOnly::new() {
        Ok(ns) => Some(ns),
        Err(why) => {
            let msg = format!(
                "SKIP: cannot create a network namespace ({why}); the DHT router test needs root"
            );
            if in_ci() {
                panic!("{msg} -- CI=true runs as root, so this is a failure");
            }
            loud(&msg);
            None
        }
    }
}

/// Run `peer MAGNET` in the namespace until `marker` is logged (or 30 s);
/// returns its output. `env`: PEER_DHT_BOOTSTRAP's value (`None`: unset).
fn run_until(ns: &LoOnly, env: Option<&str>, extra: &[&str], marker: &str) -> String {
    let dir = TempDir::new("dht-routers");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0])
        .arg(peer_bin())
        .arg(MAGNET)
        .arg("--dir")
        .arg(dir.path())
        .args(["--no-lsd", "--port", "6881"])
        .args(extra)
        .env("RUST_LOG", "info");
    match env {
        Some(v) => cmd.env(DHT_ENV, v),
        None => cmd.env_remove(DHT_ENV),
    };
    let mut child = Child::spawn("peer", cmd);
    let seen = child.wait_for_output(marker, Duration::from_secs(30));
    // A little longer: anything else it would try is logged by then.
    std::thread::sleep(Duration::from_millis(500));
    child.kill();
    let out = child.output();
    assert!(seen, "`{marker}` never logged:\n{out}");
    out
}

#[test]
fn default_routers_tried_and_the_variable_and_flag_replace_them() {
    let Some(ns) = namespace_or_skip() else {
        return;
    };
    // Unset: the four defaults, each name tried (and failing at once).
    let last = format!("cannot resolve router {}", DEFAULTS[3]);
    let out = run_until(&ns, None, &[], &last);
    for r in DEFAULTS {
        assert!(
            out.contains(&format!("cannot resolve router {r}")),
            "{r} not tried:\n{out}"
        );
    }
    // Each failure is logged once per DHT node (the IPv6 node's lines say
    // so: BEP 32 runs a second node beside a dual-stack listener).
    assert_eq!(
        out.matches(&format!("DHT bootstrap: {last}")).count(),
        1,
        "{out}"
    );
    assert!(
        out.matches(&format!("DHT bootstrap (IPv6): {last}"))
            .count()
            <= 1,
        "{out}"
    );

    // A list replaces the defaults.
    let out = run_until(
        &ns,
        Some("only.invalid:6881"),
        &[],
        "cannot resolve router only.invalid:6881",
    );
    for r in DEFAULTS {
        assert!(!out.contains(r), "{r} tried with a list:\n{out}");
    }

    // `none` turns them off.
    let out = run_until(&ns, Some("none"), &[], "no routers configured");
    for r in DEFAULTS {
        assert!(!out.contains(r), "{r} tried with none:\n{out}");
    }
    assert!(!out.contains("cannot resolve"), "{out}");

    // The flag wins over the variable, both ways.
    let out = run_until(
        &ns,
        Some("only.invalid:6881"),
        &["--dht-bootstrap", "none"],
        "no routers configured",
    );
    assert!(!out.contains("only.invalid"), "{out}");
    let out = run_until(
        &ns,
        Some("none"),
        &["--dht-bootstrap", "flag.invalid:7"],
        "cannot resolve router flag.invalid:7",
    );
    for r in DEFAULTS {
        assert!(!out.contains(r), "{r} tried with a flag:\n{out}");
    }
}
