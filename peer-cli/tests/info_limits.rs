//! `peer info` on huge or hostile torrents, built by the test: memory stays
//! bounded (peak RSS of the child, from `getrusage(RUSAGE_CHILDREN)`), a
//! path over the limits is refused with an error naming the limit, and a
//! closed output pipe (`peer info --json big.torrent | head`) ends it
//! quietly with status 0.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use support::*;

fn bytes(s: &str) -> Vec<u8> {
    format!("{}:{s}", s.len()).into_bytes()
}

/// A torrent of `n` one-byte files, 16 KiB pieces.
fn many_files(n: usize) -> Vec<u8> {
    let mut out = b"d4:infod5:filesl".to_vec();
    for i in 0..n {
        out.extend_from_slice(b"d6:lengthi1e4:pathl");
        out.extend(bytes(&format!("f{i:07}")));
        out.extend_from_slice(b"ee");
    }
    out.extend_from_slice(b"e4:name4:many12:piece lengthi16384e6:pieces");
    let pieces = n.div_ceil(16384) * 20;
    out.extend(format!("{pieces}:").into_bytes());
    out.extend(std::iter::repeat_n(7u8, pieces));
    out.extend_from_slice(b"ee");
    out
}

/// A torrent whose one file is `levels` directories named `element` deep.
fn deep_path(levels: usize, element: &str) -> Vec<u8> {
    let mut out = b"d4:infod5:filesld6:lengthi1e4:pathl".to_vec();
    for _ in 0..levels {
        out.extend(bytes(element));
    }
    out.extend_from_slice(b"eee4:name4:deep12:piece lengthi16384e6:pieces20:");
    out.extend_from_slice(&[7u8; 20]);
    out.extend_from_slice(b"ee");
    out
}

/// Run `peer info --json FILE` to the end (output discarded); its exit
/// status and stderr, and the peak RSS of the largest child this process
/// waited for so far, in KiB. Only `peak_memory_is_bounded` spawns
/// children that matter, in increasing size, so the peak is the last one's.
fn info_peak(torrent: &Path) -> (bool, String, i64) {
    let out = Command::new(peer_bin())
        .args(["info", "--json"])
        .arg(torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr, usage.max_rss())
}

/// Before: one path 2,046 levels deep held every prefix (about two million
/// strings); 1,000,000 files peaked at 795 MiB. Bounds: 64 MiB for a path,
/// 256 MiB for a million files (184 MiB measured, debug build).
#[test]
fn peak_memory_is_bounded() {
    let tmp = TempDir::new("info-limits");
    // 10,000 levels: refused, with the limit named.
    let t = tmp.path().join("deep10000.torrent");
    write_file(&t, &deep_path(10_000, "d"));
    let (ok, err, peak) = info_peak(&t);
    assert!(!ok && err.contains("exceeds the limit of 2048"), "{err}");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    // 1,400 levels of two bytes: 4,201 bytes, refused by length.
    let t = tmp.path().join("long.torrent");
    write_file(&t, &deep_path(1400, "dd"));
    let (ok, err, _) = info_peak(&t);
    assert!(!ok && err.contains("4096 bytes (PATH_MAX)"), "{err}");
    // The deepest path accepted: "deep" and 2,046 levels of one byte (4,096 bytes).
    let t = tmp.path().join("deep2046.torrent");
    write_file(&t, &deep_path(2046, "d"));
    let (ok, err, peak) = info_peak(&t);
    assert!(ok, "{err}");
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB for a 2,046-level path"
    );
    // A million one-byte files (31 MB of torrent).
    let t = tmp.path().join("million.torrent");
    write_file(&t, &many_files(1_000_000));
    let (ok, err, peak) = info_peak(&t);
    assert!(ok, "{err}");
    eprintln!("peer info --json, 1,000,000 files: peak RSS {peak} KiB");
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB for 1,000,000 files");
}

/// `peer info --json big.torrent | head -c 100` and the same in text:
/// status 0, nothing on stderr.
#[test]
fn closed_pipe_ends_quietly() {
    let tmp = TempDir::new("info-pipe");
    let t = tmp.path().join("many.torrent");
    // About 1 MB of output: far more than a pipe holds.
    write_file(&t, &many_files(20_000));
    for json in [true, false] {
        let mut cmd = Command::new(peer_bin());
        cmd.arg("info");
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .arg(&t)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        // The pipe's reader is gone (dropped above).
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "json={json}: {:?}\n{stderr}",
            out.status
        );
    }
}

/// `peer completions bash | true`: the reader is gone before the script is
/// written (it closes at once, before the child has even started), so the
/// write meets a closed pipe: status 0, nothing on stderr (before: a panic,
/// "failed printing to stdout", status 101).
#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    for shell in ["bash", "zsh", "fish"] {
        let mut child = Command::new(peer_bin())
            .args(["completions", shell])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{shell}: {:?}\n{stderr}",
            out.status
        );
    }
}
