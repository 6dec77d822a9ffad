"""Serving one caja, isolated: its lease, the reachability probe, the work in a worker with a deadline.

The importer and the catalog push share this; whatever happens lands in the
result's `outcome` and `message`, never in an exception, so one caja never
holds back another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from . import bounded, stopping, synclog
from .config import Config
from .db.models import database
from .errors import Busy, CredentialsRefused, Unreachable
from .lease import CajaLease
from .storage import probe
from .storage.local import on_local_disk
from .storage import Storage, open_root


class Job(Protocol):
    def reach(self, storage: Storage) -> None:
        """The caja's first remote step, within connect_timeout_s: its answer says the root is there."""

    def run(self) -> None:
        """The work; it releases the lease it was given when it ends, even when cut off."""

    def cancel(self) -> None:
        """Asks the work to stop at its next safe point."""


class Cancelled(Exception):
    """The caja's time bound ran out; the transaction in hand was rolled back."""


class CajaJob:
    """The base of the work serve_caja runs in its worker thread: `_run` does the work,
    checking `stop` between steps; the lease and the thread's database connection
    are released when it ends, however it ends."""

    def __init__(self, lease: CajaLease):
        self.lease = lease
        self.stop = threading.Event()
        # Rows that record what the work did, written in the transaction that gives the lease back:
        # one commit at every caja instead of two.
        self.closing: list[Callable[[], object]] = []
        # The work's log entry once its row is in the database (see log_entry), for the caller to
        # write only its line; None when the caller must record the entry itself.
        self.logged: synclog.Entry | None = None

    def log_entry(self) -> synclog.Entry | None:
        """The log entry of work that ran to its end, written with the lease's release; None: the caller logs."""
        return None

    def cancel(self) -> None:
        self.stop.set()

    def reach(self, storage: Storage) -> None:
        """Lists the root; a job whose own first step proves as much does that instead."""
        storage.list("")

    def _run(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        entry = None
        try:
            self._run()
            entry = self.log_entry()
            if entry is not None:
                self.closing.append(lambda: synclog.row(entry))
        finally:
            try:
                self.lease.release(also=self.closing)
            finally:
                if not database.is_closed():
                    database.close()
        self.logged = entry  # reached only when the transaction that holds its row committed


def serve_caja(config: Config, caja, lease_name: str, result, what: str, cut_note: str,
               make_job: Callable[[Storage, CajaLease], Job]) -> None:
    limits = config.limits
    if stopping.requested.is_set():
        result.outcome, result.message = "failed", f"{what} {caja.name} not started: syscafe-sync is stopping; the next pass serves it."
        return
    stuck = bounded.still_blocked(caja.root, limits["connect_timeout_s"], config.timezone)
    if stuck:
        # Not another thread blocked beside it, nor a wait for the lease that step still holds.
        result.outcome = "unreachable"
        result.message = (f"{caja.root} {stuck}; nothing more is started there until it does: "
                          f"check that the caja is on and its folder shared.")
        return
    lease = CajaLease(lease_name, limits["lease_s"])
    try:
        lease.acquire(limits["lock_wait_s"], stopping.requested)
    except Busy as exc:
        result.outcome, result.message = "busy", str(exc)
        return
    gate = _Gate()
    storage = None
    try:
        ports = probe.ports_for(caja.root)
        if caja.ip and not on_local_disk(caja.root) and not probe.tcp_answers(caja.ip, ports, limits["connect_timeout_s"] / 2):
            # SPEC: a share on a machine that does not answer is skipped at once, not after the OS's own time-outs
            result.outcome = "unreachable"
            result.message = (f"{caja.name}'s machine {caja.ip} does not answer on the SMB {probe.ports_text(ports)}; "
                              f"check that it is on and on the network.")
            return
        storage = open_root(caja.root, config, caja.name)
        job = make_job(storage, lease)
        # One worker step: the root's answer (job.reach, within connect_timeout_s, the time a share has
        # to answer), then the work (within caja_timeout_s). Two steps cost a hand-over between threads more for
        # every caja, and a pass of partial pushes is little else.
        step = bounded.start(lambda: _reach_then_run(storage, job, gate), f"{what} {caja.name}")
        if not gate.answered.wait(limits["connect_timeout_s"]) and gate.abandon():
            late = bounded.TimedOut(f"nothing within {limits['connect_timeout_s']:g} s, limits.connect_timeout_s")
            _not_reached(result, caja, storage, late)
            bounded.give_up(caja.root, step)
            return
        try:
            step.wait(limits["caja_timeout_s"], stop=stopping.requested, on_stop=job.cancel, grace=stopping.GRACE_S)
        except _NotReached as exc:
            _not_reached(result, caja, storage, exc.error)
        except (Cancelled, bounded.Stopped) as exc:
            bounded.give_up(caja.root, step)  # a step that ended (Cancelled) is not remembered
            result.outcome = "failed"
            result.message = f"{what} {caja.name} stopped: syscafe-sync was asked to stop ({exc or 'at a safe point'}); {cut_note}"
        except bounded.TimedOut:
            job.cancel()  # first, so the work stops instead of taking the dropped connection for bad files
            storage.forget()
            bounded.give_up(caja.root, step)
            result.outcome = "failed"
            result.message = f"{what} {caja.name} cut off after {limits['caja_timeout_s']:g} s (limits.caja_timeout_s); {cut_note}"
        except Exception as exc:  # one broken caja must not stop the others
            storage.forget()  # the next pass dials afresh
            result.outcome = "failed"
            result.message = f"{what} {caja.name} failed: {exc}; {cut_note}"
    finally:
        # Once started, the work releases the lease when it ends; one still blocked in the
        # OS keeps it until it ends or the lease runs out.
        if not gate.started:
            lease.release()


class _Gate:
    """Between the caller and the worker: the root answered (or failed) and whether the work started.
    The caller that stops waiting for the root and the worker that reached it race to decide; the
    first one wins, so work never starts on a caja that was reported unreachable and given back."""

    def __init__(self):
        self.answered = threading.Event()
        self.started = False
        self._abandoned = False
        self._lock = threading.Lock()

    def start(self) -> bool:
        with self._lock:
            self.started = not self._abandoned
        self.answered.set()
        return self.started

    def abandon(self) -> bool:
        with self._lock:
            self._abandoned = not self.started
            return self._abandoned


class _NotReached(Exception):
    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _reach_then_run(storage: Storage, job: Job, gate: _Gate) -> None:
    try:
        job.reach(storage)
    except (OSError, Unreachable, CredentialsRefused) as exc:
        gate.answered.set()
        raise _NotReached(exc) from exc
    except BaseException:
        gate.answered.set()  # not the share's answer: a failure of the work, told as one
        raise
    if gate.start():
        job.run()


def _not_reached(result, caja, storage: Storage, exc: BaseException) -> None:
    storage.forget()  # a first step still waiting on a frozen server wakes up and ends
    if isinstance(exc, CredentialsRefused):
        result.outcome, result.message = "failed", str(exc)
        return
    result.outcome = "unreachable"
    result.message = f"{caja.root} did not answer ({exc}); check that the caja is on and its folder shared."


def in_pool(workers: int, fn, items: list) -> list:
    """fn over items in a bounded pool, results in the order of the items; each worker closes its connection.
    Cajas served side by side: one caja's waits (a share's round trips, a disk's flushes) overlap another's work."""

    def run(item):
        try:
            return fn(item)
        finally:
            if not database.is_closed():
                database.close()

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items) or 1)), thread_name_prefix="serve") as pool:
        return list(pool.map(run, items))
