"""Fresh PostgreSQL databases for tests: one per test, cloned from a template that holds the schema.

`SYSCAFE_SYNC_TEST_DB` chooses the database every `home` runs on:
unset or `sqlite` — a SQLite file in each home (the default);
`pg` — PostgreSQL at 127.0.0.1:5432, database `test`, user `postgres` or `root` with trust auth;
`postgresql://USER@HOST:PORT/DB` — that server, DB being one the tests may connect to
in order to create and drop their own databases.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlparse

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
ENV = "SYSCAFE_SYNC_TEST_DB"


def mode() -> str:
    value = os.environ.get(ENV, "sqlite").strip() or "sqlite"
    if value == "sqlite":
        return "sqlite"
    if value == "pg" or value.startswith(("postgresql://", "postgres://")):
        return "pg"
    raise pytest.UsageError(f"{ENV}={value!r}: use sqlite, pg, or postgresql://USER@HOST:PORT/DB")


def _candidates() -> list[dict]:
    value = os.environ.get(ENV, "pg")
    if value.startswith(("postgresql://", "postgres://")):
        u = urlparse(value)
        return [dict(host=u.hostname or PG_HOST, port=u.port or PG_PORT, dbname=u.path.lstrip("/") or "test",
                     user=u.username or "postgres", password=u.password)]
    return [dict(host=PG_HOST, port=PG_PORT, dbname="test", user=user, password=None) for user in ("postgres", "root")]


class Server:
    """An admin connection (autocommit) that creates and drops test databases."""

    def __init__(self):
        self.conn, self.params, self.why = None, None, None
        self.template: str | None = None
        try:
            import psycopg2
        except ImportError as exc:
            self.why = f"psycopg2 is not installed ({exc})"
            return
        problems = []
        for params in _candidates():
            try:
                conn = psycopg2.connect(connect_timeout=3, **{k: v for k, v in params.items() if v is not None})
            except psycopg2.Error as exc:
                problems.append(f"{params['user']}: {str(exc).strip()}")
                continue
            conn.autocommit = True
            self.conn, self.params = conn, params
            return
        where = ", ".join(f"{p['user']}@{p['host']}:{p['port']}/{p['dbname']}" for p in _candidates())
        self.why = f"PostgreSQL ({where}) is not reachable with trust auth: " + "; ".join(problems)

    def require(self) -> None:
        """Skips the test without a server, with the reason; under CI=true fails it instead."""
        if self.conn is not None:
            return
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the PostgreSQL tests must run, but {self.why}")
        pytest.skip(self.why)

    def url(self, name: str) -> str:
        p = self.params
        auth = p["user"] + (f":{p['password']}" if p["password"] else "")
        return f"postgresql://{auth}@{p['host']}:{p['port']}/{name}"

    def create(self, template: str | None = None) -> str:
        name = f"syscafe_test_{secrets.token_hex(6)}"
        with self.conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop(self, name: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def close(self) -> None:
        if self.conn is not None:
            if self.template:
                self.drop(self.template)
            self.conn.close()


_server: Server | None = None


def server() -> Server:
    """One admin connection for the session."""
    global _server
    if _server is None:
        _server = Server()
    return _server


def schema_template(srv: Server) -> str:
    """A database holding the current schema, made once per session: cloning it is much faster than migrating."""
    if srv.template:
        return srv.template
    from peewee import PostgresqlDatabase

    from syscafe_sync.db import connect, migrations
    from syscafe_sync.db.models import database

    name = srv.create()
    db = connect(srv.url(name))
    try:
        migrations.upgrade(db)
    finally:
        db.close()
        database.initialize(None)
    assert isinstance(db, PostgresqlDatabase)
    srv.template = name
    return name
