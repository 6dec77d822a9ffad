"""Leases on cajas in the main database: two runs never interleave on one caja.

A lease is a row (name, holder, expires_at). Taking it is one conditional
UPDATE or one INSERT, atomic on SQLite and PostgreSQL alike. The holder renews
it as it makes progress; a holder killed with SIGKILL stops renewing, and its
lease is free once it expires, or at once when the holder was a process of
this machine that no longer exists.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager

from peewee import IntegrityError

from .db import write_transaction
from .db.models import Lease, database, utcnow
from .db.prepared import Prepared, slot
from .errors import Busy, LeaseLost

HOST = socket.gethostname()

# Taken, renewed and given back once or more for every caja of every pass: kept compiled (db/prepared.py).
_TAKE = Prepared(lambda: Lease.update(
    holder=slot("holder"), host=slot("host"), pid=slot("pid"), acquired_at=slot("now", Lease.acquired_at),
    expires_at=slot("expires"),
).where((Lease.name == slot("name")) & ((Lease.expires_at < slot("at")) | (Lease.holder == slot("holder")))))
_EXTEND = Prepared(lambda: Lease.update(expires_at=slot("expires")).where(
    (Lease.name == slot("name")) & (Lease.holder == slot("holder"))))


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class CajaLease:
    def __init__(self, name: str, seconds: float, holder: str | None = None):
        self.name = name
        self.seconds = seconds
        self.holder = holder or f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def try_acquire(self) -> bool:
        now = time.time()
        with write_transaction():
            if _TAKE.rowcount(holder=self.holder, host=HOST, pid=os.getpid(), now=utcnow(), expires=now + self.seconds,
                              name=self.name, at=now):
                return True
            current = Lease.get_or_none(Lease.name == self.name)
            if current is None:
                try:
                    with database.atomic():
                        Lease.create(name=self.name, holder=self.holder, host=HOST, pid=os.getpid(), acquired_at=utcnow(), expires_at=now + self.seconds)
                    return True
                except IntegrityError:
                    return False
            if current.host == HOST and not pid_alive(current.pid):
                # The holder died on this machine: no need to wait for the expiry.
                return bool(
                    Lease.update(holder=self.holder, pid=os.getpid(), acquired_at=utcnow(), expires_at=now + self.seconds)
                    .where((Lease.name == self.name) & (Lease.holder == current.holder))
                    .execute()
                )
            return False

    def acquire(self, wait: float, stop: threading.Event | None = None) -> None:
        """Takes the lease, waiting up to `wait` seconds for its holder; Busy when it cannot, or once `stop` is set."""
        deadline = time.monotonic() + wait
        delay = 0.05
        while not self.try_acquire():
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise Busy(f"{self.name} is busy: {self.describe_holder()}; try again when it has finished.")
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def renew(self) -> None:
        """Extends the lease; LeaseLost when another run took it meanwhile. Called inside a write
        transaction, this is the fence: the row stays locked until the commit, so nobody takes the
        lease between this check and the work it guards."""
        if not _EXTEND.rowcount(expires=time.time() + self.seconds, name=self.name, holder=self.holder):
            raise LeaseLost(f"{self.name}: this run's lease ran out and another run took it over "
                            f"({self.describe_holder()}); what it had not committed is left to that run.")

    def release(self, forget: bool = False, also: list[Callable[[], object]] | tuple = ()) -> None:
        """Gives the lease back. The row stays, expired: the next run on this name takes it with the
        one UPDATE of try_acquire, instead of an UPDATE, a SELECT and an INSERT, and every reader of
        leases treats an expired row as free. `forget` deletes it: a name no one will take again.
        `also`: writes that close the holder's work, run first in the same transaction; when one
        fails, the lease is still given back, on its own, and the failure raised."""
        if also:
            try:
                with write_transaction():
                    for write in also:
                        write()
                    self._give_back(forget)
                return
            except BaseException:
                self.release(forget)
                raise
        with write_transaction():  # queued behind this process's other writers, not left to SQLite's busy sleeps
            self._give_back(forget)

    def _give_back(self, forget: bool) -> None:
        if forget:
            Lease.delete().where((Lease.name == self.name) & (Lease.holder == self.holder)).execute()
        else:
            _EXTEND.execute(expires=0.0, name=self.name, holder=self.holder)

    def describe_holder(self) -> str:
        current = Lease.get_or_none(Lease.name == self.name)
        if current is None or current.expires_at < time.time():
            return "held by nobody now"
        left = max(0.0, current.expires_at - time.time())
        return f"held by process {current.pid} on {current.host} since {current.acquired_at:%Y-%m-%d %H:%M:%S} UTC (lease ends in {left:.0f} s unless renewed)"


@contextmanager
def holding(name: str, seconds: float, wait: float):
    lease = CajaLease(name, seconds)
    lease.acquire(wait)
    try:
        yield lease
    finally:
        lease.release()
