//! The external tools the tests drive (found on PATH, or a loud SKIP by
//! hand and a failure under CI), bounded runs, the Python helper scripts
//! and the fixtures.

use super::Child;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The interpreter that can import Debian's `python3-libtorrent` (not the pyenv one on PATH).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// True when running under CI (`CI=true`): missing tools are then failures, not skips.
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI").as_deref(),
        Ok("true") | Ok("1") | Ok("TRUE") | Ok("True")
    )
}

/// Skip (by hand) or fail (in CI) because `what` is missing.
/// Returns false so callers can write `if !skip_or_fail(..) { return; }`.
pub fn skip_or_fail(what: &str, why: &str) -> bool {
    let msg = format!("SKIP: {what} not installed ({why})");
    if in_ci() {
        panic!("{msg} -- CI=true, so a missing tool is a failure; see .ci/run");
    }
    loud(&msg);
    false
}

/// Print a banner straight to the process's stderr: `eprintln!` inside a test is
/// captured by the test harness (and hidden for passing tests); this is not.
pub fn loud(msg: &str) {
    let bar = "=".repeat(70);
    let _ = writeln!(std::io::stderr().lock(), "\n{bar}\n{msg}\n{bar}");
}

/// Where `name` is found on PATH (an executable file), if anywhere.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The Debian package that provides an interop tool (for the SKIP message).
fn package_of(tool: &str) -> &'static str {
    match tool {
        "transmission-create" | "transmission-show" | "transmission-cli" => "transmission-cli",
        "transmission-daemon" | "transmission-remote" => "transmission-daemon",
        "mktorrent" => "mktorrent",
        "aria2c" => "aria2",
        "qbittorrent-nox" => "qbittorrent-nox",
        "opentracker" => "opentracker",
        "libtorrent" => "python3-libtorrent",
        "miniupnpd" => "miniupnpd-nftables",
        "upnpc" => "miniupnpc",
        "nft" => "nftables",
        "ip" => "iproute2",
        "ffmpeg" | "ffprobe" => "ffmpeg",
        _ => "?",
    }
}

/// True if the tool is available. Otherwise prints `SKIP: <tool> not installed (...)`
/// and returns false when run by hand, or panics when `CI=true`.
/// `"libtorrent"` means the Python binding importable by `/usr/bin/python3`.
pub fn require_tool(name: &str) -> bool {
    let found = if name == "libtorrent" {
        python_libtorrent_available()
    } else {
        find_on_path(name).is_some()
    };
    if found {
        return true;
    }
    let why = format!(
        "apt-get install {} -- needed for this interop test",
        package_of(name)
    );
    skip_or_fail(name, &why)
}

/// True if all the tools are available (checks each, reporting every missing one).
pub fn require_tools(names: &[&str]) -> bool {
    // Not `all()`: check every tool so one run reports all that are missing.
    names.iter().filter(|n| !require_tool(n)).count() == 0
}

/// True if `/usr/bin/python3 -c 'import libtorrent'` works.
pub fn python_libtorrent_available() -> bool {
    Command::new(SYSTEM_PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Run a command to completion (stdin closed), killing it and failing the test
/// if it takes longer than `limit`.
pub fn run_bounded(name: &str, cmd: Command, limit: Duration) -> std::process::Output {
    let mut child = Child::spawn(name, cmd);
    child.close_stdin();
    let status = child
        .wait_exit(limit)
        .unwrap_or_else(|| panic!("{name} did not finish within {limit:?}\n{}", child.output()));
    std::process::Output {
        status,
        stdout: child.stdout_bytes(),
        stderr: child.stderr_bytes(),
    }
}

/// Run `/usr/bin/python3 peer-cli/tests/interop/<script> args...` to completion.
pub fn run_python<S: AsRef<OsStr>>(
    script: &str,
    args: &[S],
    limit: Duration,
) -> std::process::Output {
    let mut cmd = python_cmd(script);
    cmd.args(args);
    run_bounded(script, cmd, limit)
}

/// A `Command` for one of the helper scripts in `peer-cli/tests/interop/`.
pub fn python_cmd(script: &str) -> Command {
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(interop_script(script));
    cmd
}

/// Path of a helper script in `peer-cli/tests/interop/`.
pub fn interop_script(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script)
}

/// Path of a file under the workspace's `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}
