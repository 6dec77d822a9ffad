"""CajaLease: two runs never interleave on one caja (SPEC §3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from syscafe_sync import lease as lease_mod
from syscafe_sync.db.models import Lease, utcnow
from syscafe_sync.errors import Busy
from syscafe_sync.lease import CajaLease, holding


@pytest.fixture
def db(cfg):
    """The `cfg` fixture binds the models to a fresh, initialised SQLite home."""
    return cfg


def test_second_lease_cannot_acquire_while_first_holds_it(db):
    first, second = CajaLease("caja:CAJA1", 60), CajaLease("caja:CAJA1", 60)
    first.acquire(wait=0)
    started = time.monotonic()
    with pytest.raises(Busy) as err:
        second.acquire(wait=0.2)
    assert time.monotonic() - started >= 0.2
    assert f"held by process {os.getpid()}" in str(err.value)
    assert "caja:CAJA1 is busy" in str(err.value)
    assert Lease.get(Lease.name == "caja:CAJA1").holder == first.holder


def test_second_lease_acquires_after_release(db):
    first, second = CajaLease("caja:CAJA1", 60), CajaLease("caja:CAJA1", 60)
    first.acquire(wait=0)
    first.release()
    second.acquire(wait=0)
    assert Lease.get(Lease.name == "caja:CAJA1").holder == second.holder


def test_release_by_a_non_holder_leaves_the_lease(db):
    first, second = CajaLease("caja:CAJA1", 60), CajaLease("caja:CAJA1", 60)
    first.acquire(wait=0)
    second.release()
    assert Lease.get(Lease.name == "caja:CAJA1").holder == first.holder


def test_leases_on_different_cajas_do_not_block_each_other(db):
    CajaLease("caja:CAJA1", 60).acquire(wait=0)
    CajaLease("caja:CAJA2", 60).acquire(wait=0)
    assert Lease.select().count() == 2


def test_holder_may_take_its_own_lease_again(db):
    first = CajaLease("caja:CAJA1", 60)
    first.acquire(wait=0)
    assert first.try_acquire() is True


def test_expired_lease_is_taken_over(db):
    first, second = CajaLease("caja:CAJA1", 0.2), CajaLease("caja:CAJA1", 60)
    first.acquire(wait=0)
    assert second.try_acquire() is False
    time.sleep(0.3)
    second.acquire(wait=0)
    assert Lease.get(Lease.name == "caja:CAJA1").holder == second.holder


def test_renewed_lease_is_not_taken_over(db):
    first, second = CajaLease("caja:CAJA1", 0.4), CajaLease("caja:CAJA1", 60)
    first.acquire(wait=0)
    time.sleep(0.25)
    first.renew()
    time.sleep(0.25)
    assert second.try_acquire() is False


def test_lease_of_a_dead_process_on_this_host_is_taken_at_once(db):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    Lease.create(name="caja:CAJA1", holder=f"{lease_mod.HOST}:{dead.pid}:deadbeef", host=lease_mod.HOST,
                 pid=dead.pid, acquired_at=utcnow(), expires_at=time.time() + 3600)
    mine = CajaLease("caja:CAJA1", 60)
    started = time.monotonic()
    mine.acquire(wait=0)
    assert time.monotonic() - started < 0.5
    row = Lease.get(Lease.name == "caja:CAJA1")
    assert (row.holder, row.pid) == (mine.holder, os.getpid())


def test_lease_of_a_live_process_on_another_host_waits_for_expiry(db):
    Lease.create(name="caja:CAJA1", holder="otherhost:1:cafe", host="other-host-" + lease_mod.HOST,
                 pid=1, acquired_at=utcnow(), expires_at=time.time() + 3600)
    with pytest.raises(Busy) as err:
        CajaLease("caja:CAJA1", 60).acquire(wait=0.1)
    assert "held by process 1 on other-host-" in str(err.value)


def test_holding_releases_on_error(db):
    with pytest.raises(RuntimeError):
        with holding("caja:CAJA1", 60, wait=0):
            assert Lease.select().where(Lease.expires_at > time.time()).count() == 1
            raise RuntimeError("boom")
    assert Lease.select().where(Lease.expires_at > time.time()).count() == 0
    CajaLease("caja:CAJA1", 60).acquire(wait=0)  # free at once


def test_release_writes_what_closes_the_work_in_its_transaction_and_gives_the_lease_back_when_that_fails(db):
    first = CajaLease("caja:CAJA1", 60)
    first.acquire(wait=0)
    first.release(also=[lambda: Lease.create(name="caja:CAJA2", holder="x", host="h", pid=1, acquired_at=utcnow(),
                                             expires_at=0.0)])
    assert Lease.get(Lease.name == "caja:CAJA2").holder == "x"  # written with the release
    CajaLease("caja:CAJA1", 60).acquire(wait=0)  # and the lease is free

    second = CajaLease("caja:CAJA3", 60)
    second.acquire(wait=0)

    def fails():
        Lease.create(name="caja:CAJA4", holder="y", host="h", pid=1, acquired_at=utcnow(), expires_at=0.0)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        second.release(also=[fails])
    assert Lease.get_or_none(Lease.name == "caja:CAJA4") is None  # rolled back with its transaction
    CajaLease("caja:CAJA3", 60).acquire(wait=0)  # given back all the same
