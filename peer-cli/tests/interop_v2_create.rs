//! Interop (issue 22): `peer create --v2` and `--hybrid` torrents load in
//! libtorrent 2.0 with the info-hashes `peer create` and `peer info` print,
//! libtorrent's own creator makes the same torrent of the same files (same
//! v1 and v2 info-hashes), and libtorrent checking the files against our
//! torrent finds every piece good (every v2 merkle root and, for a hybrid,
//! every v1 SHA-1 over the BEP 47 pad files).
//!
//! Needs `python3-libtorrent` (see `.ci/run`). Missing: SKIP by hand,
//! failure under `CI=true`.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const TOOL_WAIT: Duration = Duration::from_secs(60);

/// `peer create SRC -o OUT ARGS...`: the two lines it prints.
fn create(src: &Path, out: &Path, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("create").arg(src).arg("-o").arg(out).args(args);
    let res = run_bounded("peer create", cmd, TOOL_WAIT);
    let stdout = String::from_utf8_lossy(&res.stdout).into_owned();
    assert!(
        res.status.success(),
        "peer create {args:?} failed: {}\n{stdout}\n{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    let mut lines = stdout.lines();
    let hash = lines.next().unwrap_or_default().trim().to_string();
    (hash, lines.next().unwrap_or_default().to_string())
}

fn opt_str(v: &Json, key: &str) -> Option<String> {
    v.get(key).and_then(Json::as_str).map(str::to_string)
}

/// Non-pad files as `(path, length)`, paths as libtorrent gives them.
fn files(v: &Json, pads_have_dot_pad: bool) -> Vec<(String, i128)> {
    let list = v.get("files").and_then(Json::as_array).expect("files");
    list.iter()
        .map(|f| {
            let path = f.get("path").and_then(Json::as_str).expect("path");
            let len = f.get("length").and_then(Json::as_i128).expect("length");
            (path.to_string(), len)
        })
        .filter(|(p, _)| !(pads_have_dot_pad && p.split('/').any(|c| c == ".pad")))
        .collect()
}

fn check(src: &Path, torrent: &Path, format: &str, extra: &[&str]) {
    let flag = format!("--{format}");
    let mut args = vec![flag.as_str()];
    args.extend_from_slice(extra);
    let (printed, summary) = create(src, torrent, &args);
    assert!(summary.contains(format), "{summary}");

    let info = run_peer(&[
        OsStr::new("info"),
        torrent.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert!(info.status.success(), "{info:?}");
    let ours = Json::parse(&String::from_utf8_lossy(&info.stdout)).expect("peer info JSON");
    assert_eq!(opt_str(&ours, "format").as_deref(), Some(format));

    let out = run_python(
        "lt_v2_check.py",
        &[torrent.as_os_str(), src.as_os_str(), OsStr::new(format)],
        TOOL_WAIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent refused {}: {}\n{}",
        torrent.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lt = Json::parse(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"));
    let what = format!("{format} torrent of {} ({extra:?})", src.display());

    // The v2 hash: what libtorrent computes, what libtorrent's own creator
    // gives for the same files, what `peer info` shows.
    let v2 = opt_str(&lt, "v2").unwrap_or_else(|| panic!("{what}: libtorrent sees no v2 hash"));
    assert_eq!(
        opt_str(&lt, "lt_v2").as_ref(),
        Some(&v2),
        "{what}: lt creator"
    );
    assert_eq!(opt_str(&ours, "info_hash_v2").as_ref(), Some(&v2), "{what}");
    if format == "hybrid" {
        let v1 = opt_str(&lt, "v1").unwrap_or_else(|| panic!("{what}: no v1 hash"));
        assert_eq!(
            opt_str(&lt, "lt_v1").as_ref(),
            Some(&v1),
            "{what}: lt creator"
        );
        assert_eq!(printed, v1, "{what}: the printed info-hash");
        assert_eq!(opt_str(&ours, "info_hash").as_ref(), Some(&v1), "{what}");
        assert!(summary.contains(&v2), "{what}: {summary}");
    } else {
        assert_eq!(
            opt_str(&lt, "v1"),
            None,
            "{what}: a v1 hash in a v2 torrent"
        );
        assert_eq!(printed, v2, "{what}: the printed info-hash");
    }

    // libtorrent checked the files against our hashes: every piece good.
    let pieces = lt.get("num_pieces").and_then(Json::as_i128);
    assert!(pieces.is_some_and(|n| n > 0), "{what}: {stdout}");
    assert_eq!(
        lt.get("pieces_have").and_then(Json::as_i128),
        pieces,
        "{what}"
    );
    assert_eq!(
        lt.get("is_seed").and_then(Json::as_bool),
        Some(true),
        "{what}"
    );

    // The same files (pads aside) in the same order.
    assert_eq!(files(&ours, true), files(&lt, false), "{what}: files");
}

#[test]
fn peer_create_v2_and_hybrid_load_in_libtorrent_with_its_hashes() {
    if !require_tool("libtorrent") {
        return;
    }
    let tmp = TempDir::new("p22-create-v2");
    let data = tmp.subdir("data");
    let multi = make_multi_file_dir(&data, "multi dir");
    // An empty file and two files with the same bytes (one root, one piece
    // layer entry) too.
    write_file(&multi.join("docs/empty"), b"");
    write_file(&multi.join("zz-copy.bin"), &pseudo_random(300_001, 1));
    let single = make_single_file(&data, "single-file.bin", 200_003);
    let out = tmp.subdir("torrents");
    for (i, src) in [&multi, &single].into_iter().enumerate() {
        for format in ["v2", "hybrid"] {
            // Small pieces (files of many pieces, with piece layers), and
            // pieces larger than every file (no layers at all).
            for (j, extra) in [&["--piece-length", "16K"][..], &["--piece-length", "1M"]]
                .into_iter()
                .enumerate()
            {
                let torrent = out.join(format!("{format}-{i}-{j}.torrent"));
                check(src, &torrent, format, extra);
            }
        }
    }
    // The default piece length, with more than one hashing thread.
    let torrent = out.join("hybrid-threads.torrent");
    check(&multi, &torrent, "hybrid", &["--threads", "3"]);
}
