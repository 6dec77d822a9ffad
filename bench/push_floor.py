"""The floor of a partial push: SPEC's commit protocol for the same changes, written by hand.

What any implementation of a partial push must do at each caja, and nothing else: its lease taken,
the caja's manifest read and checked against what was committed there, `catalogs/` listed and the
files the manifest names sized, the changes appended to the journal and flushed, the pending
manifest recorded (the lease renewed with it), the new manifest written by temporary name, flushed,
renamed and its folder flushed, then the commit, the log row and the lease's release in one
transaction, and the log line. Plain `sqlite3` (WAL, synchronous=NORMAL, as the product's database)
in a file of its own, `os` calls, one caja after the other: no ORM, no threads, no deadlines, no
fallbacks. push_bench.py times it right after the product's partial push, on copies of the same
cajas' catalogs (the snapshot hard-linked, the manifest and journal copied), with the same lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lease (name TEXT PRIMARY KEY, holder TEXT, expires_at REAL);
CREATE TABLE IF NOT EXISTS caja_catalogs (caja TEXT PRIMARY KEY, manifest TEXT, manifest_sha TEXT,
                                          pending_manifest TEXT, pending_sha TEXT);
CREATE TABLE IF NOT EXISTS sync_log (id INTEGER PRIMARY KEY, at TEXT, caja TEXT, action TEXT, outcome TEXT,
                                     message TEXT, details TEXT);
"""


def prepare(cajas: list[Path], work: Path) -> list[Path]:
    """Copies of each caja's catalogs/ under `work` (not timed), and the floor's database recording
    their manifests as committed; returns the copies' catalogs folders."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = sqlite3.connect(work / "floor.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = wal")
    db.executescript(_SCHEMA)
    out = []
    for root in cajas:
        folder = work / root.name / "catalogs"
        folder.mkdir(parents=True)
        raw = (root / "catalogs" / "manifest.json").read_bytes()
        for name, entry in json.loads(raw)["catalogs"].items():
            os.link(root / "catalogs" / entry["snapshot"], folder / entry["snapshot"])  # never written: shared
            shutil.copyfile(root / "catalogs" / entry["journal"], folder / entry["journal"])
        (folder / "manifest.json").write_bytes(raw)
        db.execute("INSERT INTO caja_catalogs (caja, manifest, manifest_sha) VALUES (?, ?, ?)",
                   (str(folder), raw.decode(), hashlib.sha256(raw).hexdigest()))
        db.execute("INSERT INTO lease VALUES (?, NULL, 0)", (str(folder),))
        out.append(folder)
    db.close()
    return out


def push(folders: list[Path], work: Path, catalog: str, lines: bytes, version: int, sha256: str) -> float:
    """The floor's partial push of `lines` (the journal lines of the changes up to `version`) to every
    copy, one after the other; returns the seconds it took."""
    db = sqlite3.connect(work / "floor.sqlite", isolation_level=None)
    db.execute("PRAGMA synchronous = normal")
    log = open(work / "floor.log", "a", encoding="utf-8")
    started = time.perf_counter()
    for folder in folders:
        _one(db, log, folder, catalog, lines, version, sha256)
    seconds = time.perf_counter() - started
    log.close()
    db.close()
    return seconds


def _one(db, log, folder: Path, catalog: str, lines: bytes, version: int, sha256: str) -> None:
    caja, holder = str(folder), f"floor:{os.getpid()}"
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE lease SET holder = ?, expires_at = ? WHERE name = ? AND expires_at < ?",
               (holder, time.time() + 60, caja, time.time()))
    db.execute("COMMIT")
    raw = (folder / "manifest.json").read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    (committed,) = db.execute("SELECT manifest_sha FROM caja_catalogs WHERE caja = ?", (caja,)).fetchone()
    if committed != sha:
        raise RuntimeError(f"{folder}: the manifest is not the one committed")
    manifest = json.loads(raw)
    entry = manifest["catalogs"][catalog]
    sizes = {e.name: e.stat().st_size for e in os.scandir(folder) if e.is_file()}
    if entry["snapshot"] not in sizes or sizes.get(entry["journal"], 0) < entry["journal_bytes"]:
        raise RuntimeError(f"{folder}: a file the manifest names is missing or short")
    with open(folder / entry["journal"], "r+b") as f:
        f.seek(entry["journal_bytes"])
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    manifest["catalogs"][catalog] = dict(entry, version=version, journal_bytes=size, sha256=sha256)
    text = json.dumps(manifest, ensure_ascii=False)
    data = text.encode("utf-8")
    new_sha = hashlib.sha256(data).hexdigest()
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE lease SET expires_at = ? WHERE name = ? AND holder = ?", (time.time() + 60, caja, holder))
    db.execute("UPDATE caja_catalogs SET pending_manifest = ?, pending_sha = ? WHERE caja = ?", (text, new_sha, caja))
    db.execute("COMMIT")
    temp = folder / ".manifest.json.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, folder / "manifest.json")
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    message = f"pushed: {catalog} partial v{version}"
    details = json.dumps({"bytes_written": len(lines) + len(data)})
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE caja_catalogs SET manifest = pending_manifest, manifest_sha = pending_sha, "
               "pending_manifest = NULL, pending_sha = NULL WHERE caja = ? AND pending_sha = ?", (caja, new_sha))
    db.execute("INSERT INTO sync_log (at, caja, action, outcome, message, details) VALUES (?, ?, ?, ?, ?, ?)",
               (time.strftime("%Y-%m-%dT%H:%M:%S"), caja, "catalogs push", "ok", message, details))
    db.execute("UPDATE lease SET expires_at = 0 WHERE name = ? AND holder = ?", (caja, holder))
    db.execute("COMMIT")
    log.write(json.dumps({"caja": caja, "action": "catalogs push", "outcome": "ok", "event": message}) + "\n")
    log.flush()
