"""`caja list` (Syscafe's "Actualizar"): each caja's state, every root probed in parallel within a bound."""

from __future__ import annotations

import datetime as dt
import threading
import time

from peewee import fn

from . import registry, synclog
from .caja import layout
from .config import Config
from .db.models import Refusal, Voucher, utcnow
from .storage import open_root


def _probe(caja, day: dt.date, out: dict) -> None:
    """Lists the root and the day's folder; what it finds lands in `out` (read by the waiting thread)."""
    storage = open_root(caja.root)
    try:
        storage.list("")
    except OSError as exc:
        out["reason"] = f"{caja.root} did not answer ({exc.strerror or exc})"
        return
    out["reachable"] = True
    try:
        out["names"] = [e.name for e in storage.list(layout.day_folder(day))]
    except OSError:
        out["names"] = []


def overview(config: Config, now: dt.datetime | None = None) -> list[dict]:
    now = now or utcnow()
    day = now.astimezone(config.timezone).date()
    timeout = config.limits["connect_timeout_s"]
    cajas = registry.all_cajas()
    probes = {c.name: {"reachable": False, "reason": None, "names": None} for c in cajas}
    threads = [threading.Thread(target=_probe, args=(c, day, probes[c.name]), daemon=True) for c in cajas]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for c, t in zip(cajas, threads):
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            probes[c.name] = {"reachable": False, "reason": f"{c.root} did not answer within {timeout:g} s", "names": None}
    last = synclog.last_success()
    out = []
    for c in cajas:
        p = probes[c.name]
        codes = registry.codes_of(c)
        row = {
            "name": c.name,
            "root": c.root,
            "ip": c.ip,
            "codes": codes,
            "reachable": p["reachable"],
            "reason": p["reason"],
            "ip_answers": registry.ip_answers(c.ip, timeout) if c.ip else None,
            "last_sync": {a: t.isoformat() for a, t in sorted(last.get(c.name, {}).items())},
            "pending": _pending(c.name, day, p["names"]),
            "refused_open": Refusal.select(fn.COUNT(Refusal.id)).where((Refusal.caja == c.name) & Refusal.resolved_at.is_null()).scalar(),
            "warnings": [],
        }
        if p["reachable"]:
            cj = registry.read_caja_json(c.root, timeout)
            row["warnings"] = ([cj.problem] if cj.problem else []) + registry.disagreements(c.name, codes, cj)
        out.append(row)
    return out


def _pending(caja: str, day: dt.date, names: list[str] | None) -> int | None:
    """Voucher files of today's folder not imported yet; None when the folder could not be listed."""
    if names is None:
        return None
    keys = {k for n in names if not layout.is_ignored(n) and (k := layout.parse_voucher_name(n))}
    if not keys:
        return 0
    have = set(
        Voucher.select(Voucher.code, Voucher.number).where((Voucher.caja == caja) & (Voucher.day == day.isoformat())).tuples()
    )
    return len(keys - have)
