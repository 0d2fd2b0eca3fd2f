//! `kill -9` during a disk stall loses nothing the resume data claimed
//! (issue 30): a `peer` downloads onto a FUSE passthrough file system
//! (`bittorrent-core/tests/support/slowfs.py`) from a rate-capped seeder of
//! ours. Once its first resume file is saved, the test stalls every write
//! and fsync (the stall file), long enough for the next resume save to be
//! queued behind the stalled writes, and SIGKILLs the leecher during the
//! stall. With the stall still held (nothing the leecher handed over can
//! land any more), every piece the resume file lists as verified must hash
//! correctly in the backing file. Then the stall ends, the file system is
//! remounted without delays and the leecher, restarted with the same
//! `--dir` and `--state`, completes byte-identical.
//!
//! Needs root, /dev/fuse, fusermount3 and Debian's python3-fusepy; without
//! them, a loud SKIP by hand and a failure under CI=true.
#![allow(clippy::unwrap_used)]

#[path = "../../bittorrent-core/tests/support/slowfs_mount.rs"]
mod slowfs_mount;
mod support;

use bittorrent_core::proto::resume::ResumeData;
use bittorrent_core::{AddTorrent, Config, Metainfo, Phase, Session};
use slowfs_mount::{script, SlowFs};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const PIECE: usize = 64 * 1024;
const SIZE: usize = 10 * 1024 * 1024;
/// The seeder's cap while the leecher runs the first time: 10 MiB take
/// about 110 s, so the download is well under way, not over, at the kill.
const SEED_RATE: u64 = 96 * 1024;
/// After the first resume save: how long until the stall starts, and how
/// long it lasts before the kill (the next save, 30 s after the first, is
/// queued behind the stalled writes).
const STALL_AFTER: Duration = Duration::from_secs(22);
const STALL_FOR: Duration = Duration::from_secs(12);

/// The stall file: while it exists every write and fsync on the slow file
/// system waits. Removed on drop, so that a failing test never leaves a
/// killed leecher stuck in a FUSE write (declared after the leecher's
/// `Child`, so dropped before it).
struct Stall(PathBuf);

impl Stall {
    fn start(&self) {
        std::fs::write(&self.0, b"stall").unwrap();
    }
    fn end(&self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.end();
    }
}

/// The one `.resume` file in `STATE/torrents`, decoded, with its bytes.
fn read_resume(state: &Path) -> Option<(ResumeData, Vec<u8>)> {
    let dir = state.join("torrents");
    let path = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "resume"))?;
    let bytes = std::fs::read(path).ok()?;
    let rd = ResumeData::decode(&bytes).ok()?;
    Some((rd, bytes))
}

fn has_piece(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

fn piece_ok(mi: &Metainfo, data: &[u8], i: usize) -> bool {
    let start = i * mi.info.piece_length as usize;
    let end = start + mi.info.piece_len(i) as usize;
    data.get(start..end)
        .is_some_and(|p| sha1_smol::Sha1::from(p).digest().bytes() == mi.info.pieces[i])
}

#[test]
fn kill_9_during_a_disk_stall_loses_nothing_the_resume_data_claimed() {
    let tmp = TempDir::new("slowdisk-kill");
    let backing = tmp.subdir("backing");
    let mnt = tmp.subdir("mnt");
    let stall_path = tmp.path().join("stall");
    let stall_arg = stall_path.to_str().unwrap().to_string();
    let fs = match SlowFs::mount(
        &script(env!("CARGO_MANIFEST_DIR")),
        &backing,
        &mnt,
        &["--stall-file", &stall_arg],
    ) {
        Ok(fs) => fs,
        Err(why) => {
            skip_or_fail(
                "the FUSE slow disk",
                &format!("{why}; needs root, /dev/fuse, fuse3 and python3-fusepy"),
            );
            return;
        }
    };

    let seed_dir = tmp.subdir("seed");
    let src = seed_dir.join("big.bin");
    write_file(&src, &pseudo_random(SIZE, 3030));
    let torrent = tmp.path().join("big.torrent");
    peer_create_torrent(&src, &torrent, &["--piece-length", &PIECE.to_string()]);
    let mi = Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();

    // The seeder: a session of ours on loopback, capped so that the
    // leecher is mid-download at the kill.
    let seeder = Session::start(Config {
        listen_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: 0,
        max_handshakes_per_ip: 64,
        dht_routers: Vec::new(),
        dht: false,
        lsd: false,
        ..Config::default()
    })
    .unwrap();
    seeder.add(AddTorrent::new(mi.clone(), &seed_dir)).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || seeder
            .status(&mi.info_hash)
            .is_some_and(|s| s.phase == Phase::Seeding)),
        "the seeder did not check its data: {:?}",
        seeder.status(&mi.info_hash)
    );
    seeder
        .set_torrent_rate_limits(&mi.info_hash, 0, SEED_RATE)
        .unwrap();
    let seeder_addr = format!("127.0.0.1:{}", seeder.local_addr().port());

    let state = tmp.subdir("state");
    let leech = || {
        let mut c = Command::new(peer_bin());
        c.arg(&torrent)
            .arg("--dir")
            .arg(&mnt)
            .arg("--state")
            .arg(&state)
            .args(["--port", "0", "--no-dht", "--no-lsd", "--once"])
            .args(["--peer", &seeder_addr])
            .env(DHT_ENV, "none")
            .env("RUST_LOG", "info");
        c
    };
    let mut first = Child::spawn("peer (first run, killed)", leech());
    let stall = Stall(stall_path.clone());

    // The first resume save comes 30 s after the start.
    let mut saved = None;
    let got = wait_until(Duration::from_secs(90), || {
        saved = read_resume(&state).filter(|(rd, _)| rd.pieces.iter().any(|b| *b != 0));
        saved.is_some()
    });
    assert!(
        got,
        "no resume file listing a piece after 90 s\n{}",
        first.output()
    );
    let t0 = Instant::now();
    std::thread::sleep(STALL_AFTER);
    assert!(
        first.try_status().is_none(),
        "the leecher ended before the stall\n{}",
        first.output()
    );
    stall.start();
    let stall_started = Instant::now();
    std::thread::sleep(STALL_FOR);
    let backing_len_before = std::fs::metadata(backing.join("big.bin"))
        .map(|m| m.len())
        .unwrap_or(0);
    // SIGKILL by our child's own pid. Not `Child::kill`: its wait would
    // block while a write of the killed process is held in FUSE.
    let pid = first.id().to_string();
    let killed = Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(killed, "kill -KILL {pid} failed");
    let killed_at = t0.elapsed();
    // After SIGKILL no code of the leecher runs again; give the kernel a
    // moment to tear down its threads that are not held in FUSE.
    std::thread::sleep(Duration::from_millis(500));

    // The check, with the stall still held: the resume data on disk and the
    // data on disk, as the crash left them.
    let (rd, resume_bytes) = read_resume(&state).expect("the resume file vanished");
    let data = std::fs::read(backing.join("big.bin")).unwrap_or_default();
    let n = mi.info.num_pieces();
    assert_eq!(rd.num_pieces as usize, n);
    assert_eq!(rd.info_hash, mi.info_hash);
    let claimed: Vec<usize> = (0..n).filter(|&i| has_piece(&rd.pieces, i)).collect();
    let bad: Vec<usize> = claimed
        .iter()
        .copied()
        .filter(|&i| !piece_ok(&mi, &data, i))
        .collect();
    let on_disk = (0..n).filter(|&i| piece_ok(&mi, &data, i)).count();
    let first_save_unchanged = saved.as_ref().is_some_and(|(_, b)| *b == resume_bytes);
    eprintln!(
        "killed {killed_at:?} after the first save ({:?} into a stall); resume data claims {} \
         of {n} pieces, {on_disk} hash correctly on disk, backing file {backing_len_before} \
         bytes; resume file {} since the first save",
        stall_started.elapsed(),
        claimed.len(),
        if first_save_unchanged {
            "unchanged"
        } else {
            "rewritten"
        }
    );
    assert!(
        bad.is_empty(),
        "the resume data claims pieces that are not on disk (missing or wrong): {bad:?} \
         ({} of {} claimed)\n{}",
        bad.len(),
        claimed.len(),
        first.output()
    );
    assert!(
        !claimed.is_empty(),
        "nothing claimed: the test proves nothing"
    );
    assert!(
        claimed.len() < n,
        "the download finished before the kill: the test proves nothing"
    );

    // End the stall; the killed leecher's held write returns and it exits.
    stall.end();
    assert!(
        first.wait_exit(Duration::from_secs(30)).is_some(),
        "the killed leecher did not exit after the stall ended"
    );
    drop(first);
    drop(fs);

    // Remount without delays at the same place (same save path) and
    // restart; the seeder is no longer capped.
    let _fs = match SlowFs::mount(&script(env!("CARGO_MANIFEST_DIR")), &backing, &mnt, &[]) {
        Ok(fs) => fs,
        Err(why) => panic!("the FUSE file system did not mount again: {why}"),
    };
    seeder.set_torrent_rate_limits(&mi.info_hash, 0, 0).unwrap();
    let mut last = Child::spawn("peer (restart)", leech());
    let status = last.wait_exit(LONG_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "the restarted leecher did not complete\n{}",
        last.output()
    );
    drop(last);
    assert_same_data(&src, &backing.join("big.bin"));
    seeder.shutdown();
}
