//! Shared helpers for the interop tests (`interop_*.rs`).
//!
//! Rules every interop test follows:
//! - an external tool that is missing makes the test print a loud `SKIP:` line and
//!   return when run by hand, but FAIL when `CI=true` (see [`require_tool`]);
//! - every child process is wrapped in [`Child`], which kills it on drop;
//! - every wait is bounded ([`wait_until`], [`Child::wait_for_output`], [`Child::wait_exit`]);
//! - scratch files live in a [`TempDir`] that is removed on drop
//!   (set `KEEP_TMP=1` to keep it for debugging).
//!
//! By harness: `peer` (our own binary, its daemon and control API), `clients`
//! (the mainstream clients), `rpc` (the Transmission RPC tests), `netns` (a LAN
//! of network namespaces), `natlab` (the NAT lab of namespaces and miniupnpd
//! of the port mapping tests), `tools` (external tools, SKIP or fail, the
//! Python scripts, fixtures), `child` (child processes), `files` (scratch
//! directories and test data) and `json` (a small parser).
#![allow(dead_code)] // each test crate uses a different subset

mod child;
pub mod clients;
mod files;
mod json;
pub mod natlab;
pub mod netns;
mod peer;
pub mod rpc;
mod tools;

pub use child::*;
#[allow(unused_imports)] // each test crate uses a different subset
pub use clients::transmission_cmd;
pub use files::*;
#[allow(unused_imports)] // each test crate uses a different subset
pub use json::*;
pub use peer::*;
pub use tools::*;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// The variable that replaces the `peer` command's default DHT routers.
pub const DHT_ENV: &str = "PEER_DHT_BOOTSTRAP";

/// The variable that turns port mapping (UPnP, NAT-PMP) off: no test sends
/// SSDP or NAT-PMP to the real network.
pub const PORT_MAP_ENV: &str = "PEER_PORT_MAP";

/// Upper bound for any single wait on a download or a seeder becoming ready.
pub const LONG_WAIT: Duration = Duration::from_secs(120);

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Poll `cond` every 100 ms until it is true (returns true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
