//! Rate limits measured over real loopback transfers: a 12 MiB torrent at
//! 2 MiB/s takes about 6 s, and the average rate must be within 10 % of
//! the limit (download limit of the session; upload limit of a torrent).
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::time::{Duration, Instant};

const LIMIT: u64 = 2 << 20;
const SIZE: usize = 12 << 20;

fn check_rate(what: &str, bytes: usize, elapsed: Duration) {
    let rate = bytes as f64 / elapsed.as_secs_f64();
    let ratio = rate / LIMIT as f64;
    eprintln!(
        "{what}: {bytes} bytes in {:.2} s = {:.3} MiB/s ({:.1} % of the limit)",
        elapsed.as_secs_f64(),
        rate / f64::from(1u32 << 20),
        ratio * 100.0
    );
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{what}: {rate:.0} B/s for a limit of {LIMIT} B/s"
    );
}

#[test]
fn session_download_limit_holds_over_a_transfer() {
    let data = pseudo_random(SIZE, 21);
    let (mi, seed_dir) = single_file_torrent("down", &data, 256 * 1024);
    let seeder = session();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));

    let leecher = session_with(|c| c.max_download_rate = LIMIT);
    assert_eq!(leecher.rate_limits(), (LIMIT, 0));
    let dir = temp_dir("down-leech");
    let start = Instant::now();
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    // Sample the rate while it runs too: never far above the limit.
    let mut peak_avg = 0.0f64;
    let done = wait_until(Duration::from_secs(30), || {
        let st = leecher.status(&mi.info_hash).unwrap();
        let t = start.elapsed().as_secs_f64();
        if t > 2.0 {
            peak_avg = peak_avg.max(st.downloaded as f64 / t);
        }
        st.phase == Phase::Seeding
    });
    let elapsed = start.elapsed();
    assert!(done, "{:?}", leecher.status(&mi.info_hash));
    assert_eq!(std::fs::read(dir.join("down")).unwrap(), data);
    check_rate("download", SIZE, elapsed);
    assert!(
        peak_avg < LIMIT as f64 * 1.1,
        "the running average reached {peak_avg:.0} B/s"
    );
    leecher.shutdown();
    seeder.shutdown();
}

#[test]
fn torrent_upload_limit_holds_over_a_transfer() {
    let data = pseudo_random(SIZE, 22);
    let (mi, seed_dir) = single_file_torrent("up", &data, 256 * 1024);
    let seeder = session();
    let mut add = AddTorrent::new(mi.clone(), &seed_dir);
    add.max_upload_rate = LIMIT;
    seeder.add(add).unwrap();
    wait_phase(&seeder, &mi, Phase::Seeding, Duration::from_secs(30));
    assert_eq!(seeder.status(&mi.info_hash).unwrap().max_upload_rate, LIMIT);

    // Two leechers share the seeder's torrent limit (and each other's
    // pieces, unlimited): the seeder's upload rate is what is measured.
    let start = Instant::now();
    let leecher = session();
    let dir = temp_dir("up-leech");
    leecher
        .add(AddTorrent::new(mi.clone(), &dir).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&leecher, &mi, Phase::Seeding, Duration::from_secs(30));
    let elapsed = start.elapsed();
    assert_eq!(std::fs::read(dir.join("up")).unwrap(), data);
    let uploaded = seeder.status(&mi.info_hash).unwrap().uploaded;
    assert!(uploaded >= SIZE as u64, "{uploaded}");
    check_rate("upload", SIZE, elapsed);

    // Lifting the limit at run time takes effect at once.
    seeder.set_torrent_rate_limits(&mi.info_hash, 0, 0).unwrap();
    let st = seeder.status(&mi.info_hash).unwrap();
    assert_eq!((st.max_download_rate, st.max_upload_rate), (0, 0));
    let second = session();
    let dir2 = temp_dir("up-leech2");
    let start = Instant::now();
    second
        .add(AddTorrent::new(mi.clone(), &dir2).peers(vec![seeder.local_addr_v4()]))
        .unwrap();
    wait_phase(&second, &mi, Phase::Seeding, Duration::from_secs(30));
    let fast = start.elapsed();
    eprintln!("unlimited: {:.2} s", fast.as_secs_f64());
    assert!(fast < elapsed, "no faster without the limit: {fast:?}");
    second.shutdown();
    leecher.shutdown();
    seeder.shutdown();
}
