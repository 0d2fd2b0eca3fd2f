//! Start-up of a session holding many small seeded torrents.
//!
//! `cargo run --release -p bittorrent-core --example startup -- [N]`
//! (default 1000). Makes N one-file torrents (16 KiB each) in a temporary
//! directory, adds them to a session with a state directory (first start:
//! every torrent's data is checked), stops it, then starts a new session on
//! the same state directory (`Session::restore`, resume data trusted) and
//! reports, for both starts, the time until every torrent is seeding, the
//! process's peak RSS and its thread count.

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
    s.shutdown();
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
