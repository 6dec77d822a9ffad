"""Several services on one PostgreSQL database (`daemon --shared`): they split the cajas between them.

Each service is a member: a lease `member:<holder>` that it renews. Each caja
is owned by one member at a time: a lease `owner:<caja>`, taken with the same
atomic conditional UPDATE as every lease and renewed while its owner lives.
Before each pass a member keeps the cajas it owns, gives back those over its
share (the cajas divided by the live members, rounded up), and takes free
ones up to that share; so a service that joins gets cajas within a pass or
two, and each caja is served by one service only. A member killed with
SIGKILL stops renewing: once its leases run out (at once when it was a
process of the same machine) the others count one member less and take its
cajas over.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
import zlib

from .db.models import Lease
from .errors import LeaseLost
from .lease import HOST, CajaLease, pid_alive

MEMBER = "member:"
OWNER = "owner:"


def live_members(now: float | None = None) -> list[Lease]:
    """The member leases not run out, without those of dead processes on this machine."""
    now = time.time() if now is None else now
    rows = Lease.select().where(Lease.name.startswith(MEMBER) & (Lease.expires_at >= now)).order_by(Lease.name)
    return [r for r in rows if r.host != HOST or pid_alive(r.pid)]


class Share:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.holder = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.member = CajaLease(MEMBER + self.holder, seconds, self.holder)
        self.owned: dict[str, CajaLease] = {}
        self._mutex = threading.Lock()  # the pass claims while the scheduler's other thread renews

    def join(self) -> None:
        self.member.try_acquire()  # a name of its own: nobody else holds it

    def claim(self, cajas: list[str]) -> list[str]:
        """The cajas this service serves in this pass, sorted; `cajas` are every registered one."""
        self.renew()
        with self._mutex:
            return self._claim(cajas)

    def _claim(self, cajas: list[str]) -> list[str]:
        quota = math.ceil(len(cajas) / max(1, len(live_members())))
        for name in [n for n in self.owned if n not in cajas]:
            self._give_back(name)  # removed from the registry
        for name in sorted(self.owned)[quota:]:
            self._give_back(name)  # over our share: a newer member takes it
        # Start where our holder's hash says, so members that claim at once do not race for the same cajas.
        start = zlib.crc32(self.holder.encode()) % max(1, len(cajas))
        for name in cajas[start:] + cajas[:start]:
            if len(self.owned) >= quota:
                break
            if name in self.owned:
                continue
            lease = CajaLease(OWNER + name, self.seconds, self.holder)
            if lease.try_acquire():
                self.owned[name] = lease
        return sorted(self.owned)

    def renew(self) -> None:
        """Keeps membership and ownership alive; a lease another member took meanwhile is dropped."""
        with self._mutex:
            try:
                self.member.renew()
            except LeaseLost:
                self.join()
            for name, lease in list(self.owned.items()):
                try:
                    lease.renew()
                except LeaseLost:
                    del self.owned[name]

    def _give_back(self, name: str) -> None:
        self.owned.pop(name).release()

    def owns(self, name: str) -> bool:
        return name in self.owned

    def leave(self) -> None:
        with self._mutex:
            for name in list(self.owned):
                self._give_back(name)
            self.member.release(forget=True)  # named after this process: nobody takes it again
