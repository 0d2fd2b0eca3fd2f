#!/usr/bin/python3
"""A slow passthrough file system for the slow-disk test (tests/slowdisk.rs).

    slowfs.py BACKING MOUNTPOINT [--rate BYTES_PER_S] [--stall-every N --stall-secs S]
                                 [--stall-at N --stall-secs S] [--stall-file PATH]

Every operation is passed to BACKING. Writes are slowed:
  --rate R            each write sleeps len/R seconds (R bytes per second);
  --stall-every N     every Nth write first sleeps --stall-secs S seconds;
  --stall-at N        the Nth write (once) first sleeps --stall-secs S seconds;
  --stall-file PATH   while PATH exists, every write (and fsync) waits until it
                      is removed (a stall the test starts and ends itself).
Reads, stat, statfs and the rest are not slowed. Runs in the foreground,
multithreaded (a stalled write holds up only its caller), until unmounted.
Needs Debian's python3-fusepy (module `fusepy`) and fuse3/fusermount.
"""

import argparse
import errno
import os
import sys
import threading
import time


from fusepy import FUSE, FuseOSError, Operations


class SlowFS(Operations):
    def __init__(self, root, rate, stall_every, stall_secs, stall_file, stall_at=0):
        self.root = os.path.realpath(root)
        self.rate = rate
        self.stall_at = stall_at
        self.stall_every = stall_every
        self.stall_secs = stall_secs
        self.stall_file = stall_file
        self.writes = 0
        self.mu = threading.Lock()

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _slow(self, n):
        with self.mu:
            self.writes += 1
            k = self.writes
        if self.stall_every and k % self.stall_every == 0:
            time.sleep(self.stall_secs)
        if self.stall_at and k == self.stall_at:
            time.sleep(self.stall_secs)
        if self.stall_file:
            while os.path.exists(self.stall_file):
                time.sleep(0.05)
        if self.rate:
            time.sleep(n / self.rate)

    # -- files and directories ------------------------------------------
    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        return os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._p(path), uid, gid)

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._p(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                "st_nlink", "st_size", "st_uid", "st_blocks")
        d = {k: getattr(st, k) for k in keys}
        d["st_mtime"] = st.st_mtime_ns / 1e9
        return d

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def readlink(self, path):
        return os.readlink(self._p(path))

    def mknod(self, path, mode, dev):
        return os.mknod(self._p(path), mode, dev)

    def rmdir(self, path):
        return os.rmdir(self._p(path))

    def mkdir(self, path, mode):
        return os.mkdir(self._p(path), mode)

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def unlink(self, path):
        return os.unlink(self._p(path))

    def symlink(self, name, target):
        return os.symlink(target, self._p(name))

    def rename(self, old, new):
        return os.rename(self._p(old), self._p(new))

    def link(self, target, name):
        return os.link(self._p(name), self._p(target))

    def utimens(self, path, times=None):
        return os.utime(self._p(path), times)

    # -- file contents ----------------------------------------------------
    def open(self, path, flags):
        return os.open(self._p(path), flags)

    def create(self, path, mode, fi=None):
        # O_RDWR, not fusepy's example O_WRONLY: the kernel hands this handle
        # to every read through the same open file too (the engine reads what
        # it wrote to serve uploads), and reads on a write-only handle fail
        # with EBADF.
        return os.open(self._p(path), os.O_RDWR | os.O_CREAT, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def write(self, path, buf, offset, fh):
        self._slow(len(buf))
        return os.pwrite(fh, buf, offset)

    def truncate(self, path, length, fh=None):
        with open(self._p(path), "r+") as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return os.close(fh)

    def fsync(self, path, datasync, fh):
        if self.stall_file:
            while os.path.exists(self.stall_file):
                time.sleep(0.05)
        return os.fsync(fh)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("backing")
    ap.add_argument("mountpoint")
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--stall-every", type=int, default=0)
    ap.add_argument("--stall-at", type=int, default=0)
    ap.add_argument("--stall-secs", type=float, default=0)
    ap.add_argument("--stall-file", default=None)
    a = ap.parse_args()
    fs = SlowFS(a.backing, a.rate, a.stall_every, a.stall_secs, a.stall_file, a.stall_at)
    FUSE(fs, a.mountpoint, foreground=True, nothreads=False, big_writes=True, max_write=131072)


if __name__ == "__main__":
    sys.exit(main())
