"""Findings: a voucher that is imported but flagged (SPEC §1, "Findings").

This module holds the checks that need only the voucher and its folder:
line and total arithmetic, and dates. Numbering checks need the resolutions
and the neighbours of a voucher, and live with them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from .caja.voucher import ParsedVoucher

TOLERANCE = Decimal("0.01")
CLOCK_SKEW = dt.timedelta(minutes=5)
ZERO = Decimal("0")


def _off(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) > TOLERANCE


def _f(kind: str, message: str) -> dict:
    return {"kind": kind, "message": message}


def arithmetic(p: ParsedVoucher) -> list[dict]:
    out = []
    bases, taxes = [], []
    for line in p.lines:
        n = line["line_no"]
        q, u, d, b = line["quantity"], line["unit_price"], line["discount"] or ZERO, line["base"]
        if q is not None and u is not None and b is not None and _off(q * u - d, b):
            out.append(_f("line", f"line {n + 1}: {q} × {u} − {d} = {q * u - d}, but base is {b}"))
        if b is not None:
            bases.append(b)
    for tax in p.taxes:
        base = p.lines[tax["line_no"]]["base"]
        rate, amount = tax["rate"], tax["amount"]
        if base is not None and rate is not None and amount is not None and _off(base * rate / 100, amount):
            out.append(_f("tax", f"line {tax['line_no'] + 1}: {tax['type']} {rate} % of {base} is {(base * rate / 100).quantize(TOLERANCE)}, but amount is {amount}"))
        if amount is not None:
            taxes.append(amount)
    h = p.header
    if h["base"] is not None and bases and _off(sum(bases), h["base"]):
        out.append(_f("totals", f"totals.base is {h['base']}, but the lines' bases add up to {sum(bases)}"))
    if h["tax"] is not None and _off(sum(taxes, ZERO), h["tax"]):
        out.append(_f("totals", f"totals.tax is {h['tax']}, but the lines' taxes add up to {sum(taxes, ZERO)}"))
    if h["base"] is not None and h["tax"] is not None:
        expected = h["base"] + h["tax"] + (h["tip"] or ZERO)
        if _off(expected, h["total"]):
            out.append(_f("totals", f"total is {h['total']}, but base + tax + tip = {expected}"))
    if p.payments:
        paid = sum(pay["amount"] for pay in p.payments)
        if _off(paid, h["total"]):
            out.append(_f("payments", f"payments add up to {paid}, but total is {h['total']}"))
    return out


def dates(p: ParsedVoucher, day: dt.date, now: dt.datetime) -> list[dict]:
    out = []
    issued = p.header["issued_utc"]
    if issued > now + CLOCK_SKEW:
        out.append(_f("date", f"issued_at {p.header['issued_at']} is in the future"))
    if issued.date() != day:
        out.append(_f("date", f"issued on {issued.date()}, but it is in the folder of {day}"))
    return out


def of_voucher(p: ParsedVoucher, day: dt.date, now: dt.datetime) -> list[dict]:
    return arithmetic(p) + dates(p, day, now)
