//! The real player pipeline (issue 24): `ffprobe` and `ffmpeg` (Debian's
//! `ffmpeg`, which no one here wrote) read a video from the daemon's stream
//! URL while the torrent still downloads from a rate-limited seeder. The
//! video is made by the test, a plain MP4 with its index (`moov`) at the
//! end of the file (no `+faststart`), so the player has to seek to the end
//! and back; it must finish with no decoding error. Meanwhile `curl -r`
//! (another client no one here wrote) seeks to pseudo-random offsets and must
//! get exactly the source's bytes.

mod support;

use serde_json::{json, Value};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use support::*;

fn api(port: u16, token: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    control_api(port, token, method, path, body)
}

#[test]
fn ffmpeg_plays_a_video_with_its_index_at_the_end_while_it_downloads() {
    if !require_tools(&["ffmpeg", "ffprobe", "curl"]) {
        return;
    }
    let tmp = TempDir::new("player");
    let seed_dir = tmp.subdir("seed");
    let video = seed_dir.join("clip.mp4");
    // 20 s of test pattern at about 1 Mbit/s: ~2.5 MB, index at the end.
    let mut make = Command::new("ffmpeg");
    make.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=20:size=640x360:rate=25")
        .args(["-c:v", "mpeg4", "-b:v", "1M", "-f", "mp4"])
        .arg(&video);
    let out = run_bounded("ffmpeg (make the video)", make, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&video).expect("read the video");
    let moov = bytes.windows(4).position(|w| w == b"moov").unwrap_or(0);
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap_or(0);
    assert!(moov > mdat, "the index is not at the end");
    let torrent = tmp.path().join("clip.torrent");
    let ih = peer_create_torrent(&video, &torrent, &["--piece-length", "32K"]);
    let seed_port = free_port();
    let mut cmd = Command::new(peer_bin());
    cmd.arg(&torrent)
        .arg("--dir")
        .arg(&seed_dir)
        .args(["--port", &seed_port.to_string(), "--no-lsd", "--no-dht"])
        .args(["--max-upload-rate", "256K"]);
    let seeder = Child::spawn("peer seed (256 KiB/s)", cmd);
    assert!(
        wait_until(LONG_WAIT, || TcpStream::connect(("127.0.0.1", seed_port))
            .is_ok()),
        "{}",
        seeder.output()
    );
    let state = tmp.subdir("state");
    let (d, port, token) = start_daemon_api(&state);
    let magnet = format!("magnet:?xt=urn:btih:{ih}&x.pe=127.0.0.1:{seed_port}");
    let body = json!({"magnet": magnet, "dir": tmp.subdir("down")}).to_string();
    let (code, added) = api(port, &token, "POST", "/torrents", &body);
    assert!((200..300).contains(&code), "{code} {added}\n{}", d.output());
    let mut list = Value::Null;
    let listed = wait_until(Duration::from_secs(30), || {
        list = api(port, &token, "GET", &format!("/torrents/{ih}/streams"), "").1;
        list["files"][0]["url"].is_string()
    });
    assert!(listed, "{list}\n{}", d.output());
    let url = list["files"][0]["url"].as_str().unwrap_or("").to_string();
    let (_, t) = api(port, &token, "GET", &format!("/torrents/{ih}"), "");
    let progress = t["progress"].as_f64().unwrap_or(1.0);
    assert!(
        progress < 0.5,
        "too far along before the player starts: {t}"
    );

    // ffprobe must find the index at the end.
    let mut probe = Command::new("ffprobe");
    probe
        .args(["-v", "error", "-show_entries", "format=duration", "-of"])
        .args(["default=noprint_wrappers=1:nokey=1"])
        .arg(&url);
    let out = run_bounded("ffprobe", probe, Duration::from_secs(120));
    let duration: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    assert!(
        out.status.success() && (19.0..21.0).contains(&duration),
        "ffprobe: {duration} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Seeks with curl to pseudo-random offsets (the download is still running):
    // exactly the source's bytes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = (x % bytes.len() as u64) as usize;
        let b = (a + 64 * 1024).min(bytes.len()) - 1;
        let mut curl = Command::new("curl");
        curl.args(["-s", "-f", "--max-time", "120", "-r", &format!("{a}-{b}")])
            .arg(&url);
        let out = run_bounded("curl -r", curl, Duration::from_secs(150));
        assert!(
            out.status.success() && out.stdout == bytes[a..=b],
            "curl -r {a}-{b}: {:?}, {} bytes\n{}",
            out.status,
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // ffmpeg decodes every frame.
    let mut play = Command::new("ffmpeg");
    play.args(["-v", "error", "-i"])
        .arg(&url)
        .args(["-f", "null", "-"]);
    let out = run_bounded("ffmpeg (decode)", play, Duration::from_secs(180));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "ffmpeg: {:?}\n{errors}",
        out.status
    );
    let _ = seeder.output();
}
