"""Catalogs on the main server (SPEC §1 "Catalogs", `catalogs load` / `catalogs show`).

A load takes a whole file (CSV, a JSON array of objects, or JSONL) as the new
full content of a catalog. The file is read and checked completely before
anything is written: one bad row refuses the whole file. Then the difference
with what is stored is worked out on the canonical JSON of each record: only
new or changed records get a new version, a record that disappeared becomes a
versioned deletion (a tombstone), unchanged records keep their version. Every
change and the catalog's new version, record count and sha256 are written in
one transaction.

The push reads the result through `get`, `names`, `live`, `changes_since`
(and `view`, which reads a catalog and its live records consistently).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from peewee import IntegrityError, SqliteDatabase, chunked

from . import synclog
from .caja.catalog import KNOWN_KEYS, canonical, record_set_sha256
from .caja.voucher import text_problem
from .db import lock, write_transaction
from .db.models import Catalog, CatalogRecord, database, utcnow
from .errors import SyncError, UsageError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FORMATS = ("csv", "json", "jsonl")
_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Keys per DELETE … IN (…) and rows per INSERT on PostgreSQL (at most 65535 parameters a statement).
_KEYS_PER_STATEMENT = 500
_PG_MAX_PARAMS = 65535


# --- reading a file ---------------------------------------------------------------------------------


@dataclass
class _Row:
    where: str  # "line 7" / "record 3 (line 12)": how a person finds it in the file
    record: dict


class _Bad(Exception):
    """One row or the file itself cannot be loaded; turned into a UsageError naming the file."""


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"catalog name {name!r} is not allowed: use a lowercase letter, then up to 39 lowercase letters, "
            "digits or '_' (it becomes a file name at every caja), e.g. products or price_lists."
        )


def _format_of(path: Path, text: str) -> str:
    by_ext = _EXTENSIONS.get(path.suffix.lower())
    if by_ext:
        return by_ext
    first = text.lstrip()[:1]
    return "json" if first == "[" else "jsonl" if first == "{" else "csv"


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist; give the path of a CSV, JSON or JSONL file.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder; give the path of a CSV, JSON or JSONL file.") from None
    except OSError as exc:
        raise UsageError(f"{path} cannot be read ({exc.strerror or exc}); nothing was loaded.") from None
    try:
        text = data.decode("utf-8-sig")  # with or without a BOM (Excel writes one)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{path} line {line} is not UTF-8 (byte {exc.start}); save the file as UTF-8 and load it again. Nothing was loaded."
        ) from None
    if not text.strip():
        raise UsageError(f"{path} is empty; a catalog file holds its records (load refuses to empty a catalog by accident). Nothing was loaded.")
    return text


def _value_problem(field: str, value) -> str | None:
    """Why a JSON value cannot be a catalog value, or None. Values are strings (decimals as strings) or null."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, bool):
        example = json.dumps("true" if value else "false")
    elif isinstance(value, int):
        example = json.dumps(str(value))
    elif isinstance(value, float):
        example = json.dumps(f"{value:.2f}" if round(value, 2) == value else repr(value))
    else:
        kind = "an object" if isinstance(value, dict) else "a list"
        return f"field {field!r} is {kind}; catalog values are strings (or null), one level deep"
    kind = "a boolean" if isinstance(value, bool) else "a number"
    return f"field {field!r} is {kind} ({json.dumps(value)}); values are strings, write it as a string, e.g. {example}"


class _Twice(ValueError):
    """A JSON object names one field twice: json keeps the last value, silently."""


def _no_field_twice(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Twice(f"field {twice!r} is given twice in one record; keep one")
    return out


def _not_json(exc: Exception) -> str:
    """Why json could not read a record that is not plain invalid JSON."""
    if isinstance(exc, RecursionError):
        return "it is nested thousands of levels deep"
    if isinstance(exc, _Twice):
        return str(exc)
    return "it holds a number thousands of digits long; values are strings"  # past what int() converts


def _text_problem(field: str, text) -> str | None:
    """A field name or value no file or database holds as text (caja.voucher.text_problem)."""
    problem = text_problem(text) if isinstance(text, str) else None
    if problem is None:
        return None
    return f"field {field.encode('utf-8', 'backslashreplace').decode()!r} {problem}; save the file again from its source"


def _read_json(text: str) -> list[_Row]:
    """A JSON array of objects, element by element, so a bad element is named with its line."""
    decoder = json.JSONDecoder(object_pairs_hook=_no_field_twice)
    ws = re.compile(r"\s*")
    rows: list[_Row] = []

    def line_at(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def fail(pos: int, what: str):
        raise _Bad(f"line {line_at(pos)} is not valid JSON ({what})")

    pos = ws.match(text, 0).end()
    if text[pos:pos + 1] != "[":
        if text[pos:pos + 1] == "{":
            raise _Bad("holds a JSON object, not an array: a .json file is one array of records ([{...}, {...}]); "
                       "for one record per line name the file .jsonl")
        fail(pos, "a .json catalog file starts with '['")
    pos = ws.match(text, pos + 1).end()
    lines_before, counted_to = 1, 0
    if text[pos:pos + 1] == "]":
        pos += 1
    else:
        while True:
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise _Bad(f"line {exc.lineno} column {exc.colno} is not valid JSON ({exc.msg})") from None
            except (ValueError, RecursionError) as exc:
                raise _Bad(f"record {len(rows) + 1} (line {line_at(pos)}) cannot be read: {_not_json(exc)}") from None
            lines_before += text.count("\n", counted_to, pos)
            counted_to = pos
            where = f"record {len(rows) + 1} (line {lines_before})"
            if not isinstance(value, dict):
                raise _Bad(f"{where} is not a JSON object ({{\"field\": \"value\", …}})")
            rows.append(_Row(where, value))
            pos = ws.match(text, end).end()
            sep = text[pos:pos + 1]
            if sep == "]":
                pos += 1
                break
            if sep != ",":
                fail(pos, "expected ',' or ']' after a record")
            pos = ws.match(text, pos + 1).end()
    if ws.match(text, pos).end() != len(text):
        fail(pos, "extra data after the closing ']'")
    return rows


def _read_jsonl(text: str) -> list[_Row]:
    rows = []
    # Lines end at "\n" only: splitlines() also breaks at U+2028 or U+0085, which a JSON string may hold as they are.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_no_field_twice)
        except json.JSONDecodeError as exc:
            raise _Bad(f"line {n} is not valid JSON ({exc.msg}, column {exc.colno}); JSONL is one JSON object per line") from None
        except (ValueError, RecursionError) as exc:
            raise _Bad(f"line {n} cannot be read: {_not_json(exc)}") from None
        if not isinstance(value, dict):
            raise _Bad(f"line {n} is not a JSON object ({{\"field\": \"value\", …}}); JSONL is one JSON object per line")
        rows.append(_Row(f"line {n}", value))
    return rows


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(text: str, key: str) -> list[_Row]:
    """A header row, then one record a row; every value a string. Lines count the header as line 1."""
    first_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first_line), strict=True)
    rows: list[_Row] = []
    header: list[str] | None = None
    header_line = 0
    last_line = 0
    try:
        for cells in reader:
            start, last_line = last_line + 1, reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue  # a blank line
            if header is None:
                header, header_line = cells, start
                for i, name in enumerate(header, 1):
                    if not name.strip():
                        raise _Bad(f"line {start} (the header) has an empty column name in column {i}")
                    if header.index(name) != i - 1:
                        raise _Bad(f"line {start} (the header) names column {name!r} twice")
                if key not in header:
                    raise _Bad(f"line {start} (the header) has no column {key!r}, the key field; its columns are: {', '.join(header)}")
                continue
            if len(cells) != len(header):
                raise _Bad(f"line {start} (the header is line {header_line}) has {len(cells)} values, the header names {len(header)} columns")
            rows.append(_Row(f"line {start} (the header is line {header_line})", dict(zip(header, cells))))
    except csv.Error as exc:
        raise _Bad(f"line {reader.line_num} is not valid CSV ({exc})") from None
    if header is None:
        raise _Bad("has no header row")
    return rows


def _parse(path: Path, key: str) -> dict[str, str]:
    """key -> canonical record, every row checked; raises _Bad on the first bad row."""
    text = _decode(path)
    fmt = _format_of(path, text)
    rows = _read_csv(text, key) if fmt == "csv" else _read_json(text) if fmt == "json" else _read_jsonl(text)
    if not rows:
        raise _Bad("holds no records; a catalog file holds the full content of the catalog (load refuses to empty a catalog by accident)")
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for row in rows:
        rec = row.record
        for field, value in rec.items():
            if not field.strip():
                raise _Bad(f"{row.where}: a field has an empty name")
            problem = _value_problem(field, value) or _text_problem(field, field) or _text_problem(field, value)
            if problem:
                raise _Bad(f"{row.where}: {problem}")
        value = rec.get(key)
        if value is None or value == "":
            state = "is missing" if key not in rec else "is null (missing)" if value is None else "is empty"
            raise _Bad(f"{row.where}: field {key!r} (the key) {state}; every record needs one")
        if value != value.strip():
            raise _Bad(f"{row.where}: field {key!r} (the key) is {value!r}, with spaces around it; remove them")
        if value in seen:
            raise _Bad(f"{row.where}: field {key!r} (the key) is {value!r}, already used at {seen[value]}; keys must be unique")
        seen[value] = row.where.split(" (the header")[0]
        out[value] = canonical(rec)
    return out


# --- loading ----------------------------------------------------------------------------------------


def _resolve_key(name: str, key: str | None) -> str:
    known = KNOWN_KEYS.get(name)
    stored = Catalog.get_or_none(Catalog.name == name)
    if key is not None and not key.strip():
        raise UsageError("--key is empty; give the field that identifies a record, e.g. --key code.")
    if known:
        if key is not None and key != known:
            raise UsageError(f"catalog {name!r} is keyed by {known!r}, not {key!r}; load it without --key (or with --key {known}).")
        return known
    if stored:
        if key is not None and key != stored.key:
            raise UsageError(
                f"catalog {name!r} is keyed by {stored.key!r}, not {key!r}; the key of a loaded catalog cannot change "
                f"(load it under another name to use {key!r})."
            )
        return stored.key
    if key is None:
        raise UsageError(
            f"catalog {name!r} is not one of the known catalogs ({', '.join(sorted(KNOWN_KEYS))}); "
            f"give the field that identifies its records with --key FIELD."
        )
    return key


# Catalogs the main server computes itself: loading them from a file would be overwritten at the next pass.
COMPUTED = {"loyalty_balances": "it is computed from the cajas' points ledgers by `syscafe-sync loyalty sync`"}


def load(name: str, path: Path, key: str | None = None) -> dict:
    """Loads FILE as the new full content of catalog NAME; logs the load. Raises UsageError, nothing written, on a bad file."""
    started = time.monotonic()
    path = Path(path)
    _check_name(name)
    if name in COMPUTED:
        raise UsageError(f"catalog {name!r} cannot be loaded from a file: {COMPUTED[name]}.")
    key = _resolve_key(name, key)
    try:
        records = _parse(path, key)
    except _Bad as exc:
        raise UsageError(f"{path} {exc}. Nothing was loaded.") from None
    try:
        result = _apply(name, key, records)
    except IntegrityError:
        raise SyncError(f"another load of catalog {name!r} committed at the same time; run this load again.") from None
    result["file"] = str(path.resolve())
    duration = time.monotonic() - started
    version_text = (f"version {result['previous_version']} → {result['version']}" if result["version"] != result["previous_version"]
                    else f"version {result['version']} (unchanged)")
    synclog.record(synclog.Entry(
        action="catalogs load", outcome="ok", duration_s=duration,
        # the log's counters: new records (re-added ones too), changed ones, unchanged ones; deletions in the message
        imported=result["new"], updated=result["changed"], skipped=result["unchanged"],
        message=(f"{name}: {result['upserts']} upserts, {result['deletes']} deletes, {result['unchanged']} unchanged; "
                 f"{version_text}, {result['records']} records, from {path.name}"),
        details={k: result[k] for k in ("catalog", "key", "version", "previous_version", "upserts", "new", "changed", "deletes", "unchanged", "records",
                                      "sha256", "file")},
    ))
    return result


def _apply(name: str, key: str, records) -> dict | None:
    """`records`: key -> canonical JSON, or a function computing them once the catalog is locked
    (None when it gives nothing: the catalog is left as it is)."""
    with write_transaction():
        # Two services loading or computing one catalog: the second reads what the first committed,
        # its first version included, so no change is lost and no version is given twice.
        lock(f"catalog:{name}")
        if callable(records):
            records = records()
            if not records:
                return None
        cat = Catalog.get_or_none(Catalog.name == name)
        previous = cat.version if cat else 0
        stored = {k: (deleted, data) for k, deleted, data in
                  CatalogRecord.select(CatalogRecord.key, CatalogRecord.deleted, CatalogRecord.data)
                  .where(CatalogRecord.catalog == name).tuples()}
        # (key, data or None for a deletion, already stored?) in key order: versions follow that order.
        changes: list[tuple[str, str | None, bool]] = []
        upserts = deletes = unchanged = new_records = 0
        for k in sorted(records.keys() | {k for k, (deleted, _) in stored.items() if not deleted}):
            new = records.get(k)
            old = stored.get(k)
            if new is None:
                changes.append((k, None, True))
                deletes += 1
            elif old is None or old[0] or old[1] != new:
                changes.append((k, new, old is not None))
                upserts += 1
                new_records += old is None or old[0]
            else:
                unchanged += 1
        version = previous + len(changes)
        rows = [{"catalog": name, "key": k, "version": previous + i, "deleted": data is None, "data": data}
                for i, (k, data, _) in enumerate(changes, 1)]
        # A changed record is written again whole: its row deleted, then inserted with the others.
        _delete(name, [k for k, _, was_stored in changes if was_stored])
        _insert(rows)
        now = utcnow()
        sha = record_set_sha256(records)
        if cat is None:
            Catalog.insert(name=name, key=key, version=version, records=len(records), sha256=sha, updated_at=now).execute()
        elif changes or cat.key != key or cat.sha256 != sha or cat.records != len(records):
            Catalog.update(key=key, version=version, records=len(records), sha256=sha, updated_at=now).where(Catalog.name == name).execute()
    return {"catalog": name, "key": key, "version": version, "previous_version": previous,
            "upserts": upserts, "deletes": deletes, "unchanged": unchanged, "records": len(records), "sha256": sha,
            "new": new_records, "changed": upserts - new_records}


def set_records(name: str, key: str, compute) -> dict | None:
    """Sets a computed catalog (COMPUTED) to what `compute()` gives (key -> canonical JSON), versioning only
    what changed. It is computed inside the catalog's lock: a service that computed earlier never commits
    over a later one's result. None when it gives no records."""
    result = _apply(name, key, compute)
    if result is None:
        return None
    if result["version"] != result["previous_version"]:
        synclog.record(synclog.Entry(
            action="catalogs load", outcome="ok", imported=result["new"], updated=result["changed"], skipped=result["unchanged"],
            message=f"{name}: computed, {result['upserts']} upserts, {result['deletes']} deletes; version {result['version']}"))
    return result


def _execute_values():
    """psycopg2's execute_values when the database is PostgreSQL through psycopg2, else None."""
    if isinstance(database.obj, SqliteDatabase):
        return None
    try:
        from psycopg2.extensions import cursor as pg_cursor
        from psycopg2.extras import execute_values
    except ImportError:
        return None
    return execute_values if isinstance(database.obj.cursor(), pg_cursor) else None


def _delete(name: str, keys: list[str]) -> None:
    for chunk in chunked(keys, _KEYS_PER_STATEMENT):
        CatalogRecord.delete().where((CatalogRecord.catalog == name) & CatalogRecord.key.in_(chunk)).execute()


def _insert(rows: list[dict]) -> None:
    """Bulk insert: SQLite runs one prepared statement by executemany, psycopg2 sends pages of
    VALUES; peewee's insert_many, which builds a statement value by value, is the fallback."""
    if not rows:
        return
    db = database.obj
    m = CatalogRecord._meta
    names = ("catalog", "key", "version", "deleted", "data")
    columns = ", ".join(f'"{m.fields[n].column_name}"' for n in names)
    if isinstance(db, SqliteDatabase):
        sql = f'INSERT INTO "{m.table_name}" ({columns}) VALUES ({", ".join("?" * len(names))})'
        db.cursor().executemany(sql, [(r["catalog"], r["key"], r["version"], int(r["deleted"]), r["data"]) for r in rows])
        return
    execute_values = _execute_values()
    if execute_values is not None:
        execute_values(db.cursor(), f'INSERT INTO "{m.table_name}" ({columns}) VALUES %s',
                       [(r["catalog"], r["key"], r["version"], r["deleted"], r["data"]) for r in rows], page_size=2000)
        return
    for chunk in chunked(rows, _PG_MAX_PARAMS // len(names)):
        CatalogRecord.insert_many(chunk).execute()


# --- reading ----------------------------------------------------------------------------------------


def names() -> list[str]:
    """The loaded catalogs, sorted."""
    return sorted(c for (c,) in Catalog.select(Catalog.name).tuples())


def get(name: str) -> Catalog:
    cat = Catalog.get_or_none(Catalog.name == name)
    if cat is None:
        loaded = names()
        which = f"the loaded ones are: {', '.join(loaded)}" if loaded else "no catalog is loaded yet; load one with `syscafe-sync catalogs load NAME FILE`"
        raise UsageError(f"catalog {name!r} is not loaded; {which}.")
    return cat


def live(name: str) -> dict[str, str]:
    """key -> canonical data of every live record."""
    return dict(CatalogRecord.select(CatalogRecord.key, CatalogRecord.data)
                .where((CatalogRecord.catalog == name) & (CatalogRecord.deleted == False)).tuples())


def changes_since(name: str, version: int) -> list[tuple[int, str, bool, str | None]]:
    """(version, key, deleted, data) of every record whose last change is after `version`, in version order."""
    return [(v, k, bool(d), data) for v, k, d, data in
            CatalogRecord.select(CatalogRecord.version, CatalogRecord.key, CatalogRecord.deleted, CatalogRecord.data)
            .where((CatalogRecord.catalog == name) & (CatalogRecord.version > version))
            .order_by(CatalogRecord.version).tuples()]


def deleted_since(name: str, version: int) -> bool:
    """Whether a record was deleted after `version` (an indexed look, no record's data read)."""
    return (CatalogRecord.select().where((CatalogRecord.catalog == name) & (CatalogRecord.version > version)
                                         & CatalogRecord.deleted).exists())


def view(name: str, attempts: int = 5) -> tuple[Catalog, dict[str, str]]:
    """The catalog row and its live records as of one version, even while a load commits.

    Reads the catalog, its records, then the catalog again: a load that
    committed in between changes the version, and the read is done again.
    """
    for _ in range(attempts):
        cat = get(name)
        records = live(name)
        again = get(name)
        if again.version == cat.version and again.sha256 == cat.sha256:
            return cat, records
    raise SyncError(f"catalog {name!r} kept changing while it was read; try again.")


def state(name: str, attempts: int = 5) -> tuple[Catalog, list[tuple[str, int, bool, str | None]]]:
    """The catalog and every record, tombstones included, as (key, version, deleted, data), all as of one version."""
    query = CatalogRecord.select(CatalogRecord.key, CatalogRecord.version, CatalogRecord.deleted, CatalogRecord.data).where(
        CatalogRecord.catalog == name)
    for _ in range(attempts):
        cat = get(name)
        rows = [(k, v, bool(d), data) for k, v, d, data in database.execute(query)]
        again = get(name)
        if again.version == cat.version and again.sha256 == cat.sha256:
            return cat, rows
    raise SyncError(f"catalog {name!r} kept changing while it was read; try again.")


def show(name: str, key: str | None = None) -> dict:
    """{"catalog", "key", "version", "records": [live records sorted by key]}; with `key`, only that record."""
    _check_name(name)
    cat = get(name)
    out = {"catalog": cat.name, "key": cat.key, "version": cat.version}
    if key is None:
        records = live(name)
        out.update(records=[json.loads(records[k]) for k in sorted(records)], count=len(records), sha256=cat.sha256,
                   updated_at=cat.updated_at.isoformat())
        return out
    row = CatalogRecord.get_or_none((CatalogRecord.catalog == name) & (CatalogRecord.key == key))
    if row is None:
        raise UsageError(f"catalog {name!r} has no record with {cat.key} {key!r}; `syscafe-sync catalogs show {name}` lists them.")
    if row.deleted:
        raise UsageError(f"catalog {name!r} has no record with {cat.key} {key!r}: it was deleted at version {row.version}.")
    record = json.loads(row.data)
    out.update(records=[record], record=record, record_version=row.version)
    return out
