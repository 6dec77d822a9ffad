"""`caja list` (Syscafe's "Actualizar"): each caja's state, every root probed in parallel within a bound."""

from __future__ import annotations

import datetime as dt
import threading
import time

from peewee import fn

from . import health, registry, synclog
from .caja import layout
from .config import Config
from .db.models import Refusal, Voucher, utcnow
from .errors import CredentialsRefused, Unreachable
from .storage import open_root, probe


def _probe(config: Config, caja, day: dt.date, timeout: float, out: dict) -> None:
    """Lists the root and the day's folder and reads caja.json; results land in `out`."""
    storage = open_root(caja.root, config, caja.name)
    try:
        storage.list("")
    except CredentialsRefused as exc:
        out["reason"] = str(exc)
        return
    except (OSError, Unreachable) as exc:
        storage.forget()
        out["reason"] = f"{caja.root} did not answer ({getattr(exc, 'strerror', None) or exc})"
        return
    out["reachable"] = True
    try:
        out["names"] = [e.name for e in storage.list(layout.day_folder(day))]
    except (OSError, Unreachable):
        out["names"] = []
    out["caja_json"] = registry.read_caja_json(caja.root, timeout, config, caja.name)


def _probe_ip(ip: str, root: str, timeout: float, out: dict) -> None:
    out["ip_answers"] = registry.ip_answers(ip, timeout, probe.ports_for(root))


def overview(config: Config, now: dt.datetime | None = None) -> list[dict]:
    now = now or utcnow()
    day = now.astimezone(config.timezone).date()
    timeout = config.limits["connect_timeout_s"]
    cajas = registry.all_cajas()
    # Every root and every IP probed at once, all within one bound: N silent cajas cost one bound, not N.
    probes = {c.name: {"reachable": False, "reason": None, "names": None, "caja_json": None, "ip_answers": None} for c in cajas}
    threads = []
    for c in cajas:
        threads.append((c, threading.Thread(target=_probe, args=(config, c, day, timeout, probes[c.name]), daemon=True)))
        if c.ip:
            threads.append((c, threading.Thread(target=_probe_ip, args=(c.ip, c.root, timeout, probes[c.name]), daemon=True)))
    for _, t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for c, t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    last = synclog.last_success()
    failing = health.failing()
    out = []
    for c in cajas:
        p = dict(probes[c.name])  # a copy: a late thread may still write into the original
        if not p["reachable"] or p["names"] is None:
            if p["reason"] is None:
                p["reason"] = f"{c.root} did not answer within {timeout:g} s"
            p["reachable"], p["names"] = False, None
        codes = registry.codes_of(c)
        cj = p["caja_json"]
        warnings = []
        if cj is not None:
            warnings = ([cj.problem] if cj.problem else []) + registry.disagreements(
                c.name, codes, cj, config.get("sync", "timezone"))
        elif p["reachable"]:
            warnings = [f"{c.root}/caja.json could not be read within {timeout:g} s"]
        out.append({
            "name": c.name,
            "root": c.root,
            "ip": c.ip,
            "codes": codes,
            "reachable": p["reachable"],
            "reason": p["reason"],
            "ip_answers": bool(p["ip_answers"]) if c.ip else None,
            "last_sync": {a: t.isoformat() for a, t in sorted(last.get(c.name, {}).items())},
            "pending": _pending(c.name, day, p["names"]),
            "refused_open": Refusal.select(fn.COUNT(Refusal.id)).where((Refusal.caja == c.name) & Refusal.resolved_at.is_null()).scalar(),
            "warnings": warnings,
            "failing": _failing(failing.get(c.name)),
            "caja_json_codes": cj.codes if cj is not None and not cj.problem else None,
        })
    return out


def _failing(h) -> dict | None:
    """Passes failed in a row at this caja, since when and why; None when its last pass was clean."""
    if h is None:
        return None
    return {"passes": h.failures, "since": h.since.isoformat() if h.since else None, "reason": h.reason}


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
