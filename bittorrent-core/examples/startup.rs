//! Start-up of a session holding many small seeded torrents.
//!
//! `cargo run --release -p bittorrent-core --example startup -- [N] [IDLE_SECS]`
//! (default 1000 torrents, 10 s). Makes N one-file torrents (16 KiB each) in
//! a temporary directory, adds them to a session with a state directory
//! (first start: every torrent's data is checked), stops it, then starts a
//! new session on the same state directory (`Session::restore`, resume data
//! trusted) and reports, for both starts, the time until every torrent is
//! seeding, the process's peak RSS and its thread count. Then it leaves the
//! restarted session idle for IDLE_SECS and reports the CPU the process used
//! meanwhile, as a percentage of one core (from `/proc/self/stat`).
//!
//! Exits with status 1 if the restart takes 2 s or more, or idle CPU is 1 %
//! of a core or more, for N <= 10,000 (the targets of docs/BENCHMARKS.md).

use bittorrent_core::proto::bencode::OwnedValue;
use bittorrent_core::{AddTorrent, Config, Metainfo, Phase, Session};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

/// utime + stime of this process, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn wait_all_seeding(s: &Session, n: usize) -> Duration {
    let t = Instant::now();
    loop {
        let seeding = s
            .torrents()
            .iter()
            .filter(|t| t.phase == Phase::Seeding)
            .count();
        if seeding == n || t.elapsed() > Duration::from_secs(600) {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let idle_secs: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let root = std::env::temp_dir().join(format!("peer-startup-{}", std::process::id()));
    let data_dir = root.join("data");
    let state = root.join("state");
    std::fs::create_dir_all(&data_dir)?;
    let mut metas = Vec::new();
    for i in 0..n {
        let name = format!("file{i:05}.bin");
        let data: Vec<u8> = (0..16 * 1024).map(|k| (k * 31 + i * 7) as u8).collect();
        std::fs::write(data_dir.join(&name), &data)?;
        let info = OwnedValue::Dict(vec![
            (b"length".to_vec(), OwnedValue::Int(data.len() as i64)),
            (b"name".to_vec(), OwnedValue::bytes(&name)),
            (b"piece length".to_vec(), OwnedValue::Int(16 * 1024)),
            (
                b"pieces".to_vec(),
                OwnedValue::Bytes(sha1_smol::Sha1::from(&data).digest().bytes().to_vec()),
            ),
        ]);
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(&info.to_bytes());
        t.push(b'e');
        metas.push(Metainfo::from_bytes(&t)?);
    }
    let config = || Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        state_dir: Some(state.clone()),
        ..Config::default()
    };
    let s = Session::start(config())?;
    let t0 = Instant::now();
    for m in metas {
        s.add(AddTorrent::new(m, &data_dir))?;
    }
    let first = t0.elapsed() + wait_all_seeding(&s, n);
    let threads = status("Threads:");
    s.shutdown();
    println!("first start ({n} torrents, data checked): all seeding after {first:.2?}; threads {threads}");

    let t1 = Instant::now();
    let s = Session::start(config())?;
    let restored = s.restore()?;
    let second = t1.elapsed() + wait_all_seeding(&s, n);
    let resumed = s.torrents().iter().filter(|t| t.resumed).count();
    println!(
        "restart ({} torrents restored, {resumed} from resume data): all seeding after {second:.2?}; threads {}; peak RSS {}",
        restored.len(),
        status("Threads:"),
        status("VmHWM:")
    );
    // Idle: every torrent seeding, nobody connected.
    std::thread::sleep(Duration::from_secs(1));
    let (c0, t0) = (cpu_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (c1, dt) = (cpu_ticks(), t0.elapsed());
    let idle_pct = (c1 - c0) as f64 / 100.0 / dt.as_secs_f64() * 100.0;
    println!(
        "idle for {:.1} s with {n} seeding torrents: CPU {:.2} s = {idle_pct:.2} % of one core",
        dt.as_secs_f64(),
        (c1 - c0) as f64 / 100.0
    );
    s.shutdown();
    let _ = std::fs::remove_dir_all(&root);
    if n <= 10_000 && (second >= Duration::from_secs(2) || idle_pct >= 1.0) {
        eprintln!("FAIL: restart must take under 2 s and idle CPU stay under 1 % of a core");
        std::process::exit(1);
    }
    Ok(())
}
