"""Importing a process date's vouchers from each caja (SPEC §1 and `import`).

A voucher's way: caja root → storage → names and checks (caja.voucher) →
refused (quarantined with its reason) or kept with its findings → database,
in batches, each one transaction → the sync log.

`skip` never reads a file whose voucher is already imported: the listing
alone tells what is new. `overwrite` reads every file and compares its hash
with the one stored, so an unchanged voucher is not rewritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter

from peewee import SqliteDatabase, chunked, fn

from . import audit, catchup, closings, findings, gc_freeze, registry, resolutions, synclog, voucher_decode
from .caja import layout
from .caja.voucher import Refused
from .config import Config
from .db import references_unchecked, write_transaction
from .db.models import Notice, TimestampField, Refusal, Voucher, VoucherLine, VoucherPayment, VoucherTax, database, utcnow
from .serve import CajaJob, Cancelled, serve_caja
from .storage import Entry
from .voucher_decode import parse

MODES = ("skip", "overwrite")
Progress = Callable[[str, int, int], None]


@dataclass
class CajaResult:
    caja: str
    outcome: str = "ok"
    message: str = ""
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    refused: int = 0
    refusals: list[dict] = field(default_factory=list)
    # refused paths quarantined already, unchanged and for the same reason: logged when first refused, not every pass
    refused_before: set[str] = field(default_factory=set)
    # vouchers imported or updated with findings (SPEC: flagged, listed by `vouchers check`, logged)
    flagged: list[dict] = field(default_factory=list)
    duration_s: float = 0.0
    # the day's closing.json was in its folder (the caja closed that day); None: there was no folder
    closed: bool | None = False
    day: dt.date | None = None

    def as_dict(self) -> dict:
        return {
            "caja": self.caja,
            "outcome": self.outcome,
            "message": self.message,
            "imported": self.imported,
            "updated": self.updated,
            "skipped": self.skipped,
            "refused": self.refused,
            "refusals": self.refusals,
            "flagged": len(self.flagged),
            "duration_s": round(self.duration_s, 3),
            "date": self.day.isoformat() if self.day else None,
        }


@dataclass
class ImportResult:
    day: dt.date
    mode: str
    results: list[CajaResult]

    @property
    def failed(self) -> bool:
        return any(r.outcome != "ok" or r.refused for r in self.results)

    def as_dict(self) -> dict:
        return {"action": "import", "date": self.day.isoformat(), "mode": self.mode, "results": [r.as_dict() for r in self.results]}


def today(config: Config, now: dt.datetime | None = None) -> dt.date:
    return (now or utcnow()).astimezone(config.timezone).date()


def import_day(
    config: Config,
    names: list[str] | tuple[str, ...] = (),
    day: dt.date | None = None,
    mode: str = "skip",
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> ImportResult:
    """Imports `day` (default: today in the company's time zone) from the named cajas, or all."""
    if mode not in MODES:
        from .errors import UsageError

        raise UsageError(f"mode {mode!r} is not known; use skip or overwrite.")
    cajas = registry.select(names)
    day = day or today(config, now)
    results = [import_caja(config, c, day, mode, progress, now) for c in cajas]
    synclog.prune(config.get("log", "retention_days"))
    return ImportResult(day, mode, results)


def import_caja(config, caja, day: dt.date, mode: str, progress: Progress | None = None, now: dt.datetime | None = None) -> CajaResult:
    """One caja, isolated: whatever happens here is reported in its result and the log, never raised."""
    started = time.monotonic()
    result = CajaResult(caja.name, day=day)
    with gc_freeze.while_running():
        serve_caja(
            config, caja, f"caja:{caja.name}", result, "import of",
            "what was imported before stays, the rest comes on the next pass.",
            lambda storage, lease: _CajaImport(config, caja, storage, day, mode, result, lease, progress, now or utcnow()),
        )
    if result.outcome == "ok":
        # A past day with no folder has nothing left to wait for; today's may still appear. A day with a
        # refused file is not done either: the file is tried again at each pass while the day is in
        # the catch-up window, so a voucher the POS writes again whole is imported without anyone asking.
        closed = (result.closed if result.closed is not None else day < today(config, now)) and not result.refused
        catchup.mark(caja.name, day, closed)
        if result.imported or result.updated:
            audit.log_gaps(caja.name, day)
    return _finish(result, mode, started)


def _finish(result: CajaResult, mode: str, started: float) -> CajaResult:
    result.duration_s = time.monotonic() - started
    if result.outcome == "ok" and not result.message:
        parts = [f"{result.imported} imported", f"{result.updated} updated", f"{result.skipped} skipped"]
        if result.refused:
            parts.append(f"{result.refused} refused")
            if result.refused_before:
                parts[-1] += f" ({len(result.refused_before)} unchanged since first refused and logged)"
        result.message = f"{result.day}: " + ", ".join(parts)
    for r in result.refusals:
        if r["path"] in result.refused_before:
            continue  # logged when first refused; `vouchers refused` counts the attempts
        synclog.record(
            synclog.Entry(action="import", outcome="refused", caja=result.caja, mode=mode, level="warning", refused=1,
                          message=f"{r['path']} refused: {r['reason']}", details=r)
        )
    for f in result.flagged:
        synclog.record(
            synclog.Entry(action="import", outcome="finding", caja=result.caja, mode=mode, level="warning",
                          message=f"{f['voucher']} ({f['path']}) imported with findings: " + "; ".join(x["message"] for x in f["findings"]),
                          details=f)
        )
    level = {"ok": "warning" if result.refused else "info", "busy": "warning"}.get(result.outcome, "error")
    synclog.record(
        synclog.Entry(action="import", outcome=result.outcome, caja=result.caja, mode=mode, level=level,
                      imported=result.imported, updated=result.updated, skipped=result.skipped,
                      refused=result.refused, duration_s=result.duration_s, message=result.message)
    )
    return result


def shown(path: str) -> str:
    """A name as logs and the database can hold it: the bytes of a name that is not UTF-8 (os.listdir
    gives them as lone surrogates) written as \\xNN escapes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(slots=True)
class _Kept:
    key: tuple[str, int]
    path: str
    sha256: str
    document: str
    rows: voucher_decode.Rows  # the decoded voucher's rows: all a batch keeps of it
    findings: list[dict]
    existing_id: int | None


# PostgreSQL takes at most 65535 parameters in one statement.
_PG_MAX_PARAMS = 65535


def _insert(model, columns: tuple[str, ...], values: list[list]) -> None:
    """Bulk insert of `values`, rows in the order of `columns`, as the database takes them
    (str, int, None; Decimal too). peewee's insert_many builds a statement value by value, 80 %
    of an import's time: on SQLite one prepared statement run by executemany, on PostgreSQL
    (psycopg2) a few multi-row INSERTs built by the driver's execute_values."""
    if not values:
        return
    db = database.obj
    postgres = not isinstance(db, SqliteDatabase)
    if postgres and not _psycopg2(db):
        per = max(1, _PG_MAX_PARAMS // len(columns))
        for chunk in chunked(values, per):
            model.insert_many([dict(zip(columns, v)) for v in chunk]).execute()
        return
    names = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in columns)
    if postgres:
        from psycopg2.extras import execute_values

        execute_values(db.cursor(), f'INSERT INTO "{model._meta.table_name}" ({names}) VALUES %s', values, page_size=1000)
    else:
        db.cursor().executemany(f'INSERT INTO "{model._meta.table_name}" ({names}) VALUES ({", ".join("?" * len(columns))})', values)


def _psycopg2(db) -> bool:
    """PostgreSQL through psycopg2, whose execute_values the bulk insert uses (not psycopg 3)."""
    return type(db.connection()).__module__.startswith("psycopg2")


class _CajaImport(CajaJob):
    """The work for one caja, run in a worker thread with a deadline."""

    def __init__(self, config, caja, storage, day, mode, result, lease, progress, now):
        super().__init__(lease)
        self.config, self.caja, self.storage, self.day, self.mode = config, caja, storage, day, mode
        self.result, self.lease, self.progress, self.now = result, lease, progress, now
        self.limit = config.limits["max_file_bytes"]
        self.batch_size = config.limits["batch_size"]
        self.tz = config.timezone  # a property that looks the zone up: once per caja, not once per voucher
        self.folder = layout.day_folder(day)
        self.batch: list[_Kept] = []
        self.refused: list[tuple[str, str, str | None]] = []
        self.resolved: list[str] = []

    def _run(self) -> None:
        try:
            entries = self.storage.list(self.folder)
        except FileNotFoundError:
            self.result.message = f"no movements for {self.day} yet"
            self.result.closed = None
            return
        self.result.closed = any(e.name == layout.CLOSING for e in entries)
        if self.result.closed:
            self._keep_closing()
        codes = set(registry.codes_of(self.caja))
        owners = registry.code_owner()
        self.ranges = resolutions.for_codes(codes)
        where = (Voucher.caja == self.caja.name) & (Voucher.day == self.day.isoformat())
        self.open_refusals = open_refusals = {
            p for (p,) in Refusal.select(Refusal.path)
            .where((Refusal.caja == self.caja.name) & (Refusal.day == self.day.isoformat()) & Refusal.resolved_at.is_null())
            .tuples()
        }
        skipped = 0
        if self.mode == "skip":
            # A name this folder's vouchers were imported from is done: a set difference, with no
            # look at each name, since a pass with nothing new must cost little more than the listing.
            start = len(self.folder) + 2
            imported = {name for (name,) in database.execute(Voucher.select(fn.substr(Voucher.path, start)).where(where))}
            by_name = {e.name: e for e in entries}
            left = by_name.keys() - imported
            skipped = len(by_name) - len(left)
            entries = [by_name[name] for name in left]
            if open_refusals:
                self.resolved += [p for p in open_refusals if p[start - 1:] in imported]
        todo = self._one_file_a_voucher(self._classify(sorted(entries, key=attrgetter("name"))))
        total = skipped + len(todo)
        # Raw cursors: peewee's row objects cost more than the rest of a re-run.
        if not todo:
            existing = {}
        elif self.mode == "skip":
            existing = dict.fromkeys(database.execute(Voucher.select(Voucher.code, Voucher.number).where(where)))
        else:
            known = Voucher.select(Voucher.code, Voucher.number, Voucher.id, Voucher.sha256).where(where)
            existing = {(code, number): (vid, sha) for code, number, vid, sha in database.execute(known)}
        if self.mode == "skip":
            # The same voucher under another name (another zero-padding): decided from the listing too.
            new = [(e, k) for e, k in todo if k not in existing]
            skipped += len(todo) - len(new)
            if open_refusals:
                self.resolved += [p for e, k in todo if k in existing and (p := f"{self.folder}/{e.name}") in open_refusals]
            todo = new
        self.result.skipped += skipped
        done = total - len(todo)
        # Reads go ahead of the checks (several at once on an SMB root); files refused
        # from the listing alone are never opened.
        wanted = [f"{self.folder}/{e.name}" for e, _ in todo if self._unread_refusal(e) is None]
        with contextlib.closing(self.storage.read_many(wanted, self.limit)) as reads:
            for entry, key in todo:
                if self.stop.is_set():
                    raise Cancelled()
                path = f"{self.folder}/{entry.name}"
                why = self._unread_refusal(entry)
                if why:
                    self._refuse(path, why)
                else:
                    self._one(key, path, next(reads)[1], codes, owners, existing.get(key))
                if len(self.batch) >= self.batch_size:
                    self._flush()
                done += 1
                if self.progress:
                    self.progress(self.caja.name, done, total)
        self._flush()

    def _classify(self, entries: list[Entry]) -> list[tuple[Entry, tuple[str, int] | None]]:
        todo = []
        for e in entries:
            if layout.is_ignored(e.name) or e.name == layout.CLOSING:
                continue
            key = None if e.is_dir else layout.parse_voucher_name(e.name)
            if key is None and not e.outside:
                self._notice(f"{self.folder}/{e.name}", "unknown name")
                continue
            todo.append((e, key))
        return todo

    def _one_file_a_voucher(self, todo: list[tuple[Entry, tuple[str, int] | None]]) -> list[tuple[Entry, tuple[str, int] | None]]:
        """Two names of one voucher in the folder (FV1-7.json and FV1-000007.json, two zero-paddings):
        the first by name is read, the other refused, instead of both being written as one voucher."""
        first: dict[tuple[str, int], str] = {}
        kept = []
        for e, key in todo:
            if key is not None and key in first:
                self._refuse(f"{self.folder}/{e.name}", f"it is {key[0]}-{key[1]} again, under another zero-padding "
                             f"than {first[key]}, which is the one imported; remove this copy")
                continue
            if key is not None:
                first[key] = e.name
            kept.append((e, key))
        return kept

    def _notice(self, path: str, kind: str) -> None:
        """Logs a name we do not recognise, once ever, not on every pass."""
        path = shown(path)
        inserted = Notice.insert(caja=self.caja.name, path=path, kind=kind, at=utcnow()).on_conflict_ignore().as_rowcount().execute()
        if inserted:
            synclog.logger().info(f"{path} ignored: {kind}", caja=self.caja.name, action="import")

    def _refuse(self, path: str, reason: str, sha: str | None = None) -> None:
        self.refused.append((shown(path), reason, sha))

    def _too_big(self) -> str:
        return f"it is over the limit of {self.limit} bytes (limits.max_file_bytes)"

    def _unread_refusal(self, entry: Entry) -> str | None:
        """Why the listing alone refuses this file, or None when it must be read."""
        if entry.outside:
            return "it is a link that leads outside the caja root"
        if entry.size is not None and entry.size > self.limit:
            return self._too_big()
        return None

    def _one(self, key, path: str, raw: bytes | OSError, codes: set[str], owners: dict[str, str], known) -> None:
        if isinstance(raw, OSError):
            if raw.errno == errno.EFBIG:
                return self._refuse(path, self._too_big())
            return self._refuse(path, f"it could not be read ({raw.strerror or raw})")
        sha = hashlib.sha256(raw).hexdigest()
        if known and known[1] == sha:
            self.result.skipped += 1
            if path in self.open_refusals:  # refused when spoilt, now back to what was imported
                self.resolved.append(path)
            return
        try:
            parsed = parse(raw)
            self._check_owner(parsed, key, codes, owners)
        except Refused as exc:
            return self._refuse(path, str(exc), sha)
        h = parsed.header
        found = findings.of_voucher(parsed, self.day, self.now, self.tz) + resolutions.numbering(
            h["code"], h["number"], h["prefix"], h["issued_at"], self.ranges.get(h["code"]), self.tz)
        self.batch.append(_Kept(key, path, sha, raw.decode("utf-8"), parsed.rows, found, known[0] if known else None))

    def _keep_closing(self) -> None:
        """Keeps the day's closing.json as it is now, for `audit`; what it says is checked there, not here."""
        path = f"{self.folder}/{layout.CLOSING}"
        try:
            raw = self.storage.read(path, self.limit)
        except OSError as exc:
            self._notice(path, f"closing.json could not be read ({exc.strerror or exc})")
            return
        closings.keep(self.caja.name, self.day, raw)

    def _check_owner(self, parsed: voucher_decode.Decoded, key, codes: set[str], owners: dict[str, str]) -> None:
        h = parsed.header
        if (h["code"], h["number"]) != key:
            raise Refused(f"its name says {key[0]}-{key[1]} but the voucher inside is {h['code']}-{h['number']}")
        if h["caja"] != self.caja.name:
            raise Refused(f"the voucher says caja {h['caja']!r}, but it is in the folder of caja {self.caja.name}")
        if h["code"] not in codes:
            owner = owners.get(h["code"])
            if owner:
                raise Refused(f"code {h['code']} belongs to caja {owner}, not {self.caja.name}; it is never imported from here")
            raise Refused(
                f"code {h['code']} is not registered to any caja; if it is {self.caja.name}'s, run "
                f"`syscafe-sync caja edit {self.caja.name} --code {h['code']}`"
            )

    def _flush(self) -> None:
        batch, refused, resolved = self.batch, self.refused, self.resolved
        if not (batch or refused or resolved):
            return
        # The lines, taxes and payments reference vouchers of this transaction or found in it.
        with references_unchecked(), write_transaction():
            batch = self._drop_known_elsewhere(batch)
            self._write(batch)
            # Only files refused before can have a quarantine entry to close.
            before = self._quarantine(refused, [k.path for k in batch if k.path in self.open_refusals] + resolved)
            self.lease.renew()
            if self.stop.is_set():
                raise Cancelled()  # rolls the batch back: the next pass does it whole
        self.result.imported += sum(1 for k in batch if k.existing_id is None)
        self.result.updated += sum(1 for k in batch if k.existing_id is not None)
        self.result.refused += len(refused)
        self.result.refusals += [{"path": p, "reason": r} for p, r, _ in refused]
        self.result.refused_before |= before
        self.result.flagged += [{"voucher": f"{k.key[0]}-{k.key[1]}", "path": k.path, "findings": k.findings}
                                for k in batch if k.findings]
        self.batch, self.refused, self.resolved = [], [], []

    def _drop_known_elsewhere(self, batch: list[_Kept]) -> list[_Kept]:
        """A voucher already imported from another day's folder: skip it, or update it in overwrite mode."""
        new = [k for k in batch if k.existing_id is None]
        if not new:
            return batch
        found = {(c, n): (vid, sha) for vid, c, n, sha in self._known([k.key for k in new], "sha256")}
        kept = []
        for k in batch:
            other = found.get(k.key) if k.existing_id is None else None
            if other is None:
                kept.append(k)
            elif self.mode == "overwrite" and other[1] != k.sha256:
                k.existing_id = other[0]
                kept.append(k)
            else:
                self.result.skipped += 1
        return kept

    @staticmethod
    def _known(keys: list[tuple[str, int]], *extra: str):
        """(id, code, number, *extra) of the vouchers among `keys`, by the (code, number) index.
        Plain SQL: peewee builds an IN list value by value, more than the lookup itself costs."""
        by_code: dict[str, list[int]] = {}
        for code, number in keys:
            by_code.setdefault(code, []).append(number)
        db = database.obj
        columns = ", ".join(f'"{c}"' for c in ("id", "code", "number", *extra))
        for code, numbers in by_code.items():
            for chunk in chunked(numbers, 5000):
                sql = f'SELECT {columns} FROM "voucher" WHERE "code" = {db.param} AND "number" IN ({", ".join([db.param] * len(chunk))})'
                yield from db.execute_sql(sql, [code, *chunk])

    # The columns of a voucher's row: the decoder's header, then what the import adds.
    _COLUMNS = (*voucher_decode.HEADER, "day", "path", "sha256", "document", "findings", "updated_at")
    _ISSUED = voucher_decode.HEADER.index("issued_utc")

    def _write(self, batch: list[_Kept]) -> None:
        # One instant for the batch, converted once: a TimestampField's conversion per row costs.
        to_db = TimestampField().db_value
        now = to_db(utcnow())
        day, issued = self.day.isoformat(), self._ISSUED
        rows, parts = [], []
        for k in batch:
            r = k.rows
            row = [*r.header, day, k.path, k.sha256, k.document,
                   json.dumps(k.findings, ensure_ascii=False) if k.findings else "[]", now]
            row[issued] = to_db(row[issued])
            rows.append(row)
            parts.append(r)
        changed = [k.existing_id for k in batch if k.existing_id is not None]
        if changed:
            for model in (VoucherLine, VoucherTax, VoucherPayment):
                model.delete().where(model.voucher.in_(changed)).execute()
            for k, row in zip(batch, rows):
                if k.existing_id is not None:
                    Voucher.update(**dict(zip(self._COLUMNS, row))).where(Voucher.id == k.existing_id).execute()
        fresh = [(k, row) for k, row in zip(batch, rows) if k.existing_id is None]
        ids = {k.key: k.existing_id for k in batch if k.existing_id is not None}
        ids.update(self._insert_vouchers(fresh, now))
        lines, taxes, payments = [], [], []
        for k, r in zip(batch, parts):
            vid = ids[k.key]
            lines += [(*x, vid) for x in r.lines]
            taxes += [(*x, vid) for x in r.taxes]
            payments += [(*x, vid) for x in r.payments]
        for model, columns, items in ((VoucherLine, voucher_decode.LINE, lines), (VoucherTax, voucher_decode.TAX, taxes),
                                      (VoucherPayment, voucher_decode.PAYMENT, payments)):
            _insert(model, (*columns, "voucher"), items)

    def _insert_vouchers(self, fresh: list[tuple[_Kept, list]], now: str) -> dict[tuple[str, int], int]:
        """Inserts new vouchers and returns their ids. On SQLite this transaction is the only
        writer (BEGIN IMMEDIATE), so the ids are given here, after the highest one, instead of
        being read back; PostgreSQL's come from its sequence."""
        if not fresh:
            return {}
        columns = (*self._COLUMNS, "imported_at")
        if isinstance(database.obj, SqliteDatabase):
            (top,) = database.execute_sql('SELECT coalesce(max("id"), 0) FROM "voucher"').fetchone()
            ids = {}
            for i, (k, row) in enumerate(fresh, start=top + 1):
                row += (now, i)
                ids[k.key] = i
            _insert(Voucher, (*columns, "id"), [row for _, row in fresh])
            return ids
        for _, row in fresh:
            row.append(now)
        _insert(Voucher, columns, [row for _, row in fresh])
        return self._ids([k.key for k, _ in fresh])

    def _ids(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {(c, n): vid for vid, c, n in self._known(keys)}

    def _quarantine(self, refused: list[tuple[str, str, str | None]], fine: list[str]) -> set[str]:
        """Records the refusals and closes what imports now; returns the paths refused before as they are now."""
        now = utcnow()
        held = {}
        for paths in chunked([p for p, _, _ in refused], 500):
            held.update({path: (reason, sha) for path, reason, sha in Refusal.select(Refusal.path, Refusal.reason, Refusal.sha256)
                         .where((Refusal.caja == self.caja.name) & Refusal.path.in_(paths) & Refusal.resolved_at.is_null()).tuples()})
        before = {path for path, reason, sha in refused if held.get(path) == (reason, sha)}
        for path, reason, sha in refused:
            updated = (
                Refusal.update(reason=reason, sha256=sha, last_seen=now, attempts=Refusal.attempts + 1, resolved_at=None)
                .where((Refusal.caja == self.caja.name) & (Refusal.path == path))
                .execute()
            )
            if not updated:
                Refusal.create(caja=self.caja.name, day=self.day.isoformat(), path=path, reason=reason, sha256=sha,
                               first_seen=now, last_seen=now)
        if fine:
            Refusal.update(resolved_at=now).where(
                (Refusal.caja == self.caja.name) & Refusal.path.in_(fine) & Refusal.resolved_at.is_null()
            ).execute()
        return before
