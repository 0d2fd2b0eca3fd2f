//! IPv6 pinholes (UPnP IGD v2 `WANIPv6FirewallControl` and PCP MAP over
//! IPv6) against Debian's miniupnpd, run by the test as the router of a lab
//! of three network namespaces (the NAT lab of `port_map.rs` with IPv6):
//!
//! ```text
//!   h21-..l (LAN host: 192.168.77.2, fd77::2/64; IPv6 default route via
//!      |     the router's link-local fe80::1, as router advertisements give)
//!   h21-..g (router: 192.168.77.1, fd77::1, fe80::1 inside; 84.124.73.14 and
//!      |     2001:db8:84::14 outside; nftables `inet filter` forward chain
//!      |     with policy drop and miniupnpd's chain; IPv4 masqueraded)
//!   h21-..w (the "internet": 84.124.73.1, 2001:db8:84::1, a route to fd77::/64)
//! ```
//!
//! Inbound IPv6 is dropped by the router's forward filter unless a pinhole
//! (a rule miniupnpd adds to its chain) lets it through: the tests check
//! that a WAN host cannot reach `[fd77::2]:6881` before `peer` runs, can
//! while the pinholes exist (the answer of `peer`'s embedded tracker), and
//! cannot after they are gone. The LAN uses a unique-local prefix (the
//! lab's addresses exist only inside it; see `portmap::pinhole` for why a
//! ULA address is accepted).
//!
//! What miniupnpd 2.3.1 (nftables) does with PCP pinholes, and what the PCP
//! test therefore checks: the MAP opens them (rules for `fd77::2`, TCP and
//! UDP) and renewals keep them, but a removal (lifetime 0, the mapping's
//! nonce) is answered NOT_AUTHORIZED ("Unauthorized to remove PCP mapping"):
//! its nftables backend does not give back the rule's "PCP MAP <nonce>"
//! description when it looks the pinhole up, so the nonce never matches.
//! The pinholes end when their lease does ("removing expired pinhole"); the
//! test checks that we asked, and that they are gone within the 20 s lease.
//! Over UPnP, `DeletePinhole` removes them at once.
//!
//! Needs root (namespaces), `ip`, `nft`, `miniupnpd` and `upnpc` (as `port_map.rs`).
mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::natlab::{self, stop, NatLab, GW6};
use support::*;

const ME6: &str = "fd77::2";

fn lab_or_skip() -> Option<NatLab> {
    natlab::lab_or_skip("h21", "pinhole", "84.124.73.14", true, "IPv6 router lab")
}

impl NatLab {
    /// The IPv6 pinholes in miniupnpd's chain: (TCP, UDP) rules for `fd77::2`.
    fn pinholes(&self) -> (usize, usize, String) {
        let rules = self.chain("miniupnpd");
        let me = "0xfd770000000000000000000000000002";
        let count = |proto: &str| {
            rules
                .lines()
                .filter(|l| {
                    l.contains(me)
                        && l.contains("dport 6881")
                        && l.contains(proto)
                        && l.contains("accept")
                })
                .count()
        };
        (count("@nh,48,8 0x6 "), count("@nh,48,8 0x11 "), rules)
    }

    /// A TCP connection from the WAN host to `[fd77::2]:6881`: `answered`
    /// (our tracker's HTTP status line), `timeout` (dropped by the filter)
    /// or `refused` (forwarded, nothing listening).
    fn reach_from_wan(&self) -> String {
        let script = format!(
            "import socket\n\
             try:\n\
             \x20   s = socket.create_connection(('{ME6}', 6881), timeout=3)\n\
             \x20   s.sendall(b'GET /scrape HTTP/1.0\\r\\n\\r\\n')\n\
             \x20   print('answered', s.recv(100).split(b'\\r\\n')[0].decode())\n\
             except socket.timeout:\n\
             \x20   print('timeout')\n\
             except ConnectionRefusedError:\n\
             \x20   print('refused')\n"
        );
        self.python_on_wan(&script)
            .unwrap_or_else(|e| e)
            .trim()
            .to_string()
    }
}

/// Wait (at most `limit`) until the pinholes are as `want` (TCP, UDP).
fn wait_pinholes(lab: &NatLab, want: (usize, usize), limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let (t, u, rules) = lab.pinholes();
        if (t, u) == want || start.elapsed() > limit {
            return rules;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn upnp_opens_ipv6_pinholes_renews_and_deletes_them_on_miniupnpd() {
    let Some(mut lab) = lab_or_skip() else {
        return;
    };
    // UPnP only: PCP (and NAT-PMP) off, so the router's PCP port is closed.
    lab.start_miniupnpd(false, true);
    assert_eq!(
        lab.reach_from_wan(),
        "timeout",
        "inbound IPv6 must be dropped by default"
    );
    let mut p = Child::spawn(
        "peer",
        lab.peer_cmd(
            &["--open-tracker", "--no-lsd", "--no-dht", "--port", "6881"],
            20,
            false,
        ),
    );
    let line =
        format!("IPv6 pinhole: UPnP gateway {GW6}: TCP and UDP port 6881 open to {ME6} for 20 s");
    assert!(
        p.wait_for_output(&line, Duration::from_secs(30)),
        "no UPnP pinholes:\n{}\n--- miniupnpd:\n{}",
        p.output(),
        lab.gateway_output()
    );
    let (t, u, rules) = lab.pinholes();
    assert_eq!((t, u), (1, 1), "{rules}");
    let g = lab.gateway_output();
    assert!(
        g.contains("WANIPv6FirewallControl:1#GetFirewallStatus"),
        "{g}"
    );
    assert!(
        g.contains(&format!(
            "AddPinhole: (inbound) from []:0 to [{ME6}]:6881 with proto 6 during 20 sec"
        )),
        "{g}"
    );
    assert!(
        g.contains(&format!(
            "AddPinhole: (inbound) from []:0 to [{ME6}]:6881 with proto 17 during 20 sec"
        )),
        "{g}"
    );
    let reach = lab.reach_from_wan();
    assert!(reach.starts_with("answered HTTP/1."), "{reach}");
    // As a UPnP client on the LAN host sees it: miniupnpd knows the TCP
    // pinhole by the UniqueID of our line (an unknown ID gets another
    // error: 402 from miniupnpd 2.3.1). It cannot say it works: its nftables rules keep no
    // packet counters, so CheckPinholeWorking is 709 NoPacketSent even
    // after the connection above went through.
    let out = p.output();
    let ids = out
        .lines()
        .find_map(|l| l.split("(pinholes ").nth(1))
        .unwrap_or_else(|| panic!("no pinhole ids:\n{out}"));
    let tcp_id = ids.split(' ').next().unwrap_or("");
    let check = |id: &str| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &lab.lan, "upnpc", "-6", "-C", id]);
        let out = run_bounded("upnpc", c, Duration::from_secs(30));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let known = check(tcp_id);
    assert!(
        known.contains(&format!("Pinhole ID = {tcp_id} / IsWorking = 1"))
            || known.contains("failed with code 709 (NoPacketSent)"),
        "{known}"
    );
    let unknown = check("999");
    assert!(
        unknown.contains("failed with code") && !unknown.contains("709"),
        "{unknown}"
    );
    // Renewed with UpdatePinhole at half the lease; still open after the
    // first lease would have ended.
    let start = Instant::now();
    natlab::wait_renewal(&mut p, "IPv6 pinhole", "upnp");
    assert!(lab
        .gateway_output()
        .contains("UpdatePinhole: (inbound) updating lease duration to 20"));
    std::thread::sleep(Duration::from_secs(22).saturating_sub(start.elapsed()));
    let (t, u, rules) = lab.pinholes();
    assert_eq!(
        (t, u),
        (1, 1),
        "the pinholes expired:\n{rules}\n{}",
        p.output()
    );
    // DeletePinhole at exit: gone at once, and inbound dropped again.
    stop(&mut p);
    assert!(
        p.logged("IPv6 pinhole: pinholes for port 6881 removed"),
        "{}",
        p.output()
    );
    let (t, u, rules) = lab.pinholes();
    assert_eq!((t, u), (0, 0), "left behind:\n{rules}");
    assert_eq!(
        lab.gateway_output().matches("successfully removed").count(),
        2
    );
    assert_eq!(lab.reach_from_wan(), "timeout");
}

#[test]
fn pcp_opens_ipv6_pinholes_at_the_link_local_router_and_the_daemon_shows_them() {
    let Some(mut lab) = lab_or_skip() else {
        return;
    };
    lab.start_miniupnpd(true, false);
    assert_eq!(lab.reach_from_wan(), "timeout");
    let state = lab.dir.subdir("state");
    let state_s = state.to_string_lossy().into_owned();
    let mut d = Child::spawn(
        "peer daemon",
        lab.peer_cmd(
            &[
                "daemon", "--state", &state_s, "--port", "6881", "--no-lsd", "--no-dht",
            ],
            20,
            true,
        ),
    );
    let line = format!(
        "IPv6 pinhole: PCP router fe80::1: TCP 6881 and UDP 6881 open to [{ME6}]:6881 for 20 s"
    );
    assert!(
        d.wait_for_output(&line, Duration::from_secs(20)),
        "no PCP pinholes:\n{}\n--- miniupnpd:\n{}",
        d.output(),
        lab.gateway_output()
    );
    assert!(
        d.wait_for_output("control API on", Duration::from_secs(10)),
        "{}",
        d.output()
    );
    let rules = wait_pinholes(&lab, (1, 1), Duration::from_secs(2));
    assert_eq!((lab.pinholes().0, lab.pinholes().1), (1, 1), "{rules}");
    let g = lab.gateway_output();
    assert!(
        g.contains(&format!("PCP MAP: added mapping TCP 6881->{ME6}:6881")),
        "{g}"
    );
    assert!(
        g.contains(&format!("PCP MAP: added mapping UDP 6881->{ME6}:6881")),
        "{g}"
    );
    // The daemon's status: `port_mapping.ipv6`.
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.lan])
        .arg(peer_bin())
        .args(["status", "--json", "--state", &state_s]);
    let out = run_bounded("peer status", c, Duration::from_secs(30));
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    let st: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let v6 = &st["port_mapping"]["ipv6"];
    assert_eq!(v6["state"], "mapped", "{st}");
    assert_eq!(v6["method"], "pcp", "{st}");
    assert_eq!(v6["gateway"], "fe80::1", "{st}");
    assert_eq!(v6["address"], ME6, "{st}");
    assert_eq!(
        (v6["tcp_port"].as_u64(), v6["udp_port"].as_u64()),
        (Some(6881), Some(6881)),
        "{st}"
    );
    assert_eq!(v6["lease_secs"], 20, "{st}");
    assert_eq!(
        st["port_mapping"]["method"], "pcp",
        "the IPv4 mapping too: {st}"
    );
    let reach = lab.reach_from_wan();
    assert!(reach.starts_with("answered HTTP/1."), "{reach}");
    // Renewed (same nonces: miniupnpd updates the pinhole it has).
    let start = Instant::now();
    natlab::wait_renewal(&mut d, "IPv6 pinhole", "pcp");
    assert!(lab
        .gateway_output()
        .contains(&format!("updating pinhole to {ME6}:6881 TCP")));
    std::thread::sleep(Duration::from_secs(22).saturating_sub(start.elapsed()));
    let (t, u, rules) = lab.pinholes();
    assert_eq!(
        (t, u),
        (1, 1),
        "the pinholes expired:\n{rules}\n{}",
        d.output()
    );
    // At exit we ask for the removal (lifetime 0, the nonces); miniupnpd
    // 2.3.1 refuses it (see the module), so the pinholes end with their
    // lease: gone within 20 s, and inbound dropped again.
    stop(&mut d);
    assert!(
        d.logged("IPv6 pinhole: pinholes for port 6881 removed"),
        "{}",
        d.output()
    );
    let g = lab.gateway_output();
    assert!(
        g.contains(&format!("is_fw=1 addr={ME6} iport=6881 proto=6"))
            || g.contains("Unauthorized to remove PCP mapping"),
        "no PCP removal asked:\n{g}"
    );
    let rules = wait_pinholes(&lab, (0, 0), Duration::from_secs(25));
    let (t, u, _) = lab.pinholes();
    assert_eq!((t, u), (0, 0), "still there after the lease:\n{rules}");
    assert_eq!(lab.reach_from_wan(), "timeout");
}

#[test]
fn no_ipv6_router_answering_is_one_line_and_no_retry_loop() {
    let Some(lab) = lab_or_skip() else {
        return;
    };
    // No miniupnpd: the router's PCP port is closed and SSDP unanswered.
    let mut p = Child::spawn(
        "peer",
        lab.peer_cmd(
            &["--open-tracker", "--no-lsd", "--no-dht", "--port", "6881"],
            7200,
            true,
        ),
    );
    assert!(
        p.wait_for_output(
            "IPv6 pinhole: no PCP or UPnP IPv6 router answered",
            Duration::from_secs(20)
        ),
        "{}",
        p.output()
    );
    std::thread::sleep(Duration::from_secs(6));
    let out = p.output();
    let warned: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("IPv6 pinhole:"))
        .collect();
    assert_eq!(warned.len(), 1, "{out}");
    assert!(
        warned[0].contains("(default router fe80::1); asking again in 5 min"),
        "{}",
        warned[0]
    );
    assert!(p.try_status().is_none(), "peer died:\n{out}");
    stop(&mut p);
    assert!(
        !p.output().contains("pinholes for port 6881 removed"),
        "nothing was held:\n{}",
        p.output()
    );
}
