"""The one small interface every kind of caja root implements.

Paths given to a Storage are relative to the caja root, with `/` between
parts. Each part is checked before anything is touched: `..`, `.`, empty
parts, separators and drive letters are refused, so a name read from a caja
can never lead outside it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import OutsideRoot

_BAD_PART = re.compile(r"[\\/:\x00]")


class Entry(NamedTuple):
    name: str
    is_dir: bool
    # None where the listing does not give it for free (a local POSIX folder).
    size: int | None = None
    mtime_ns: int | None = None
    # a link whose target is outside the root: listed so that it can be refused by name
    outside: bool = False


class HeldOpen(PermissionError):
    """A file another program has open (a sharing violation): worth retrying, where a plain
    access denied is not."""


class Storage(ABC):
    """A caja root: list a folder, read files, and write the catalogs folder."""

    #: the root as the user gave it, for messages
    display: str

    @abstractmethod
    def list(self, rel: str = "") -> list[Entry]:
        """The entries of folder `rel`; FileNotFoundError when it does not exist."""

    @abstractmethod
    def read(self, rel: str, limit: int | None = None) -> bytes:
        """The bytes of file `rel`; OSError(EFBIG) when it holds more than `limit` bytes."""

    @abstractmethod
    def read_range(self, rel: str, offset: int, length: int | None = None) -> bytes:
        """Bytes of file `rel` from `offset`: `length` of them, or to the end (an append-only ledger's new part)."""

    def read_many(self, rels: list[str], limit: int | None = None) -> Iterator[tuple[str, bytes | OSError]]:
        """Files in the order given, each with its bytes or the OSError that stopped its read.
        One after the other here; an SMB root reads several at once, since each file costs round trips."""
        for rel in rels:
            yield rel, self._read_or_error(rel, limit)

    def _read_or_error(self, rel: str, limit: int | None) -> bytes | OSError:
        try:
            return self.read(rel, limit)
        except OSError as exc:
            return exc

    def forget(self) -> None:
        """Drops the connection the root holds, after a failure, so the next call reconnects. Nothing to drop locally."""

    # The writes of the catalog push. A caja's catalogs/ folder is the only place written.

    @abstractmethod
    def read_head(self, rel: str, length: int) -> bytes:
        """The first `length` bytes of file `rel` (fewer if it is shorter)."""

    @abstractmethod
    def size(self, rel: str) -> int | None:
        """The size of file `rel`, None when it does not exist."""

    @abstractmethod
    def makedirs(self, rel: str) -> None:
        """Creates folder `rel` and its parents inside the root."""

    @abstractmethod
    def write_atomic(self, rel: str, data: bytes) -> None:
        """Writes `data` under a temporary name in the same folder, flushes it, then renames it over `rel`."""

    @abstractmethod
    def append(self, rel: str, data: bytes, at: int) -> int:
        """Cuts file `rel` back to `at` bytes (dropping what a killed writer left), appends `data`, flushes; returns the new size.
        ShortFile, with nothing written, when the file holds fewer than `at` bytes (a missing one holds none):
        appending there would leave a gap. Its size comes with the open, so checking costs no extra step."""

    @abstractmethod
    def remove(self, rel: str) -> None:
        """Deletes file `rel`; a file already gone is fine."""


def split_rel(rel: str) -> list[str]:
    """The parts of a relative path, each checked to stay inside the root."""
    if rel in ("", "."):
        return []
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", "..") or _BAD_PART.search(part):
            raise OutsideRoot(f"path {rel!r} is refused: {part!r} could lead outside the caja root.")
    return parts
