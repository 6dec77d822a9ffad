"""smb:// roots: a Windows (or Samba) share reached with smbprotocol's `smbclient`, no mount.

Traps this module works around (../shared/NOTES.md):
- every smbclient call gets `port=` (and the rest of the session's arguments):
  the path-based session lookup otherwise dials 445;
- sizes and kinds come from the listing's own attributes: `DirEntry.stat()`
  re-dials without the port;
- smbprotocol has no per-request time-out, so a frozen server blocks a call
  for as long as it is frozen. Each remote step (a listing, a read, a write)
  runs within limits.smb_step_timeout_s (the pooled reads of read_many wait on
  each with that deadline); a step past it calls `forget()`, which closes the
  socket without a logoff: every call still waiting on it wakes up with an
  error, and the next pass dials afresh. The caller's own bounds (serve.py)
  still hold the caja as a whole.
- A replace onto a file another client has open fails with
  STATUS_SHARING_VIOLATION, or with STATUS_ACCESS_DENIED when that client
  shares delete access; only the first kind of denial, or the second while
  the file is open, is retried as "held open" (see _held).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import struct
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import smbclient
# smbclient's own compound layer (what its replace and stat use), not exported: pyproject.toml pins
# smbprotocol to the minor version these calls were written and tested against.
from smbclient._io import SMBDirectoryIO, SMBFileIO, SMBFileTransaction, set_info
from smbprotocol.connection import Connection
from smbprotocol.exceptions import (BadNetworkName, NoMoreFiles, NoSuchFile, SMBAuthenticationError, SMBException, SMBOSError,
                                    SMBResponseException)
from smbprotocol.file_info import FileAttributes, FileEndOfFileInformation, FileInformationClass, FileRenameInformation
from smbprotocol.header import NtStatus
from smbprotocol.open import CreateOptions, FilePipePrinterAccessMask, QueryDirectoryFlags, SMB2QueryDirectoryResponse

from .. import bounded
from ..caja.layout import temp_name
from ..errors import CredentialsRefused, OutsideRoot, ShortFile, Unreachable
from .base import Entry, HeldOpen, Storage, split_rel
from .local import retry_sharing
from .probe import tcp_answers, unresolved
from .smb_url import ENV_PASSWORD, Credentials, SmbUrl

# One smbclient connection cache per (caja root, user, password): dropping one caja's connection
# after a failure never cuts another caja's work in half, even when both are folders of one share,
# and a session opened with one password never answers for another (a wrong one given to
# `caja add` is checked, and refused). forget() replaces the cache with a new one, so that a dial
# stuck meanwhile, ending late, never leaves its connection where a later pass would take it.
_CACHES: dict[tuple, dict] = {}
_CACHES_LOCK = threading.Lock()
# One session set-up at a time per cache, whichever SmbStorage asks (two actions on one caja, a
# watch import beside a pass's push): two dials into one cache would each replace the other's
# connection half set up.
_SESSION_LOCKS: dict[tuple, threading.Lock] = {}

# What a server answers a session setup with when it will not take the user and password
# (the last three, not named by smbprotocol: account disabled, restricted, locked out).
_REFUSED_LOGON = {
    NtStatus.STATUS_LOGON_FAILURE, NtStatus.STATUS_WRONG_PASSWORD, NtStatus.STATUS_PASSWORD_EXPIRED,
    NtStatus.STATUS_ACCESS_DENIED, 0xC0000072, 0xC000006E, 0xC0000234,
}
# Answers smbprotocol raises without an errno that have one of their own.
_ERRNO = {NtStatus.STATUS_DISK_FULL: errno.ENOSPC}
# The server ended the session or the share's tree connect (an administrator, a configuration reload,
# a share removed and shared again, an expired session): every later request on the cached connection
# gets the same answer, which is about the connection, not about the file it names. 0xC000035C:
# STATUS_NETWORK_SESSION_EXPIRED, not named by smbprotocol.
_SESSION_GONE = {NtStatus.STATUS_NETWORK_NAME_DELETED, NtStatus.STATUS_USER_SESSION_DELETED, 0xC000035C}
# What one request carries on one credit. A read or write up to this size goes with its file's open and
# close in one compound request, one round trip; a bigger one takes smbclient's own loop.
_ONE_REQUEST = 65536


class SmbStorage(Storage):
    def __init__(self, url: SmbUrl, creds: Credentials, connect_timeout: float, read_workers: int, step_timeout: float,
                 config_path=None):
        self.url, self.display = url, url.root
        self._creds, self._config_path = creds, config_path
        self.connect_timeout, self.read_workers = connect_timeout, max(1, read_workers)
        self.step_timeout = step_timeout
        # The password hashed: the key lives as long as the process.
        secret = hashlib.sha256((creds.password or "").encode()).hexdigest()
        self._key = (url.key, (creds.user or "").lower(), secret)
        with _CACHES_LOCK:
            self._session_lock = _SESSION_LOCKS.setdefault(self._key, threading.Lock())

    def __repr__(self) -> str:
        return f"SmbStorage({self.display!r})"

    # --- the session -----------------------------------------------------------------------------

    @property
    def _cache(self) -> dict:
        with _CACHES_LOCK:
            return _CACHES.setdefault(self._key, {})

    def _kw(self) -> dict:
        return {"port": self.url.port, "username": self._creds.user, "password": self._creds.password,
                "connection_timeout": self.connect_timeout, "connection_cache": self._cache}

    def _session(self) -> None:
        """Dials, after a TCP probe, when there is no live connection; refused credentials are said plainly."""
        with self._session_lock:
            cache = self._cache
            conn = cache.get(f"{self.url.host}:{self.url.port}")
            if conn is not None and conn.transport.connected and conn.session_table:
                return
            if conn is not None:
                self._forget(cache)  # half set up (a dial cut off by a bound): never reused
                cache = self._cache
            # Half the bound: a machine on the LAN answers a connect in milliseconds, and the
            # plain reason must be ready before the caller's own bound on the listing runs out.
            probe = self.connect_timeout / 2
            if not tcp_answers(self.url.host, (self.url.port,), probe):
                # Unreachable, not OSError, here and below: a lost caja is never taken for one bad file.
                why = unresolved(self.url.host)
                if why:
                    # Typical on Linux: a caja's Windows machine name (NetBIOS) is not in DNS.
                    raise Unreachable(f"the host name {self.url.host!r} of {self.display} is not found ({why}); write the "
                                      f"machine's IP address in the root instead (smb://user@192.168.1.12/…), or add "
                                      f"the name to the network's DNS or to this machine's hosts file")
                raise Unreachable(f"{self.url.host} does not answer on TCP port {self.url.port} "
                                  f"within {probe:g} s; check that the machine is on and shares files")
            self._check_credentials()
            try:
                # A client GUID of its own, where smbclient gives every connection of the process the same one:
                # a server with multichannel (Samba 4.15 and later, Windows) takes connections of one GUID for
                # channels of one client and hands them to one of its processes, and with several cajas of one
                # server dialled at once a session setup was then, now and again, never answered (4 % of rounds
                # of six dials against Samba 4.17, none in 120 with a GUID each: a throw-away script).
                conn = Connection(uuid.uuid4(), self.url.host, self.url.port, require_signing=True)
                cache[f"{self.url.host}:{self.url.port}"] = conn  # in the cache first: forget() can close it mid-dial
                conn.connect(timeout=self.connect_timeout)
                smbclient.register_session(self.url.host, **dict(self._kw(), connection_cache=cache))
            except (SMBAuthenticationError, SMBResponseException) as exc:
                self._forget(cache)
                if isinstance(exc, SMBAuthenticationError) or getattr(exc, "status", None) in _REFUSED_LOGON:
                    raise CredentialsRefused(self._refused(_status_name(exc))) from None
                raise Unreachable(f"{self.display}: the SMB session could not be set up ({_status_name(exc)})") from None
            except (SMBException, OSError, ValueError) as exc:
                self._forget(cache)
                raise Unreachable(f"{self.display}: the SMB connection failed ({_clean(exc)})") from None
            if self._cache is not cache:
                # forget() ran while this dial was stuck (the caller's bound ran out): what it made goes too.
                self._forget(cache)
                raise Unreachable(f"{self.display}: the connection was dropped while it was being set up")

    def _check_credentials(self) -> None:
        where = f"{self._config_path or 'config.toml'} under [smb.hosts.\"{self.url.host}\"]"
        if not self._creds.user:
            raise CredentialsRefused(f"{self.display} names no user; write the root as smb://USER@{self.url.host}/… "
                                     f"or set username in {where}.")
        if not self._creds.password:
            raise CredentialsRefused(f"no password for user {self._creds.user!r} on {self.display}; put it in {where} "
                                     f"(password = \"…\") or in the environment variable {ENV_PASSWORD}.")

    def _refused(self, status: str) -> str:
        return (f"{self.url.host} refused user {self._creds.user!r} with the password from {self._creds.source} ({status}); "
                f"fix username/password under [smb.hosts.\"{self.url.host}\"] in {self._config_path or 'config.toml'} "
                f"or set {ENV_PASSWORD}.")

    def forget(self) -> None:
        """Drops the connection without a logoff (a frozen server would never answer it)."""
        self._forget(self._cache)

    def _forget(self, cache: dict) -> None:
        with _CACHES_LOCK:
            if _CACHES.get(self._key) is cache:
                del _CACHES[self._key]
        for conn in list(cache.values()):
            with contextlib.suppress(Exception):
                conn.disconnect(close=False)  # closing the socket wakes every call still waiting on it
        cache.clear()

    # --- paths and errors ------------------------------------------------------------------------

    def _path(self, rel: str) -> str:
        return "\\".join((self.url.unc, *split_rel(rel)))

    def _where(self, rel: str) -> str:
        return f"{self.display}/{rel}" if rel else self.display

    def _call(self, rel: str, fn):
        """One remote step, unbounded, with smbprotocol's errors turned into ours: OSError for a file,
        Unreachable for the connection."""
        self._session()
        try:
            return fn(self._path(rel))
        except SMBOSError as exc:
            self._check_session(exc, exc.ntstatus)
            raise _os_error(exc.ntstatus, exc.errno, exc.strerror, self._where(rel)) from None
        except SMBResponseException as exc:
            self._check_session(exc, exc.status)
            raise _os_error(exc.status, None, None, self._where(rel)) from None
        except (SMBException, ValueError) as exc:
            # A connection that broke under us: the caja is unreachable, not its file bad.
            raise Unreachable(f"{self.display}: the SMB connection was lost ({_clean(exc)})") from None

    def _check_session(self, exc: BaseException, status: int | None) -> None:
        """Unreachable, with the connection dropped, when the server ended the session or the tree:
        read as each file's own error, every voucher left in the pass was refused as unreadable,
        and the cached connection answered the same to the next pass too."""
        if status in _SESSION_GONE:
            self.forget()
            raise Unreachable(f"{self.display}: the server ended the session ({_status_name_of(status)}); "
                              f"the connection was dropped and the next pass dials afresh") from None
        if _caused_by(exc, BadNetworkName):
            # Not a folder that is not there yet (FileNotFoundError, which `caja add` takes as "no caja.json"
            # and registers): a share misspelt, or no longer shared, never serves anything. smbclient
            # answers it with the error of the DFS referral it then asks for, hence the chain.
            raise Unreachable(f"{self.url.host} has no share named {self.url.share!r} (STATUS_BAD_NETWORK_NAME); "
                              f"check the share's name in the root {self.display}, and that the folder is still shared") from None

    def _do(self, step: str, rel: str, fn):
        """One remote step within limits.smb_step_timeout_s; `step` names it in the message."""
        return self._bounded(lambda: self._call(rel, fn), f"{step} {rel or 'the root'}")

    def _bounded(self, fn, what: str):
        try:
            return bounded.call(fn, self.step_timeout, what)
        except bounded.TimedOut:
            raise self._timed_out(what) from None

    def _timed_out(self, what: str) -> Unreachable:
        # The step is still blocked on a socket nobody will answer: closing it wakes it up.
        self.forget()
        return Unreachable(f"{self.display}: {what} did not answer within {self.step_timeout:g} s "
                           f"(limits.smb_step_timeout_s); the connection was dropped and the next pass dials afresh")

    # --- reads -----------------------------------------------------------------------------------

    def list(self, rel: str = "") -> list[Entry]:
        def listing(path):
            infos = self._listing_compound(path)
            if infos is None:  # more than one answer's worth: the folder held open, asked until the end
                with SMBDirectoryIO(path, share_access="rwd", **self._kw()) as folder:
                    infos, flags = [], QueryDirectoryFlags.SMB2_RESTART_SCANS
                    tree = folder.fd.tree_connect
                    while True:
                        request, unpack = _query(folder.fd, flags)
                        got = unpack(folder.fd.connection.send(request, tree.session.session_id, tree.tree_connect_id))
                        if got is None:
                            break
                        infos += got
                        flags = 0
            out = []
            for name, attributes, size in infos:
                if name in (".", ".."):
                    continue
                if attributes & FileAttributes.FILE_ATTRIBUTE_REPARSE_POINT:
                    # A link: where it leads cannot be known from here, so it is refused by name.
                    out.append(Entry(name, False, outside=True))
                    continue
                is_dir = bool(attributes & FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
                out.append(Entry(name, is_dir, None if is_dir else size))
            return out

        return self._do("listing", rel, listing)

    def _listing_compound(self, path: str) -> list[tuple[str, int, int]] | None:
        """(name, attributes, size) of a folder's entries in one round trip: the open, a query, a second
        query that says there is no more, the close. None when the second found more (a folder of
        hundreds of files). smbclient.scandir took four round trips, and set up a file object for
        every entry."""
        raw = SMBDirectoryIO(path, share_access="rwd", **self._kw())
        transaction = SMBFileTransaction(raw)
        transaction += _query(raw.fd, QueryDirectoryFlags.SMB2_RESTART_SCANS)
        transaction += _query(raw.fd, 0)
        transaction.commit()
        first, more = transaction.results
        return None if more is not None else first or []

    def _open(self, path: str, mode: str):
        # share_access "rwd": reading never stops the POS from writing or renaming its files.
        return smbclient.open_file(path, mode=mode, buffering=0, share_access="rwd", **self._kw())

    def read(self, rel: str, limit: int | None = None) -> bytes:
        return self._bounded(lambda: self._read(rel, limit), f"reading {rel}")

    def _read(self, rel: str, limit: int | None) -> bytes:
        """read() without its bound: read_many's workers, whose results are waited on with it."""
        def reading(path):
            head, size = self._read_compound(path, 0, _ONE_REQUEST)
            if limit is not None and size > limit:
                raise OSError(errno.EFBIG, f"over the limit of {limit} bytes", self._where(rel))
            if size <= len(head):
                return head[:size]
            with self._open(path, "rb") as f:  # bigger than one request: read whole from one open
                return _read_exactly(f, f.fd.end_of_file)

        return self._call(rel, reading)

    def _read_compound(self, path: str, offset: int, length: int) -> tuple[bytes, int]:
        """(up to `length` bytes from `offset`, the file's size) in one round trip: open, read, close."""
        raw = SMBFileIO(path, mode="rb", share_access="rwd", **self._kw())
        transaction = SMBFileTransaction(raw)
        if length:
            transaction += raw.fd.read(offset, length, send=False)
        try:
            transaction.commit()
        except SMBOSError as exc:
            if exc.ntstatus != NtStatus.STATUS_END_OF_FILE:  # a read at or past the end
                raise
            return b"", raw.fd.end_of_file
        return (transaction.results[0] if length else b""), raw.fd.end_of_file  # the size: the open's own answer

    def _read_unbounded_or_error(self, rel: str, limit: int | None) -> bytes | OSError:
        try:
            return self._read(rel, limit)
        except OSError as exc:
            return exc

    def read_range(self, rel: str, offset: int, length: int | None = None) -> bytes:
        def reading(path):
            if length is None or length <= _ONE_REQUEST:
                data, size = self._read_compound(path, offset, _ONE_REQUEST if length is None else length)
                end = size if length is None else min(size, offset + length)
                if offset + len(data) >= end:
                    return data[:max(0, end - offset)]
            with self._open(path, "rb") as f:
                end = f.fd.end_of_file if length is None else min(f.fd.end_of_file, offset + length)
                f.seek(offset)
                return _read_exactly(f, max(0, end - offset))

        return self._do("reading", rel, reading)

    def read_head(self, rel: str, length: int) -> bytes:
        return self.read_range(rel, 0, length)

    def read_many(self, rels: list[str], limit: int | None = None) -> Iterator[tuple[str, bytes | OSError]]:
        """Several files read at once (each costs a few round trips), handed back in order,
        at most a few per worker ahead so memory stays bounded."""
        if len(rels) < 2 or self.read_workers < 2:
            yield from super().read_many(rels, limit)
            return
        self._bounded(self._session, "connecting")
        pool = ThreadPoolExecutor(max_workers=self.read_workers, thread_name_prefix="smb-read")
        ahead: deque = deque()
        todo = iter(rels)
        read = self._read_unbounded_or_error
        try:
            for rel in todo:
                ahead.append((rel, pool.submit(read, rel, limit)))
                if len(ahead) >= 2 * self.read_workers:
                    break
            while ahead:
                rel, fut = ahead.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    ahead.append((nxt, pool.submit(read, nxt, limit)))
                try:
                    # The deadline runs from when this file is waited for: the ones ahead of it were
                    # read meanwhile, so a server that stops answering costs one bound, not one per file.
                    got = fut.result(timeout=self.step_timeout)
                except FutureTimeout:
                    raise self._timed_out(f"reading {rel}") from None
                yield rel, got
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # --- writes (the catalog push) ---------------------------------------------------------------

    def _stat(self, path: str):
        st = smbclient.lstat(path, **self._kw())
        if st.st_file_attributes & FileAttributes.FILE_ATTRIBUTE_REPARSE_POINT:
            raise OutsideRoot(f"{path} is a link; the main server writes only plain files there.")
        return st

    def size(self, rel: str) -> int | None:
        try:
            return self._do("looking up", rel, lambda path: self._stat(path).st_size)
        except FileNotFoundError:
            return None

    def makedirs(self, rel: str) -> None:
        self._do("creating folder", rel, lambda path: smbclient.makedirs(path, exist_ok=True, **self._kw()))

    def write_atomic(self, rel: str, data: bytes) -> None:
        folder, _, name = rel.rpartition("/")
        temp = f"{folder}/{temp_name(name)}" if folder else temp_name(name)

        def creating(path):
            # "x": a new file. Opened to be overwritten, a link already under the temporary name would
            # have the file written to where it leads (another caja's folder of the same share).
            if len(data) > _ONE_REQUEST:
                with smbclient.open_file(path, mode="xb", buffering=0, **self._kw()) as f:
                    _write_all(f, data)
                    f.flush()
                return
            raw = SMBFileIO(path, mode="xb", **self._kw())
            transaction = SMBFileTransaction(raw)  # open, write, flush, close: one round trip
            if data:
                transaction += raw.fd.write(data, 0, send=False)
            transaction += raw.fd.flush(send=False)
            transaction.commit()

        def writing(path):
            try:
                creating(path)
            except SMBOSError as exc:
                if exc.ntstatus != NtStatus.STATUS_OBJECT_NAME_COLLISION:
                    raise
                # What a cut push left, or a link: removed (a link itself, never what it leads to), then
                # written afresh. Only then does this cost a round trip more.
                smbclient.remove(path, **self._kw())
                creating(path)

        def replacing(path):
            # The temporary file opened for delete, renamed over the final name, closed: one round trip
            # (smbclient.replace takes three, one of them to look for DFS referrals, which a caja's share has none of).
            src = SMBFileIO(self._path(temp), mode="r", share_access="rwd", desired_access=FilePipePrinterAccessMask.DELETE,
                            create_options=CreateOptions.FILE_OPEN_REPARSE_POINT, **self._kw())
            rename = FileRenameInformation()
            rename["replace_if_exists"] = True
            rename["file_name"] = "\\".join((*src.fd.file_name.split("\\")[:-1], name))
            transaction = SMBFileTransaction(src)
            set_info(transaction, rename)
            try:
                transaction.commit()
            except SMBOSError as exc:
                if exc.ntstatus == NtStatus.STATUS_ACCESS_DENIED and self._held(path):
                    raise HeldOpen(errno.EACCES, f"held open by another program ({_status_name(exc)} while it is open)",
                                   self._where(rel)) from None
                raise

        try:
            self._do("writing", temp, writing)
            retry_sharing(lambda: self._do("replacing", rel, replacing), rel, held=lambda exc: isinstance(exc, HeldOpen))
        except OSError:
            # A file that could not be written or replaced (disk full, access denied, held open): the
            # temporary file goes. A lost connection or a step past its bound leaves it where it is: a
            # remove would wait on the same dead server, and the next push deletes what a cut push left.
            with contextlib.suppress(OSError, Unreachable):
                self.remove(temp)
            raise

    def _held(self, path: str) -> bool:
        """Whether another program has `path` open: an open that shares nothing then meets a sharing
        violation. Asked only after a replace was denied, since for the round trip it lasts it makes
        a reader opening the file wait its turn too."""
        try:
            with smbclient.open_file(path, mode="rb", buffering=0, share_access=None, **self._kw()):
                return False
        except SMBOSError as exc:
            return exc.ntstatus == NtStatus.STATUS_SHARING_VIOLATION

    def append(self, rel: str, data: bytes, at: int) -> int:
        def appending(path):
            try:
                f = smbclient.open_file(path, mode="r+b", buffering=0, **self._kw())
            except SMBOSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                if at:
                    raise ShortFile(f"{self._where(rel)} is missing; {at} bytes were expected") from None
                f = smbclient.open_file(path, mode="w+b", buffering=0, **self._kw())
            try:
                size = f.fd.end_of_file  # the size the open's answer carried: no round trip
                if size < at:
                    raise ShortFile(f"{self._where(rel)} holds {size} bytes; {at} were expected")
                if len(data) > _ONE_REQUEST:
                    if size > at:
                        f.truncate(at)
                    f.seek(at)
                    _write_all(f, data)
                    f.flush()
                    return f.tell()
                # Cut back (a killed push's tail, only when there is one), write, flush, close: one round trip.
                transaction = SMBFileTransaction(f)
                if size > at:
                    eof = FileEndOfFileInformation()
                    eof["end_of_file"] = at
                    set_info(transaction, eof)
                if data:
                    transaction += f.fd.write(data, at, send=False)
                transaction += f.fd.flush(send=False)
                f.close(transaction=transaction)
                transaction.commit()
                return at + len(data)
            finally:
                if not f.closed:
                    with contextlib.suppress(Exception):
                        f.close()

        return self._do("appending to", rel, appending)

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._do("removing", rel, lambda path: smbclient.remove(path, **self._kw()))


def _query(fd, flags: int):
    """(a directory query of every name, what reads its answer: [(name, attributes, size)], None at the end)."""
    request, _ = fd.query_directory("*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION, flags=flags, send=False)

    def entries(sent) -> list[tuple[str, int, int]] | None:
        try:
            response = fd.connection.receive(sent)
        except (NoMoreFiles, NoSuchFile):  # the end of the listing (MS-SMB2 3.3.5.18 names both)
            return None
        answer = SMB2QueryDirectoryResponse()
        answer.unpack(response["data"].get_value())
        return _entries(answer["buffer"].get_value())

    return request, entries


def _entries(buffer: bytes) -> list[tuple[str, int, int]]:
    """The FILE_ID_FULL_DIR_INFORMATION records of an answer (MS-FSCC 2.4.18), read with struct:
    smbprotocol's own parser took some 0.15 ms an entry, most of listing a day of vouchers."""
    out, offset = [], 0
    while offset + _DIR_INFO_NAME <= len(buffer):
        following, = struct.unpack_from("<I", buffer, offset)
        size, = struct.unpack_from("<q", buffer, offset + 40)
        attributes, name_length = struct.unpack_from("<II", buffer, offset + 56)
        start = offset + _DIR_INFO_NAME
        out.append((buffer[start:start + name_length].decode("utf-16-le"), attributes, size))
        if not following:
            break
        offset += following
    return out


_DIR_INFO_NAME = 80  # where a record's name starts: after sizes, times, attributes, lengths and the file id


def _read_exactly(f, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = f.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_all(f, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def _caused_by(exc: BaseException | None, kind: type) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _status_name(exc) -> str:
    return _status_name_of(getattr(exc, "status", None) or getattr(exc, "ntstatus", None)) or _clean(exc)


def _status_name_of(status: int | None) -> str | None:
    for name, value in vars(NtStatus).items():
        if name.startswith("STATUS_") and value == status:
            return name
    return None if status is None else f"NTSTATUS {status:#010x}"


def _clean(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _os_error(status: int | None, err: int | None, strerror: str | None, where: str) -> OSError:
    """The plain OSError subclass (FileNotFoundError, PermissionError, …) the rest of the code catches."""
    name = _status_name_of(status) or "no status"
    if status == NtStatus.STATUS_SHARING_VIOLATION:
        return HeldOpen(errno.EACCES, f"held open by another program ({name})", where)
    if status == NtStatus.STATUS_ACCESS_DENIED:
        return PermissionError(errno.EACCES, f"access denied ({name}); check this user's rights on the share and the folder", where)
    if err:
        return OSError(err, strerror, where)
    return OSError(_ERRNO.get(status, errno.EIO), name, where)
