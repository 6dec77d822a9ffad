"""The connection pool: threads hand their connections on, and none is left open behind them."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pgtest
from conftest import PG_HOMES, sqlite_only

from syscafe_sync import config as config_mod, registry, synclog
from syscafe_sync.db.models import SyncLog, database
from syscafe_sync.serve import in_pool


def _open_db_files(home: Path) -> int:
    """This process's file descriptors on the home's SQLite file (each connection holds one)."""
    target = str((home / config_mod.DB_FILE).resolve())
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            pass
    return n


def _log_in_threads(workers: int, n: int) -> None:
    def one(i: int) -> None:
        synclog.record(synclog.Entry(action="test", outcome="ok", message=f"row {i}"))
        assert registry.all_cajas() == []

    in_pool(workers, one, list(range(n)))


@sqlite_only("counts the process's descriptors on the SQLite file")
def test_many_threads_leave_no_more_connections_than_ran_at_once(home):
    open_after = []
    for _ in range(20):
        _log_in_threads(4, 8)
        open_after.append(_open_db_files(home))
    assert SyncLog.select().where(SyncLog.action == "test").count() == 20 * 8
    # 4 workers and this thread at most, handed on from round to round: 20 rounds of fresh threads open no more.
    assert max(open_after) <= 5, open_after


def test_connections_the_postgresql_server_dropped_are_not_handed_out_again(pg_home):
    """A PostgreSQL restart (here: every backend of the database terminated) between two passes:
    the pool's idle connections are dead, and the next pass must not fail on them."""
    _log_in_threads(4, 8)  # the pool now holds idle connections
    name = urlparse(PG_HOMES[pg_home]).path.lstrip("/")
    with pgtest.server().conn.cursor() as cur:
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", (name,))
        assert cur.fetchone()[0] >= 2
    database.close()  # this thread's own was dropped too: as the service's pass threads do, it hands it back
    _log_in_threads(4, 8)
    assert SyncLog.select().where(SyncLog.action == "test").count() == 16
