"""Catalogs in a caja folder (SPEC §1, "Catalogs"): the canonical form and the reader.

Standard library only: a point of sale reads its catalogs with
`read_catalog(root, name)`. The main server uses the same code, through its
storage, to know what a caja holds.

The reader follows SPEC's algorithm exactly: the manifest, then the snapshot
it names, then exactly the first `journal_bytes` bytes of the journal it
names, each line applied in order. It reads nothing the manifest does not name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

MANIFEST = "manifest.json"
FOLDER = "catalogs"
KNOWN_KEYS = {
    "products": "code",
    "groups": "code",
    "customers": "id",
    "sellers": "code",
    "payment_methods": "code",
    "taxes": "code",
    "loyalty_balances": "customer",
}


class CatalogError(Exception):
    """A caja's catalog cannot be read as its manifest says; the message says which file and why."""


def canonical(record: dict) -> str:
    """One record as SPEC's canonical JSON: sorted keys, compact, UTF-8 kept."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_set_sha256(canonical_by_key: dict[str, str]) -> str:
    """sha256 of the canonical record set: records sorted by key (as a string), joined with newlines."""
    h = hashlib.sha256()
    first = True
    for key in sorted(canonical_by_key):
        if not first:
            h.update(b"\n")
        h.update(canonical_by_key[key].encode("utf-8"))
        first = False
    return h.hexdigest()


@dataclass
class CatalogView:
    """A catalog as a reader sees it."""

    name: str
    key: str
    version: int
    records: dict[str, dict] = field(default_factory=dict)  # key value (as a string) -> record
    sha256: str = ""

    def canonical(self) -> dict[str, str]:
        return {k: canonical(r) for k, r in self.records.items()}


def _file(folder: str, name: str) -> str:
    return os.path.join(folder, FOLDER, name)


def _local_reader(root: str | os.PathLike) -> Callable[[str, int | None], bytes]:
    root = os.fspath(root)

    def read(name: str, length: int | None) -> bytes:
        with open(_file(root, name), "rb") as f:
            return f.read() if length is None else f.read(length)

    return read


def _checked_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith(".") or ".." in name:
        raise CatalogError(f"manifest names {what} {name!r}, which is not a plain file name in {FOLDER}/")
    return name


def read_manifest(read: Callable[[str, int | None], bytes]) -> dict:
    try:
        manifest = json.loads(read(MANIFEST, None).decode("utf-8"))
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise CatalogError(f"{FOLDER}/{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != 1 or not isinstance(manifest.get("catalogs"), dict):
        raise CatalogError(f"{FOLDER}/{MANIFEST} is not a format 1 manifest")
    return manifest


def read_from(read: Callable[[str, int | None], bytes], name: str, manifest: dict | None = None, verify: bool = True) -> CatalogView:
    """The reader, over any way of reading a file of catalogs/ (a name and how many bytes, None for all)."""
    manifest = manifest if manifest is not None else read_manifest(read)
    entry = manifest["catalogs"].get(name)
    if not isinstance(entry, dict):
        raise CatalogError(f"{FOLDER}/{MANIFEST} has no catalog {name!r}")
    try:
        key, version, journal_bytes = entry["key"], int(entry["version"]), int(entry["journal_bytes"])
        snapshot_name = _checked_name(entry["snapshot"], "snapshot")
        journal_name = _checked_name(entry["journal"], "journal")
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"{FOLDER}/{MANIFEST}: the entry of {name!r} is incomplete ({exc})") from None
    if journal_bytes < 0:
        raise CatalogError(f"{FOLDER}/{MANIFEST}: the entry of {name!r} says journal_bytes {journal_bytes}")
    expected = entry.get("sha256")
    if verify and not isinstance(expected, str):
        raise CatalogError(f"{FOLDER}/{MANIFEST}: the entry of {name!r} has no sha256 to check the catalog against")
    snapshot = _json(_named(read, snapshot_name, None), snapshot_name)
    records = {}
    try:
        for record in snapshot["records"]:
            records[str(record[key])] = record
    except (KeyError, TypeError, IndexError) as exc:
        raise CatalogError(f"{FOLDER}/{snapshot_name} is not a snapshot of records keyed by {key!r} ({type(exc).__name__}: {exc})") from None
    journal = _named(read, journal_name, journal_bytes) if journal_bytes else b""
    if len(journal) < journal_bytes:
        raise CatalogError(f"{FOLDER}/{journal_name} holds {len(journal)} bytes, the manifest says {journal_bytes}")
    # One JSON object a line, a line ending at \n only (a \r is JSON whitespace).
    for n, line in enumerate(journal.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            op = _json(line, f"{journal_name} line {n}")
            if op["op"] == "upsert":
                records[str(op["record"][key])] = op["record"]
            elif op["op"] == "delete":
                records.pop(str(op["key"]), None)
            else:
                raise ValueError(f"unknown op {op['op']!r}")
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CatalogError(f"{FOLDER}/{journal_name} line {n} cannot be applied ({exc})") from None
    view = CatalogView(name=name, key=key, version=version, records=records)
    try:
        view.sha256 = record_set_sha256(view.canonical())
    except (UnicodeEncodeError, ValueError, TypeError) as exc:  # half a UTF-16 character; a record no JSON holds
        raise CatalogError(f"catalog {name!r} holds a record that is not text ({exc})") from None
    if verify and view.sha256 != expected:
        raise CatalogError(f"catalog {name!r} does not match its manifest's sha256: the folder was changed by hand or is damaged")
    return view


def _named(read: Callable[[str, int | None], bytes], file_name: str, length: int | None) -> bytes:
    """A file the manifest names; its being missing is damage, not a caja with no catalogs yet."""
    try:
        return read(file_name, length)
    except FileNotFoundError:
        raise CatalogError(f"{FOLDER}/{MANIFEST} names {file_name}, which is not there: the folder was changed by hand or is damaged") from None


def _json(raw: bytes, what: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CatalogError(f"{FOLDER}/{what} is not valid JSON ({exc})") from None


def read_catalog(root: str | os.PathLike, name: str, verify: bool = True) -> CatalogView:
    """A caja's catalog `name`, read from its folder `root` exactly as SPEC says.

    Raises FileNotFoundError when the caja has no catalogs yet (no manifest),
    CatalogError when the manifest or a file it names is missing, damaged or
    does not add up to the manifest's sha256.
    """
    return read_from(_local_reader(root), name, verify=verify)
