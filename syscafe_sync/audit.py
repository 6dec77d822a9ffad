"""Proof of completeness: numbering gaps, `vouchers check` and the day audit against closing.json.

Gaps are reported, never filled: a missing number is a sale the main server
has not seen (or a number the POS skipped), and only a person can say which.
A day's gaps continue from the last number of the days before, so a voucher
lost at the turn of the day is caught too. Only numbers the code's DIAN
resolutions authorise are expected, in the order they were issued
(`_Numbering`): a new resolution may start below the old one.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from decimal import Decimal

from peewee import fn

from . import closings, registry, resolutions, synclog
from .db.models import Voucher

# The most missing numbers listed for one code; a typo jumping a million numbers ahead must not fill memory.
MAX_LISTED = 10_000


def _missing(numbers: list[int], start: int, end: int, room: int = MAX_LISTED) -> list[int]:
    """Numbers of start..end not in `numbers` (sorted), at most `room` of them."""
    out: list[int] = []
    expected = start
    for n in numbers[bisect.bisect_left(numbers, start):]:
        if n < expected:
            continue
        if n > end:
            break
        out.extend(range(expected, min(n, expected + room - len(out))))
        expected = n + 1
        if len(out) >= room:
            return out
    out.extend(range(expected, min(end + 1, expected + room - len(out))))
    return out


# A voucher number is at most this (BigIntegerField); the span above every resolution ends here.
_TOP = 2**63 - 1


class _Numbering:
    """A code's numbers in the order the POS issues them. Its DIAN resolutions follow one another in
    time, not always upwards in number (a new resolution may start below the old one), so a number's
    place is (which resolution, in order of validity; the number). Without a resolution every number
    is in one range. A number outside every range (a numbering finding) is placed after the range just
    below it, so a day that ends there still shows that range's unused end as missing."""

    def __init__(self, code: str):
        self.code = code
        ranges = resolutions.for_codes([code]).get(code) or []
        self.issued = sorted(ranges, key=lambda r: (r.valid_from, r.number_from))
        order = {r.id: i for i, r in enumerate(self.issued)}
        self.spans: list[tuple[int, int, int]] = []  # (lowest, highest, place): the number line, cut at the ranges' ends
        if not ranges:
            self.spans.append((-_TOP, _TOP, 0))
        for i, r in enumerate(ranges):  # for_codes gives them by number
            if i == 0:
                self.spans.append((-_TOP, r.number_from - 1, order[r.id]))
            self.spans.append((r.number_from, r.number_to, order[r.id]))
            after = ranges[i + 1].number_from - 1 if i + 1 < len(ranges) else _TOP
            if r.number_to < after:
                self.spans.append((r.number_to + 1, after, order[r.id]))

    def place(self, n: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.spans, (n, _TOP, _TOP)) - 1
        return self.spans[i][2], n

    def last_before(self, day: str) -> tuple[int, int] | None:
        """The place of the last number held for the days before `day` (one indexed lookup a span)."""
        best = None
        for lo, hi, _ in self.spans:
            top = Voucher.select(fn.MAX(Voucher.number)).where(
                (Voucher.code == self.code) & (Voucher.number >= lo) & (Voucher.number <= hi) & (Voucher.day < day)).scalar()
            if top is not None:
                best = self.place(top) if best is None else max(best, self.place(top))
        return best

    def runs(self, first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
        """The runs of numbers issued from place `first` to place `last`, in the order they were issued.
        Between two ranges nothing was authorised; a range the code has left was used up to its highest
        number held (the POS moved on when it expired), and one never used was skipped whole. A voucher
        lost right before such a switch is still caught by the day audit against closing.json."""
        if not self.issued:
            return [(first[1], last[1])] if first[1] <= last[1] else []
        out = []
        for i in range(first[0], last[0] + 1):
            r = self.issued[i]
            lo = first[1] if i == first[0] else r.number_from
            if i == last[0]:
                hi = last[1]
            else:
                hi = Voucher.select(fn.MAX(Voucher.number)).where(
                    (Voucher.code == self.code) & (Voucher.number >= r.number_from) & (Voucher.number <= r.number_to)).scalar()
                if hi is None:
                    continue
            a, b = max(lo, r.number_from), min(hi, r.number_to)
            if a <= b:
                out.append((a, b))
        return out


def gaps(code: str, day: dt.date | None = None) -> list[int]:
    """Missing numbers of `code`, in the order they would have been issued: on `day`, from the last
    number held for the days before up to the day's last; without a day, between the first and the
    last number ever held. Only numbers the code's resolutions say were issued count (_Numbering).
    At most MAX_LISTED of them: `counted_gaps` also says how many there are in all."""
    return counted_gaps(code, day)[0]


def counted_gaps(code: str, day: dt.date | None = None) -> tuple[list[int], int]:
    """(the first MAX_LISTED missing numbers, how many are missing in all): a list cut at MAX_LISTED must
    not read as the whole of a jump of millions."""
    numbering = _Numbering(code)
    if day is None:
        held = [n for (n,) in Voucher.select(Voucher.number).where(Voucher.code == code).tuples()]
        if not held:
            return [], 0
        places = [numbering.place(n) for n in held]
        first, last = min(places), max(places)
    else:
        d = day.isoformat()
        places = [numbering.place(n) for (n,) in Voucher.select(Voucher.number).where(
            (Voucher.code == code) & (Voucher.day == d)).tuples()]
        if not places:
            return [], 0
        before = numbering.last_before(d)
        first = (before[0], before[1] + 1) if before is not None else min(places)
        last = max(places)
    out: list[int] = []
    total = 0
    for a, b in numbering.runs(first, last):
        # a number held under any day counts: a voucher filed in the wrong day's folder is not missing
        in_run = (Voucher.code == code) & (Voucher.number >= a) & (Voucher.number <= b)
        total += b - a + 1 - Voucher.select().where(in_run).count()
        if len(out) < MAX_LISTED:
            held_here = [n for (n,) in Voucher.select(Voucher.number).where(in_run).order_by(Voucher.number).tuples()]
            out += _missing(held_here, a, b, MAX_LISTED - len(out))
    return out, total


def listed(missing: list[int], total: int | None = None) -> str:
    """The missing numbers in words, saying how many more there are past the ones listed."""
    more = (total or 0) - len(missing)
    return runs(missing) + (f" and {more} more ({total} in all)" if more > 0 else "")


def log_gaps(caja: str, day: dt.date) -> None:
    """After an import that brought something: one warning naming the day's gaps of the caja's codes."""
    counted = {code: g for code in codes_of_day(caja, day) if (g := counted_gaps(code, day))[1]}
    if counted:
        found = {c: g for c, (g, _) in counted.items()}
        synclog.record(synclog.Entry(action="check", caja=caja, outcome="ok", level="warning",
                                     message=f"{day}: numbers missing in " + "; ".join(f"{c}: {listed(*g)}" for c, g in counted.items()),
                                     details={"date": day.isoformat(), "gaps": found,
                                              "missing_count": {c: n for c, (_, n) in counted.items()}}))


def codes_of_day(caja: str, day: dt.date) -> list[str]:
    """The codes of a caja's vouchers that day (a removed caja's too)."""
    return [c for (c,) in Voucher.select(Voucher.code).where((Voucher.caja == caja) & (Voucher.day == day.isoformat()))
            .distinct().order_by(Voucher.code).tuples()]


def runs(numbers: list[int]) -> str:
    """12, 13, 14, 20 → "12–14, 20"."""
    parts, start, prev = [], None, None
    for n in numbers + [None]:
        if start is not None and (n is None or n != prev + 1):
            parts.append(str(start) if start == prev else f"{start}–{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ", ".join(parts)


def check(day: dt.date | None = None, caja: str | None = None) -> dict:
    """`vouchers check`: every voucher with findings, and the gaps of each code."""
    q = Voucher.select(Voucher.caja, Voucher.code, Voucher.number, Voucher.day, Voucher.findings).where(Voucher.findings != "[]")
    codes = Voucher.select(Voucher.caja, Voucher.code).distinct()
    if day:
        q, codes = q.where(Voucher.day == day.isoformat()), codes.where(Voucher.day == day.isoformat())
    if caja:
        q, codes = q.where(Voucher.caja == caja), codes.where(Voucher.caja == caja)
    found = [
        {"caja": c, "code": code, "number": n, "date": d, "kind": f["kind"], "message": f["message"]}
        for c, code, n, d, fs in q.order_by(Voucher.day, Voucher.caja, Voucher.code, Voucher.number).tuples()
        for f in json.loads(fs)
    ]
    missing = []
    for c, code in sorted(codes.tuples()):
        g, total = counted_gaps(code, day)
        if g:
            missing.append({"caja": c, "code": code, "date": day.isoformat() if day else None, "missing": g, "missing_count": total})
    return {"date": day.isoformat() if day else None, "findings": found, "gaps": missing}


def audit(day: dt.date, caja: str | None = None) -> dict:
    """`audit`: each caja's closing.json for `day` beside what the main server holds, per code."""
    d = day.isoformat()
    names = sorted({c.name for c in registry.all_cajas()} | {c for (c,) in Voucher.select(Voucher.caja).where(Voucher.day == d).distinct().tuples()})
    if caja:
        names = [registry.get(caja).name] if caja not in names else [caja]
    return {"date": d, "cajas": [_audit_caja(name, day) for name in names]}


def _held(caja: str, day: dt.date) -> dict[str, dict]:
    held: dict[str, dict] = {}
    rows = Voucher.select(Voucher.code, Voucher.number, Voucher.status, Voucher.total).where(
        (Voucher.caja == caja) & (Voucher.day == day.isoformat())).order_by(Voucher.code, Voucher.number)
    for code, number, status, total in rows.tuples():
        h = held.setdefault(code, {"numbers": [], "voided": 0, "total": Decimal("0")})
        h["numbers"].append(number)
        if status == "voided":
            h["voided"] += 1
        else:
            h["total"] += Decimal(str(total))
    return held


def _audit_caja(caja: str, day: dt.date) -> dict:
    held = _held(caja, day)
    out: dict = {"caja": caja, "codes": {}}
    try:
        said = closings.summaries(caja, day)
    except closings.Unusable as exc:
        out["problem"] = str(exc)
        said = {}
    owners = registry.code_owner()
    for code in sorted(set(held) | set(said or {})):
        h = held.get(code, {"numbers": [], "voided": 0, "total": Decimal("0")})
        entry = {"count": len(h["numbers"]), "voided": h["voided"], "total": str(h["total"])}
        if said is None:
            g, total = counted_gaps(code, day)
            entry.update(status="no_closing", missing=g, missing_count=total, extra=[], expected=None)
        elif "problem" in out:
            # nothing to pair with: every held number is not "extra", the closing is unreadable
            entry.update(status="mismatch", missing=[], extra=[], expected=None, problem=out["problem"])
        elif code not in said:
            entry.update(status="mismatch", missing=[], extra=h["numbers"][:MAX_LISTED], expected=None,
                         problem="closing.json does not mention this code")
        else:
            s = said[code]
            # count 0: a code the POS lists with no sales that day; its first and last name no voucher
            first, last = (s.first, s.last) if s.count else (1, 0)
            missing = _missing(h["numbers"], first, last)
            inside = sum(1 for n in h["numbers"] if first <= n <= last)
            extra = [n for n in h["numbers"] if n < first or n > last][:MAX_LISTED]
            agrees = (not missing and not extra and len(h["numbers"]) == s.count and h["total"] == s.total and h["voided"] == s.voided)
            entry.update(status="complete" if agrees else "mismatch", missing=missing, missing_count=max(last - first + 1 - inside, 0),
                         extra=extra, expected={"first": s.first, "last": s.last, "count": s.count, "voided": s.voided, "total": str(s.total)})
            if not h["numbers"] and owners.get(code) not in (None, caja):
                entry["problem"] = f"{code} is a code of {owners[code]}, not of {caja}; its vouchers are held under {owners[code]}"
        out["codes"][code] = entry
    if said is None and "problem" not in out:
        out["closing"] = False
    return out


def failed(result: dict) -> bool:
    """A code that does not match, or a closing.json that cannot be used, even on a day with no vouchers held."""
    return any(c.get("problem") or any(e["status"] == "mismatch" for e in c["codes"].values()) for c in result["cajas"])


def log_audit(result: dict) -> None:
    for c in result["cajas"]:
        bad = {code: e for code, e in c["codes"].items() if e["status"] == "mismatch"}
        none = all(e["status"] == "no_closing" for e in c["codes"].values()) and c["codes"]
        if bad or c.get("problem"):
            parts = [f"{code}: " + describe(e) for code, e in bad.items()] + ([c["problem"]] if c.get("problem") else [])
            synclog.record(synclog.Entry(action="audit", caja=c["caja"], outcome="failed", level="error",
                                         message=f"{result['date']}: " + "; ".join(parts), details={"date": result["date"], "codes": bad}))
        else:
            what = ("no closing.json to pair with" if none else "every code complete" if c["codes"]
                    else "no vouchers and no closing" if c.get("closing") is False else "no vouchers, and a closing.json that lists none")
            synclog.record(synclog.Entry(action="audit", caja=c["caja"], outcome="ok", message=f"{result['date']}: {what}"))


def describe(e: dict) -> str:
    """One code's audit line, in words."""
    if e["status"] == "complete":
        return f"complete: {_vouchers(e['count'])}, {e['total']}"
    if e["status"] == "no_closing":
        gaps_text = f", numbers missing {listed(e['missing'], e.get('missing_count'))}" if e["missing"] else ""
        return f"no closing.json; held {_vouchers(e['count'])}, {e['total']}{gaps_text}"
    x = e["expected"]
    parts = []
    if e["missing"]:
        parts.append(f"missing {listed(e['missing'], e.get('missing_count'))}")
    if e["extra"]:
        parts.append(f"extra {runs(e['extra'])}")
    if x is None:
        parts.append(e.get("problem", "not in closing.json"))
    else:
        if e["count"] != x["count"]:
            parts.append(f"count {e['count']} held, {x['count']} in closing.json")
        if e["voided"] != x["voided"]:
            parts.append(f"voided {e['voided']} held, {x['voided']} in closing.json")
        if Decimal(e["total"]) != Decimal(x["total"]):
            parts.append(f"total {e['total']} held, {x['total']} in closing.json")
        if e.get("problem"):
            parts.append(e["problem"])
    return "mismatch: " + ", ".join(parts)


def _vouchers(n: int) -> str:
    return f"{n} voucher" if n == 1 else f"{n} vouchers"
