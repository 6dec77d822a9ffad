"""The service (SPEC `daemon`): a full pass every N minutes until the operating system asks it to stop.

Linux (systemd) and Windows (the service in `winservice`) run this same core:
`Daemon.run()` blocks until `stopping.requested` is set — by SIGTERM/SIGINT
here, by the service manager's stop there — then lets the work in hand reach
its next safe point and returns.

Scheduling is APScheduler 3 with deliberate settings: the first pass starts at
once; one pass at a time (`max_instances=1`); passes missed while one ran long
or the machine slept are coalesced into one, however late
(`misfire_grace_time=None`), since one pass catches up everything anyway.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from urllib.parse import urlparse

from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from . import health, importer, passes, registry, shared, stopping, synclog
from .config import Config
from .db.models import database, utcnow
from .errors import LeaseLost, SyncError
from .lease import CajaLease
from .shared import Share
from .watch import Watcher



class AlreadyRunning(SyncError):
    """Another daemon serves this database: refused to start, nothing changed.

    Exit 2, SPEC's "nothing was changed", and not 1: a service manager that restarts on failure
    would otherwise start this one again every few seconds for as long as the other one runs
    (the systemd unit says RestartPreventExitStatus=2)."""

    exit_code = 2


def notify(state: str) -> None:
    """systemd's readiness protocol (sd_notify): one datagram to $NOTIFY_SOCKET, where systemd set one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError:
        pass  # readiness is a courtesy to the service manager, never a reason to stop


class Daemon:
    def __init__(self, config: Config, interval_minutes: float | None = None, watch: bool | None = None,
                 shared: bool | None = None):
        self.config = config
        minutes = interval_minutes if interval_minutes is not None else config.get("sync", "interval_minutes")
        if not minutes > 0:
            from .errors import UsageError

            raise UsageError(f"--interval {minutes!r}: the interval must be a number of minutes greater than zero, like 5 or 0.5.")
        self.interval_s = float(minutes) * 60
        self.watch = config.get("sync", "watch") if watch is None else watch
        self.debounce_s = config.get("sync", "watch_debounce_s")
        self.lease = CajaLease(health.DAEMON_LEASE, config.limits["lease_s"])
        self.share = Share(config.limits["lease_s"]) if (config.get("sync", "shared") if shared is None else shared) else None
        if self.share and urlparse(config.db_url).scheme.startswith("sqlite"):
            from .errors import UsageError

            raise UsageError("--shared (sync.shared) is for several services on one PostgreSQL database; this one is "
                             f"SQLite ({config.db_url}), which one daemon serves alone. Move it with "
                             "`syscafe-sync migrate --to postgresql://…`, or run without --shared.")
        # Made here, started by run(): whoever runs the core can listen to its jobs from the first pass on.
        self.scheduler = BackgroundScheduler(
            timezone=config.timezone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.watcher: Watcher | None = None
        self.passes = 0

    def run(self) -> int:
        """Serves until `stopping.requested` is set; returns the exit status (0).

        A stop asked for before (SIGTERM while the home was being opened, the Windows service's stop
        before its start ended) is honoured: nothing starts. So the request is never cleared here;
        a process asks to stop once, and it ends."""
        if stopping.requested.is_set():
            try:
                self._log("stop", "daemon stopped before its first pass: it was asked to stop while it started")
            finally:
                database.close()
            return 0
        self._take_database()
        mode = f", shared with {len(shared.live_members()) - 1} other services" if self.share else ""
        self._log("start", f"daemon started: a pass every {self.interval_s / 60:g} min, file events {'on' if self.watch else 'off'}, process {os.getpid()}{mode}",
                  details={"interval_s": self.interval_s, "shared": bool(self.share)})
        self.scheduler.add_job(self._pass, IntervalTrigger(seconds=self.interval_s), id="pass", next_run_time=dt.datetime.now(self.config.timezone))
        # Renewed well before it runs out, so a daemon that is alive is never taken over.
        self.scheduler.add_job(self._renew, IntervalTrigger(seconds=max(1.0, self.config.limits["lease_s"] / 4)), id="lease")
        if self.watch:
            self.watcher = Watcher(self._on_voucher)
        self.scheduler.start()
        notify("READY=1")
        try:
            while not stopping.requested.wait(1.0):
                pass
        finally:
            notify("STOPPING=1")
            self._shutdown()
        return 0

    def _take_database(self) -> None:
        """One daemon alone (the "daemon" lease), or one member among shared ones; never a mix of the two."""
        if self.share is None:
            if not self.lease.try_acquire():
                raise AlreadyRunning(f"another syscafe-sync daemon serves this database: {self.lease.describe_holder()}; "
                                     "stop that one first, or give this one another --home or --db.")
            members = shared.live_members()
            if members:
                self.lease.release()
                raise AlreadyRunning(f"{len(members)} syscafe-sync daemons share this database (--shared), e.g. process "
                                     f"{members[0].pid} on {members[0].host}; start this one with --shared too, or stop them first.")
            return
        if health.daemon_status()["running"] and not health.daemon_status()["shared"]:
            raise AlreadyRunning(f"a syscafe-sync daemon serves this database alone: {self.lease.describe_holder()}; "
                                 "restart it with --shared (or sync.shared = true) to share the cajas, or stop it first.")
        self.share.join()

    def _shutdown(self) -> None:
        started = time.monotonic()
        if self.watcher:
            self.watcher.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # the pass in hand has seen the stop and ends at its next safe point
        if self.share:
            self.share.leave()  # the others take this one's cajas at their next pass
        else:
            self.lease.release()
        self._log("stop", f"daemon stopped after {self.passes} passes ({time.monotonic() - started:.1f} s to stop)")
        if not database.is_closed():
            database.close()

    def _log(self, mode: str, message: str, outcome: str = "ok", level: str = "info", **counts) -> None:
        synclog.record(synclog.Entry(action="daemon", mode=mode, outcome=outcome, level=level, message=message, **counts))

    def _renew(self) -> None:
        try:
            if self.share:
                self.share.renew()
            else:
                self.lease.renew()
        except LeaseLost as exc:
            # Stalled past lease_s, and another daemon started meanwhile: two must not serve alone.
            self._log("stop", f"daemon stopping: {exc}", outcome="failed", level="error")
            stopping.requested.set()
        finally:
            database.close()

    def _pass(self) -> None:
        try:
            cajas = registry.all_cajas()
            if self.share:
                # Only the cajas this service owns now; the others' are served by the other services.
                mine = set(self.share.claim([c.name for c in cajas]))
                cajas = [c for c in cajas if c.name in mine]
                if not cajas:
                    self.passes += 1
                    self._log("pass", f"pass {self.passes}: no caja to serve, the other services hold them all")
                    return
            if self.watcher:
                watched = self.watcher.update(cajas)
            result = passes.run_pass(self.config, [c.name for c in cajas] if self.share else ())
            self.passes += 1
            problems = {c: p for c, p in result.problems().items() if p}
            cajas = len(result.points.results)
            summary = f"pass {self.passes}: {cajas - len(problems)} of {cajas} cajas ok in {result.duration_s:.1f} s"
            if problems:
                summary += "; failing: " + ", ".join(sorted(problems))
            if self.watcher:
                summary += f"; watching {len(watched)} local folders"
            if problems and stopping.requested.is_set():
                # Cut short by the stop (SIGTERM): not the cajas' failure, and the next start serves them.
                self._log("pass", f"pass {self.passes} stopped before it ended: syscafe-sync is stopping; {summary}",
                          outcome="stopped", duration_s=result.duration_s)
                return
            self._log("pass", summary, outcome="failed" if problems else "ok", level="warning" if problems else "info",
                      duration_s=result.duration_s, imported=sum(r.imported for r in result.imports.results))
        except Exception as exc:  # a pass that cannot even start (database gone) must not end the service
            self._log("pass", f"pass could not run: {exc}", outcome="failed", level="error")
        finally:
            database.close()

    def _on_voucher(self, caja: str, day: dt.date) -> None:
        """From the watcher's thread: one import of that caja soon, however many events arrive meanwhile."""
        if stopping.requested.is_set() or not self.scheduler.running or (self.share and not self.share.owns(caja)):
            return
        try:
            self.scheduler.add_job(self._import, "date", args=[caja, day], id=f"watch:{caja}:{day}",
                                   run_date=dt.datetime.now(self.config.timezone) + dt.timedelta(seconds=self.debounce_s))
        except ConflictingIdError:
            pass  # one is already due: it will see this file too

    def _import(self, caja: str, day: dt.date) -> None:
        try:
            importer.import_caja(self.config, registry.get(caja), day, "skip", None, utcnow())
        except SyncError:
            pass  # the caja was removed meanwhile
        finally:
            database.close()
