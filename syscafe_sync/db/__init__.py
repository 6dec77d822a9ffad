"""Connecting to the main database (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import decimal
import re
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from peewee import Database, DatabaseError, InterfaceError, OperationalError, SqliteDatabase
from playhouse.db_url import connect as url_connect
from playhouse.pool import PooledDatabase

from ..config import mask_password, mask_query_password
from ..errors import ConfigError, DatabaseDown, NotInitialised
from . import migrations
from .models import database

_FIELD_TYPES = {
    "sqlite": {"DECTEXT": "TEXT"},
    "postgres": {"DECTEXT": "NUMERIC"},
}

# WAL lets readers (`log --follow`, `caja list`) run while an import writes;
# the busy timeout makes a second writer wait instead of failing at once.
# journal_mode is not among them: WAL is kept in the database file itself, so connect() sets it once;
# setting it again on each connection (one per worker thread) costs more than the rest of the connection.
# A pooled connection older than this is closed on its next check-out or check-in, and a new one opened.
STALE_S = 600
_SQLITE_PRAGMAS = {"busy_timeout": 30000, "synchronous": "normal", "foreign_keys": 1}
# libpq's own default is to wait for the TCP handshake as long as the kernel retries it (about two minutes
# on Linux) when the server's host is off: a service would hang there, deaf to its stop. A URL's own
# ?connect_timeout= is kept.
PG_CONNECT_TIMEOUT_S = 10
# What PostgreSQL (libpq) says when it answered and refused for good: the URL names a database, role or
# password it does not know, a role that may not log in or connect there, an SSL the server lacks, a bad
# option value, or pg_hba.conf lets the client in with no rule. Anything else a connection
# fails with (refused, timed out, a host name not found yet at boot, "the database system is starting up",
# "too many clients") may pass, and is DatabaseDown. English and Spanish, the server's lc_messages of
# most installations here; a refusal in another language is taken as one that may pass, which costs a
# service retries with the message in its log, never a service left dead.
_PG_REFUSED_FOR_GOOD = re.compile(
    r"does not exist|no existe|authentication failed|autentificaci[oó]n|no password supplied|pg_hba\.conf"
    r"|not permitted to log in|no se le permite conectarse|permission denied|permiso denegado"
    r"|does not support SSL|no soporta SSL|invalid (?:integer value|sslmode value)",
    re.IGNORECASE,
)


# A Decimal handed straight to sqlite3 (the importer's bulk inserts) is stored as its exact text,
# as MoneyField.db_value stores it; registered once, the conversion runs in C.
sqlite3.register_adapter(decimal.Decimal, str)
# Python 3.11's sqlite3 binds None only after looking for an adapter the slow way (two failed
# attribute lookups per value), which made a voucher's empty fields cost more than its text. An
# adapter registered for None is found at once; `{}.get` returns None for any value, and, being
# C, costs no Python call.
sqlite3.register_adapter(type(None), {}.get)


def connect(url: str) -> Database:
    """Opens the database named by `url`, with a connection pool, and binds the models to it."""
    db = open_url(url, pooled=True)
    previous = database.obj
    if isinstance(previous, PooledDatabase) and previous is not db:
        # Another home in the same process (the tests, the Windows service's thread): its idle connections
        # are closed now, not at garbage collection. Those in use are other threads' to close.
        previous.close_idle()
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        if kind(url) == "sqlite":
            db.execute_sql("PRAGMA journal_mode = wal")
    except (DatabaseError, InterfaceError, ImportError) as exc:
        # Besides OperationalError: psycopg2's ProgrammingError for an option libpq does not know (?foo=bar),
        # and the driver not installed.
        said = " ".join(str(exc).split())  # libpq's message spans lines; ours is one
        if isinstance(exc, OperationalError) and kind(url) == "postgres" and not _PG_REFUSED_FOR_GOOD.search(said):
            raise DatabaseDown(f"the database {redact(url)} does not answer ({said}); start PostgreSQL there or wait "
                               "until it is up (a service tries again), or fix --db, SYSCAFE_SYNC_DB or database.url "
                               "in config.toml if it names the wrong server.") from exc
        raise ConfigError(f"cannot open the database {redact(url)} ({said}); check --db, SYSCAFE_SYNC_DB or database.url in config.toml.") from exc
    return db


def kind(url: str) -> str | None:
    """"sqlite" or "postgres" for a URL we can open, None for any other."""
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme == "sqlite":
        return "sqlite"
    return "postgres" if scheme in ("postgres", "postgresql", "psycopg3") else None


def sqlite_path(url: str) -> str:
    """The file of a sqlite:///PATH URL ("" or ":memory:" for a database in memory)."""
    return url.partition(":///")[2]


def open_url(url: str, pooled: bool = False) -> Database:
    """The database named by `url`, not connected and not bound to the models.

    `pooled`: a thread's close() hands its connection back for the next thread to take, instead of
    closing it. Each caja is served in threads of its own, so without a pool every caja action opened
    and closed two connections: on SQLite a connection's first statement reads and parses the whole
    schema, and with the pragmas that was 0.7 ms a time, more than the caja's own statements took; on
    PostgreSQL a connection is a TCP handshake and a backend process. A connection serves one thread
    at a time (peewee keeps it thread-local until close()), so sharing it across threads is safe:
    hence SQLite's check_same_thread=False. A PostgreSQL connection is tried (SELECT 1) each time it
    is handed out, so one the server or a firewall dropped between passes is discarded, not used;
    every connection is renewed after STALE_S."""
    scheme = kind(url)
    pool = {"max_connections": None, "stale_timeout": STALE_S} if pooled else {}
    given = url  # what messages name
    if pooled and scheme:
        url = _pool_scheme(url)
    if scheme == "sqlite":
        path = sqlite_path(url)
        if pooled and (not path or path == ":memory:"):
            # sqlite:// is a database in memory, and sqlite:NAME a file peewee names from part of NAME: the
            # first is gone when the command ends and, pooled, is another empty one for every connection.
            raise ConfigError(f"database URL {redact(given)!r} names no database file; give sqlite:///PATH (three "
                              "slashes, then the file's path) or postgresql://…, in --db, SYSCAFE_SYNC_DB or "
                              "database.url in config.toml.")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if pooled:
            pool["check_same_thread"] = False
        db = url_connect(url, pragmas=_SQLITE_PRAGMAS, field_types=_FIELD_TYPES["sqlite"], **pool)
    elif scheme == "postgres":
        if "connect_timeout" not in parse_qs(urlparse(url).query):
            pool["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        db = url_connect(url, field_types=_FIELD_TYPES["postgres"], **pool)
    else:
        raise ConfigError(f"database URL {redact(given)!r} is neither sqlite:///PATH nor postgresql://…; fix --db, "
                          "SYSCAFE_SYNC_DB or database.url in config.toml.")
    return db


def _pool_scheme(url: str) -> str:
    """sqlite:///x -> sqlite+pool:///x (playhouse.db_url's name for the pooled class); kept if already pooled."""
    scheme, rest = url.split(":", 1)
    return url if scheme.endswith("+pool") else f"{scheme}+pool:{rest}"


def is_postgres(url: str) -> bool:
    return kind(url) == "postgres"


def require_file(url: str) -> None:
    """A command other than `init` must not leave an empty SQLite file behind when it refuses."""
    if kind(url) == "sqlite":
        path = sqlite_path(url)
        if path and path != ":memory:" and not Path(path).exists():
            raise NotInitialised(f"there is no database at {path}; run `syscafe-sync init` first (with the same --home / --db).")


def require_schema(db: Database) -> None:
    version = migrations.current_version(db)
    migrations.refuse_newer(db, version)
    if version < migrations.LATEST:
        raise NotInitialised(
            f"the database schema is at version {version}, this syscafe-sync needs {migrations.LATEST}; run `syscafe-sync init` to create or upgrade it."
        )


def redact(url: str) -> str:
    """The URL without its password, for messages and logs; never raises, as it is called to word an error."""
    try:
        password = urlparse(url).password
    except ValueError:  # "[::1" and the like: urlparse gives up, and so what may be a password is masked by hand
        return mask_password(url)
    if password:
        url = url.replace(f":{password}@", ":***@", 1)
    return mask_query_password(url)


def write_transaction():
    """A transaction that will write. On SQLite it takes the write lock at BEGIN:
    a transaction that reads first and writes later fails at once with "database
    is locked" when another writer got in between, whatever the busy timeout."""
    db = database.obj
    if isinstance(db, SqliteDatabase):
        return _serialized(db.atomic(lock_type="IMMEDIATE"))
    return db.atomic()


@contextmanager
def references_unchecked():
    """Around a write transaction whose rows reference only rows that exist or that it wrote itself,
    with ids it gave: on SQLite, each child row's foreign key is checked by a search of its parent's
    table, a tenth of an import's inserts, for a check that cannot fail there. Set outside the
    transaction, as SQLite ignores it inside one; this thread's connection only."""
    db = database.obj
    if not isinstance(db, SqliteDatabase):
        yield
        return
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")


# SQLite has one writer at a time. Threads of this process that want to write wait here, and the next
# one starts the moment the lock is free; left to SQLite, each would retry on its busy handler's
# schedule (1, 2, 5, 10 … ms of sleep), which costs more than the short transactions themselves.
# Reentrant: a write transaction may open another (a savepoint) inside it.
_WRITER = threading.RLock()


_BUSY_S = _SQLITE_PRAGMAS["busy_timeout"] / 1000


@contextmanager
def _serialized(transaction):
    # Bounded like SQLite's own wait, so a writer stuck in this process cannot hold the others for ever.
    if not _WRITER.acquire(timeout=_BUSY_S):
        raise OperationalError(f"database is locked: another thread of this process has been writing for over {_BUSY_S:g} s")
    try:
        with transaction:
            yield
    finally:
        _WRITER.release()


def lock(*keys: str) -> None:
    """Inside a write transaction: no other transaction that locks one of `keys` runs its
    read-modify-write until this one ends. SQLite's BEGIN IMMEDIATE serializes every writer
    already; on PostgreSQL (READ COMMITTED) two services could otherwise both read the old
    value and the second commit would lose the first one's update. A transaction-level
    advisory lock is released by COMMIT or ROLLBACK, so a killed process never leaves one;
    the keys are taken in sorted order so two transactions cannot deadlock on them."""
    db = database.obj
    if isinstance(db, SqliteDatabase):
        return
    for key in sorted(set(keys)):
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
