"""Local folders, mounted shares and Windows UNC paths, all through the operating system."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutsideRoot, ShortFile
from ..caja.layout import temp_name
from ..caja.writer import fsync_dir
from .base import Entry, Storage, split_rel


# Opening a name relative to an open folder, refusing a link (Linux, the BSDs): see read_many.
_DIR_FD = (os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
           and os.path.isdir("/proc/self/fd"))
# O_NONBLOCK: a FIFO or device under a voucher's name must not block the open.
_NOFOLLOW_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)

# What opening a link with O_NOFOLLOW fails with: ELOOP on Linux, EMLINK on FreeBSD.
_LINK_ERRNOS = (errno.ELOOP, errno.EMLINK)


class LocalStorage(Storage):
    def __init__(self, root: str):
        self.display = root
        self.root = Path(root)
        self._root_str = str(self.root)
        self._real_root: str | None = None
        # Folders (by rel) found inside the root, for this storage's life: one caja's pass. A push
        # stats, appends, writes and renames in one folder, and resolving it each time was a system
        # call per part of the path, for every file.
        self._inside: set[str] = set()
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

    def _check_folder(self, folder: str, rel: str) -> None:
        if rel not in self._inside:
            self._check_inside(folder, rel or ".")
            self._inside.add(rel)

    def list(self, rel: str = "") -> list[Entry]:
        folder = self._path(rel)
        if rel:
            self._check_folder(folder, rel)
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

    def _open(self, rel: str) -> tuple[int, str]:
        """A descriptor of regular file `rel`, checked to be inside the root."""
        path = self._path(rel)
        if not self._proc_fd:
            self._check_inside(path, rel)
        # O_NONBLOCK: a FIFO or device under a voucher's name must not block the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            if self._proc_fd:
                # Where the opened file really is, links on the way included: checked after
                # the open, so nothing swapped in between can lead the read outside.
                self._check_inside(path, rel, real=os.readlink(f"/proc/self/fd/{fd}"))
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
        except BaseException:
            os.close(fd)
            raise
        return fd, path

    def read(self, rel: str, limit: int | None = None) -> bytes:
        fd, path = self._open(rel)
        return _read_whole(fd, path, limit)

    def read_many(self, rels: list[str], limit: int | None = None) -> Iterator[tuple[str, bytes | OSError]]:
        """Where the OS can open a name relative to a folder without following a link, each
        folder is opened and checked once and its files opened from it: a name there is one
        plain part, so a file opened that way is inside the folder, and the per-file check of
        where it really is (a readlink) is not needed. A link is read the checked way."""
        if not _DIR_FD:
            yield from super().read_many(rels, limit)
            return
        folders: dict[str, int] = {}
        try:
            for rel in rels:
                folder_rel, _, name = rel.rpartition("/")
                split_rel(name)  # one plain part, or OutsideRoot
                try:
                    dir_fd = folders.get(folder_rel)
                    if dir_fd is None:
                        dir_fd = folders[folder_rel] = self._open_folder(folder_rel)
                    fd = os.open(name, _NOFOLLOW_READ, dir_fd=dir_fd)
                except OSError as exc:
                    # ELOOP: the name is a link; it may still lead inside the root.
                    yield rel, self._read_or_error(rel, limit) if exc.errno in _LINK_ERRNOS else exc
                    continue
                yield rel, self._read_opened(fd, rel, limit)
        finally:
            for dir_fd in folders.values():
                os.close(dir_fd)

    def _read_opened(self, fd: int, rel: str, limit: int | None) -> bytes | OSError:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return OSError(errno.EINVAL, "not a regular file", rel)
        except OSError as exc:
            os.close(fd)
            return exc
        try:
            return _read_whole(fd, rel, limit, st.st_size)
        except OSError as exc:
            return exc

    def _open_folder(self, rel: str) -> int:
        path = self._path(rel)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._check_inside(path, rel or ".", real=os.readlink(f"/proc/self/fd/{fd}"))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_head(self, rel: str, length: int) -> bytes:
        return self.read_range(rel, 0, length)

    def read_range(self, rel: str, offset: int, length: int | None = None) -> bytes:
        fd, _ = self._open(rel)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            return _read_up_to(fd, length)
        finally:
            os.close(fd)


    # --- writes (the catalog push) -------------------------------------------------------------

    def _write_path(self, rel: str) -> str:
        path = self._path(rel)
        self._check_folder(os.path.dirname(path), rel.rpartition("/")[0])
        if os.path.islink(path):
            raise OutsideRoot(f"{rel!r} in {self.display} is a link; the main server writes only plain files there.")
        return path

    def size(self, rel: str) -> int | None:
        try:
            return os.stat(self._write_path(rel)).st_size
        except FileNotFoundError:
            return None

    def makedirs(self, rel: str) -> None:
        path = self._path(rel)
        os.makedirs(path, exist_ok=True)
        self._check_folder(path, rel)

    def write_atomic(self, rel: str, data: bytes) -> None:
        path = self._write_path(rel)
        folder, name = os.path.split(path)
        temp = os.path.join(folder, temp_name(name))
        try:
            with _create_temp(temp) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            retry_sharing(lambda: os.replace(temp, path), rel)
        except BaseException:
            # A disk that filled up half way leaves no half file behind to fill it further.
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise
        fsync_dir(folder)

    def append(self, rel: str, data: bytes, at: int) -> int:
        path = self._write_path(rel)
        try:
            f = open(path, "r+b")
        except FileNotFoundError:
            if at:
                raise ShortFile(f"{rel} in {self.display} is missing; {at} bytes were expected") from None
            f = open(path, "w+b")
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < at:
                raise ShortFile(f"{rel} in {self.display} holds {size} bytes; {at} were expected")
            if size > at:
                f.truncate(at)  # a killed push's tail
            f.seek(at)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._write_path(rel))


def _create_temp(temp: str):
    """A new, empty file under `temp`, opened for writing. Whatever a killed push (or anyone) left
    there goes first: opened as it is, a link there would have the snapshot written through it to
    wherever it leads, outside the root, and then be renamed over the final name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, 0o666)
    except FileExistsError:
        os.remove(temp)  # a link itself, never what it leads to
        fd = os.open(temp, flags, 0o666)
    return os.fdopen(fd, "wb")


def _read_whole(fd: int, path: str, limit: int | None, size: int | None = None) -> bytes:
    """The whole file behind `fd`, which it closes; OSError(EFBIG) past `limit` bytes. os.read
    straight from the descriptor: a buffered file object costs more than a voucher's read.
    `size`, the size fstat gave, sizes the first read: asking for the limit's worth made
    the OS allocate and give back a megabyte for each 2 KB voucher."""
    try:
        data = _read_up_to(fd, None if limit is None else limit + 1, size)
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:
        raise OSError(errno.EFBIG, f"over the limit of {limit} bytes", path)
    return data


def _read_up_to(fd: int, length: int | None, expected: int | None = None) -> bytes:
    """Reads to the end of the file, or `length` bytes when it is longer. `expected` (the size the
    file had) sizes the first read, one byte over to see at once a file that grew since."""
    chunks, size = [], 0
    step = 1 << 20 if expected is None else expected + 1
    while length is None or size < length:
        chunk = os.read(fd, min(step, length - size) if length is not None else step)
        step = 1 << 20
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def retry_sharing(fn, rel: str, delays: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6), held=lambda exc: True):
    """Windows refuses to replace a file another program holds open (a sharing violation,
    WinError 5 or 32): retried with backoff, then refused with its reason. `held` tells a
    sharing violation from a plain access denied where the storage can (smb://)."""
    for delay in delays + (None,):
        try:
            return fn()
        except PermissionError as exc:
            if not held(exc):
                raise
            if delay is None:
                raise PermissionError(exc.errno, f"{rel} is held open by another program (sharing violation); tried {len(delays) + 1} times") from exc
            time.sleep(delay)


def is_unc(root: str) -> bool:
    return root.startswith("\\\\") or root.startswith("//")


def check_root_syntax(root: str) -> None:
    """UNC roots are reached through Windows itself; elsewhere they need a mount or smb://."""
    if is_unc(root) and sys.platform != "win32":
        from ..errors import UsageError
        from .smb_url import hide_userinfo

        raise UsageError(
            f"root {hide_userinfo(root)!r} is a Windows UNC path, which only Windows can open; on this system mount the share (mount -t cifs) and give the mount point as --path."
        )


# File systems whose files live on another machine: no reliable change events, hangs when it is off.
# fuse.gvfsd-fuse: a share opened from a Linux desktop's file manager (/run/user/UID/gvfs/smb-share:…).
NETWORK_FS = {"cifs", "smb3", "smbfs", "nfs", "nfs4", "9p", "fuse.sshfs", "afs", "ceph", "glusterfs", "davfs",
              "fuse.rclone", "fuse.gvfsd-fuse", "fuse.smbnetfs"}


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system holding `path` (Linux), None where the system does not say."""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best, fstype = "", None
    for line in lines:
        # id parent major:minor root mount-point options [optional fields] - fstype source super-options
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = fields[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, fstype = point, right.split()[0]
    return fstype


def on_local_disk(root: str) -> bool:
    """A folder on a disk of this machine; shares (smb://, UNC, network mounts) are not."""
    if "://" in root or is_unc(root):
        return False
    return filesystem_type(root) not in NETWORK_FS
