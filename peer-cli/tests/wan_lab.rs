//! The WAN lab (issue 21): a transfer across a long link completes
//! byte-identical, ours to ours, over IPv4 and over IPv6 (every lab host is
//! dual stack).
//!
//! `scripts/wan-lab/lab.sh` builds two hosts in network namespaces joined
//! through a router namespace whose packet-level delay line
//! (`scripts/wan-lab/delay.c`, compiled by the script) holds every frame for
//! half the round trip, each host's egress paced by `tbf`. Here: RTT 200 ms,
//! 100 Mbit/s, 16 MiB. The seeder runs on host a (dual-stack listener), a
//! leecher on host b dials it at `10.210.0.1`, then a second one at
//! `[fd21:b::1]`. Correctness only (no timing is asserted; the speed is
//! measured by `scripts/bench-wan.py`, docs/BENCHMARKS.md), plus one check
//! per family that the lab really has its latency: a TCP connect across it
//! takes at least the RTT.
//!
//! Needs root, `ip`, `tc` and a C compiler: without them it prints a loud
//! SKIP by hand and fails under CI=true. The namespaces are named
//! `p21b-t<pid>-{a,b,r}` (`WAN_LAB_PREFIX` overrides `p21b-t<pid>`) and
//! removed on drop, even when the test fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const RTT_MS: u32 = 200;
const RATE_MBIT: u32 = 100;
const LEN: usize = 16 << 20;

/// The lab; `lab.sh down` on drop.
struct Lab {
    script: PathBuf,
    prefix: String,
    dir: PathBuf,
}

impl Lab {
    fn cmd(&self) -> Command {
        let mut c = Command::new("bash");
        c.arg(&self.script)
            .env("WAN_LAB_PREFIX", &self.prefix)
            .env("WAN_LAB_DIR", &self.dir);
        c
    }

    /// `program` run on host `h` ("a" or "b").
    fn on(&self, h: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}-{h}", self.prefix)])
            .arg(program);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut c = self.cmd();
        c.arg("down");
        let _ = run_bounded("lab.sh down", c, Duration::from_secs(30));
    }
}

fn lab_or_skip(tmp: &TempDir) -> Option<Lab> {
    for tool in ["ip", "tc", "cc"] {
        if find_on_path(tool).is_none() {
            skip_or_fail(tool, "the WAN lab needs iproute2 (ip, tc) and a C compiler");
            return None;
        }
    }
    let lab = Lab {
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/wan-lab/lab.sh"),
        prefix: std::env::var("WAN_LAB_PREFIX")
            .unwrap_or_else(|_| format!("p21b-t{}", std::process::id() % 100_000)),
        dir: tmp.subdir("lab"),
    };
    let mut up = lab.cmd();
    up.args(["up", &RTT_MS.to_string(), &RATE_MBIT.to_string()]);
    let out = run_bounded("lab.sh up", up, Duration::from_secs(60));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let msg = format!(
            "SKIP: cannot build the WAN lab (needs root): {}",
            text.trim()
        );
        if in_ci() {
            panic!("{msg} -- CI=true runs as root, so this is a failure");
        }
        loud(&msg);
        return None;
    }
    // "measured TCP connect 201.3 ms, over IPv6 200.8 ms": the delay line
    // is in the path of both families.
    for key in ["measured TCP connect ", "over IPv6 "] {
        let measured = text
            .split(key)
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("lab.sh did not report its RTT ({key}): {text}"));
        assert!(
            measured >= f64::from(RTT_MS) * 0.95,
            "the lab's RTT ({key}) is {measured} ms, not {RTT_MS}: {text}"
        );
    }
    Some(lab)
}

#[test]
fn wan_lab_transfer_at_200_ms_is_byte_identical_over_ipv4_and_ipv6() {
    let tmp = TempDir::new("wan-lab");
    let Some(lab) = lab_or_skip(&tmp) else {
        return;
    };
    let seed_dir = tmp.subdir("a");
    let src = make_single_file(&seed_dir, "wan.bin", LEN);
    let torrent = tmp.path().join("wan.torrent");
    peer_create_torrent(&src, &torrent, &["--piece-length", "256K"]);

    let mut seed = lab.on("a", &peer_bin());
    seed.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", "6881", "--no-dht", "--no-lsd"])
        .env("RUST_LOG", "info");
    let seeder = Child::spawn("seeder (host a)", seed);

    for (family, seeder_addr) in [("IPv4", "10.210.0.1:6881"), ("IPv6", "[fd21:b::1]:6881")] {
        let leech_dir = tmp.subdir(&format!("b-{family}"));
        let mut leech = lab.on("b", &peer_bin());
        leech
            .arg(&torrent)
            .arg("--dir")
            .arg(&leech_dir)
            .arg("--state")
            .arg(tmp.subdir(&format!("state-{family}")))
            .args(["--port", "6881", "--no-dht", "--no-lsd", "--once"])
            .args(["--peer", seeder_addr])
            .env("RUST_LOG", "info");
        let t0 = std::time::Instant::now();
        let mut leecher = Child::spawn("leecher (host b)", leech);
        let status = leecher.wait_exit(Duration::from_secs(90));
        assert!(
            status.is_some_and(|s| s.success()),
            "the leecher did not complete across the WAN lab over {family}\n{}\n{}",
            leecher.output(),
            seeder.output()
        );
        assert_same_data(&src, &leech_dir.join("wan.bin"));
        eprintln!(
            "wan lab: 16 MiB at RTT {RTT_MS} ms, {RATE_MBIT} Mbit/s over {family} in {:?}",
            t0.elapsed()
        );
    }
    drop(seeder);
    drop(lab);
}
