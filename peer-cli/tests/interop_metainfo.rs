//! Interop (issue 2 contract): metainfo made by other tools reads the same in `peer info`
//! as in libtorrent, and torrents made by `peer create` load in libtorrent and
//! Transmission with the info-hash `peer info` prints.
//!
//! Needs `mktorrent`, `transmission-cli` (transmission-create/-show) and
//! `python3-libtorrent` (see `.ci/run`). Missing tools: SKIP by hand, failure under `CI=true`.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const TOOL_WAIT: Duration = Duration::from_secs(60);

/// What we compare between `peer info --json` and `lt_info.py`.
#[derive(Debug, PartialEq)]
struct Summary {
    info_hash: String,
    name: String,
    num_files: usize,
    total_size: i128,
    files: Vec<(String, i128)>,
}

/// A file path from JSON: a '/'-joined string or an array of components.
fn json_path(v: &Json) -> String {
    match v {
        Json::Str(s) => s.replace('\\', "/"),
        Json::Arr(parts) => parts
            .iter()
            .map(|p| p.as_str().expect("path component is a string"))
            .collect::<Vec<_>>()
            .join("/"),
        other => panic!("file path is neither string nor array: {other:?}"),
    }
}

/// Paths relative to the torrent's top level: libtorrent puts the torrent name in
/// front of multi-file paths; `peer info` may or may not.
fn normalise_path(path: &str, name: &str, multi: bool) -> String {
    let p = path.trim_start_matches("./");
    if multi {
        if let Some(rest) = p.strip_prefix(&format!("{name}/")) {
            return rest.to_string();
        }
    }
    p.to_string()
}

fn files_of(v: &Json, name: &str) -> Vec<(String, i128)> {
    let files = v
        .get("files")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("no files array in {v:?}"));
    let multi = files.len() > 1
        || files
            .first()
            .and_then(|f| f.get("path"))
            .map(|p| json_path(p).contains('/'))
            .unwrap_or(false);
    files
        .iter()
        .map(|f| {
            let path = json_path(f.get("path").expect("file has path"));
            let len = f
                .get("length")
                .and_then(Json::as_i128)
                .expect("file has integer length");
            (normalise_path(&path, name, multi), len)
        })
        .collect()
}

fn str_field(v: &Json, key: &str) -> String {
    v.get(key)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("no string {key:?} in {v:?}"))
        .to_string()
}

fn int_field(v: &Json, key: &str) -> i128 {
    v.get(key)
        .and_then(Json::as_i128)
        .unwrap_or_else(|| panic!("no integer {key:?} in {v:?}"))
}

/// `peer info --json TORRENT`, parsed.
fn peer_info(torrent: &Path) -> Json {
    let out = run_peer(&[
        OsStr::new("info"),
        torrent.as_os_str(),
        OsStr::new("--json"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "peer info {} failed: {}\n{}",
        torrent.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Json::parse(&stdout)
        .unwrap_or_else(|e| panic!("peer info --json printed bad JSON ({e}):\n{stdout}"))
}

fn peer_summary(torrent: &Path) -> Summary {
    let v = peer_info(torrent);
    let name = str_field(&v, "name");
    let files = files_of(&v, &name);
    Summary {
        info_hash: str_field(&v, "info_hash").to_ascii_lowercase(),
        num_files: files.len(),
        total_size: int_field(&v, "total_length"),
        name,
        files,
    }
}

/// `lt_info.py TORRENT`, parsed; panics if libtorrent refuses the torrent.
fn lt_summary(torrent: &Path) -> Summary {
    let out = run_python("lt_info.py", &[torrent], TOOL_WAIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent refused {}: {}\n{}",
        torrent.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v = Json::parse(&stdout).unwrap_or_else(|e| panic!("lt_info.py bad JSON ({e}):\n{stdout}"));
    let name = str_field(&v, "name");
    let files = files_of(&v, &name);
    assert_eq!(int_field(&v, "num_files") as usize, files.len());
    Summary {
        info_hash: str_field(&v, "info_hash").to_ascii_lowercase(),
        num_files: files.len(),
        total_size: int_field(&v, "total_size"),
        name,
        files,
    }
}

/// The `Hash:` line of `transmission-show TORRENT`.
fn transmission_hash(torrent: &Path) -> String {
    let mut cmd = Command::new("transmission-show");
    cmd.arg(torrent);
    let out = run_bounded("transmission-show", cmd, TOOL_WAIT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "transmission-show refused {}: {}\n{text}\n{}",
        torrent.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Hash:"))
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_else(|| panic!("no Hash: line in transmission-show output:\n{text}"))
}

/// The two inputs every tool is run on: a small multi-file directory and a single file.
struct Inputs {
    _tmp: TempDir,
    out: PathBuf,
    sources: Vec<PathBuf>,
}

fn inputs(tag: &str) -> Inputs {
    let tmp = TempDir::new(tag);
    let data = tmp.subdir("data");
    let multi = make_multi_file_dir(&data, "multi dir");
    let single = make_single_file(&data, "single-file.bin", 200_003);
    let out = tmp.subdir("torrents");
    Inputs {
        _tmp: tmp,
        out,
        sources: vec![multi, single],
    }
}

fn assert_peer_matches_libtorrent(tool: &str, torrent: &Path, source: &Path) {
    let ours = peer_summary(torrent);
    let theirs = lt_summary(torrent);
    assert_eq!(
        ours,
        theirs,
        "{tool} torrent of {}: `peer info` (left) and libtorrent (right) disagree",
        source.display()
    );
    let expected_name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(ours.name, expected_name, "torrent name");
    let on_disk: i128 = if source.is_dir() {
        read_tree(source).values().map(|d| d.len() as i128).sum()
    } else {
        std::fs::metadata(source)
            .map(|m| m.len() as i128)
            .unwrap_or(-1)
    };
    assert_eq!(ours.total_size, on_disk, "total size vs the files on disk");
}

fn check_tool(tool: &str, make: impl Fn(&Path, &Path)) {
    let inp = inputs(tool);
    for (i, src) in inp.sources.iter().enumerate() {
        let torrent = inp.out.join(format!("{tool}-{i}.torrent"));
        make(src, &torrent);
        assert!(
            torrent.is_file(),
            "{tool} did not write {}",
            torrent.display()
        );
        assert_peer_matches_libtorrent(tool, &torrent, src);
    }
}

fn must_succeed(name: &str, cmd: Command) {
    let out = run_bounded(name, cmd, TOOL_WAIT);
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mktorrent_torrents_read_the_same_as_libtorrent() {
    if !require_tools(&["mktorrent", "libtorrent"]) {
        return;
    }
    check_tool("mktorrent", |src, out| {
        let mut cmd = Command::new("mktorrent");
        cmd.args(["-a", "http://127.0.0.1:6969/announce", "-l", "15", "-o"])
            .arg(out)
            .arg(src);
        must_succeed("mktorrent", cmd);
    });
}

#[test]
fn transmission_create_torrents_read_the_same_as_libtorrent() {
    if !require_tools(&["transmission-create", "libtorrent"]) {
        return;
    }
    check_tool("transmission-create", |src, out| {
        let mut cmd = Command::new("transmission-create");
        cmd.args(["-t", "http://127.0.0.1:6969/announce", "-o"])
            .arg(out)
            .arg(src);
        must_succeed("transmission-create", cmd);
    });
}

#[test]
fn libtorrent_torrents_read_the_same_as_libtorrent() {
    if !require_tool("libtorrent") {
        return;
    }
    check_tool("libtorrent", |src, out| {
        let mut cmd = python_cmd("lt_create.py");
        cmd.arg(src)
            .arg(out)
            .args(["--announce", "http://127.0.0.1:6969/announce"]);
        must_succeed("lt_create.py", cmd);
    });
}

#[test]
fn peer_create_torrents_load_in_libtorrent_and_transmission() {
    if !require_tools(&["transmission-show", "libtorrent"]) {
        return;
    }
    let inp = inputs("peer-create");
    for (i, src) in inp.sources.iter().enumerate() {
        let torrent = inp.out.join(format!("peer-{i}.torrent"));
        let mut cmd = Command::new(peer_bin());
        cmd.arg("create")
            .arg(src)
            .arg("-o")
            .arg(&torrent)
            .args(["--announce", "127.0.0.1:6881"])
            .args(["--comment", "interop test"]);
        must_succeed("peer create", cmd);
        assert_peer_matches_libtorrent("peer create", &torrent, src);
        let ours = peer_summary(&torrent).info_hash;
        assert_eq!(
            transmission_hash(&torrent),
            ours,
            "transmission-show and peer info disagree on the info-hash of {}",
            torrent.display()
        );
    }
    // A private torrent with a fixed piece length, too.
    let torrent = inp.out.join("peer-private.torrent");
    let mut cmd = Command::new(peer_bin());
    cmd.arg("create")
        .arg(&inp.sources[0])
        .arg("-o")
        .arg(&torrent)
        .args(["--piece-length", "32768", "--private"]);
    must_succeed("peer create --private", cmd);
    assert_peer_matches_libtorrent("peer create --private", &torrent, &inp.sources[0]);
    let out = run_python("lt_info.py", &[&torrent], TOOL_WAIT);
    let v = Json::parse(&String::from_utf8_lossy(&out.stdout)).expect("lt_info JSON");
    assert_eq!(
        v.get("private").and_then(Json::as_bool),
        Some(true),
        "libtorrent sees private"
    );
    assert_eq!(v.get("piece_length").and_then(Json::as_i128), Some(32768));
    assert_eq!(
        transmission_hash(&torrent),
        peer_summary(&torrent).info_hash,
        "transmission-show info-hash of the private torrent"
    );
}
