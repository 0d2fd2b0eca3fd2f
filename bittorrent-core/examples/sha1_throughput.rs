//! Single-core throughput of `sha1_smol`, the SHA-1 used for piece hashing.
//!
//! `cargo run --release -p bittorrent-core --example sha1_throughput [MIB]`
//! hashes MIB mebibytes (default 1024) in 1 MiB updates from an in-memory
//! buffer on one thread and prints MB/s (10^6 bytes per second).

use std::time::Instant;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let buf: Vec<u8> = (0..1usize << 20).map(|i| (i * 131 % 251) as u8).collect();
    let mut best = f64::MAX;
    let mut digest = String::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut sha = sha1_smol::Sha1::new();
        for _ in 0..mib {
            sha.update(&buf);
        }
        digest = sha.digest().to_string();
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mb_s = (mib << 20) as f64 / best / 1e6;
    println!(
        "sha1_smol single core: {mb_s:.0} MB/s ({mib} MiB in {best:.3} s, best of 3; {digest})"
    );
}
