"""One full pass over the cajas (SPEC `sync`): what the service does every interval.

Per caja, in a bounded pool of workers: import (skip), loyalty, rules. Then
the consolidated points become the loyalty_balances catalog, and every caja
gets its catalogs (partial), again in the pool. Last, an accounting file that
a killed `accounting post` left staged after recording it is published. Each caja and each action is
isolated and bounded in time by `serve_caja`; one failing never stops the
others.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from . import bounded, catalogs, catchup, health, importer, loyalty, push, registry, rules, stopping, synclog
from .accounting import journal
from .serve import in_pool
from .config import Config
from .db.models import database, utcnow


@dataclass
class PassResult:
    day: dt.date
    imports: importer.ImportResult
    points: loyalty.SyncResult
    held_rules: rules.RulesResult
    pushed: push.PushResult | None
    duration_s: float

    @property
    def failed(self) -> bool:
        parts = [self.imports, self.points, self.held_rules] + ([self.pushed] if self.pushed else [])
        return any(p.failed for p in parts)

    def problems(self) -> dict[str, list[str]]:
        """{caja: "outcome: message" of each action that was not ok there}."""
        out: dict[str, list[str]] = {r.caja: [] for r in self.points.results}
        for part in (self.imports, self.points, self.held_rules, self.pushed):
            for r in (part.results if part else []):
                if r.outcome != "ok":
                    out.setdefault(r.caja, []).append(f"{r.outcome}: {r.message}")
        return out

    def as_dict(self) -> dict:
        actions = [self.imports.as_dict(), self.points.as_dict(), self.held_rules.as_dict()]
        if self.pushed:
            actions.append(self.pushed.as_dict())
        return {"action": "sync", "date": self.day.isoformat(), "duration_s": round(self.duration_s, 3), "actions": actions}


def run_pass(config: Config, names: list[str] | tuple[str, ...] = (), day: dt.date | None = None,
             now: dt.datetime | None = None) -> PassResult:
    """`day` imports that process date only; without it each caja catches up (see catchup)."""
    started = time.monotonic()
    now = now or utcnow()
    cajas = registry.select(names)
    today = importer.today(config, now)
    window = config.get("sync", "catch_up_days")
    workers = config.limits["workers"]

    def per_caja(caja):
        imported = []
        for d in [day] if day else catchup.days(caja.name, today, window):
            if stopping.requested.is_set() and imported:
                break
            imported.append(importer.import_caja(config, caja, d, "skip", None, now))
            if imported[-1].outcome in ("busy", "unreachable"):
                # The caja's other days would meet the same holder or the same silent root, each after its
                # own lock_wait_s or connect_timeout_s: seven of them made one busy caja hold a pass 3.5 min.
                break
        return (imported, loyalty.sync_caja(config, caja), rules.sync_caja(config, caja))

    done = in_pool(workers, per_caja, cajas)
    imports = importer.ImportResult(day or today, "skip", [r for d in done for r in d[0]])
    version = loyalty.refresh_balances_catalog()
    points = loyalty.SyncResult([d[1] for d in done], loyalty.findings(), version)
    held = rules.RulesResult([d[2] for d in done])
    pushed = None
    if catalogs.names():
        main = push.MainCatalogs(catalogs.names())
        pushed = push.PushResult("partial", False, in_pool(workers, lambda c: push.push_caja(config, c, "partial", False, main, now), cajas))
    result = PassResult(day or today, imports, points, held, pushed, time.monotonic() - started)
    problems = result.problems()
    _log(result, problems)
    if not stopping.requested.is_set():  # a pass cut short by a stop says nothing about the cajas
        health.record({c: [p for p in ps if not p.startswith("busy")] for c, ps in problems.items()},
                      config.get("sync", "alert_after_failures"), now)
    # After the cajas' rows are logged: whatever goes wrong here cannot take the pass's record with it.
    _publish_accounting(config)
    return result


def _publish_accounting(config: Config) -> None:
    """Bounded like a caja's work: accounting.export_dir may be a share on the accountant's machine, and a
    frozen one must not hold the service's passes."""
    def publish():
        try:
            journal.publish_left(config)
        finally:
            if not database.is_closed():
                database.close()

    folder, limit = journal.export_folder(config), config.limits["caja_timeout_s"]
    stuck = bounded.still_blocked(str(folder), config.limits["connect_timeout_s"], config.timezone, "publish")
    if stuck:  # not one more thread blocked beside it
        why = f"it {stuck}"
    else:
        step = bounded.start(publish, f"publishing the accounting files in {folder}")
        try:
            step.wait(limit, stop=stopping.requested)
            return
        except bounded.Stopped:
            bounded.give_up(str(folder), step)
            return
        except bounded.TimedOut:
            bounded.give_up(str(folder), step)
            why = f"no answer within {limit:g} s (limits.caja_timeout_s)"
        except OSError as exc:  # the pass's own work is done; this says why, the next pass tries again
            why = str(exc)
    synclog.record(synclog.Entry(
        action="accounting post", outcome="failed", level="error",
        message=f"cannot publish the accounting file left staged in {folder} ({why}); check that the folder "
                f"is reachable, writable and has space; the next pass tries again"))


def _log(result: PassResult, outcomes: dict[str, list[str]]) -> None:
    """One `sync` row per caja: ok only when every action of the pass was ok there."""
    for c, problems in outcomes.items():
        synclog.record(synclog.Entry(
            action="sync", caja=c, outcome="failed" if problems else "ok", level="error" if problems else "info",
            duration_s=result.duration_s, message="; ".join(problems) if problems else f"full pass for {result.day} done"))
