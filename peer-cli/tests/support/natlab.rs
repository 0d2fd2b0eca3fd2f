//! The NAT lab of `port_map.rs` and `pinhole.rs`: three network namespaces
//! with miniupnpd (or a fake gateway) as the router between a LAN host and
//! the "internet":
//!
//! ```text
//!   PREFIX-..l (LAN host: 192.168.77.2; with IPv6 fd77::2/64, its IPv6
//!      |        default route via the router's link-local fe80::1)
//!   PREFIX-..g (router: 192.168.77.1 inside (fd77::1, fe80::1), EXT outside
//!      |        (2001:db8:84::14); nftables `inet filter` forward chain with
//!      |        policy drop and miniupnpd's chains; IPv4 masqueraded)
//!   PREFIX-..w (the "internet": .1 of EXT's /24 (2001:db8:84::1, a route to
//!               fd77::/64))
//! ```
//!
//! Removed on drop (the gateway's daemon first). Needs root, `ip`, `nft`,
//! `miniupnpd` and `upnpc`.

use super::*;
use std::process::Command;
use std::time::Duration;

/// The router's LAN address.
pub const LAN_GW: &str = "192.168.77.1";
/// The LAN host's address.
pub const LAN_HOST: &str = "192.168.77.2";
/// The router's IPv6 address on the LAN (IPv6 lab).
pub const GW6: &str = "fd77::1";

/// `cmd ARGS`: its stdout, or an error naming it with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// The three namespaces and their links; removed on drop.
pub struct NatLab {
    pub gw: String,
    pub lan: String,
    pub wan: String,
    pub wan_if: String,
    pub lan_if: String,
    pub dir: TempDir,
    pub gateway: Option<Child>,
    /// The lab has IPv6 (addresses, routes, miniupnpd's IPv6 side).
    pub ipv6: bool,
}

impl NatLab {
    /// The lab with namespaces and links named `prefix`..., its scratch
    /// directory `tmp`, `ext` (an IPv4 address of a /24) on the router's
    /// WAN side, and IPv6 if `ipv6`.
    pub fn new(prefix: &str, tmp: &str, ext: &str, ipv6: bool) -> Result<NatLab, String> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}{seq}", std::process::id() % 10_000);
        let lab = NatLab {
            gw: format!("{prefix}-{tag}g"),
            lan: format!("{prefix}-{tag}l"),
            wan: format!("{prefix}-{tag}w"),
            wan_if: format!("{prefix}{tag}wg"),
            lan_if: format!("{prefix}{tag}lg"),
            dir: TempDir::new(tmp),
            gateway: None,
            ipv6,
        };
        for ns in [&lab.gw, &lab.lan, &lab.wan] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            if ipv6 {
                // No duplicate address detection: addresses usable at once.
                for k in ["all", "default"] {
                    let key = format!("net.ipv6.conf.{k}.accept_dad=0");
                    run("ip", &["netns", "exec", ns, "sysctl", "-qw", &key])?;
                }
            }
        }
        let (lg, ll) = (lab.lan_if.clone(), format!("{prefix}{tag}ll"));
        let ww = format!("{prefix}{tag}ww");
        ip(&["link", "add", &lg, "type", "veth", "peer", "name", &ll])?;
        let wg = &lab.wan_if;
        ip(&["link", "add", wg, "type", "veth", "peer", "name", &ww])?;
        ip(&["link", "set", &lg, "netns", &lab.gw])?;
        ip(&["link", "set", &ll, "netns", &lab.lan])?;
        ip(&["link", "set", wg, "netns", &lab.gw])?;
        ip(&["link", "set", &ww, "netns", &lab.wan])?;
        let wan_peer = format!("{}.1/24", ext.rsplit_once('.').map_or(ext, |(a, _)| a));
        let mut addrs = vec![
            (&lab.gw, &lg, format!("{LAN_GW}/24")),
            (&lab.lan, &ll, format!("{LAN_HOST}/24")),
            (&lab.gw, wg, format!("{ext}/24")),
            (&lab.wan, &ww, wan_peer),
        ];
        if ipv6 {
            for (ns, dev, a) in [
                (&lab.gw, &lg, "fd77::1/64"),
                (&lab.gw, &lg, "fe80::1/64"),
                (&lab.lan, &ll, "fd77::2/64"),
                (&lab.gw, wg, "2001:db8:84::14/64"),
                (&lab.wan, &ww, "2001:db8:84::1/64"),
            ] {
                addrs.push((ns, dev, a.to_string()));
            }
        }
        for (ns, dev, addr) in &addrs {
            if addr.contains(':') {
                ip(&["-n", ns, "addr", "add", addr, "dev", dev, "nodad"])
                    .or_else(|_| ip(&["-n", ns, "addr", "add", addr, "dev", dev]))?;
            } else {
                ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            }
        }
        for (ns, dev) in [
            (&lab.gw, &lg),
            (&lab.lan, &ll),
            (&lab.gw, wg),
            (&lab.wan, &ww),
        ] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        ip(&["-n", &lab.lan, "route", "add", "default", "via", LAN_GW])?;
        let mut forwarding = vec!["net.ipv4.ip_forward=1"];
        if ipv6 {
            let (lan, gw, wan) = (&lab.lan, &lab.gw, &lab.wan);
            ip(&[
                "-n", lan, "-6", "route", "add", "default", "via", "fe80::1", "dev", &ll,
            ])?;
            ip(&[
                "-n",
                gw,
                "-6",
                "route",
                "add",
                "default",
                "via",
                "2001:db8:84::1",
            ])?;
            ip(&[
                "-n",
                wan,
                "-6",
                "route",
                "add",
                "fd77::/64",
                "via",
                "2001:db8:84::14",
            ])?;
            forwarding.push("net.ipv6.conf.all.forwarding=1");
        }
        for key in forwarding {
            run("ip", &["netns", "exec", &lab.gw, "sysctl", "-qw", key])?;
        }
        // miniupnpd (nftables build) adds IPv4 forwards (and IPv6 pinholes)
        // to the `miniupnpd` chains of `inet filter`; inbound is dropped
        // otherwise; the LAN's IPv4 is masqueraded on the way out.
        let masquerade = if ipv6 {
            "meta nfproto ipv4 masquerade"
        } else {
            "masquerade"
        };
        let rules = format!(
            "table inet filter {{\n\
               chain forward {{ type filter hook forward priority 0; policy drop;\n\
                 ct state established,related accept\n\
                 iifname \"{lg}\" accept\n\
                 jump miniupnpd; }}\n\
               chain miniupnpd {{ }}\n\
               chain prerouting {{ type nat hook prerouting priority -100; policy accept;\n\
                 jump prerouting_miniupnpd; }}\n\
               chain postrouting {{ type nat hook postrouting priority 100; policy accept;\n\
                 jump postrouting_miniupnpd\n\
                 oifname \"{}\" {masquerade}; }}\n\
               chain prerouting_miniupnpd {{ }}\n\
               chain postrouting_miniupnpd {{ }}\n\
             }}\n",
            lab.wan_if
        );
        let file = lab.dir.path().join("lab.nft");
        std::fs::write(&file, rules).map_err(|e| e.to_string())?;
        let f = file.to_string_lossy().into_owned();
        run("ip", &["netns", "exec", &lab.gw, "nft", "-f", &f])?;
        Ok(lab)
    }

    /// Start miniupnpd as the router (`-d`: foreground, logs on stderr);
    /// in the IPv6 lab with IPv6 on (`ipv6_disable=no`; no
    /// `ipv6_listening_ip`: with one, 2.3.1 binds its IPv6 SSDP socket to
    /// that unicast address and never hears a search sent to `ff02::c`).
    pub fn start_miniupnpd(&mut self, natpmp: bool, upnp: bool) {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let (w, l) = (&self.wan_if, &self.lan_if);
        let mut conf = format!("ext_ifname={w}\n");
        if self.ipv6 {
            conf += &format!("ext_ifname6={w}\nlistening_ip={l}\nipv6_disable=no\n");
        } else {
            conf += &format!("listening_ip={l}\n");
        }
        conf += &format!(
            "port=0\n\
             enable_natpmp={}\nenable_upnp={}\nsecure_mode=yes\n\
             min_lifetime=20\n\
             lease_file={}\n\
             uuid=3a5b3b8c-2d4c-4f5e-9a1b-7c6d5e4f3a2b\n\
             allow 1024-65535 192.168.77.0/24 1024-65535\n\
             deny 0-65535 0.0.0.0/0 0-65535\n",
            yes(natpmp),
            yes(upnp),
            self.dir.path().join("leases").display(),
        );
        let file = self.dir.path().join("miniupnpd.conf");
        write_file(&file, conf.as_bytes());
        let pid = self.dir.path().join("miniupnpd.pid");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.gw, "miniupnpd", "-d", "-f"])
            .arg(&file)
            .arg("-P")
            .arg(&pid);
        let mut d = Child::spawn("miniupnpd", c);
        let started = if !self.ipv6 {
            d.wait_for_output("Listening for NAT-PMP", Duration::from_secs(10))
                || d.wait_for_output("HTTP listening", Duration::from_secs(1))
        } else if upnp {
            // With UPnP on, its IPv6 HTTP address; else only the PCP socket.
            let ready = format!("HTTP IPv6 address given to control points : [{GW6}]");
            d.wait_for_output(&ready, Duration::from_secs(10))
        } else {
            d.wait_for_output("Listening for NAT-PMP/PCP traffic", Duration::from_secs(10))
        };
        assert!(
            started,
            "miniupnpd did not start{}:\n{}",
            if self.ipv6 { " with IPv6" } else { "" },
            d.output()
        );
        self.gateway = Some(d);
    }

    /// `peer ARGS` on the LAN host, port mapping on, `lease` seconds asked,
    /// PCP on or off (`PEER_PORT_MAP_PCP`), logging at info.
    pub fn peer_cmd(&self, args: &[&str], lease: u32, pcp: bool) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.lan])
            .arg(peer_bin())
            .args(args)
            .env(PORT_MAP_ENV, "on")
            .env("PEER_PORT_MAP_LEASE", lease.to_string())
            .env("PEER_PORT_MAP_PCP", if pcp { "on" } else { "off" })
            .env("RUST_LOG", "bittorrent_core=info");
        c
    }

    /// The router's nftables chain `name` of `inet filter` (or the error).
    pub fn chain(&self, name: &str) -> String {
        let gw = &self.gw;
        let args = [
            "netns", "exec", gw, "nft", "list", "chain", "inet", "filter", name,
        ];
        run("ip", &args).unwrap_or_else(|e| e)
    }

    /// Python `script` run on the WAN host (the "internet"): its stdout.
    pub fn python_on_wan(&self, script: &str) -> Result<String, String> {
        run(
            "ip",
            &["netns", "exec", &self.wan, SYSTEM_PYTHON, "-c", script],
        )
    }

    /// What the router's daemon printed so far.
    pub fn gateway_output(&self) -> String {
        self.gateway.as_ref().map(Child::output).unwrap_or_default()
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            g.kill();
        }
        for ns in [&self.lan, &self.wan, &self.gw] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// [`NatLab::new`], or `None` after a loud SKIP naming `what` (a failure
/// under CI).
pub fn lab_or_skip(prefix: &str, tmp: &str, ext: &str, ipv6: bool, what: &str) -> Option<NatLab> {
    if !require_tools(&["ip", "nft", "miniupnpd", "upnpc"]) {
        return None;
    }
    match NatLab::new(prefix, tmp, ext, ipv6) {
        Ok(l) => Some(l),
        Err(why) => {
            let msg = format!("SKIP: cannot build the {what} ({why}); it needs root");
            if in_ci() {
                panic!("{msg} -- CI=true runs as root, so this is a failure");
            }
            loud(&msg);
            None
        }
    }
}

/// Wait (at most 15 s) for `p` to log `"{label}: renewed with {method} for
/// 20 s"` (the lease the tests ask for); a panic with its output otherwise.
pub fn wait_renewal(p: &mut Child, label: &str, method: &str) {
    assert!(
        p.wait_for_output(
            &format!("{label}: renewed with {method} for 20 s"),
            Duration::from_secs(15)
        ),
        "no renewal:\n{}",
        p.output()
    );
}

/// SIGTERM and a bounded wait for a clean exit.
pub fn stop(p: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.id().to_string()])
        .status();
    assert!(
        p.wait_exit(Duration::from_secs(20)).is_some(),
        "peer did not exit:\n{}",
        p.output()
    );
}
