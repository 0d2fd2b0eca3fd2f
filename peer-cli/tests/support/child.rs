//! A child process that is killed and reaped on drop, its output collected.

use super::{DHT_ENV, PORT_MAP_ENV};
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
