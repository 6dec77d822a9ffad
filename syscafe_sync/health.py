"""A caja's health across passes: failing N passes in a row is said once, at error level, and so is the recovery.

A person reading the log wants "CAJA2 has been failing since 14:05: share
unreachable", not the same error every five minutes; the pass rows still say
what happened each time.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from . import shared, synclog
from .db import lock, write_transaction
from .db.models import CajaHealth, Lease, SyncLog, utcnow
from .lease import HOST, pid_alive

DAEMON_LEASE = "daemon"


def record(outcomes: dict[str, list[str]], threshold: int, now: dt.datetime | None = None) -> None:
    """outcomes: {caja: the problems of this pass there}; an empty list is a clean pass."""
    now = now or utcnow()
    for caja, problems in outcomes.items():
        with write_transaction():
            lock(f"health:{caja}")  # failures += 1 from two services: both counted
            existing = CajaHealth.get_or_none(CajaHealth.caja == caja)
            row = existing or CajaHealth(caja=caja, failures=0, alerted=False, reason="")
            if problems:
                row.failures += 1
                row.since = row.since or now
                row.reason = "; ".join(problems)
                alert = row.failures >= threshold and not row.alerted
                row.alerted = row.alerted or alert
                recovered = None
            else:
                recovered = row.failures if row.alerted else None
                row.failures, row.since, row.reason, row.alerted = 0, None, "", False
                alert = False
            row.save(force_insert=existing is None)
        if alert:
            synclog.record(synclog.Entry(
                action="health", caja=caja, outcome="failed", level="error",
                message=f"{caja} has failed {row.failures} passes in a row since {row.since:%Y-%m-%d %H:%M} UTC: {row.reason}"))
        elif recovered:
            synclog.record(synclog.Entry(
                action="health", caja=caja, outcome="ok", level="info",
                message=f"{caja} recovered after {recovered} failing passes in a row"))


def failing() -> dict[str, CajaHealth]:
    """The cajas whose last pass failed, with how many in a row and since when."""
    return {h.caja: h for h in CajaHealth.select().where(CajaHealth.failures > 0)}


def left_behind(lease: Lease | None) -> bool:
    """Whether an unexpired lease naming a live process of this machine was left by a syscafe-sync that no
    longer runs. After a power cut the machine is often back within lease_s, and its old pids are handed out
    again: to this very process (the same boot order), or to one that is not syscafe-sync at all. Believing
    such a lease, the service refused to start with exit 2, which systemd does not restart."""
    if lease is None or lease.host != HOST:
        return False
    if lease.pid == os.getpid():
        return True  # not this process's lease: its holder name is new in every process
    try:
        with open(f"/proc/{lease.pid}/cmdline", "rb") as f:
            cmdline = f.read()
        started = _started_at(lease.pid)
    except OSError:
        return False  # no /proc (Windows), or not ours to read: the lease runs out on its own within lease_s
    # Both, so that neither a daemon run under another name nor a clock set back misleads it alone.
    foreign = b"syscafe_sync" not in cmdline and b"syscafe-sync" not in cmdline
    return foreign and started > lease.acquired_at.timestamp() + 1  # btime has whole seconds


def _started_at(pid: int) -> float:
    """When process `pid` started, in seconds since the epoch (Linux)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22, counted after the command's name
    with open("/proc/stat", "rb") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def daemon_status(now: dt.datetime | None = None) -> dict:
    """Whether a daemon serves this database now (its lease), and its last pass."""
    now = now or utcnow()
    lease = Lease.get_or_none(Lease.name == DAEMON_LEASE)
    running = (lease is not None and lease.expires_at > now.timestamp() and (lease.host != HOST or pid_alive(lease.pid))
               and not left_behind(lease))
    members = [] if running else shared.live_members(now.timestamp())
    holder = f"process {lease.pid} on {lease.host}" if running else None
    if members:
        running = True
        holder = f"{len(members)} shared services: " + ", ".join(f"process {m.pid} on {m.host}" for m in members)
    last = SyncLog.select().where((SyncLog.action == "daemon") & (SyncLog.mode == "pass")).order_by(SyncLog.id.desc()).first()
    started = SyncLog.select().where((SyncLog.action == "daemon") & (SyncLog.mode == "start")).order_by(SyncLog.id.desc()).first()
    return {
        "interval_s": json.loads(started.details).get("interval_s") if started and started.details else None,
        "running": running,
        "shared": bool(members),
        "holder": holder,
        "last_pass": {"at": last.at.isoformat(), "outcome": last.outcome, "message": last.message} if last else None,
    }


def describe_daemon(status: dict) -> str:
    text = f"daemon: running as {status['holder']}" if status["running"] else "daemon: not running"
    last = status["last_pass"]
    if last:
        return f"{text}; last pass {last['at'][:19].replace('T', ' ')} UTC, {last['outcome']}: {last['message']}"
    return f"{text}; no pass yet"
