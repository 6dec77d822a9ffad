"""Pushing catalogs to cajas (SPEC §1 "Catalogs", `catalogs push`).

A push writes files under names no reader uses yet, then the manifest by
rename: the one commit point. A push cut off at any instant leaves every
reader on the previous manifest, whole; the next push repairs what is left.

The main server knows what a caja holds without reading it back: the manifest
it committed there (and its sha256) is kept in `CajaCatalogs`. A partial push
checks that the caja's manifest is still byte for byte that one, and, from one
listing of `catalogs/`, that the files it names are there at the sizes written
(a snapshot deleted or cut under a good manifest would leave the POS without
that catalog however many partial pushes followed). Then it only appends the
changes since the version the caja has, and writes a new manifest. Anything
else (first push, folder wiped, manifest changed by hand, a named file missing
or cut) makes that catalog's push a total one, said in the result and the log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections import namedtuple
from dataclasses import dataclass, field

from . import catalogs, registry, synclog
from .caja import catalog as fmt
from .config import Config
from .db import write_transaction
from .db.models import CajaCatalogs, utcnow
from .db.prepared import Prepared, slot
from .errors import CredentialsRefused, ShortFile, SyncError, Unreachable, UsageError
from .serve import CajaJob, in_pool, serve_caja
from .storage import Storage

MODES = ("partial", "total", "replace")

FOLDER = fmt.FOLDER
MANIFEST = f"{FOLDER}/{fmt.MANIFEST}"
# A journal is folded into a new snapshot once it holds more entries than this share of the records.
COMPACT_RATIO = 0.10
COMPACT_MIN = 100

# What the main server knows of a caja's catalogs: read once and written twice at every caja a push
# changes, so kept compiled (db/prepared.py).
_State = namedtuple("_State", "manifest manifest_sha extras pending_manifest pending_sha pending_extras")
_READ_STATE = Prepared(lambda: CajaCatalogs.select(*(getattr(CajaCatalogs, f) for f in _State._fields)).where(
    CajaCatalogs.caja == slot("caja")))
_PENDING = Prepared(lambda: CajaCatalogs.insert(
    caja=slot("caja"), pending_manifest=slot("manifest"), pending_sha=slot("sha"), pending_extras=slot("extras"),
    updated_at=slot("now", CajaCatalogs.updated_at),
).on_conflict(conflict_target=[CajaCatalogs.caja], update={
    CajaCatalogs.pending_manifest: slot("manifest"), CajaCatalogs.pending_sha: slot("sha"),
    CajaCatalogs.pending_extras: slot("extras"), CajaCatalogs.updated_at: slot("now", CajaCatalogs.updated_at)}))
# Only over our own pending row: a push that took over meanwhile has its own, and the next push
# adopts whichever manifest is at the caja.
_COMMITTED = Prepared(lambda: CajaCatalogs.update(
    manifest=slot("manifest"), manifest_sha=slot("sha"), extras=slot("extras"), pending_manifest=None, pending_sha=None,
    pending_extras=None, updated_at=slot("now", CajaCatalogs.updated_at),
).where((CajaCatalogs.caja == slot("caja")) & (CajaCatalogs.pending_sha == slot("sha"))))


@dataclass
class CatalogOutcome:
    catalog: str
    mode: str  # what was done: partial, total, replace, compact, unchanged
    version: int
    upserts: int = 0
    deletes: int = 0
    fallback: str | None = None  # why a partial push became a total one
    gain: list[str] = field(default_factory=list)  # dry run: keys the caja would gain, change, lose
    change: list[str] = field(default_factory=list)
    lose: list[str] = field(default_factory=list)

    def as_dict(self, dry_run: bool) -> dict:
        out = {"catalog": self.catalog, "mode": self.mode, "version": self.version, "upserts": self.upserts,
               "deletes": self.deletes, "fallback": self.fallback}
        if dry_run:
            out.update(gain=self.gain, change=self.change, lose=self.lose)
        return out


@dataclass
class CajaPush:
    caja: str
    mode: str
    dry_run: bool = False
    outcome: str = "ok"
    message: str = ""
    catalogs: list[CatalogOutcome] = field(default_factory=list)
    bytes_written: int = 0
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "caja": self.caja, "outcome": self.outcome, "message": self.message, "mode": self.mode,
            "dry_run": self.dry_run,
            "version": {c.catalog: c.version for c in self.catalogs},
            "upserts": sum(c.upserts for c in self.catalogs), "deletes": sum(c.deletes for c in self.catalogs),
            "bytes_written": self.bytes_written, "duration_s": round(self.duration_s, 3),
            "catalogs": [c.as_dict(self.dry_run) for c in self.catalogs],
        }


@dataclass
class PushResult:
    mode: str
    dry_run: bool
    results: list[CajaPush]

    @property
    def failed(self) -> bool:
        return any(r.outcome != "ok" for r in self.results)

    def as_dict(self) -> dict:
        return {"action": "catalogs push", "mode": self.mode, "dry_run": self.dry_run, "results": [r.as_dict() for r in self.results]}


class MainCatalogs:
    """The main server's catalogs for one push, shared by every caja.

    Only the catalog rows are read up front: a partial push needs just the
    changes since a version (an indexed query), and the whole record set is
    read only when a snapshot or a caja's own records need it. A load that
    commits meanwhile moves a catalog's version; what is cached for it is then
    dropped, so what one caja gets always belongs to one version.

    Cajas are pushed side by side: the lock makes the first one to ask read or
    build a thing, and the others wait for it and take it, instead of each
    reading 50,000 records and building the same snapshot at once.
    """

    def __init__(self, names: list[str]):
        self._lock = threading.RLock()
        self.catalogs = {n: catalogs.get(n) for n in names}
        self._live: dict[str, dict[str, str]] = {}
        self._changes: dict[tuple[str, int], list] = {}
        self._snapshots: dict[tuple[str, str], bytes] = {}

    def _moved(self, name: str, cat) -> None:
        if cat.version != self.catalogs[name].version or cat.sha256 != self.catalogs[name].sha256:
            self._live.pop(name, None)
            self._changes = {k: v for k, v in self._changes.items() if k[0] != name}
        self.catalogs[name] = cat

    def live(self, name: str) -> dict[str, str]:
        with self._lock:
            if name not in self._live:
                cat, records = catalogs.view(name)
                self._moved(name, cat)
                self._live[name] = records
            return self._live[name]

    def changes(self, name: str, since: int) -> list[tuple[int, str, bool, str | None]]:
        """(version, key, deleted, data) of the records changed after `since`, in version order."""
        with self._lock:
            return self._changes_since(name, since)

    def _changes_since(self, name: str, since: int) -> list[tuple[int, str, bool, str | None]]:
        for _ in range(5):
            key = (name, since)
            if key not in self._changes:
                self._changes[key] = catalogs.changes_since(name, since)
            rows = self._changes[key]
            if not rows or rows[-1][0] <= self.catalogs[name].version:
                return rows
            self._moved(name, catalogs.get(name))  # a load committed after we read the catalog row
        raise SyncError(f"catalog {name!r} kept changing while it was pushed; push again.")

    def snapshot(self, name: str, file_name: str, records: dict[str, str], shared: bool) -> bytes:
        """Snapshot bytes; the same for every caja that has no records of its own, so built once."""
        if not shared:
            return self._build_snapshot(name, records)
        with self._lock:
            if (name, file_name) not in self._snapshots:
                self._snapshots[(name, file_name)] = self._build_snapshot(name, records)
            return self._snapshots[(name, file_name)]

    def _build_snapshot(self, name: str, records: dict[str, str]) -> bytes:
        cat = self.catalogs[name]
        body = ",\n".join(records[k] for k in sorted(records))
        head = json.dumps({"catalog": name, "key": cat.key, "version": cat.version}, ensure_ascii=False)[:-1]
        return f'{head}, "records": [\n{body}\n]}}\n'.encode("utf-8")


def reader(storage: Storage):
    """The reader's way to a file of catalogs/ (caja.catalog.read_from) over a caja root of any kind."""

    def read(file_name: str, length: int | None) -> bytes:
        rel = f"{FOLDER}/{file_name}"
        return storage.read(rel) if length is None else storage.read_head(rel, length)

    return read


def manifest_json(manifest: dict) -> str:
    """The manifest as a person reads it, one catalog a line. Built from compact pieces: json's
    `indent=` takes its pure-Python encoder, which cost a partial push more than its database rows."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "catalogs"}, ensure_ascii=False)[:-1]
    lines = ",\n".join(f" {json.dumps(name, ensure_ascii=False)}: {json.dumps(entry, ensure_ascii=False)}"
                        for name, entry in manifest["catalogs"].items())
    return f'{head}, "catalogs": {{\n{lines}\n}}}}\n'


def push(config: Config, names: list[str] | tuple[str, ...] = (), mode: str = "partial", dry_run: bool = False,
         now: dt.datetime | None = None) -> PushResult:
    if mode not in MODES:
        raise UsageError(f"mode {mode!r} is not known; use partial, total or replace.")
    cajas = registry.select(names)
    loaded = catalogs.names()
    if not loaded:
        raise UsageError("no catalog is loaded on the main server yet; load one with `syscafe-sync catalogs load NAME FILE`.")
    main = MainCatalogs(loaded)
    now = now or utcnow()
    results = in_pool(config.limits["workers"], lambda c: push_caja(config, c, mode, dry_run, main, now), cajas)
    return PushResult(mode, dry_run, results)


def push_caja(config: Config, caja, mode: str, dry_run: bool, main: MainCatalogs, now: dt.datetime) -> CajaPush:
    started = time.monotonic()
    result = CajaPush(caja.name, mode, dry_run)
    jobs = []

    def make_job(storage, lease):
        jobs.append(_CajaPushJob(config, caja, storage, mode, dry_run, main, result, lease, now, started))
        return jobs[-1]

    serve_caja(config, caja, f"catalogs:{caja.name}", result, "catalog push to",
               "the caja stays on its previous catalogs, whole.", make_job)
    logged = jobs[0].logged if jobs else None
    if logged is not None and logged.outcome == result.outcome:
        synclog.line(logged)
    else:  # the work did not reach its end, or its caller stopped waiting for it first
        synclog.record(_entry(result, started))
    return result


def _entry(result: CajaPush, started: float) -> synclog.Entry:
    """The push's log entry; also sets the result's duration and, for a push that ran, its message."""
    result.duration_s = time.monotonic() - started
    if result.outcome == "ok" and not result.message:
        done = [c for c in result.catalogs if c.mode != "unchanged"]
        # A first push or a wiped folder makes every catalog fall back for one reason: said once, not per catalog.
        reasons = {c.fallback for c in done}
        shared = reasons.pop() if len(reasons) == 1 and len(done) > 1 else None
        parts = []
        for c in done:
            part = f"{c.catalog} {c.mode} v{c.version} (+{c.upserts} -{c.deletes})"
            if c.fallback and not shared:
                part += f" instead of partial: {c.fallback}"
            parts.append(part)
        verb = "would push" if result.dry_run else "pushed"
        head = f"{verb} total instead of partial ({shared})" if shared else verb
        result.message = f"{head}: " + "; ".join(parts) if parts else "every catalog already current"
    level = "info" if result.outcome == "ok" else ("warning" if result.outcome == "busy" else "error")
    if result.outcome == "ok" and any(c.fallback for c in result.catalogs):
        level = "warning"
    return synclog.Entry(
        action="catalogs push", outcome=result.outcome, caja=result.caja, level=level,
        mode=result.mode + (" dry-run" if result.dry_run else ""),
        imported=sum(c.upserts for c in result.catalogs), updated=0, skipped=0, refused=0,
        duration_s=result.duration_s, message=result.message,
        details={"bytes_written": result.bytes_written, "catalogs": [c.as_dict(False) for c in result.catalogs]},
    )


class _CajaPushJob(CajaJob):
    def __init__(self, config, caja, storage: Storage, mode, dry_run, main: MainCatalogs, result: CajaPush, lease, now,
                 started: float):
        super().__init__(lease)
        self.started = started
        self.caja, self.storage, self.mode, self.dry_run = caja, storage, mode, dry_run
        self.main, self.result, self.lease = main, result, lease
        self.now = now.astimezone(config.timezone)
        self.state: _State | None = None
        self._reached: tuple[bytes | None] | None = None  # the manifest as reach() read it
        self._refused: Exception | None = None  # what reach() met that fails the push, not the root
        # catalogs/ as listed once per push: name -> size (None where the listing does not give it)
        self._files: dict[str, int | None] = {}

    def reach(self, storage: Storage) -> None:
        """The push's first remote step answers for the root: the manifest is read within
        connect_timeout_s instead of the root being listed first (one round trip less on smb://)."""
        try:
            self._reached = (storage.read(MANIFEST),)
        except FileNotFoundError:
            storage.list("")  # no manifest: the root itself must be there
            self._reached = (None,)
        except (Unreachable, CredentialsRefused):
            raise
        except (OSError, SyncError) as exc:  # the root answered; the push fails on it, as it would reading it
            self._refused = exc

    def log_entry(self) -> synclog.Entry:
        return _entry(self.result, self.started)

    # --- what the caja holds now ---------------------------------------------------------------

    def _on_disk(self) -> tuple[bytes | None, dict | None]:
        if self._reached is None and self._refused is None:
            self.reach(self.storage)  # serve_caja reaches first; run on its own, the job does
        if self._refused is not None:
            raise self._refused
        raw = self._reached[0]
        if raw is None:
            return None, None
        try:
            return raw, fmt.read_manifest(lambda name, n: raw)
        except fmt.CatalogError:
            return raw, None

    def _known_without_reading(self, name: str, entry: dict) -> bool:
        """Whether the main server knows which records only the caja has without reading its catalog back:
        the caja holds what its manifest (ours) says, the main server's records at that version and the
        caja's own (`extras`). A record the main server deleted since then is one the caja still has and
        the main server no longer does, and its data is gone from the main server: only then is the
        caja's catalog read. A deletion committed after this push read the catalog counts too: the caja
        is read then, which is never wrong, only slower."""
        return not catalogs.deleted_since(name, entry["version"])

    def _known(self, sha: str | None, state: _State | None) -> tuple[dict | None, dict, str | None]:
        """(manifest we committed, records only the caja has, why it cannot be trusted)."""
        if sha is None:
            return None, {}, "no manifest at the caja (first push, or its catalogs folder was wiped)"
        if state and state.manifest_sha == sha:
            return json.loads(state.manifest), json.loads(state.extras), None
        if state and state.pending_sha == sha:
            # The last push was cut off between its manifest's rename and our record of it.
            return json.loads(state.pending_manifest), json.loads(state.pending_extras), None
        if state and state.manifest_sha:
            return None, {}, "the caja's manifest is not the one this main server committed (checksum mismatch)"
        return None, {}, "this main server has no record of the caja's manifest"

    def _listing(self) -> dict[str, int | None]:
        try:
            entries = self.storage.list(FOLDER)
        except FileNotFoundError:
            return {}
        return {e.name: e.size for e in entries if not e.is_dir}

    def _size(self, file_name: str) -> int | None:
        """The size of a file of catalogs/ as listed (None: not there); looked up where the listing does not give it."""
        if file_name not in self._files:
            return None
        size = self._files[file_name]
        return size if size is not None else self.storage.size(f"{FOLDER}/{file_name}")

    def _damage(self, entry: dict) -> str | None:
        """Why the files our manifest names for a catalog cannot give a reader that catalog, or None.
        A snapshot is checked by the size it was written with (manifests from before it was recorded: by
        being there); a journal by holding at least journal_bytes."""
        snapshot, expected = entry["snapshot"], entry.get("snapshot_bytes")
        size = self._size(snapshot)
        if size is None:
            return f"{FOLDER}/{snapshot} is missing"
        if expected is not None and size != expected:
            return f"{FOLDER}/{snapshot} holds {size} bytes, {expected} were written"
        at = entry["journal_bytes"]
        if at and (size := self._size(entry["journal"])) is None:
            return self._short_journal(entry, "it is missing")
        if at and size < at:
            return self._short_journal(entry, f"it holds {size} bytes; {at} were expected")
        return None

    @staticmethod
    def _short_journal(entry: dict, detail: str = "") -> str:
        return f"{FOLDER}/{entry['journal']} is shorter than its manifest says" + (f" ({detail})" if detail else "")

    def _caja_records(self, name: str, manifest: dict | None) -> dict[str, str]:
        """The caja's current records of `name`, read as a reader would; empty when they cannot be read."""
        if not manifest or name not in manifest["catalogs"]:
            return {}
        try:
            return fmt.read_from(reader(self.storage), name, manifest).canonical()
        except (fmt.CatalogError, OSError, KeyError, ValueError, TypeError):
            return {}

    # --- the push ------------------------------------------------------------------------------

    def _run(self) -> None:
        raw, disk_manifest = self._on_disk()
        row = _READ_STATE.one(caja=self.caja.name)
        self.state = state = _State(*row) if row else None
        disk_sha = hashlib.sha256(raw).hexdigest() if raw is not None else None
        known, extras, distrust = self._known(disk_sha, state)
        self._files = self._listing()
        if not self.dry_run:
            self._clean(disk_manifest)
        entries = dict(known["catalogs"]) if known else {}
        if not known and disk_manifest:
            # Not ours to trust for a partial push, but its catalogs we do not push stay named.
            entries = {n: e for n, e in disk_manifest["catalogs"].items() if n not in self.main.catalogs}
        new_extras = dict(extras)
        taken = self._names_in(disk_manifest)
        for name, cat in self.main.catalogs.items():
            entry = known["catalogs"].get(name) if known else None
            outcome, new_entry, kept = self._plan(name, cat, entry, distrust, extras.get(name, {}), disk_manifest, taken)
            self.result.catalogs.append(outcome)
            if new_entry is not None:
                entries[name] = new_entry
            new_extras[name] = kept
            if not kept:
                new_extras.pop(name)
        if self.dry_run:
            return
        if all(c.mode == "unchanged" for c in self.result.catalogs):
            return
        # What the manifest before this one named stays for a reader that is reading it: the next push deletes it.
        manifest = {"format": 1, "updated_at": self.now.isoformat(timespec="seconds"), "catalogs": entries}
        self._commit(manifest, new_extras)

    def _plan(self, name, cat, entry, distrust, extras, disk_manifest, taken):
        """Decides and (unless a dry run) writes one catalog; returns (outcome, manifest entry, caja-only records)."""
        if self.mode == "partial":
            reason = distrust
            if reason is None and entry is None:
                reason = f"the caja has no {name} catalog yet"
            elif reason is None and entry["key"] != cat.key:
                reason = f"the caja's {name} catalog is keyed by {entry['key']}, the main server's by {cat.key}"
            elif reason is None and (damage := self._damage(entry)):
                # The manifest is ours, so the records only the caja has are known without reading back
                # the catalog, which the damage would fail: they are kept.
                return self._snapshot(name, "total", disk_manifest, taken, fallback=damage, trusted=entry, extras=extras)
            if reason is None:
                return self._partial(name, entry, extras, disk_manifest, taken)
            return self._snapshot(name, "total", disk_manifest, taken, fallback=reason)
        trusted = entry if distrust is None and entry is not None and entry["key"] == cat.key else None
        return self._snapshot(name, self.mode, disk_manifest, taken, trusted=trusted, extras=extras)

    def _partial(self, name, entry, extras, disk_manifest, taken):
        changes = self.main.changes(name, entry["version"])
        cat = self.main.catalogs[name]
        if not changes:
            return CatalogOutcome(name, "unchanged", cat.version), None, extras
        live = None
        if extras or entry.get("journal_records", 0) + len(changes) > max(COMPACT_MIN, COMPACT_RATIO * cat.records):
            live = self.main.live(name)  # may find the catalog moved on: then take its changes again
            changes = self.main.changes(name, entry["version"])
            cat = self.main.catalogs[name]
        touched = {key for _, key, _, _ in changes}
        kept = {k: v for k, v in extras.items() if k not in touched}
        journal_records = entry.get("journal_records", 0) + len(changes)
        if journal_records > max(COMPACT_MIN, COMPACT_RATIO * cat.records):
            upserts = sum(1 for _, _, deleted, _ in changes if not deleted)
            if self.dry_run:  # what it would change is the changes; the new snapshot only holds them differently
                outcome = CatalogOutcome(name, "compact", cat.version, upserts, len(changes) - upserts)
                self._diff_partial(outcome, changes)
                return outcome, None, kept
            records = {**kept, **(live if live is not None else self.main.live(name))}
            outcome, new_entry = self._write_snapshot(name, cat, "compact", records, taken, shared=not kept)
            outcome.upserts, outcome.deletes = upserts, len(changes) - upserts
            return outcome, new_entry, kept
        lines = []
        upserts = deletes = 0
        for version, key, deleted, data in changes:
            if deleted:
                lines.append(json.dumps({"version": version, "op": "delete", "key": key}, ensure_ascii=False))
                deletes += 1
            else:
                lines.append(f'{{"version": {version}, "op": "upsert", "record": {data}}}')
                upserts += 1
        outcome = CatalogOutcome(name, "partial", cat.version, upserts, deletes)
        if self.dry_run:
            self._diff_partial(outcome, changes)
            return outcome, None, kept
        data = ("\n".join(lines) + "\n").encode("utf-8")
        # Cut back to what the manifest names (dropping a killed push's tail), then append.
        try:
            size = self.storage.append(f"{FOLDER}/{entry['journal']}", data, at=entry["journal_bytes"])
        except ShortFile as exc:  # cut or replaced by hand: nothing was appended
            # The manifest is still ours, so the records only the caja has are known without reading
            # the caja back, which the cut journal would fail: they are kept.
            return self._snapshot(name, "total", disk_manifest, taken, fallback=self._short_journal(entry, str(exc)),
                                  trusted=entry, extras=extras)
        self.result.bytes_written += len(data)
        # No lease renewal here: an append is short, and _commit renews it (the fence) before the manifest.
        records = {**kept, **live} if kept else None
        new_entry = dict(entry, version=cat.version, journal_bytes=size, journal_records=journal_records,
                         records=cat.records + len(kept),
                         sha256=fmt.record_set_sha256(records) if records is not None else cat.sha256)
        return outcome, new_entry, kept

    def _diff_partial(self, outcome: CatalogOutcome, changes) -> None:
        for _, key, deleted, _ in changes:
            if deleted:
                outcome.lose.append(key)
            else:
                outcome.change.append(key)  # without reading the caja, new and changed look alike

    def _snapshot(self, name, mode, disk_manifest, taken, fallback=None, trusted=None, extras=None):
        live = self.main.live(name)
        cat = self.main.catalogs[name]
        if not self.dry_run and trusted is not None and self._known_without_reading(name, trusted):
            # The caja holds the main server's records at its version, none deleted since, and its own.
            only_caja = {k: v for k, v in (extras or {}).items() if k not in live}
            current = None
        else:
            # A replace reads the caja only to say how many records it loses: what a reader there saw.
            current = self._caja_records(name, disk_manifest)
            only_caja = {k: v for k, v in current.items() if k not in live}
        kept = only_caja if mode == "total" else {}
        records = {**kept, **live}
        if self.dry_run:
            outcome = CatalogOutcome(name, mode, cat.version, fallback=fallback)
            outcome.gain = sorted(k for k in records if k not in current)
            outcome.change = sorted(k for k in records if k in current and current[k] != records[k])
            outcome.lose = sorted(k for k in current if k not in records)
            outcome.upserts, outcome.deletes = len(outcome.gain) + len(outcome.change), len(outcome.lose)
            return outcome, None, kept
        outcome, entry = self._write_snapshot(name, cat, mode, records, taken, shared=not kept)
        outcome.upserts = len(live)  # SPEC: every main-server record is upserted; what the caja keeps is not one
        outcome.deletes = 0 if mode == "total" else len(only_caja)
        outcome.fallback = fallback
        return outcome, entry, kept

    def _write_snapshot(self, name, cat, mode, records, taken, shared):
        base = f"{name}.{cat.version}"
        n = 1
        while f"{base}.snapshot.json" in taken or f"{base}.journal.jsonl" in taken:
            n += 1  # the names in use by the manifest readers follow are never written over
            base = f"{name}.{cat.version}-{n}"
        snap_name, journal_name = f"{base}.snapshot.json", f"{base}.journal.jsonl"
        data = self.main.snapshot(name, snap_name, records, shared)
        self.storage.makedirs(FOLDER)
        self.storage.write_atomic(f"{FOLDER}/{snap_name}", data)
        self.storage.write_atomic(f"{FOLDER}/{journal_name}", b"")
        self.result.bytes_written += len(data)
        self.lease.renew()
        sha = cat.sha256 if shared else fmt.record_set_sha256(records)
        entry = {"key": cat.key, "version": cat.version, "snapshot": snap_name, "snapshot_version": cat.version,
                 "journal": journal_name, "journal_bytes": 0, "journal_records": 0, "records": len(records), "sha256": sha,
                 "snapshot_bytes": len(data)}
        outcome = CatalogOutcome(name, mode, cat.version, upserts=len(records))
        return outcome, entry

    def _commit(self, manifest: dict, extras: dict) -> None:
        manifest_text = manifest_json(manifest)
        data = manifest_text.encode("utf-8")
        sha = hashlib.sha256(data).hexdigest()
        extras_text = json.dumps(extras, ensure_ascii=False)
        with write_transaction():
            self.lease.renew()  # the fence: a push whose lease another run took writes no manifest
            _PENDING.execute(caja=self.caja.name, manifest=manifest_text, sha=sha, extras=extras_text, now=utcnow())
        # No makedirs: every commit follows a write into the folder (a snapshot, or an append to a journal),
        # and on an smb:// root asking again is two round trips for each caja.
        self.storage.write_atomic(MANIFEST, data)  # the commit point
        self.result.bytes_written += len(data)
        # Recorded with the lease's release (CajaJob.closing), so whatever ends the job after this instant.
        self.closing.append(lambda: _COMMITTED.execute(caja=self.caja.name, manifest=manifest_text, sha=sha,
                                                       extras=extras_text, now=utcnow()))

    # --- files no manifest names -----------------------------------------------------------------

    @staticmethod
    def _names_in(manifest: dict | None) -> set[str]:
        if not manifest:
            return set()
        names = set()
        for entry in manifest["catalogs"].values():
            if isinstance(entry, dict):
                names.update(str(entry.get(k)) for k in ("snapshot", "journal"))
        return names

    def _clean(self, disk_manifest: dict | None) -> None:
        """Deletes what the caja's current manifest does not name, as the listing found it: files replaced
        by the previous push (not by this one, so a reader that has just read the old manifest still
        finds them), and what a killed push left behind."""
        if disk_manifest is None and fmt.MANIFEST in self._files:
            return  # a manifest we cannot parse: readers may still follow it, delete nothing
        keep = self._names_in(disk_manifest) | {fmt.MANIFEST}
        for name in self._files:
            if name not in keep:
                self.storage.remove(f"{FOLDER}/{name}")
