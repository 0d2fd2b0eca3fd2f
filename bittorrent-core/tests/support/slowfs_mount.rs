//! The slow FUSE file system of the slow-disk tests (`slowfs.py`, beside
//! this file), mounted by a test and unmounted on drop (also when the test
//! fails): its process is waited for with a bound and killed, by its own
//! handle, only if it does not end. Shared by `bittorrent-core/tests/
//! slowdisk.rs` and `peer-cli/tests/slowdisk_kill.rs` (`#[path]`), so it
//! uses nothing but std.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's python3-fusepy imports only under the system interpreter.
const PYTHON: &str = "/usr/bin/python3";

/// `slowfs.py`, given the manifest directory of the test's crate.
pub fn script(manifest_dir: &str) -> PathBuf {
    let here = Path::new(manifest_dir);
    let own = here.join("tests/support/slowfs.py");
    if own.exists() {
        own
    } else {
        here.join("../bittorrent-core/tests/support/slowfs.py")
    }
}

/// A mounted slow file system.
pub struct SlowFs {
    mnt: PathBuf,
    child: Option<Child>,
}

/// Poll `cond` every 50 ms for at most `limit`.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

impl SlowFs {
    /// Mount `backing` at `mnt` through `script` (`slowfs.py`) with its
    /// `args`; `Err` says what is missing (no /dev/fuse, no fusepy, no
    /// fusermount3) or that the mount did not appear.
    pub fn mount(
        script: &Path,
        backing: &Path,
        mnt: &Path,
        args: &[&str],
    ) -> Result<SlowFs, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        let ok = |p: &str, a: &[&str]| {
            Command::new(p)
                .args(a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(PYTHON, &["-c", "import fusepy"]) {
            return Err("python3-fusepy is not installed".into());
        }
        if !ok("fusermount3", &["-V"]) {
            return Err("fusermount3 is not installed (fuse3)".into());
        }
        let child = Command::new(PYTHON)
            .arg(script)
            .arg(backing)
            .arg(mnt)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut fs = SlowFs {
            mnt: mnt.to_path_buf(),
            child: Some(child),
        };
        let needle = format!(" {} ", mnt.display());
        let mounted = within(Duration::from_secs(10), || {
            std::fs::read_to_string("/proc/self/mounts")
                .is_ok_and(|m| m.lines().any(|l| l.contains(&needle)))
        });
        if !mounted {
            let exited = fs.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            return Err(format!("the FUSE mount did not appear (exit: {exited:?})"));
        }
        Ok(fs)
    }
}

impl Drop for SlowFs {
    fn drop(&mut self) {
        let unmount = |flag: &str| {
            let _ = Command::new("fusermount3")
                .arg(flag)
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
        };
        unmount("-u");
        if let Some(mut c) = self.child.take() {
            if !within(Duration::from_secs(10), || {
                c.try_wait().ok().flatten().is_some()
            }) {
                // Still busy (a stalled write): lazy unmount, then end it.
                unmount("-uz");
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
