//! Shared helpers for the interop tests (`interop_*.rs`).
//!
//! Rules every interop test follows:
//! - an external tool that is missing makes the test print a loud `SKIP:` line and
//!   return when run by hand, but FAIL when `CI=true` (see [`require_tool`]);
//! - every child process is wrapped in [`Child`], which kills it on drop;
//! - every wait is bounded ([`wait_until`], [`Child::wait_for_output`], [`Child::wait_exit`]);
//! - scratch files live in a [`TempDir`] that is removed on drop
//!   (set `KEEP_TMP=1` to keep it for debugging).
#![allow(dead_code)] // each test crate uses a different subset

pub mod clients;
pub mod netns;
pub mod rpc;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `peer` binary under test: the one cargo built for this test run, or `$PEER_BIN`
/// if set (to run the interop tests against another build, e.g. a release binary).
pub fn peer_bin() -> PathBuf {
    match std::env::var_os("PEER_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_peer")),
    }
}

/// The variable that replaces the `peer` command's default DHT routers.
pub const DHT_ENV: &str = "PEER_DHT_BOOTSTRAP";

/// The variable that turns port mapping (UPnP, NAT-PMP) off: no test sends
/// SSDP or NAT-PMP to the real network.
pub const PORT_MAP_ENV: &str = "PEER_PORT_MAP";

/// The interpreter that can import Debian's `python3-libtorrent` (not the pyenv one on PATH).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Upper bound for any single wait on a download or a seeder becoming ready.
pub const LONG_WAIT: Duration = Duration::from_secs(120);

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

/// Run `peer` with the arguments to completion (bounded by [`LONG_WAIT`]).
pub fn run_peer<S: AsRef<OsStr>>(args: &[S]) -> std::process::Output {
    let mut cmd = Command::new(peer_bin());
    cmd.args(args);
    run_bounded("peer", cmd, LONG_WAIT)
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

/// A process started by a test; killed (by its own handle) and reaped on drop.
/// Its stdout and stderr are collected in the background; if the test panics
/// they are printed when the guard drops.
pub struct Child {
    name: String,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Child {
    /// Start `cmd` with piped stdin/stdout/stderr. Panics if it cannot start.
    pub fn spawn(name: &str, mut cmd: Command) -> Child {
        // Tests never contact the public DHT routers: every child runs
        // with PEER_DHT_BOOTSTRAP=none unless the test chose a value.
        if !cmd.get_envs().any(|(k, _)| k == DHT_ENV) {
            cmd.env(DHT_ENV, "none");
        }
        // Nor do they talk to the router: PEER_PORT_MAP=off unless the test
        // chose a value (the port-mapping tests, in their own namespaces).
        if !cmd.get_envs().any(|(k, _)| k == PORT_MAP_ENV) {
            cmd.env(PORT_MAP_ENV, "off");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(pump(out, Arc::clone(&stdout)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(pump(err, Arc::clone(&stderr)));
        }
        Child {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    /// Process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Close the child's stdin (the libtorrent seeder exits on EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Write to the child's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(data);
            let _ = s.flush();
        }
    }

    /// Everything written to stdout so far.
    pub fn stdout_bytes(&self) -> Vec<u8> {
        self.stdout.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Everything written to stderr so far.
    pub fn stderr_bytes(&self) -> Vec<u8> {
        self.stderr.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Stdout and stderr so far, as text (`\r` turned into newlines), for messages.
    pub fn output(&self) -> String {
        let out = String::from_utf8_lossy(&self.stdout_bytes()).replace('\r', "\n");
        let err = String::from_utf8_lossy(&self.stderr_bytes()).replace('\r', "\n");
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}\n--- end {} ---",
            self.name,
            tail(&out, 6000),
            self.name,
            tail(&err, 6000),
            self.name
        )
    }

    /// Whether `needle` was printed, on stdout or stderr, at any time (all
    /// of the output, not the tail [`output`](Child::output) shows).
    pub fn logged(&self, needle: &str) -> bool {
        String::from_utf8_lossy(&self.stdout_bytes()).contains(needle)
            || String::from_utf8_lossy(&self.stderr_bytes()).contains(needle)
    }

    /// Wait (bounded) until `needle` appears on stdout or stderr. Returns false on
    /// timeout or if the process exits first without printing it.
    pub fn wait_for_output(&mut self, needle: &str, limit: Duration) -> bool {
        let has = |c: &Child| {
            String::from_utf8_lossy(&c.stdout_bytes()).contains(needle)
                || String::from_utf8_lossy(&c.stderr_bytes()).contains(needle)
        };
        let deadline = Instant::now() + limit;
        loop {
            if has(self) {
                return true;
            }
            if self.try_status().is_some() {
                self.join_readers();
                return has(self);
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait (bounded) for the process to exit. `None` if it is still running at the limit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.try_status() {
                self.join_readers();
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Kill the process (by its own handle) and reap it.
    pub fn kill(&mut self) {
        self.stdin = None;
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        self.join_readers();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

fn pump<R: Read + Send + 'static>(
    mut r: R,
    sink: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut s) = sink.lock() {
                        s.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    })
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A scratch directory, removed on drop unless `KEEP_TMP=1`.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh empty directory under the system temp dir, named after `tag`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "peer-interop-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TMP").is_some() {
            eprintln!("KEEP_TMP: leaving {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
/// Start `peer daemon --state STATE` on a free port (LSD and DHT off), wait
/// for its control API and return it with the API's port and token (from
/// `STATE/control.json`).
pub fn start_daemon_api(state: &Path) -> (Child, u16, String) {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("daemon").arg("--state").arg(state).args([
        "--port",
        &free_port().to_string(),
        "--no-lsd",
        "--no-dht",
    ]);
    let mut d = Child::spawn("peer daemon", cmd);
    assert!(
        d.wait_for_output("web interface: http://", LONG_WAIT),
        "{}",
        d.output()
    );
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("control.json")).unwrap_or_default(),
    )
    .unwrap_or(serde_json::Value::Null);
    let port = info["port"].as_u64().unwrap_or(0) as u16;
    let token = info["token"].as_str().unwrap_or("").to_string();
    (d, port, token)
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Poll `cond` every 100 ms until it is true (returns true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Write a file, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small multi-file directory `ROOT/NAME/...` (odd sizes, a nested dir, a 1-byte
/// file) and returns `ROOT/NAME`. Total about 600 KiB.
pub fn make_multi_file_dir(root: &Path, name: &str) -> PathBuf {
    let top = root.join(name);
    write_file(&top.join("alpha.bin"), &pseudo_random(300_001, 1));
    write_file(
        &top.join("docs/readme.txt"),
        b"hello from the peer interop tests\n",
    );
    write_file(&top.join("docs/deep/beta.dat"), &pseudo_random(262_144, 2));
    write_file(&top.join("docs/deep/one"), b"x");
    write_file(&top.join("gamma.bin"), &pseudo_random(54_321, 3));
    top
}

/// A single file `ROOT/NAME` of `len` pseudo-random bytes; returns its path.
pub fn make_single_file(root: &Path, name: &str, len: usize) -> PathBuf {
    let p = root.join(name);
    write_file(&p, &pseudo_random(len, 42));
    p
}

/// Every regular file under `dir`, relative path -> bytes.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let rd =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.is_file() {
                let rel = p
                    .strip_prefix(base)
                    .expect("under base")
                    .to_string_lossy()
                    .replace('\\', "/");
                let data =
                    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.insert(rel, data);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Assert that the file or directory `got` has exactly the bytes of `want`
/// (every file present, same length, same content; no extra files).
pub fn assert_same_data(want: &Path, got: &Path) {
    if want.is_file() {
        let a = std::fs::read(want).unwrap_or_else(|e| panic!("read {}: {e}", want.display()));
        let b = std::fs::read(got).unwrap_or_else(|e| panic!("read {}: {e}", got.display()));
        assert_eq!(a.len(), b.len(), "length of {}", got.display());
        assert!(a == b, "{} differs from {}", got.display(), want.display());
        return;
    }
    let a = read_tree(want);
    let b = read_tree(got);
    let names_a: Vec<_> = a.keys().collect();
    let names_b: Vec<_> = b.keys().collect();
    assert_eq!(
        names_a,
        names_b,
        "file lists of {} and {}",
        want.display(),
        got.display()
    );
    for (k, va) in &a {
        let vb = &b[k];
        assert_eq!(va.len(), vb.len(), "length of {k}");
        assert!(va == vb, "content of {k} differs");
    }
}

/// A parsed JSON value (a small parser, so the tests need no extra crates).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number (kept as f64 and, when integral, exactly as i128 too).
    Num(f64, Option<i128>),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object.
    Obj(BTreeMap<String, Json>),
}

impl Json {
    /// Parse a whole document (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    /// `obj[key]`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.get(key),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integral number.
    pub fn as_i128(&self) -> Option<i128> {
        match self {
            Json::Num(_, i) => *i,
            _ => None,
        }
    }

    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("JSON: {what} at byte {}", self.i))
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 64 {
            return self.err("too deep");
        }
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = match self.value(depth + 1)? {
                        Json::Str(k) => k,
                        _ => return self.err("object key is not a string"),
                    };
                    self.ws();
                    if !self.eat(":") {
                        return self.err("expected ':'");
                    }
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("}") {
                        return Ok(Json::Obj(m));
                    }
                    return self.err("expected ',' or '}'");
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("]") {
                        return Ok(Json::Arr(a));
                    }
                    return self.err("expected ',' or ']'");
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') if self.eat("true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(Json::Bool(false)),
            Some(b'n') if self.eat("null") => Ok(Json::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match t.parse::<f64>() {
                    Ok(f) => Ok(Json::Num(f, t.parse::<i128>().ok())),
                    Err(_) => self.err("bad number"),
                }
            }
            Some(_) => self.err("unexpected character"),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or("JSON: short \\u escape")?;
        let h = std::str::from_utf8(h).map_err(|_| "JSON: bad \\u escape")?;
        let v = u32::from_str_radix(h, 16).map_err(|_| "JSON: bad \\u escape")?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) && self.eat("\\u") {
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            char::from_u32(cp).unwrap_or('\u{FFFD}')
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "JSON: string is not UTF-8".to_string())
    }
}

/// A `transmission-cli` command that seeds or downloads `torrent` in
/// `download_dir` on peer port `port`, with its own config in `config_dir`:
/// quiet and local (no DHT, LPD, uTP, PEX or port mapping; plaintext, so our
/// peer can talk to it; no RPC). `program` lets a caller run it through a
/// wrapper (`ip netns exec`); pass `None` for plain `transmission-cli`.
pub fn transmission_cmd(
    program: Option<Command>,
    config_dir: &Path,
    download_dir: &Path,
    port: u16,
    torrent: &Path,
) -> Command {
    let settings = format!(
        r#"{{
  "dht-enabled": false,
  "lpd-enabled": false,
  "utp-enabled": false,
  "pex-enabled": false,
  "port-forwarding-enabled": false,
  "encryption": 0,
  "peer-port": {port},
  "peer-port-random-on-start": false,
  "rpc-enabled": false,
  "speed-limit-up-enabled": false,
  "speed-limit-down-enabled": false,
  "download-dir": "{}"
}}"#,
        download_dir.display()
    );
    write_file(&config_dir.join("settings.json"), settings.as_bytes());
    let mut cmd = program.unwrap_or_else(|| Command::new("transmission-cli"));
    cmd.arg("-g")
        .arg(config_dir)
        .arg("-w")
        .arg(download_dir)
        .args(["-p", &port.to_string(), "-et", "-M", "-U", "-D"])
        .arg(torrent);
    cmd
}

/// `peer create SRC -o OUT EXTRA...`; must succeed. Returns the info-hash
/// it prints (40 lowercase hex).
pub fn peer_create_torrent(src: &Path, out: &Path, extra: &[&str]) -> String {
    let mut cmd = Command::new(peer_bin());
    cmd.arg("create").arg(src).arg("-o").arg(out).args(extra);
    let out = run_bounded("peer create", cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .expect("peer create prints the info-hash")
        .to_string()
}

/// One request to a daemon's control API on 127.0.0.1:`port` with the bearer `token`:
/// the HTTP status (0 when the connection failed) and the JSON body (`Null` when it is
/// not JSON). Reads with a 20 s timeout.
pub fn control_api(
    port: u16,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, serde_json::Value::Null);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(req.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let v = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("null"))
        .unwrap_or(serde_json::Value::Null);
    (code, v)
}
