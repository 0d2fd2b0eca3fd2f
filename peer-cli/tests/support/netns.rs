//! A LAN of network namespaces on one bridge, for tests that run each peer
//! on its own "machine". Each host has IPv4 (`10.77.0.N/24`), IPv6
//! (`fd21:a::N/64`, no duplicate address detection, so usable at once) or
//! both. The namespaces are named after the caller's prefix (which carries
//! its issue tag) and removed on drop, even when the test fails. Needs root
//! and `ip` (iproute2): [`lan_or_skip`] prints a loud SKIP by hand and fails
//! under `CI=true`.

use super::{find_on_path, in_ci, loud, skip_or_fail};
use std::process::Command;

/// The address families of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both.
    Dual,
}

/// Network namespaces and the bridge between them; removed on drop.
pub struct Lan {
    bridge: String,
    pub hosts: Vec<String>,
}

pub fn ip(args: &[&str]) -> Result<(), String> {
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

impl Lan {
    /// Hosts 1..=n (one per entry of `families`) on one bridge; namespaces
    /// `{prefix}br{tag}` and `{prefix}h{tag}-{i}`, veth pairs
    /// `{veth}{tag}a{i}`/`{veth}{tag}b{i}` (at most 15 characters: keep both
    /// prefixes short).
    pub fn with_families(prefix: &str, veth: &str, families: &[Family]) -> Result<Lan, String> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}x{seq}", std::process::id() % 100_000);
        let mut lan = Lan {
            bridge: format!("{prefix}br{tag}"),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &lan.bridge])?;
        ip(&["-n", &lan.bridge, "link", "set", "lo", "up"])?;
        ip(&["-n", &lan.bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &lan.bridge, "link", "set", "br0", "up"])?;
        for (i, fam) in families.iter().enumerate() {
            let host = format!("{prefix}h{tag}-{i}");
            ip(&["netns", "add", &host])?;
            lan.hosts.push(host.clone());
            let (a, b) = (format!("{veth}{tag}a{i}"), format!("{veth}{tag}b{i}"));
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
            ip(&["link", "set", &a, "netns", &host])?;
            ip(&["link", "set", &b, "netns", &lan.bridge])?;
            ip(&["-n", &lan.bridge, "link", "set", &b, "master", "br0"])?;
            ip(&["-n", &lan.bridge, "link", "set", &b, "up"])?;
            if *fam != Family::V6 {
                let v4 = format!("{}/24", Lan::v4(i));
                ip(&["-n", &host, "addr", "add", &v4, "dev", &a])?;
            }
            if *fam != Family::V4 {
                let v6 = format!("{}/64", Lan::v6(i));
                ip(&["-n", &host, "addr", "add", &v6, "dev", &a, "nodad"])?;
            } else {
                // An IPv4-only host: no IPv6 at all (not even link-local).
                let _ = Command::new("ip")
                    .args(["netns", "exec", &host, "sysctl", "-qw"])
                    .arg(format!("net.ipv6.conf.{a}.disable_ipv6=1"))
                    .output();
            }
            ip(&["-n", &host, "link", "set", &a, "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
            if *fam != Family::V6 {
                // Multicast (LSD) goes out on the LAN interface.
                ip(&["-n", &host, "route", "add", "224.0.0.0/4", "dev", &a])?;
            }
        }
        Ok(lan)
    }

    /// `n` IPv4 hosts 10.77.0.1 .. 10.77.0.n.
    pub fn new(prefix: &str, veth: &str, n: usize) -> Result<Lan, String> {
        Lan::with_families(prefix, veth, &vec![Family::V4; n])
    }

    /// Host `i`'s IPv4 address (0-based `i`: 10.77.0.1 is host 0).
    pub fn v4(i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// Host `i`'s IPv6 address (`fd21:a::1` is host 0).
    pub fn v6(i: usize) -> String {
        format!("fd21:a::{}", i + 1)
    }

    /// `program args...` run inside host `i`.
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i]]).arg(program);
        c
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for h in self.hosts.iter().chain(std::iter::once(&self.bridge)) {
            let _ = ip(&["netns", "del", h]);
        }
    }
}

/// A LAN of `families`, or None after a loud SKIP (a failure under CI).
pub fn lan_or_skip(prefix: &str, veth: &str, families: &[Family]) -> Option<Lan> {
    if find_on_path("ip").is_none() {
        skip_or_fail("ip (iproute2)", "apt-get install iproute2");
        return None;
    }
    match Lan::with_families(prefix, veth, families) {
        Ok(l) => Some(l),
        Err(why) => {
            let msg =
                format!("SKIP: cannot create network namespaces ({why}); the LAN test needs root");
            if in_ci() {
                panic!("{msg} -- CI=true runs as root, so this is a failure");
            }
            loud(&msg);
            None
        }
    }
}
