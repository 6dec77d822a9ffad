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

from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from . import config as config_mod
from . import health, importer, passes, registry, shared, stopping, synclog
from .config import Config
from .db import write_transaction
from .db.models import Lease, database, utcnow
from .errors import LeaseLost, SyncError
from .lease import CajaLease
from .shared import Share
from .watch import Watcher



# Settings the daemon took at its start (its schedule, its watches, its lease, its database, its log file):
# an edit of config.toml changes them at the next start only. Every other setting applies from the next pass.
RESTART_ONLY = ("database.url", "sync.interval_minutes", "sync.watch", "sync.watch_debounce_s", "sync.shared",
                "limits.lease_s", "limits.connect_timeout_s", "log.file_max_bytes", "log.file_backups")
# A week: a daemon that passes less often serves nobody, and a schedule beyond the calendar's end overflows.
MAX_INTERVAL_MIN = 7 * 24 * 60
# A job due further off than its own interval means the wall clock went back (see _mend_schedule); one second
# more, for the instants between the scheduler's reading of the clock and ours.
CLOCK_SLACK = dt.timedelta(seconds=1)


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


def _stamp(path) -> tuple[int, int, int] | None:
    """What tells that a file changed: written again (its modification time, its size), or only its owner or
    mode (the status-change time: a file made readable for the service is read again). None: no file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size


class Daemon:
    def __init__(self, config: Config, interval_minutes: float | None = None, watch: bool | None = None,
                 shared: bool | None = None):
        self.config = config
        minutes = interval_minutes if interval_minutes is not None else config.get("sync", "interval_minutes")
        if not 0 < minutes <= MAX_INTERVAL_MIN:  # NaN too; inf and 1e300 overflowed the schedule after the start was logged
            from .errors import UsageError

            given = f"--interval {minutes!r}" if interval_minutes is not None else f"{config.config_path}: sync.interval_minutes = {minutes!r}"
            raise UsageError(f"{given}: the interval must be a number of minutes greater than zero and at most "
                             f"{MAX_INTERVAL_MIN} (a week), like 5 or 0.5.")
        self.interval_s = float(minutes) * 60
        try:  # here, before anything is taken or logged: a trigger that cannot be made refuses the start
            self.pass_trigger = IntervalTrigger(seconds=self.interval_s, timezone=config.timezone)
            # Renewed well before it runs out, so a daemon that is alive is never taken over.
            self.lease_trigger = IntervalTrigger(seconds=max(1.0, config.limits["lease_s"] / 4), timezone=config.timezone)
        except OverflowError as exc:
            from .errors import UsageError

            raise UsageError(f"{config.config_path}: limits.lease_s = {config.limits['lease_s']!r} is too large to "
                             f"schedule ({exc}); use a number of seconds like 120.") from exc
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
        self._config_seen = _stamp(config.config_path)

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
        # Back to the pool: this thread's connection, idle for the whole run, would be a dead one by the stop after
        # PostgreSQL restarted, and the stop would fail (exit 1) on it, its lease kept.
        database.close()
        self.scheduler.add_job(self._pass, self.pass_trigger, id="pass", next_run_time=dt.datetime.now(self.config.timezone))
        self.scheduler.add_job(self._renew, self.lease_trigger, id="lease")
        if self.watch:
            self.watcher = Watcher(self._on_voucher, self.config.limits["connect_timeout_s"])
        self.scheduler.start()
        notify(f"READY=1\nSTATUS=serving: a pass every {self.interval_s / 60:g} min")
        try:
            while not stopping.requested.wait(1.0):
                self._mend_schedule()
        finally:
            notify("STOPPING=1")
            self._shutdown()
        return 0

    def _mend_schedule(self) -> None:
        """Brings jobs back after the wall clock went back (an NTP step, a person setting the clock).

        APScheduler sleeps on the monotonic clock but keeps its run times in wall-clock time: set back an
        hour, the clock left the next pass an hour and one interval away, and the daemon did nothing, not
        even renew its lease, for that hour. Going forward needs nothing: what fell due runs at once."""
        now = dt.datetime.now(self.config.timezone)
        mended = []
        for job in self.scheduler.get_jobs():
            most = job.trigger.interval if isinstance(job.trigger, IntervalTrigger) else dt.timedelta(seconds=self.debounce_s)
            if job.next_run_time is not None and job.next_run_time - now > most + CLOCK_SLACK:
                late = (job.next_run_time - now - most).total_seconds()
                try:
                    job.modify(next_run_time=now)
                except JobLookupError:
                    continue  # a file event's import, run and gone meanwhile
                mended.append((job.id, late))
        if mended:
            back = max(s for _, s in mended)
            self._log("clock", f"the system clock went back about {back:.0f} s (an NTP correction, or set by hand); "
                      f"{', '.join(j for j, _ in mended)} would have waited that long: run now, then on the interval again",
                      level="warning", details={"back_s": round(back, 3), "jobs": [j for j, _ in mended]})
            database.close()

    def _take_database(self) -> None:
        """One daemon alone (the "daemon" lease), or one member among shared ones; never a mix of the two."""
        if self.share is None:
            if not self.lease.try_acquire() and not self._take_left_behind():
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

    def _take_left_behind(self) -> bool:
        """Takes the daemon lease over from a process that is not its holder any more (health.left_behind)."""
        held = Lease.get_or_none(Lease.name == health.DAEMON_LEASE)
        if not health.left_behind(held):
            return False
        with write_transaction():  # only that row: a daemon that took the lease meanwhile keeps it
            Lease.update(expires_at=0.0).where((Lease.name == held.name) & (Lease.holder == held.holder)).execute()
        if not self.lease.try_acquire():
            return False
        self._log("start", f"the daemon lease named process {held.pid} on {held.host}, which is not the syscafe-sync "
                  "that took it (left by one that ran before this machine restarted): taken over", level="warning")
        return True

    def _shutdown(self) -> None:
        started = time.monotonic()
        if self.watcher:
            self.watcher.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # the pass in hand has seen the stop and ends at its next safe point
        try:
            if self.share:
                self.share.leave()  # the others take this one's cajas at their next pass
            else:
                self.lease.release()
        except Exception as exc:  # the database down at the stop: the stop is still a stop (exit 0)
            self._log("stop", f"daemon stopping: cannot give its lease back ({exc}); it runs out within "
                      f"{self.config.limits['lease_s']:g} s (limits.lease_s)", outcome="failed", level="error")
        self._log("stop", f"daemon stopped after {self.passes} passes ({time.monotonic() - started:.1f} s to stop)")
        if not database.is_closed():
            database.close()

    def _log(self, mode: str, message: str, outcome: str = "ok", level: str = "info", **counts) -> None:
        try:
            synclog.record(synclog.Entry(action="daemon", mode=mode, outcome=outcome, level=level, message=message, **counts))
        except Exception as exc:
            # The database gone (PostgreSQL down, the disk full): the service goes on, and the log file says what
            # happened, where before only a traceback, at every pass, reached the journal.
            synclog.logger().error(f"{message} (not in the database: {exc})", action="daemon", mode=mode, outcome=outcome)

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
        except Exception as exc:  # the database away for a moment: the next renewal, lease_s / 4 later, tries again
            self._log("lease", f"cannot renew the daemon lease now ({exc}); it is tried again at the next renewal",
                      outcome="failed", level="warning")
        finally:
            database.close()

    def _reread_config(self) -> None:
        """config.toml edited since it was last read (smb credentials for a new caja, limits.workers): the next
        pass and file event use it. One that cannot be used is refused, logged, and the settings in force kept."""
        stamp = _stamp(self.config.config_path)
        if stamp == self._config_seen:
            return
        self._config_seen = stamp
        path = self.config.config_path
        try:
            # The database in use is kept, whatever the file now says: database.url is among RESTART_ONLY.
            new = config_mod.load(self.config.home, self.config.db_url)
        except (SyncError, OSError) as exc:
            self._log("config", f"{path} changed and is refused; the service goes on with the settings it had: {exc}",
                      outcome="refused", level="error")
            return
        changed = config_mod.changed_settings(self.config, new)
        if not changed:
            return
        later = [name for name in changed if name in RESTART_ONLY]
        now = [name for name in changed if name not in RESTART_ONLY]
        message = f"{path} changed: " + (f"{', '.join(now)} in force from this pass" if now else "nothing changes before a restart")
        if later:
            message += f"; {', '.join(later)} only once the service is restarted (systemctl restart syscafe-sync, or sc stop and sc start)"
        for name in later:  # self.config keeps saying what is in force
            section, key = name.split(".", 1)
            new.values[section][key] = self.config.values[section][key]
        self.config = new
        self._log("config", message, level="warning" if later else "info", details={"now": now, "at_restart": later})

    def _pass(self) -> None:
        try:
            self._reread_config()
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
        except Exception as exc:  # the database away: the next pass imports it
            self._log("watch", f"the import of {caja} after a file event could not run: {exc}", outcome="failed", level="error")
        finally:
            database.close()
