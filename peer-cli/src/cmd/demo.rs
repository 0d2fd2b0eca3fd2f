//! `peer demo [--size MIB] [--leechers N] [--dir DIR]`
//!
//! A real swarm on loopback with no network and no setup: generates a
//! deterministic file, makes a torrent of it, starts one seeder and N
//! leechers (each its own session on its own port, each told about the
//! seeder and the other leechers), shows their progress, then checks every
//! downloaded copy byte for byte and reports who uploaded what.

use crate::args::CliError;
use crate::cli::DemoArgs;
use crate::progress::{human, Progress};
use bittorrent_core::create::{create_torrent, CreateOptions};
use bittorrent_core::proto::metainfo::Metainfo;
use bittorrent_core::{AddTorrent, Config, Phase, Session};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const DEMO_TIMEOUT: Duration = Duration::from_secs(300);

/// Run the demo.
pub fn run(a: DemoArgs) -> Result<(), CliError> {
    let (size_mib, leechers, dir) = (a.size, a.leechers as usize, a.dir);
    let keep = dir.is_some();
    let root = dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("peer-demo-{}", std::process::id())));
    let result = demo(&root, size_mib * 1024 * 1024, leechers);
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

fn fail(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

/// Deterministic pseudo-random content (xorshift), written in 1 MiB chunks.
fn write_demo_file(path: &Path, size: u64) -> Result<(), CliError> {
    use std::io::Write;
    let f = std::fs::File::create(path).map_err(|e| fail("create demo file", e))?;
    let mut w = std::io::BufWriter::new(f);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut left = size;
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        for b in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n])
            .map_err(|e| fail("write demo file", e))?;
        left -= n as u64;
    }
    w.flush().map_err(|e| fail("write demo file", e))
}

fn loopback_session() -> Result<Session, CliError> {
    Session::start(Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        // Loopback only: never the public DHT routers.
        dht: false,
        dht_routers: Vec::new(),
        ..Config::default()
    })
    .map_err(|e| CliError::failed(&e))
}

fn demo(root: &Path, size: u64, leechers: usize) -> Result<(), CliError> {
    let seed_dir = root.join("seeder");
    std::fs::create_dir_all(&seed_dir).map_err(|e| fail("create demo dir", e))?;
    let file = seed_dir.join("demo.bin");
    eprintln!(
        "demo: writing a {} test file to {}",
        human(size),
        file.display()
    );
    write_demo_file(&file, size)?;
    let bytes = create_torrent(&file, &CreateOptions::default(), &|_, _| {})
        .map_err(|e| CliError::failed(&e))?;
    let mi = Metainfo::from_bytes(&bytes).map_err(|e| CliError::failed(&e))?;
    std::fs::write(root.join("demo.torrent"), &bytes).map_err(|e| fail("write torrent", e))?;
    eprintln!(
        "demo: torrent {} ({} of {})",
        mi.info_hash,
        crate::progress::plural(mi.info.pieces.len() as u64, "piece"),
        human(mi.info.piece_length)
    );

    let seeder = loopback_session()?;
    seeder
        .add(AddTorrent::new(mi.clone(), &seed_dir))
        .map_err(|e| CliError::failed(&e))?;
    let mut sessions = Vec::new();
    for _ in 0..leechers {
        sessions.push(loopback_session()?);
    }
    eprintln!("demo: seeder on {}", seeder.local_addr());
    let start = Instant::now();
    for (i, s) in sessions.iter().enumerate() {
        let mut peers = vec![seeder.local_addr()];
        peers.extend(sessions[..i].iter().map(|o| o.local_addr()));
        eprintln!("demo: leecher {} on {}", i + 1, s.local_addr());
        s.add(AddTorrent::new(mi.clone(), root.join(format!("leecher{}", i + 1))).peers(peers))
            .map_err(|e| CliError::failed(&e))?;
    }
    let stop = crate::cmd::run::install_stop_handler()?;
    let mut progress = Progress::new();
    loop {
        let statuses: Vec<_> = sessions
            .iter()
            .filter_map(|s| s.status(&mi.info_hash))
            .enumerate()
            .map(|(i, mut st)| {
                st.name = format!("leecher {}", i + 1);
                st
            })
            .collect();
        progress.show(&statuses);
        if statuses.iter().all(|s| s.phase == Phase::Seeding) {
            break;
        }
        if let Some(Phase::Failed(r)) = statuses
            .iter()
            .map(|s| s.phase.clone())
            .find(|p| matches!(p, Phase::Failed(_)))
        {
            return Err(CliError::Failed(format!("demo: a leecher failed: {r}")));
        }
        if stop.load(Ordering::SeqCst) {
            return Err(CliError::Failed("demo: interrupted".into()));
        }
        if start.elapsed() > DEMO_TIMEOUT {
            return Err(CliError::Failed("demo: timed out".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    progress.finish();
    let original = std::fs::read(&file).map_err(|e| fail("read demo file", e))?;
    eprintln!(
        "demo: all {leechers} leechers complete in {:.2} s ({}/s per leecher)",
        elapsed.as_secs_f64(),
        human((size as f64 / elapsed.as_secs_f64()) as u64)
    );
    for (i, s) in sessions.iter().enumerate() {
        let copy = root.join(format!("leecher{}", i + 1)).join("demo.bin");
        let same = std::fs::read(&copy).map_err(|e| fail("read copy", e))? == original;
        let st = s.status(&mi.info_hash);
        let up = st.as_ref().map_or(0, |s| s.uploaded);
        eprintln!(
            "demo: leecher {}: {} byte-identical, uploaded {} to other leechers",
            i + 1,
            if same { "copy is" } else { "copy is NOT" },
            human(up)
        );
        if !same {
            return Err(CliError::Failed(format!(
                "demo: leecher {} copy differs",
                i + 1
            )));
        }
    }
    let seeded = seeder.status(&mi.info_hash).map_or(0, |s| s.uploaded);
    eprintln!("demo: the seeder uploaded {}", human(seeded));
    for s in sessions {
        s.shutdown();
    }
    seeder.shutdown();
    println!("demo: OK");
    Ok(())
}
