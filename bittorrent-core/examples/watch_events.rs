//! Watch a session's events: every step of a torrent's life, as it
//! happens, from a subscriber thread (several subscribers may listen; each
//! has its own bounded queue). Runs offline: a seeder and a downloader on
//! loopback, then pause, resume and remove.
//!
//! `cargo run -p bittorrent-core --example watch_events`

use bittorrent_core::create::{create_torrent, CreateOptions};
use bittorrent_core::{AddTorrent, Config, Event, Metainfo, Session};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("bt-example-events-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("seed"))?;
    std::fs::write(
        tmp.join("seed/notes.txt"),
        "event after event\n".repeat(20_000),
    )?;
    let bytes = create_torrent(
        &tmp.join("seed/notes.txt"),
        &CreateOptions::default(),
        &|_, _| {},
    )?;
    let torrent = Metainfo::from_bytes(&bytes)?;
    let config = || Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        // Offline: never the public DHT routers.
        dht_routers: Vec::new(),
        ..Config::default()
    };
    let seeder = Session::start(config())?;
    seeder.add(AddTorrent::new(torrent.clone(), tmp.join("seed")))?;
    let session = Session::start(config())?;

    // A subscriber on its own thread prints what happens until `Removed`.
    let events = session.events();
    let printer = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(e) = events.recv_timeout(Duration::from_secs(60)) {
            println!("event: {e:?}");
            let done = matches!(e, Event::Removed { .. });
            seen.push(e);
            if done {
                break;
            }
        }
        seen
    });
    // Another subscriber waits for completion before pausing.
    let done = session.events();
    let ih =
        session.add(AddTorrent::new(torrent, tmp.join("down")).peers(vec![seeder.local_addr()]))?;
    while !matches!(
        done.recv_timeout(Duration::from_secs(60))?,
        Event::Completed { .. }
    ) {}
    session.pause(&ih)?;
    session.resume(&ih)?;
    session.remove(&ih, true)?;
    let seen = printer.join().map_err(|_| "printer thread panicked")?;
    let kinds: Vec<&str> = seen
        .iter()
        .map(|e| match e {
            Event::Added { .. } => "added",
            Event::Checked { .. } => "checked",
            Event::Completed { .. } => "completed",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::Removed { .. } => "removed",
            _ => "other",
        })
        .filter(|k| *k != "other")
        .collect();
    println!("lifecycle: {}", kinds.join(" -> "));
    if kinds
        != [
            "added",
            "checked",
            "completed",
            "paused",
            "resumed",
            "removed",
        ]
    {
        return Err(format!("unexpected lifecycle {kinds:?}").into());
    }
    session.shutdown();
    seeder.shutdown();
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
