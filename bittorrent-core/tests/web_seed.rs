//! Web seeds (BEP 19) against a real HTTP server: Debian's `nginx`, started
//! by the test on a loopback port with its own configuration in a temp
//! directory, and killed by pid. Single- and multi-file torrents with no
//! peers at all download byte-identical from one web seed and from two at
//! once; a web seed that serves a corrupted copy is dropped and the pieces
//! come from the good one; a web seed that answers 404 backs off while a
//! peer completes the download.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase, Session, WebSeedState};
use harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/nginx.rs"]
mod nginx_server;
use nginx_server::Nginx;

/// `None` (after a loud SKIP) when nginx is not installed; fails under CI.
fn nginx(root: &Path) -> Option<Nginx> {
    nginx_server::start(root, None, "")
}

/// [`nginx`] with `extra` added to its `server` block (more `location`s).
fn nginx_with(root: &Path, extra: &str) -> Option<Nginx> {
    nginx_server::start(root, None, extra)
}

fn wait_done(s: &Session, mi: &bittorrent_core::Metainfo) {
    wait_phase(s, mi, Phase::Seeding, Duration::from_secs(90));
}

#[test]
fn single_file_from_one_then_two_web_seeds() {
    // 6 MiB + a bit, 64 KiB pieces: more than one 4 MiB run.
    let data = pseudo_random(6 * 1024 * 1024 + 12_345, 1);
    let (mut mi, seed_dir) = single_file_torrent("film.bin", &data, 64 * 1024);
    let Some(a) = nginx(&seed_dir) else { return };
    let Some(b) = nginx(&seed_dir) else { return };

    // One seed, the directory form (the name is appended).
    mi.url_list = vec![format!("http://{}/", a.addr)];
    let dir = temp_dir("ws-one");
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_done(&s, &mi);
    assert_eq!(std::fs::read(dir.join("film.bin")).unwrap(), data);
    let st = s.status(&mi.info_hash).unwrap();
    assert_eq!(st.web_seeds.len(), 1);
    assert!(st.web_seeds[0].downloaded >= data.len() as u64, "{st:?}");
    assert_eq!(st.peers, 0);
    drop(s);

    // Two seeds at once, the file form.
    mi.url_list = vec![
        format!("http://{}/film.bin", a.addr),
        format!("http://{}/film.bin", b.addr),
    ];
    let dir = temp_dir("ws-two");
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_done(&s, &mi);
    assert_eq!(std::fs::read(dir.join("film.bin")).unwrap(), data);
    let st = s.status(&mi.info_hash).unwrap();
    assert!(
        st.web_seeds.iter().all(|w| w.downloaded > 0),
        "both seeds serve: {:?}",
        st.web_seeds
    );
    assert_eq!(st.hash_failures, 0);
}

#[test]
fn multi_file_from_one_then_two_web_seeds() {
    let files = vec![
        ("a b.bin", pseudo_random(1_000_003, 2)),
        ("sub dir/ü.bin", pseudo_random(3_500_000, 3)),
        ("empty.bin", Vec::new()),
        ("sub dir/c#d.bin", pseudo_random(2_100_000, 4)),
    ];
    let (mut mi, seed_dir) = multi_file_torrent("My Show", &files, 32 * 1024);
    let Some(a) = nginx(&seed_dir) else { return };
    let Some(b) = nginx(&seed_dir) else { return };
    for (tag, urls) in [
        ("one", vec![format!("http://{}", a.addr)]),
        (
            "two",
            vec![format!("http://{}/", a.addr), format!("http://{}", b.addr)],
        ),
    ] {
        mi.url_list = urls;
        let dir = temp_dir(&format!("ws-multi-{tag}"));
        let s = session();
        s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
        wait_done(&s, &mi);
        for (p, d) in &files {
            assert_eq!(
                &std::fs::read(dir.join("My Show").join(p)).unwrap(),
                d,
                "{tag}: {p}"
            );
        }
        let st = s.status(&mi.info_hash).unwrap();
        assert!(
            st.web_seeds.iter().all(|w| w.downloaded > 0),
            "{tag}: {:?}",
            st.web_seeds
        );
    }
}

#[test]
fn corrupted_web_seed_is_dropped_and_the_good_one_finishes() {
    let data = pseudo_random(3 * 1024 * 1024, 5);
    let (mut mi, seed_dir) = single_file_torrent("iso.bin", &data, 32 * 1024);
    // The bad copy: every byte of it flipped past the first piece.
    let bad_root = temp_dir("ws-bad-root");
    let mut bad = data.clone();
    for x in &mut bad[40_000..] {
        *x ^= 0x5a;
    }
    std::fs::write(bad_root.join("iso.bin"), &bad).unwrap();
    let Some(good) = nginx(&seed_dir) else { return };
    let Some(evil) = nginx(&bad_root) else { return };
    // The bad one first, so that it gets the first run.
    mi.url_list = vec![
        format!("http://{}/iso.bin", evil.addr),
        format!("http://{}/iso.bin", good.addr),
    ];
    let dir = temp_dir("ws-bad");
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_done(&s, &mi);
    assert_eq!(std::fs::read(dir.join("iso.bin")).unwrap(), data);
    let st = s.status(&mi.info_hash).unwrap();
    assert!(st.hash_failures >= 1, "{st:?}");
    assert_eq!(
        st.web_seeds[0].state,
        WebSeedState::Dropped,
        "{:?}",
        st.web_seeds
    );
    assert!(st.web_seeds[0].error.as_deref().unwrap().contains("hash"));
    assert_ne!(st.web_seeds[1].state, WebSeedState::Dropped);
}

#[test]
fn missing_web_seed_backs_off_and_a_peer_completes() {
    let data = pseudo_random(2 * 1024 * 1024 + 7, 6);
    let (mut mi, seed_dir) = single_file_torrent("gone.bin", &data, 32 * 1024);
    let empty = temp_dir("ws-empty-root");
    let Some(server) = nginx(&empty) else { return };
    // A seeder at 1 MiB/s: the web seed is asked (and answers 404) first.
    let seeder = session_with(|c| c.max_upload_rate = 1 << 20);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    mi.url_list = vec![format!("http://{}/", server.addr)];
    let dir = temp_dir("ws-404");
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_done(&s, &mi);
    assert_eq!(std::fs::read(dir.join("gone.bin")).unwrap(), data);
    let st = s.status(&mi.info_hash).unwrap();
    let w = &st.web_seeds[0];
    assert_eq!(w.downloaded, 0, "{w:?}");
    assert!(w.error.as_deref().unwrap_or("").contains("404"), "{w:?}");
    assert_eq!(st.hash_failures, 0);
}

#[test]
fn a_web_seed_and_a_peer_share_the_work() {
    let data = pseudo_random(8 * 1024 * 1024, 7);
    let (mut mi, seed_dir) = single_file_torrent("shared.bin", &data, 64 * 1024);
    let Some(server) = nginx(&seed_dir) else {
        return;
    };
    // A peer at 2 MiB/s: neither source alone is the whole story.
    let seeder = session_with(|c| c.max_upload_rate = 2 << 20);
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    mi.url_list = vec![format!("http://{}/shared.bin", server.addr)];
    // The leecher at 4 MiB/s in all, so that the web seed cannot take
    // everything before the peer has joined.
    let s = session_with(|c| c.max_download_rate = 4 << 20);
    let dir = temp_dir("ws-share");
    s.add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_done(&s, &mi);
    assert_eq!(std::fs::read(dir.join("shared.bin")).unwrap(), data);
    let st = s.status(&mi.info_hash).unwrap();
    let web = st.web_seeds[0].downloaded;
    let from_peer = st.downloaded.saturating_sub(web);
    assert!(
        web > 0 && from_peer > 0,
        "web {web}, peer {from_peer}: {st:?}"
    );
    assert_eq!(st.hash_failures, 0);
}

/// A web seed that accepts connections and never answers: every stream it
/// accepted is kept (open) in the returned list.
fn stalling_server() -> (SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            h.lock().unwrap().push(c);
        }
    });
    (addr, held)
}

/// A web seed that answers each ranged `GET` with the right `206` head
/// (`Content-Length` the whole range) and the right bytes, but only the
/// first half of them, then closes.
fn short_server(data: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                match c.read(&mut b) {
                    Ok(1) => head.push(b[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let range = head
                .lines()
                .find_map(|l| l.strip_prefix("range: bytes="))
                .and_then(|r| r.trim().split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
            let Some((a, b)) = range.filter(|&(a, b)| a <= b && b < data.len()) else {
                let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                continue;
            };
            let n = b - a + 1;
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{}\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n",
                    data.len()
                )
                .as_bytes(),
            );
            let _ = c.write_all(&data[a..a + n / 2]);
        }
    });
    addr
}

#[test]
fn looping_stalling_and_short_web_seeds_do_not_stop_the_good_one() {
    let data = pseudo_random(3 * 1024 * 1024 + 999, 8);
    let (mut mi, seed_dir) = single_file_torrent("hostile.bin", &data, 32 * 1024);
    // `/loop/...` redirects to itself forever.
    let Some(looping) = nginx_with(&seed_dir, "location /loop/ { return 302 $uri; }") else {
        return;
    };
    let Some(good) = nginx(&seed_dir) else { return };
    let (stall, held) = stalling_server();
    let short = short_server(data.clone());
    // The bad ones first, so that they get the first runs.
    mi.url_list = vec![
        format!("http://{}/loop/hostile.bin", looping.addr),
        format!("http://{stall}/hostile.bin"),
        format!("http://{short}/hostile.bin"),
        format!("http://{}/hostile.bin", good.addr),
    ];
    let dir = temp_dir("ws-hostile");
    let s = session();
    let start = std::time::Instant::now();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_done(&s, &mi);
    let took = start.elapsed();
    assert_eq!(std::fs::read(dir.join("hostile.bin")).unwrap(), data);
    let st = s.status(&mi.info_hash).unwrap();
    eprintln!("done in {took:?}: {:#?}", st.web_seeds);
    let w = &st.web_seeds;
    assert_eq!(w.len(), 4);
    // The loop: refused after the redirect limit, shown with its error.
    assert_eq!(w[0].downloaded, 0, "{w:?}");
    assert!(
        w[0].error.as_deref().unwrap_or("").contains("redirect"),
        "{w:?}"
    );
    // The stalling one: accepted (its connection is held) and gave nothing;
    // its run came back after the 15 s head timeout, well before the 60 s
    // deadline of a whole request (which is what it took before).
    assert!(
        !held.lock().unwrap().is_empty(),
        "the stalling seed was never asked"
    );
    assert_eq!(w[1].downloaded, 0, "{w:?}");
    assert!(
        w[1].error.as_deref().unwrap_or("").contains("timed out"),
        "{w:?}"
    );
    assert!(took < Duration::from_secs(50), "{took:?}");
    // The short one: its cut answers are errors (the whole pieces before
    // the cut are kept, and they are right: no hash failure).
    assert!(w[2].error.is_some(), "{w:?}");
    assert!(w[3].downloaded > 0, "{w:?}");
    assert_ne!(w[3].state, WebSeedState::Dropped, "{w:?}");
    assert_eq!(st.hash_failures, 0, "short data is never hashed as a piece");
}
