//! Many peer connections in one session, exchanging data on loopback.
//!
//! `cargo run --release -p bittorrent-core --example connections -- [TORRENTS] [LEECHERS] [KIB]`
//! (default 100 torrents, 10 leecher processes, 1024 KiB per torrent).
//!
//! The process runs one seeding session holding TORRENTS small torrents
//! (16 KiB pieces), then starts LEECHERS child processes (this same binary),
//! each one session downloading every torrent from the seeder (and from the
//! other leechers, which they learn of through peer exchange). The seeder
//! session thus holds TORRENTS x LEECHERS connections (1,000 by default),
//! each with its own peer thread. Reported: the most connections the
//! seeder held at once, its RSS before the leechers came and its peak RSS,
//! hence the peak RSS per connection, its CPU during the exchange, and each
//! leecher's peak RSS and CPU.

use bittorrent_core::proto::bencode::OwnedValue;
use bittorrent_core::{AddTorrent, Config, Metainfo, Phase, Session};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l[field.len()..].trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn config() -> Config {
    Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        max_connections: 5000,
        max_peers_per_torrent: 200,
        ..Config::default()
    }
}

fn make_torrents(
    dir: &Path,
    n: usize,
    kib: usize,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let data_dir = dir.join("seed");
    std::fs::create_dir_all(&data_dir)?;
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("f{i:04}.bin");
        let data: Vec<u8> = (0..kib * 1024)
            .map(|k| ((k * 31 + i * 7) ^ (k >> 9)) as u8)
            .collect();
        std::fs::write(data_dir.join(&name), &data)?;
        let pieces: Vec<u8> = data
            .chunks(16 * 1024)
            .flat_map(|c| sha1_smol::Sha1::from(c).digest().bytes())
            .collect();
        let info = OwnedValue::Dict(vec![
            (b"length".to_vec(), OwnedValue::Int(data.len() as i64)),
            (b"name".to_vec(), OwnedValue::bytes(&name)),
            (b"piece length".to_vec(), OwnedValue::Int(16 * 1024)),
            (b"pieces".to_vec(), OwnedValue::Bytes(pieces)),
        ]);
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(&info.to_bytes());
        t.push(b'e');
        let path = dir.join(format!("{name}.torrent"));
        std::fs::write(&path, &t)?;
        out.push(path);
    }
    Ok(out)
}

fn load(paths: &[PathBuf]) -> Result<Vec<Metainfo>, Box<dyn std::error::Error>> {
    paths
        .iter()
        .map(|p| Ok(Metainfo::from_bytes(&std::fs::read(p)?)?))
        .collect()
}

/// A child: download every torrent from the seeder, print stats, exit.
fn leech(dir: &Path, seeder: SocketAddr, idx: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
        .collect();
    paths.sort();
    let metas = load(&paths)?;
    let save = dir.join(format!("leech{idx}"));
    let s = Session::start(config())?;
    for m in &metas {
        s.add(AddTorrent::new(m.clone(), &save).peers(vec![seeder]))?;
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(600) {
        if s.torrents().iter().all(|t| t.phase == Phase::Seeding) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = s
        .torrents()
        .iter()
        .filter(|t| t.phase == Phase::Seeding)
        .count();
    // Stay a little so the others can still fetch from us.
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "leecher {idx}: {done}/{} complete in {:.1?}; peak RSS {} KiB; CPU {:.2} s",
        metas.len(),
        t.elapsed(),
        status_kib("VmHWM:"),
        cpu_ticks() as f64 / 100.0
    );
    s.shutdown();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--leech") {
        let dir = PathBuf::from(&args[2]);
        let seeder: SocketAddr = args[3].parse()?;
        let idx: usize = args[4].parse()?;
        return leech(&dir, seeder, idx);
    }
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (torrents, leechers, kib) = (num(1, 100), num(2, 10), num(3, 1024));
    let dir = std::env::temp_dir().join(format!("peer-conns-{}", std::process::id()));
    let paths = make_torrents(&dir, torrents, kib)?;
    let metas = load(&paths)?;
    let s = Session::start(config())?;
    for m in &metas {
        s.add(AddTorrent::new(m.clone(), dir.join("seed")))?;
    }
    while !s.torrents().iter().all(|t| t.phase == Phase::Seeding) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let base_rss = status_kib("VmRSS:");
    let c0 = cpu_ticks();
    let t0 = Instant::now();
    let exe = std::env::current_exe()?;
    let mut kids = Vec::new();
    for i in 0..leechers {
        kids.push(
            std::process::Command::new(&exe)
                .arg("--leech")
                .arg(&dir)
                .arg(s.local_addr().to_string())
                .arg(i.to_string())
                .spawn()?,
        );
    }
    let mut max_conns = 0;
    let mut max_threads = 0;
    loop {
        let conns: usize = s.torrents().iter().map(|t| t.peers).sum();
        max_conns = max_conns.max(conns);
        max_threads = max_threads.max(status_kib("Threads:"));
        if kids
            .iter_mut()
            .all(|k| k.try_wait().ok().flatten().is_some())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (c1, dt) = (cpu_ticks(), t0.elapsed());
    let uploaded: u64 = s.torrents().iter().map(|t| t.uploaded).sum();
    let peak = status_kib("VmHWM:");
    println!(
        "seeder: {torrents} torrents of {kib} KiB, {leechers} leecher sessions: at most {max_conns} connections ({max_threads} threads); uploaded {:.0} MiB in {:.1} s",
        uploaded as f64 / 1048576.0,
        dt.as_secs_f64()
    );
    println!(
        "seeder RSS: {base_rss} KiB before, {peak} KiB peak: {:.1} KiB per connection; CPU {:.2} s ({:.0} % of one core), {:.2} s per GiB uploaded",
        peak.saturating_sub(base_rss) as f64 / max_conns.max(1) as f64,
        (c1 - c0) as f64 / 100.0,
        (c1 - c0) as f64 / dt.as_secs_f64(),
        (c1 - c0) as f64 / 100.0 / (uploaded.max(1) as f64 / 1073741824.0)
    );
    s.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
