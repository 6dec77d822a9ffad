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
        self._real_root: str | None = None
        # Folders already found to stay inside the root: one realpath per folder, not per file.
        self._inside: set[str] = set()

    def _real(self) -> str:
        # Resolved lazily: resolving an unreachable share would block here.
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        return self._real_root

    def _path(self, rel: str) -> Path:
        return self.root.joinpath(*split_rel(rel))

    def _check_inside(self, path: Path, rel: str) -> None:
        real = os.path.realpath(path)
        root = self._real()
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise OutsideRoot(f"{rel!r} in {self.display} is a link that leads outside the caja root ({real}); it is refused.")

    def list(self, rel: str = "") -> list[Entry]:
        folder = self._path(rel)
        self._check_folder(rel)
        entries = []
        with os.scandir(folder) as it:
            for e in it:
                if e.is_symlink():
                    # A link is followed only when it stays inside the root.
                    try:
                        self._check_inside(Path(e.path), f"{rel}/{e.name}" if rel else e.name)
                    except OutsideRoot:
                        entries.append(Entry(e.name, False, 0, 0, outside=True))
                        continue
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue  # renamed away between the listing and the stat
                entries.append(Entry(e.name, e.is_dir(), st.st_size, st.st_mtime_ns))
        return entries

    def _check_folder(self, rel_folder: str) -> None:
        if rel_folder and rel_folder not in self._inside:
            self._check_inside(self._path(rel_folder), rel_folder)
            self._inside.add(rel_folder)

    def read(self, rel: str, limit: int | None = None) -> bytes:
        path = self._path(rel)
        # O_NOFOLLOW guards only the last part: a linked folder on the way is checked here.
        self._check_folder(rel.rpartition("/")[0])
        # O_NONBLOCK: a FIFO or device under a voucher's name must not block the open.
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            # O_NOFOLLOW refused a link: allowed only when it stays inside.
            self._check_inside(path, rel)
            fd = os.open(path, flags & ~getattr(os, "O_NOFOLLOW", 0))
        if not hasattr(os, "O_NOFOLLOW"):
            self._check_inside(path, rel)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(fd, "rb") as f:
            if limit is None:
                return f.read()
            data = f.read(limit + 1)
            if len(data) > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
            return data


def is_unc(root: str) -> bool:
    return root.startswith("\\\\") or root.startswith("//")


def check_root_syntax(root: str) -> None:
    """UNC roots are reached through Windows itself; elsewhere they need a mount or smb://."""
    if is_unc(root) and sys.platform != "win32":
        from ..errors import UsageError

        raise UsageError(
            f"root {root!r} is a Windows UNC path, which only Windows can open; on this system mount the share and give the mount point, or use smb://HOST/SHARE/PATH."
        )
