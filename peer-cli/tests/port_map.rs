//! Port mapping (UPnP IGD, PCP, NAT-PMP) against Debian's miniupnpd, run by the
//! test as the gateway of a NAT lab of three network namespaces:
//!
//! ```text
//!   p21d..l (LAN host, 192.168.77.2, runs `peer`)
//!      | veth
//!   p21d..g (gateway: 192.168.77.1 inside, EXT outside; nftables
//!      |     masquerade; miniupnpd or a fake gateway)
//!      | veth
//!   p21d..w (the "internet": EXT's neighbour, .1 of its /24)
//! ```
//!
//! The namespaces have no route out of the machine, so the public-looking
//! external address 84.124.73.14 (one of BEP 42's example addresses: not in
//! any range miniupnpd counts as private or reserved) exists only inside the
//! lab. That covers the success path: discovery, the mapping in the
//! gateway's nftables rules and in `upnpc -l`, a connection from the "internet"
//! through the mapping, renewal before the lease ends (UPnP, PCP and
//! NAT-PMP: miniupnpd's `enable_natpmp=yes` answers both; the NAT-PMP test
//! turns PCP off with `PEER_PORT_MAP_PCP=off`; with 20 s leases asked through `PEER_PORT_MAP_LEASE`) and removal on
//! exit; the DHT's BEP 42 node id from the gateway's external address. A private external address (10.99.0.2) covers the
//! refusal path. A fake gateway (`tests/interop/fake_igd.py`) covers hostile
//! SSDP answers: oversized, a control URL off the LAN, a redirect to a huge
//! description.
//!
//! Not covered (the machine does not allow it): a real home router, double
//! NAT behind a real carrier (the refusal is tested with miniupnpd's own
//! check of its external address), leases of hours (we ask for 20 s),
//! PCP's PEER opcode and options (not implemented), a PCP server of
//! another version (the fallback on UNSUPP_VERSION is unit-tested).
//!
//! Needs root (namespaces), `ip`, `nft`, `miniupnpd` and `upnpc` (Debian's
//! `miniupnpd-nftables`, `miniupnpc`, `nftables`; `.ci/run` installs them).
mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::natlab::{self, stop, NatLab, LAN_GW, LAN_HOST};
use support::*;

const EXT_PUBLIC: &str = "84.124.73.14";

impl NatLab {
    /// Start the fake gateway in `mode` (see `fake_igd.py`).
    fn start_fake(&mut self, mode: &str) {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.gw, SYSTEM_PYTHON])
            .arg(interop_script("fake_igd.py"))
            .args([mode, LAN_GW, "5000"]);
        let mut d = Child::spawn("fake gateway", c);
        assert!(
            d.wait_for_output("ready", Duration::from_secs(10)),
            "{}",
            d.output()
        );
        self.gateway = Some(d);
    }

    /// The gateway's DNAT rules (miniupnpd's chain).
    fn dnat_rules(&self) -> String {
        self.chain("prerouting_miniupnpd")
    }

    /// `upnpc -l` from the LAN host: the gateway's mapping table.
    fn upnpc_list(&self) -> String {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.lan, "upnpc", "-l"]);
        let out = run_bounded("upnpc", c, Duration::from_secs(30));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `peer ARGS` on the LAN host with port mapping on, logging at info.
    fn peer(&self, args: &[&str]) -> Child {
        self.peer_with_lease(args, 7200)
    }

    /// [`NatLab::peer`] asking the gateway for `lease` seconds.
    fn peer_with_lease(&self, args: &[&str], lease: u32) -> Child {
        self.peer_with(args, lease, true)
    }

    /// [`NatLab::peer_with_lease`], with PCP on or off (NAT-PMP only).
    fn peer_with(&self, args: &[&str], lease: u32, pcp: bool) -> Child {
        let fixed = ["--open-tracker", "--no-lsd", "--port", "6881"];
        Child::spawn(
            "peer",
            self.peer_cmd(&[&fixed[..], args].concat(), lease, pcp),
        )
    }
}

/// The lab with `ext` (an address with its /24) on the gateway's WAN
/// side, or `None` after a loud SKIP (a failure under CI).
fn lab_or_skip(ext: &str) -> Option<NatLab> {
    natlab::lab_or_skip("p21d", "portmap", ext, false, "NAT lab")
}

/// Stop `p`: it removed its mappings, and no DNAT rule is left behind.
fn stop_and_unmapped(p: &mut Child, lab: &NatLab) {
    stop(p);
    assert!(p.logged("mappings of port 6881 removed"), "{}", p.output());
    assert!(
        !lab.dnat_rules().contains("dnat"),
        "left behind:\n{}",
        lab.dnat_rules()
    );
}

/// A TCP connection from the "internet" to EXT:6881 reaches `peer`'s
/// embedded tracker through the mapping (an HTTP answer comes back).
fn reachable_from_outside(lab: &NatLab) -> Result<String, String> {
    let script = format!(
        "import socket\n\
         s = socket.create_connection(('{EXT_PUBLIC}', 6881), timeout=5)\n\
         s.sendall(b'GET /scrape HTTP/1.0\\r\\n\\r\\n')\n\
         print(s.recv(100).split(b'\\r\\n')[0].decode())\n"
    );
    lab.python_on_wan(&script)
}

#[test]
fn upnp_maps_tcp_and_udp_on_miniupnpd_and_removes_them_on_exit() {
    let Some(mut lab) = lab_or_skip(EXT_PUBLIC) else {
        return;
    };
    lab.start_miniupnpd(false, true);
    let mut p = lab.peer_with_lease(&["--dht-bootstrap", "none"], 20);
    assert!(
        p.wait_for_output("port mapping: UPnP gateway", Duration::from_secs(30)),
        "no UPnP mapping:\n{}\n--- miniupnpd:\n{}",
        p.output(),
        lab.gateway_output()
    );
    let out = p.output();
    assert!(
        out.contains(&format!("UPnP gateway {LAN_GW}: external address {EXT_PUBLIC}, TCP and UDP port 6881 mapped to {LAN_HOST}")),
        "{out}"
    );
    // In the gateway's rules: TCP (protocol 6) and UDP (17) to us.
    let rules = lab.dnat_rules();
    let to_us = format!("dport 6881 dnat ip to {LAN_HOST}:6881");
    assert_eq!(rules.matches(&to_us).count(), 2, "{rules}");
    assert!(rules.contains("0x06") || rules.contains("0x6 "), "{rules}");
    assert!(rules.contains("0x11"), "{rules}");
    // As a UPnP client sees them.
    let listing = lab.upnpc_list();
    assert!(
        listing.contains(&format!("TCP  6881->{LAN_HOST}:6881")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("UDP  6881->{LAN_HOST}:6881")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("ExternalIPAddress = {EXT_PUBLIC}")),
        "{listing}"
    );
    // And it works: the "internet" reaches our embedded tracker.
    let answer = reachable_from_outside(&lab);
    assert!(
        answer.as_deref().is_ok_and(|a| a.starts_with("HTTP/1.")),
        "{answer:?}"
    );
    // BEP 42: the DHT took an id derived from the external address.
    assert!(
        p.wait_for_output("new node id NodeId(", Duration::from_secs(5)),
        "{}",
        p.output()
    );
    let out = p.output();
    let line = out
        .lines()
        .find(|l| l.contains("new node id NodeId("))
        .unwrap_or_else(|| panic!("no BEP 42 id:\n{out}"));
    let hex = line
        .split("NodeId(")
        .nth(1)
        .unwrap_or("")
        .get(..40)
        .unwrap_or("");
    let mut id = [0u8; 20];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
            .unwrap_or_else(|_| panic!("bad id in {line}"));
    }
    let ext: std::net::IpAddr = EXT_PUBLIC.parse().unwrap();
    assert!(
        bittorrent_core::proto::bep42::is_valid(&bittorrent_core::proto::krpc::NodeId(id), ext),
        "{line}"
    );
    // Renewed at half the lease, before it ends: still mapped after the
    // first lease would have run out.
    let mapped_at = Instant::now();
    natlab::wait_renewal(&mut p, "port mapping", "upnp");
    std::thread::sleep(Duration::from_secs(22).saturating_sub(mapped_at.elapsed()));
    assert_eq!(
        lab.dnat_rules().matches(&to_us).count(),
        2,
        "the mapping expired:\n{}\n{}",
        lab.dnat_rules(),
        p.output()
    );
    // Removal on exit.
    stop(&mut p);
    let out = p.output();
    assert!(out.contains("mappings of port 6881 removed"), "{out}");
    let rules = lab.dnat_rules();
    assert!(!rules.contains("dnat"), "left behind:\n{rules}");
    let listing = lab.upnpc_list();
    assert!(!listing.contains("6881->"), "left behind:\n{listing}");
}

#[test]
fn natpmp_maps_renews_before_the_lease_ends_and_removes_on_exit() {
    // PCP off: the NAT-PMP path, against a gateway that speaks both.
    small_protocol_maps_renews_and_removes(false);
}

#[test]
fn pcp_maps_renews_with_its_nonces_and_removes_on_exit() {
    small_protocol_maps_renews_and_removes(true);
}

/// miniupnpd with NAT-PMP/PCP on and UPnP off; `peer` asks for 20 s
/// leases over PCP (`pcp`) or NAT-PMP (PCP turned off).
fn small_protocol_maps_renews_and_removes(pcp: bool) {
    let Some(mut lab) = lab_or_skip(EXT_PUBLIC) else {
        return;
    };
    let (name, method) = if pcp {
        ("PCP", "pcp")
    } else {
        ("NAT-PMP", "nat-pmp")
    };
    lab.start_miniupnpd(true, false);
    let mut p = lab.peer_with(&["--no-dht"], 20, pcp);
    assert!(
        p.wait_for_output(
            &format!("port mapping: {name} gateway"),
            Duration::from_secs(20)
        ),
        "no {name} mapping:\n{}\n--- miniupnpd:\n{}",
        p.output(),
        lab.gateway_output()
    );
    let out = p.output();
    assert!(
        out.contains(&format!(
            "{name} gateway {LAN_GW}: external address {EXT_PUBLIC}, TCP 6881 and UDP 6881 mapped to port 6881 for 20 s"
        )),
        "{out}"
    );
    // The gateway saw the protocol we meant (miniupnpd logs each PCP MAP).
    assert_eq!(
        lab.gateway_output().contains("PCP MAP"),
        pcp,
        "{}",
        lab.gateway_output()
    );
    let to_us = format!("dport 6881 dnat ip to {LAN_HOST}:6881");
    assert_eq!(
        lab.dnat_rules().matches(&to_us).count(),
        2,
        "{}",
        lab.dnat_rules()
    );
    // Renewed at half the lease (10 s), before it ends; still mapped after
    // the first lease would have run out (PCP: with the same nonces, or
    // miniupnpd would refuse to touch the mapping).
    renewed_and_still_mapped(&mut p, &lab, method, &to_us);
    let answer = reachable_from_outside(&lab);
    assert!(
        answer.as_deref().is_ok_and(|a| a.starts_with("HTTP/1.")),
        "{answer:?}"
    );
    stop_and_unmapped(&mut p, &lab);
    if pcp {
        // Removed by PCP requests with the mappings' nonces (miniupnpd
        // refuses a removal with another nonce).
        let g = lab.gateway_output();
        assert!(g.contains("PCP: TCP port 6881 mapping removed"), "{g}");
        assert!(g.contains("PCP: UDP port 6881 mapping removed"), "{g}");
    }
}

/// The renewal at half a 20 s lease, and the mapping still there after
/// the first lease would have ended.
fn renewed_and_still_mapped(p: &mut Child, lab: &NatLab, method: &str, to_us: &str) {
    let start = Instant::now();
    natlab::wait_renewal(p, "port mapping", method);
    assert!(start.elapsed() < Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        lab.dnat_rules().matches(to_us).count(),
        2,
        "the mapping expired:\n{}\n{}",
        lab.dnat_rules(),
        p.output()
    );
}

#[test]
fn a_private_external_address_is_refused_with_one_line_and_no_retry_loop() {
    private_external_address_refused(true);
}

#[test]
fn a_private_external_address_is_refused_over_natpmp_too() {
    private_external_address_refused(false);
}

/// miniupnpd with a private external address; `peer` with PCP on or off.
fn private_external_address_refused(pcp: bool) {
    let Some(mut lab) = lab_or_skip("10.99.0.2") else {
        return;
    };
    // Both protocols on: miniupnpd refuses each (its external address is
    // private: port forwarding is impossible behind it).
    lab.start_miniupnpd(true, true);
    let mut p = lab.peer_with(&["--no-dht"], 7200, pcp);
    assert!(
        p.wait_for_output("refused", Duration::from_secs(30)),
        "{}\n--- miniupnpd:\n{}",
        p.output(),
        lab.gateway_output()
    );
    // Nothing for the next 8 s: no second attempt (the back-off is minutes).
    std::thread::sleep(Duration::from_secs(8));
    let out = p.output();
    let cli_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("port mapping:") && l.contains("refused"))
        .collect();
    assert_eq!(cli_lines.len(), 1, "{out}");
    let line = cli_lines[0];
    assert!(
        line.contains(&format!("gateway {LAN_GW} refused")),
        "{line}"
    );
    // PCP answers first: miniupnpd says NO_RESOURCES to a MAP when its
    // external address is private; its NAT-PMP says "network failure".
    if pcp {
        assert!(line.contains("PCP says no resources (result 8)"), "{line}");
    } else {
        assert!(line.contains("NAT-PMP says network failure"), "{line}");
    }
    assert!(line.contains("trying again in 5 min"), "{line}");
    let logged = out
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("port mapping:"))
        .count();
    assert_eq!(logged, 1, "{out}");
    // The gateway was asked once.
    let asked = lab.gateway_output().matches("GetExternalIPAddress").count();
    assert!((1..=2).contains(&asked), "{}", lab.gateway_output());
    assert!(!lab.dnat_rules().contains("dnat"), "{}", lab.dnat_rules());
    assert!(p.try_status().is_none(), "peer died:\n{out}");
    stop(&mut p);
}

/// `peer` against the fake gateway in `mode`: the refusal it logs.
fn hostile(mode: &str, expect: &[&str]) {
    let Some(mut lab) = lab_or_skip(EXT_PUBLIC) else {
        return;
    };
    lab.start_fake(mode);
    let mut p = lab.peer(&["--no-dht"]);
    let ok = p.wait_for_output("trying again in 5 min", Duration::from_secs(30));
    let out = p.output();
    assert!(ok, "{out}\n--- fake gateway:\n{}", lab.gateway_output());
    for e in expect {
        assert!(
            out.contains(e),
            "no {e:?} in:\n{out}\n--- fake gateway:\n{}",
            lab.gateway_output()
        );
    }
    assert!(p.try_status().is_none(), "peer died:\n{out}");
    // Still a working peer: its tracker answers on the LAN.
    stop(&mut p);
}

#[test]
fn hostile_gateway_oversized_ssdp_answer_is_refused() {
    hostile(
        "oversized",
        &[
            &format!("SSDP answer from {LAN_GW} over 1536 bytes: refused"),
            "no PCP, NAT-PMP or UPnP gateway answered",
        ],
    );
}

#[test]
fn hostile_gateway_control_url_off_the_lan_is_refused() {
    hostile(
        "offlan",
        &[
            &format!("control URL http://203.0.113.9:80/ctl/IPConn is not on the gateway {LAN_GW}: refused"),
            "port mapping: UPnP gateway",
        ],
    );
}

#[test]
fn hostile_gateway_redirect_to_a_huge_description_is_refused() {
    hostile(
        "redirect",
        &["device description: larger than 65536 bytes: refused"],
    );
}

/// `peer ARGS` run in the LAN namespace to completion (the control commands
/// reach the daemon's control API on the namespace's loopback).
fn peer_in_lan(lab: &NatLab, args: &[&str]) -> String {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.lan])
        .arg(peer_bin())
        .args(args);
    let out = run_bounded("peer (control)", c, Duration::from_secs(30));
    assert!(out.status.success(), "peer {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_daemon_shows_the_mapping_and_the_external_address_in_status() {
    let Some(mut lab) = lab_or_skip(EXT_PUBLIC) else {
        return;
    };
    lab.start_miniupnpd(true, false);
    let state = lab.dir.subdir("state");
    let state_s = state.to_string_lossy().into_owned();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.lan])
        .arg(peer_bin())
        .args(["daemon", "--state", &state_s, "--port", "6881"])
        .args(["--no-lsd", "--no-dht"])
        .env(PORT_MAP_ENV, "on")
        .env("PEER_PORT_MAP_PCP", "on")
        .env("RUST_LOG", "bittorrent_core=info");
    let mut d = Child::spawn("peer daemon", c);
    assert!(
        d.wait_for_output("port mapping: PCP gateway", Duration::from_secs(20)),
        "no mapping:\n{}\n--- miniupnpd:\n{}",
        d.output(),
        lab.gateway_output()
    );
    assert!(
        d.wait_for_output("control API on", Duration::from_secs(10)),
        "{}",
        d.output()
    );
    let json = peer_in_lan(&lab, &["status", "--json", "--state", &state_s]);
    let st: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let pm = &st["port_mapping"];
    assert_eq!(pm["state"], "mapped", "{st}");
    assert_eq!(pm["method"], "pcp", "{st}");
    assert_eq!(pm["gateway"], LAN_GW, "{st}");
    assert_eq!(pm["external_ip"], EXT_PUBLIC, "{st}");
    assert_eq!(pm["tcp_port"], 6881, "{st}");
    assert_eq!(pm["udp_port"], 6881, "{st}");
    assert_eq!(pm["lease_secs"], 7200, "{st}");
    let ext = st["external_addresses"]
        .as_array()
        .expect("external_addresses");
    assert!(
        ext.iter()
            .any(|e| e["ip"] == EXT_PUBLIC && e["source"] == "gateway"),
        "{st}"
    );
    let human = peer_in_lan(&lab, &["status", "--state", &state_s]);
    assert!(
        human.contains(&format!(
            "port mapping: PCP gateway {LAN_GW}: external address {EXT_PUBLIC}"
        )),
        "{human}"
    );
    assert!(
        human.contains(&format!("external address: {EXT_PUBLIC}")),
        "{human}"
    );
    stop_and_unmapped(&mut d, &lab);
}

#[test]
fn no_port_map_sends_nothing_to_the_gateway_and_status_says_off() {
    let Some(mut lab) = lab_or_skip(EXT_PUBLIC) else {
        return;
    };
    lab.start_miniupnpd(true, true);
    let before = lab.gateway_output();
    // The `peer` command with --no-port-map (PEER_PORT_MAP=on: the flag
    // alone turns it off).
    let mut p = lab.peer(&["--no-dht", "--no-port-map"]);
    // The daemon with --no-port-map: its status says why it is off.
    let state = lab.dir.subdir("state");
    let state_s = state.to_string_lossy().into_owned();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.lan])
        .arg(peer_bin())
        .args(["daemon", "--state", &state_s, "--port", "6882"])
        .args(["--no-lsd", "--no-dht", "--no-port-map"])
        .env(PORT_MAP_ENV, "on")
        .env("RUST_LOG", "bittorrent_core=info");
    let mut d = Child::spawn("peer daemon", c);
    assert!(
        d.wait_for_output("control API on", Duration::from_secs(10)),
        "{}",
        d.output()
    );
    let json = peer_in_lan(&lab, &["status", "--json", "--state", &state_s]);
    let st: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(st["port_mapping"]["state"], "off", "{st}");
    assert_eq!(
        st["port_mapping"]["message"], "off (--no-port-map, or `port map` `off` in session.benc)",
        "{st}"
    );
    // Long enough for a NAT-PMP exchange and an SSDP search (under 4 s
    // when mapping is on, see the tests above).
    std::thread::sleep(Duration::from_secs(5));
    for out in [p.output(), d.output()] {
        assert!(!out.contains("port mapping"), "{out}");
    }
    assert!(!lab.dnat_rules().contains("dnat"), "{}", lab.dnat_rules());
    assert_eq!(
        lab.gateway_output(),
        before,
        "the gateway heard from us:\n{}",
        lab.gateway_output()
    );
    stop(&mut p);
    stop(&mut d);
}
