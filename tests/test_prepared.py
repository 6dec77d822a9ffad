"""Statements compiled once (db/prepared.py): the same rows as the ORM's own queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from syscafe_sync.db.models import Lease
from syscafe_sync.db.prepared import Prepared, slot

AT = dt.datetime(2026, 12, 1, 22, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))

_INSERT = Prepared(lambda: Lease.insert(name=slot("name"), holder=slot("holder"), host="main", pid=slot("pid"),
                                        acquired_at=slot("at", Lease.acquired_at), expires_at=slot("expires")))
_MOVE = Prepared(lambda: Lease.update(expires_at=slot("expires")).where(Lease.holder == slot("holder")))
_READ = Prepared(lambda: Lease.select(Lease.holder, Lease.host, Lease.acquired_at).where(Lease.name == slot("name")))


def test_values_are_bound_afresh_and_converted_as_the_model_would(home):
    _INSERT.execute(name="a", holder="h1", pid=1, at=AT, expires=10.0)
    _INSERT.execute(name="b", holder="h2", pid=2, at=AT + dt.timedelta(hours=1), expires=20.0)
    a, b = Lease.get(Lease.name == "a"), Lease.get(Lease.name == "b")
    assert (a.holder, a.host, a.pid, a.expires_at) == ("h1", "main", 1, 10.0)  # "main": a constant of the query
    assert (b.holder, b.pid, b.expires_at) == ("h2", 2, 20.0)
    # Stored as the model stores it (UTC text), so the ORM reads it back as the same instant.
    assert a.acquired_at == AT and b.acquired_at == AT + dt.timedelta(hours=1)
    assert _READ.one(name="b")[:2] == ("h2", "main")
    assert _READ.one(name="nobody") is None


def test_rowcount_counts_only_the_rows_matched(home):
    for name, holder in (("a", "h1"), ("b", "h1"), ("c", "h2")):
        _INSERT.execute(name=name, holder=holder, pid=1, at=AT, expires=1.0)
    assert _MOVE.rowcount(expires=5.0, holder="h1") == 2
    assert _MOVE.rowcount(expires=5.0, holder="nobody") == 0
    assert sorted((r.name, r.expires_at) for r in Lease.select()) == [("a", 5.0), ("b", 5.0), ("c", 1.0)]


def test_a_missing_value_is_refused_before_anything_runs(home):
    with pytest.raises(KeyError, match="at"):
        _INSERT.execute(name="a", holder="h1", pid=1, expires=1.0)
    assert Lease.select().count() == 0
