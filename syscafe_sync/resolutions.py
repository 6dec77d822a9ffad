"""DIAN numbering resolutions per voucher code, and the numbering findings they give (SPEC `resolution`).

A code may have several resolutions over the years (DIAN grants a new range
when one runs out); their number ranges never overlap. A voucher is checked
against the resolution whose range holds its number: outside every range,
issued outside that resolution's validity, or with another prefix, it is
flagged. Findings are kept with the voucher, so adding or removing a
resolution checks that code's vouchers again.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from peewee import fn

from . import registry, synclog
from .db import write_transaction
from .db.models import Resolution, Voucher, utcnow
from .errors import UsageError

KIND = "numbering"
# A voucher number is a BIGINT in the database; a range past it cannot be stored, nor any voucher in it.
MAX_NUMBER = 2**63 - 1


@dataclass(frozen=True)
class Range:
    id: int
    code: str
    prefix: str
    number_from: int
    number_to: int
    valid_from: dt.date
    valid_to: dt.date
    number: str | None

    @classmethod
    def of(cls, r: Resolution) -> Range:
        return cls(r.id, r.code, r.prefix, r.number_from, r.number_to, dt.date.fromisoformat(r.valid_from),
                   dt.date.fromisoformat(r.valid_to), r.number)

    def describe(self) -> str:
        name = f"resolution {self.number}" if self.number else f"resolution #{self.id}"
        return f"{name} ({self.prefix} {self.number_from}–{self.number_to}, {self.valid_from} to {self.valid_to})"


def add(code: str, prefix: str, number_from: int, number_to: int, valid_from: dt.date, valid_to: dt.date,
        number: str | None = None, *, tz: dt.tzinfo) -> tuple[Range, list[str]]:
    """Records a resolution; refuses (nothing changed) a bad range or one overlapping another of the code."""
    code = registry.check_code(code)
    prefix = prefix.strip()
    if not prefix:
        raise UsageError("--prefix is empty; give the prefix the resolution authorises, e.g. POS2.")
    if number_from < 1 or number_to < number_from:
        raise UsageError(f"--from {number_from} --to {number_to} is not a range; the first number must be 1 or more and not above the last.")
    if number_to > MAX_NUMBER:
        raise UsageError(f"--to {number_to} is past the highest voucher number this program keeps ({MAX_NUMBER}); "
                         f"give the last number the resolution authorises.")
    if valid_to < valid_from:
        raise UsageError(f"--valid-from {valid_from} is after --valid-to {valid_to}; give the dates of the resolution in order.")
    with write_transaction():
        for other in map(Range.of, Resolution.select().where(Resolution.code == code)):
            if number_from <= other.number_to and other.number_from <= number_to:
                raise UsageError(f"numbers {number_from}–{number_to} of {code} overlap {other.describe()}; "
                                 f"remove that one first (`syscafe-sync resolution remove {other.id}`) if it was entered wrong.")
        row = Resolution.create(code=code, prefix=prefix, number_from=number_from, number_to=number_to,
                                valid_from=valid_from.isoformat(), valid_to=valid_to.isoformat(), number=number, created_at=utcnow())
    added = Range.of(row)
    warnings = [] if code in registry.code_owner() else [f"code {code} is not registered to any caja yet; the resolution waits for it"]
    checked = recheck(code, tz)
    synclog.record(synclog.Entry(action="resolution add", outcome="ok", message=f"{code}: {added.describe()}; {checked} vouchers checked again"))
    return added, warnings


def remove(resolution_id: int, *, tz: dt.tzinfo) -> Range:
    row = Resolution.get_or_none(Resolution.id == resolution_id)
    if row is None:
        raise UsageError(f"there is no resolution #{resolution_id}; `syscafe-sync resolution list` shows their numbers.")
    gone = Range.of(row)
    row.delete_instance()
    checked = recheck(gone.code, tz)
    synclog.record(synclog.Entry(action="resolution remove", outcome="ok", message=f"{gone.code}: {gone.describe()} removed; {checked} vouchers checked again"))
    return gone


def for_codes(codes) -> dict[str, list[Range]]:
    out: dict[str, list[Range]] = {}
    for r in Resolution.select().where(Resolution.code.in_(list(codes))).order_by(Resolution.number_from):
        out.setdefault(r.code, []).append(Range.of(r))
    return out


def numbering(code: str, number: int, prefix: str | None, issued_at: str, ranges: list[Range] | None,
              tz: dt.tzinfo) -> list[dict]:
    """The numbering findings of one voucher; none for a code with no resolution (doctor reports that).
    `tz`: the company's time zone, whose calendar a resolution's validity dates are in."""
    if not ranges:
        return []
    hit = next((r for r in ranges if r.number_from <= number <= r.number_to), None)
    if hit is None:
        within = "; ".join(r.describe() for r in ranges)
        return [_finding(f"{code}-{number} is outside the range of every resolution of {code}: {within}")]
    out = []
    issued = dt.datetime.fromisoformat(issued_at).astimezone(tz).date()
    if not hit.valid_from <= issued <= hit.valid_to:
        out.append(_finding(f"{code}-{number} was issued on {issued}, outside the validity of {hit.describe()}"))
    if (prefix or "") != hit.prefix:
        out.append(_finding(f"{code}-{number} has prefix {prefix or '(none)'!s}, but {hit.describe()} authorises {hit.prefix}"))
    return out


def _finding(message: str) -> dict:
    return {"kind": KIND, "message": message}


def recheck(code: str, tz: dt.tzinfo) -> int:
    """Brings the numbering findings of every voucher of `code` in line with its resolutions; returns how many changed."""
    ranges = for_codes([code]).get(code)
    changed = 0
    with write_transaction():
        rows = Voucher.select(Voucher.id, Voucher.number, Voucher.prefix, Voucher.issued_at, Voucher.findings).where(Voucher.code == code)
        for vid, number, prefix, issued_at, found in rows.tuples():
            before = json.loads(found)
            after = [f for f in before if f.get("kind") != KIND] + numbering(code, number, prefix, issued_at, ranges, tz)
            if after != before:
                Voucher.update(findings=json.dumps(after, ensure_ascii=False)).where(Voucher.id == vid).execute()
                changed += 1
    return changed


def listing(code: str | None = None, today: dt.date | None = None) -> list[dict]:
    """Every resolution with how much of it is used (the highest number held) and the days it has left."""
    q = Resolution.select().order_by(Resolution.code, Resolution.number_from)
    if code:
        q = q.where(Resolution.code == code)
    out = []
    for r in map(Range.of, q):
        highest = (Voucher.select(fn.MAX(Voucher.number))
                   .where((Voucher.code == r.code) & (Voucher.number >= r.number_from) & (Voucher.number <= r.number_to)).scalar())
        size = r.number_to - r.number_from + 1
        used = 0 if highest is None else highest - r.number_from + 1
        out.append({
            "id": r.id, "code": r.code, "prefix": r.prefix, "from": r.number_from, "to": r.number_to,
            "valid_from": r.valid_from.isoformat(), "valid_to": r.valid_to.isoformat(), "number": r.number,
            "highest_number": highest, "used_percent": round(100 * used / size, 1),
            "days_left": (r.valid_to - today).days if today else None,
        })
    return out
