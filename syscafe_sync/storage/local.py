"""Local folders, mounted shares and Windows UNC paths, all through the operating system."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from ..errors import OutsideRoot
from .base import Entry, Storage, split_rel


class LocalStorage(Storage):
    def __init__(self, root: str):
        self.display = root
        self.root = Path(root)
        self._root_str = str(self.root)
        self._real_root: str | None = None
        # Linux tells where an open file really is; elsewhere the path is resolved before opening.
        self._proc_fd = os.path.isdir("/proc/self/fd")

    def _real(self) -> str:
        # Resolved lazily: resolving an unreachable share would block here.
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        return self._real_root

    def _path(self, rel: str) -> str:
        # Plain strings: pathlib costs more than the read itself on a 2 KB voucher.
        return os.path.join(self._root_str, *split_rel(rel))

    def _check_inside(self, path: str, rel: str, real: str | None = None) -> None:
        real = real or os.path.realpath(path)
        root = self._real()
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise OutsideRoot(f"{rel!r} in {self.display} is a link that leads outside the caja root ({real}); it is refused.")

    def list(self, rel: str = "") -> list[Entry]:
        folder = self._path(rel)
        if rel:
            self._check_inside(folder, rel)
        entries = []
        with os.scandir(folder) as it:
            for e in it:
                if e.is_symlink():
                    # A link is followed only when it stays inside the root.
                    try:
                        self._check_inside(e.path, f"{rel}/{e.name}" if rel else e.name)
                    except OutsideRoot:
                        entries.append(Entry(e.name, False, outside=True))
                        continue
                # No stat here: on POSIX it is one system call per file, and a re-run
                # with nothing new must cost a listing only; read() enforces the size limit.
                try:
                    entries.append(Entry(e.name, e.is_dir()))
                except FileNotFoundError:
                    continue  # a link renamed away between the listing and is_dir()
        return entries

    def read(self, rel: str, limit: int | None = None) -> bytes:
        path = self._path(rel)
        if not self._proc_fd:
            self._check_inside(path, rel)
        # O_NONBLOCK: a FIFO or device under a voucher's name must not block the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
        if self._proc_fd:
            # Where the opened file really is, links on the way included: checked after
            # the open, so nothing swapped in between can lead the read outside.
            try:
                self._check_inside(path, rel, real=os.readlink(f"/proc/self/fd/{fd}"))
            except BaseException:
                os.close(fd)
                raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        # os.read straight from the descriptor: a buffered file object costs more than a voucher's read.
        try:
            chunks, size = [], 0
            want = (limit + 1) if limit is not None else 1 << 20
            while True:
                chunk = os.read(fd, want - size if limit is not None else want)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size > limit:
                    raise OSError(errno.EFBIG, f"over the limit of {limit} bytes", str(path))
        finally:
            os.close(fd)
        return b"".join(chunks)


def is_unc(root: str) -> bool:
    return root.startswith("\\\\") or root.startswith("//")


def check_root_syntax(root: str) -> None:
    """UNC roots are reached through Windows itself; elsewhere they need a mount or smb://."""
    if is_unc(root) and sys.platform != "win32":
        from ..errors import UsageError

        raise UsageError(
            f"root {root!r} is a Windows UNC path, which only Windows can open; on this system mount the share (mount -t cifs) and give the mount point as --path."
        )
