"""A folder mounted through FUSE by a process of its own, which a test freezes and thaws.

Frozen (SIGSTOP), every call into the mount blocks in the kernel, where no Python
code can interrupt it: what a CIFS or NFS mount does when the machine behind it
stops answering. That is the case syscafe-sync's deadlines exist for, on a path
that looks local (a caja folder or accounting.export_dir on a mounted share).

    mount = FrozenMount(backing, mountpoint).start()
    mount.freeze(); ...; mount.thaw()
    mount.freeze_at("release", ".products"); ...  # freezes itself when that file is closed
    mount.close()

Run as a script, this file is that process: `python frozen_mount.py BACKING MOUNTPOINT TRIGGER`,
a plain pass-through of BACKING onto MOUNTPOINT (mfusepy, over Debian's fuse3).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

FUSERMOUNT = "fusermount3"
# A file the serving process reads before each call: "OP NAME-PART" makes it stop itself (SIGSTOP)
# in the first call OP whose path holds NAME-PART. Outside the mount: reading it must not go through
# the frozen process.
TRIGGER = ".freeze-at"


def unavailable() -> str | None:
    """Why a FUSE mount cannot be made here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "there is no /dev/fuse on this machine"
    if shutil.which(FUSERMOUNT) is None:
        return f"{FUSERMOUNT} is not installed (Debian package fuse3)"
    try:
        import mfusepy  # noqa: F401  loads libfuse3 itself
    except (ImportError, OSError) as exc:
        return f"mfusepy cannot load libfuse ({exc}); install the test extras and Debian's fuse3"
    return None


class FrozenMount:
    def __init__(self, backing: Path, mountpoint: Path):
        self.backing, self.mountpoint = Path(backing), Path(mountpoint)
        self.trigger = self.mountpoint.parent / f"{self.mountpoint.name}{TRIGGER}"
        self.proc: subprocess.Popen | None = None

    def start(self, wait_s: float = 10.0) -> FrozenMount:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.trigger.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, __file__, str(self.backing), str(self.mountpoint), str(self.trigger)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + wait_s
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the FUSE process ended at once: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{self.mountpoint} was not mounted within {wait_s:g} s")
            time.sleep(0.02)
        return self

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def freeze_at(self, op: str, name_part: str) -> None:
        """The share stops answering in the first call `op` on a path holding `name_part`: an instant
        inside a command's work, not before it. Only "release" (a file's close, which the kernel sends
        without waiting) makes a real frozen share: a process whose call the FUSE server has already
        taken up waits it out, unkillable, where a CIFS client's calls stay killable as they are here
        while they wait in the kernel's queue. Stopped in the close of a file, the server leaves the
        next call on the mount (a rename, a write) waiting in that queue."""
        self.trigger.write_text(f"{op} {name_part}", encoding="utf-8")

    @property
    def frozen(self) -> bool:
        state = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state in ("T", "t")

    def thaw(self) -> None:
        self.trigger.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.proc is None:
            return
        self.thaw()
        subprocess.run([FUSERMOUNT, "-u", "-z", str(self.mountpoint)], capture_output=True)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        self.proc = None


def _serve(backing: str, mountpoint: str, trigger: str) -> None:
    from mfusepy import FUSE, FuseOSError, Operations

    def stop_if_asked(op: str, path: str) -> None:
        try:
            wanted_op, _, part = Path(trigger).read_text(encoding="utf-8").partition(" ")
        except FileNotFoundError:
            return
        if op == wanted_op and part in path:
            os.unlink(trigger)  # once
            os.kill(os.getpid(), signal.SIGSTOP)

    class PassThrough(Operations):
        """Every call made on BACKING's own file; errors are the OS's (mfusepy hands their errno to the kernel)."""

        use_ns = True

        def _p(self, path: str) -> str:
            return os.path.join(backing, path.lstrip("/"))

        def getattr(self, path, fh=None):
            st = os.fstat(fh) if fh is not None else os.lstat(self._p(path))
            out = {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks")}
            out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
            return out

        def readdir(self, path, fh):
            return [".", "..", *os.listdir(self._p(path))]

        def access(self, path, amode):
            if not os.access(self._p(path), amode):
                raise FuseOSError(errno.EACCES)

        def mkdir(self, path, mode):
            os.mkdir(self._p(path), mode)

        def rmdir(self, path):
            os.rmdir(self._p(path))

        def unlink(self, path):
            os.unlink(self._p(path))

        def rename(self, old, new):
            os.replace(self._p(old), self._p(new))

        def chmod(self, path, mode):
            os.chmod(self._p(path), mode)

        def utimens(self, path, times=None):
            os.utime(self._p(path), ns=times) if times else os.utime(self._p(path))

        def statfs(self, path):
            st = os.statvfs(self._p(path))
            return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                                                 "f_ffree", "f_favail", "f_flag", "f_namemax")}

        def open(self, path, flags):
            return os.open(self._p(path), flags)

        def create(self, path, mode, fi=None):
            return os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

        def read(self, path, size, offset, fh):
            return os.pread(fh, size, offset)

        def write(self, path, data, offset, fh):
            return os.pwrite(fh, data, offset)

        def truncate(self, path, length, fh=None):
            if fh is not None:
                os.ftruncate(fh, length)
            else:
                os.truncate(self._p(path), length)

        def flush(self, path, fh):
            return 0

        def fsync(self, path, datasync, fh):
            (os.fdatasync if datasync else os.fsync)(fh)

        def fsyncdir(self, path, datasync, fh):
            return 0

        def release(self, path, fh):
            os.close(fh)

    # mfusepy turns an OSError into the call's errno itself; each call first looks at the trigger.
    for op in [name for name, value in vars(PassThrough).items() if callable(value) and not name.startswith("_")]:
        setattr(PassThrough, op, _watched(op, getattr(PassThrough, op), stop_if_asked))
    FUSE(PassThrough(), mountpoint, foreground=True, nothreads=True)


def _watched(op, method, stop_if_asked):
    def call(self, path, *args):
        stop_if_asked(op, path)
        return method(self, path, *args)
    call.__name__ = method.__name__
    return call


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], sys.argv[3])
