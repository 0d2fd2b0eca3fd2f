//! Download from a magnet link: the session fetches the info dictionary
//! from peers (here the link's `x.pe`), checks it against the info-hash,
//! then downloads. To run offline, the example first starts its own seeder
//! session on loopback and makes the magnet link for it.
//!
//! `cargo run -p bittorrent-core --example download_magnet [-- MAGNET DIR]`
//! (with a magnet link and a directory it downloads that instead, with
//! LSD and the DHT on).

use bittorrent_core::create::{create_torrent, CreateOptions};
use bittorrent_core::{AddTorrent, Config, Event, Magnet, Metainfo, Phase, Session};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("bt-example-magnet-{}", std::process::id()));
    let mut args = std::env::args().skip(1);
    // Keep the seeder alive while we download.
    let mut _seeder = None;
    let (link, dir, config) = match (args.next(), args.next()) {
        (Some(link), Some(dir)) => {
            let config = Config {
                lsd: true,
                dht: true,
                listen_port: 0,
                ..Config::default()
            };
            (link, PathBuf::from(dir), config)
        }
        _ => {
            let seed = tmp.join("seed");
            std::fs::create_dir_all(&seed)?;
            let data: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(seed.join("movie.bin"), &data)?;
            let bytes = create_torrent(
                &seed.join("movie.bin"),
                &CreateOptions::default(),
                &|_, _| {},
            )?;
            let torrent = Metainfo::from_bytes(&bytes)?;
            let loopback = Config {
                listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                listen_port: 0,
                // Offline: never the public DHT routers.
                dht_routers: Vec::new(),
                ..Config::default()
            };
            let s = Session::start(loopback.clone())?;
            s.add(AddTorrent::new(torrent.clone(), &seed))?;
            let mut m = Magnet::of(&torrent);
            m.peers.push(s.local_addr().to_string());
            _seeder = Some(s);
            (m.to_uri(), tmp.join("down"), loopback)
        }
    };
    println!("magnet: {link}");
    let magnet = Magnet::parse(&link)?;
    let session = Session::start(config)?;
    let events = session.events();
    let ih = session.add(AddTorrent::magnet(magnet, &dir))?;
    println!("phase: {:?}", session.status(&ih).map(|s| s.phase));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(Event::MetadataReceived { name, .. }) => println!("got the metadata: {name}"),
            Ok(Event::Checked {
                pieces_have,
                pieces_total,
                ..
            }) => {
                println!("checked: {pieces_have}/{pieces_total} pieces on disk")
            }
            Ok(Event::Completed { .. }) => break,
            Ok(_) => {}
            Err(_) => return Err("timed out".into()),
        }
        // Complete at the check already (the data was there)?
        if session
            .status(&ih)
            .is_some_and(|s| s.phase == Phase::Seeding)
        {
            break;
        }
    }
    let st = session.status(&ih).ok_or("no status")?;
    println!(
        "complete: {} ({} bytes) in {}",
        st.name,
        st.total_length,
        dir.display()
    );
    session.shutdown();
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
