"""`migrate --to URL`: copies the main database into another, empty one, and proves the copy.

The way up is SQLite into PostgreSQL; the way back, PostgreSQL into a new SQLite
file. The target's schema is made by the same migrations `init` runs, so it is
the schema a fresh installation has. Then every table of the schema (every
model, parents before children) is copied in primary-key order, in batches,
inside one transaction: a copy that fails or does not verify leaves the
target's tables empty. Verification reads both sides again and compares, per
table, the row count and a sha256 over the canonical rows (each row's Python
values as JSON, in primary-key order), so a value that changed on the way (a
decimal's scale, a time, a boolean) is caught. Last, on PostgreSQL, the id
sequences are moved past the copied ids, so the next insert there does not
collide.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from peewee import CharField, Database, SqliteDatabase, TextField

from . import config as config_mod
from . import db as db_mod
from .db import migrations
from .db.models import ALL_MODELS, SchemaVersion, SyncLog, database, utcnow
from .errors import SyncError, UsageError

# Every table, parents before children (foreign keys); schema_version is the target's own, written by its migrations.
MODELS = [m for m in ALL_MODELS if m is not SchemaVersion]


class CopyMismatch(SyncError):
    """The copy read back from the target is not the source: it was rolled back."""


def _canonical(value) -> object:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def _order(db: Database, model) -> list:
    """The primary key, in the same order on both sides. SQLite compares text byte by byte; a PostgreSQL
    database made with a language's collation (en-US puts "bodega" before "Norte") would read the
    same rows in another order and fail the checksum, so its text is compared as bytes too (COLLATE "C")."""
    pk = model._meta.primary_key
    fields = [model._meta.fields[n] for n in pk.field_names] if hasattr(pk, "field_names") else [pk]
    if isinstance(db, SqliteDatabase):
        return fields
    return [f.collate('"C"') if isinstance(f, (CharField, TextField)) else f for f in fields]


def _rows(db: Database, model, batch: int):
    """The table's rows as tuples of Python values, in primary-key order, `batch` at a time."""
    fields = model._meta.sorted_fields
    sql, params = db.get_sql_context().sql(model.select(*fields).order_by(*_order(db, model))).query()
    cursor = db.execute_sql(sql, params)
    convert = [f.python_value for f in fields]
    while True:
        chunk = cursor.fetchmany(batch)
        if not chunk:
            return
        yield [tuple(c(v) for c, v in zip(convert, row)) for row in chunk]


def _digest(db: Database, model, batch: int) -> tuple[int, str]:
    h = hashlib.sha256()
    count = 0
    for chunk in _rows(db, model, batch):
        for row in chunk:
            h.update(json.dumps([_canonical(v) for v in row], ensure_ascii=False, separators=(",", ":")).encode())
            h.update(b"\n")
        count += len(chunk)
    return count, h.hexdigest()


def _tables(db: Database) -> list[str]:
    return sorted(t for t in db.get_tables() if not t.startswith("sqlite_"))  # SQLite's own (sqlite_stat1) are not data


def _held_data(target: Database) -> list[str]:
    """Tables of the target that hold rows, ours or not: what `init` writes there (the schema's
    versions, its own log row) does not count."""
    ours = {m._meta.table_name: m for m in MODELS}
    out = []
    for name in _tables(target):
        if name == SchemaVersion._meta.table_name:
            continue
        if name in ours:
            query = ours[name].select()
            if ours[name] is SyncLog:
                query = query.where(SyncLog.action != "init")
            held = target.execute(query.limit(1)).fetchone()
        else:
            held = target.execute_sql(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone()
        if held:
            out.append(name)
    return out


def _uncovered(source: Database) -> list[str]:
    """Tables of the source that no model describes: copying without them would lose them silently."""
    known = {m._meta.table_name for m in ALL_MODELS}
    return [t for t in _tables(source) if t not in known]


def _check_target(source_url: str, target_url: str) -> str:
    """The target's kind; UsageError for a URL that cannot be a new home for the data."""
    config_mod.parse_db_url(target_url, lambda shown: f"--to {shown}: the URL", UsageError)  # kind(), redact() raise on it
    kind = db_mod.kind(target_url)
    where = db_mod.redact(target_url)
    if kind is None:
        raise UsageError(f"--to {where}: the target must be an empty PostgreSQL database (postgresql://USER@HOST/DBNAME, "
                         "made with `createdb`) or a new SQLite file (sqlite:///PATH).")
    if kind == "sqlite":
        path = db_mod.sqlite_path(target_url)
        if not path or path == ":memory:":
            raise UsageError(f"--to {where}: an in-memory database is gone when migrate ends; name a file, sqlite:///PATH.")
    if _same(source_url, target_url):
        raise UsageError(f"--to {where} is the database being copied; give another, empty one.")
    return kind


def _same(a: str, b: str) -> bool:
    if db_mod.kind(a) == db_mod.kind(b) == "sqlite":
        return Path(db_mod.sqlite_path(a)).resolve() == Path(db_mod.sqlite_path(b)).resolve()
    return a == b


def copy(source: Database, source_url: str, target_url: str, batch: int = 2000,
         progress: Callable[[str], None] = lambda _: None) -> dict:
    """Copies `source` (bound to the models now) into the database at `target_url`: an empty PostgreSQL
    database, or a new SQLite file (the way back). Returns what was copied and verified; UsageError,
    nothing changed, when the target cannot take the copy."""
    kind = _check_target(source_url, target_url)
    if batch < 1:
        raise UsageError(f"--batch {batch}: give a number of rows greater than zero, like 2000.")
    unknown = _uncovered(source)
    if unknown:
        raise UsageError(f"the database {db_mod.redact(source_url)} holds tables this syscafe-sync cannot copy "
                         f"({', '.join(unknown)}); nothing was copied: upgrade syscafe-sync to the version that created "
                         "them, or drop them if they are not syscafe-sync's.")
    started = time.monotonic()
    fresh = "give a new file" if kind == "sqlite" else "create it with `createdb`"
    target = db_mod.open_url(target_url)
    try:
        target.connect()
    except Exception as exc:
        raise UsageError(f"cannot open the target database {db_mod.redact(target_url)} ({exc}); "
                         f"{fresh} and check the URL.") from None
    try:
        full = _held_data(target)
        if full:
            raise UsageError(f"the target database {db_mod.redact(target_url)} already holds data (tables: {', '.join(full)}); "
                             f"nothing was copied. Give an empty database ({fresh}).")
        database.initialize(target)  # the migrations and inserts below go through the models
        migrations.upgrade(target)
        tables = []
        with target.atomic():
            SyncLog.delete().execute()  # `init`'s row, if it ran there: the log is copied whole, ids and all
            for model in MODELS:
                tables.append(_copy_table(source, target, model, batch, progress))
            if kind == "postgres":
                _reset_sequences(target)  # SQLite's next id is the largest one plus one already
        # The target's log says where its history came from; the source's log says where it went (the CLI).
        SyncLog.create(at=utcnow(), level="info", action="migrate", outcome="ok",
                       message=f"copied from {db_mod.redact(source_url)}: {sum(t['rows'] for t in tables)} rows in "
                               f"{len(tables)} tables, counts and sha256 verified")
        return {"target": db_mod.redact(target_url), "tables": tables, "rows": sum(t["rows"] for t in tables),
                "duration_s": round(time.monotonic() - started, 3)}
    finally:
        database.initialize(source)
        target.close()


def _rows_per_insert(target: Database, fields: list, batch: int) -> int:
    """SQLite refuses a statement with more parameters than its limit (32766 in many builds): a batch of a
    wide table (voucher has 30 columns) is split to stay under it. psycopg2 sends PostgreSQL no parameters."""
    if not isinstance(target, SqliteDatabase):
        return batch
    limit = target.connection().getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(batch, limit // len(fields)))


def _copy_table(source: Database, target: Database, model, batch: int, progress) -> dict:
    name = model._meta.table_name
    fields = model._meta.sorted_fields
    copied = 0
    step = _rows_per_insert(target, fields, batch)
    for chunk in _rows(source, model, batch):
        for at in range(0, len(chunk), step):
            model.insert_many(chunk[at:at + step], fields=fields).execute()
        copied += len(chunk)
        progress(f"{name}: {copied} rows")
    count, sha = _digest(source, model, batch)
    got_count, got_sha = _digest(target, model, batch)
    if (count, sha) != (got_count, got_sha):
        # Raised inside the transaction: the target is rolled back to empty.
        raise CopyMismatch(f"table {name}: the source has {count} rows (sha256 {sha[:12]}…), the copy read back "
                           f"{got_count} (sha256 {got_sha[:12]}…), so the whole copy was rolled back and the target holds "
                           "no data; look for a trigger or rule in the target that changes rows, or report it.")
    progress(f"{name}: {count} rows, verified (sha256 {sha[:12]}…)")
    return {"table": name, "rows": count, "sha256": sha}


def _reset_sequences(target: Database) -> None:
    """Serial ids were copied as they were: each sequence must continue after the largest one."""
    for model in MODELS:
        pk = model._meta.primary_key
        if getattr(pk, "field_type", None) != "AUTO":
            continue
        table, column = model._meta.table_name, pk.column_name
        target.execute_sql(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
            f'COALESCE(MAX("{column}"), 1), MAX("{column}") IS NOT NULL) FROM "{table}"')

