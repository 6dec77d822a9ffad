"""Findings: a voucher that is imported but flagged (SPEC §1, "Findings").

This module holds the checks that need only the voucher and its folder:
line and total arithmetic, and dates. Numbering checks need the resolutions
and the neighbours of a voucher, and live with them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from .voucher_decode import Decoded

TOLERANCE = Decimal("0.01")
CLOCK_SKEW = dt.timedelta(minutes=5)
ZERO = Decimal("0")


def _off(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) > TOLERANCE


def _f(kind: str, message: str) -> dict:
    return {"kind": kind, "message": message}


def arithmetic(v: Decoded) -> list[dict]:
    # `abs(x - y) > TOLERANCE` written out, not through _off: this runs for every line of every voucher.
    out = []
    bases, taxes = [], []
    tol = TOLERANCE
    lines = v.amounts.lines
    for n, (q, u, d, b) in enumerate(lines):
        if b is not None:
            if q is not None and u is not None:
                d = d or ZERO
                if abs(q * u - d - b) > tol:
                    out.append(_f("line", f"line {n + 1}: {q} × {u} − {d} = {q * u - d}, but base is {b}"))
            bases.append(b)
    untold = False  # a tax without its (optional) amount: the lines' taxes cannot be added up
    for line_no, kind, rate, amount in v.amounts.taxes:
        if amount is None:
            untold = True
            continue
        base = lines[line_no][3]
        if base is not None and rate is not None and abs(base * rate / 100 - amount) > tol:
            out.append(_f("tax", f"line {line_no + 1}: {kind} {rate} % of {base} is {(base * rate / 100).quantize(TOLERANCE)}, but amount is {amount}"))
        taxes.append(amount)
    h = v.header
    # `base` is optional on a line: the sum of some lines' bases is no total to compare with totals.base
    if h["base"] is not None and bases and len(bases) == len(lines) and _off(sum(bases), h["base"]):
        out.append(_f("totals", f"totals.base is {h['base']}, but the lines' bases add up to {sum(bases)}"))
    if h["tax"] is not None and not untold and _off(sum(taxes, ZERO), h["tax"]):
        out.append(_f("totals", f"totals.tax is {h['tax']}, but the lines' taxes add up to {sum(taxes, ZERO)}"))
    if h["base"] is not None and h["tax"] is not None:
        expected = h["base"] + h["tax"] + (h["tip"] or ZERO)
        if _off(expected, h["total"]):
            out.append(_f("totals", f"total is {h['total']}, but base + tax + tip = {expected}"))
    payments = v.amounts.payments
    if payments:
        paid = sum(payments)
        if _off(paid, h["total"]):
            out.append(_f("payments", f"payments add up to {paid}, but total is {h['total']}"))
    return out


def dates(v: Decoded, day: dt.date, now: dt.datetime, tz: dt.tzinfo) -> list[dict]:
    """`tz`: the company's time zone, whose calendar the day folders follow. The voucher's own offset is
    not that: a POS that writes its times in UTC ("Z") would have every evening sale on the next day."""
    out = []
    issued = v.header["issued_utc"]
    if issued > now + CLOCK_SKEW:
        out.append(_f("date", f"issued_at {v.header['issued_at']} is in the future"))
    other = other_day(issued, v.header["issued_at"], day, tz)
    if other:
        out.append(other)
    return out


OTHER_DAY = "issued on "


def other_day(issued: dt.datetime, issued_at: str, day: dt.date, tz: dt.tzinfo) -> dict | None:
    local = issued.astimezone(tz).date()
    if local == day:
        return None
    return _f("date", f"{OTHER_DAY}{local} ({issued_at}), but it is in the folder of {day}")


def of_voucher(v: Decoded, day: dt.date, now: dt.datetime, tz: dt.tzinfo) -> list[dict]:
    return arithmetic(v) + dates(v, day, now, tz)
