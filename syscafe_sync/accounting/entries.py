"""Journal lines from one voucher, with Decimal only: pure functions, no database.

A sale debits what paid it (each payment method's account; the receivable for
what is unpaid) and credits income per product group (the line bases, already
net of discounts), each tax (type and rate) and tips. A credit or adjustment
note posts the same with debits and credits swapped: it reverses what it
cancels. A voided voucher contributes nothing; what it had posted is reversed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from ..caja.voucher import CONSUMIDOR_FINAL
from .mapping import Mapping, tax_key

CENT = Decimal("0.01")
ZERO = Decimal("0")
SALE_KINDS = (None, "pos_invoice", "electronic_invoice")
RETURN_KINDS = ("credit_note", "adjustment_note")


class Held(Exception):
    """The voucher cannot be posted whole; `reasons` names each thing missing."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class Line:
    product: str | None
    base: Decimal | None


@dataclass
class Tax:
    line_no: int
    type: str
    rate: Decimal | None
    amount: Decimal | None


@dataclass
class VoucherView:
    """What posting needs of a voucher, from the database or from a parsed document."""

    caja: str
    code: str
    number: int
    day: str
    kind: str | None
    status: str
    customer_id: str | None
    total: Decimal
    tip: Decimal | None
    lines: list[Line] = field(default_factory=list)
    taxes: list[Tax] = field(default_factory=list)
    payments: list[tuple[str, Decimal]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.code}-{self.number}"

    @classmethod
    def from_parsed(cls, parsed, day: str) -> "VoucherView":
        h = parsed.header
        return cls(
            caja=h["caja"], code=h["code"], number=h["number"], day=day, kind=h["kind"], status=h["status"],
            customer_id=h["customer_id"], total=h["total"], tip=h["tip"],
            lines=[Line(x["product"], x["base"]) for x in parsed.lines],
            taxes=[Tax(t["line_no"], t["type"], t["rate"], t["amount"]) for t in parsed.taxes],
            payments=[(p["method"], p["amount"]) for p in parsed.payments],
        )


def _jl(account: str, cost_centre: str, third_party: str, description: str, amount: Decimal, debit: bool) -> dict:
    # A negative amount (a line discounted below zero, a negative payment) belongs on the other side.
    if amount < 0:
        amount, debit = -amount, not debit
    return {"account": account, "cost_centre": cost_centre, "third_party": third_party, "description": description,
            "debit": amount if debit else ZERO, "credit": ZERO if debit else amount}


def _whole_cents(what: str, amount: Decimal, reasons: list[str]) -> None:
    if amount != amount.quantize(CENT):
        reasons.append(f"{what} = {amount} is not a whole number of cents")


def target(v: VoucherView, m: Mapping, groups: dict[str, str | None]) -> list[dict]:
    """The lines this voucher contributes to the books now; raises Held naming everything missing."""
    if v.status == "voided":
        return []
    reasons: list[str] = []
    if v.kind not in SALE_KINDS + RETURN_KINDS:
        reasons.append(f"kind {v.kind} is not posted automatically (only {', '.join(k for k in SALE_KINDS + RETURN_KINDS if k)}): post it by hand")
    cc = m.caja.get(v.caja)
    if cc is None:
        reasons.append(f"no cost centre for caja {v.caja} (cajas.{v.caja})")
    third = v.customer_id or CONSUMIDOR_FINAL["id"]
    out: list[dict] = []
    credits = ZERO
    for i, line in enumerate(v.lines, start=1):
        group = groups.get(line.product) if line.product else None
        if line.base is None:
            reasons.append(f"line {i} has no base")
            continue
        _whole_cents(f"line {i} base", line.base, reasons)
        credits += line.base
        if not line.product:
            reasons.append(f"line {i} names no product, so no group")
        elif line.product not in groups:
            reasons.append(f"product {line.product} (line {i}) is not in the products catalog")
        elif group is None:
            reasons.append(f"product {line.product} (line {i}) has no group in the products catalog")
        elif group not in m.group:
            reasons.append(f"no income account for group {group} (groups.{group}, product {line.product})")
        else:
            out.append(_jl(m.group[group], cc, third, f"{v.name} {group}", line.base, debit=False))
    for t in v.taxes:
        key = tax_key(t.type, t.rate)
        if t.amount is None:
            reasons.append(f"tax {key} on line {t.line_no + 1} has no amount")
            continue
        if t.amount == 0:
            continue  # exempt or excluded: nothing to post, no account needed
        _whole_cents(f"tax {key} on line {t.line_no + 1}", t.amount, reasons)
        credits += t.amount
        if t.rate is None:
            reasons.append(f"tax {t.type} on line {t.line_no + 1} has no rate")
        elif key not in m.tax:
            reasons.append(f"no account for tax {key} (taxes.\"{key}\")")
        else:
            out.append(_jl(m.tax[key], cc, third, f"{v.name} {key}", t.amount, debit=False))
    tip = v.tip or ZERO
    if tip:
        _whole_cents("tip", tip, reasons)
        credits += tip
        if "tips" not in m.account:
            reasons.append("no account for tips (accounts.tips)")
        else:
            out.append(_jl(m.account["tips"], cc, third, f"{v.name} tip", tip, debit=False))
    if credits != v.total:
        reasons.append(f"totals.total {v.total} is not lines + taxes + tip = {credits}: fix it at the caja and import with --mode overwrite")
    paid = ZERO
    for method, amount in v.payments:
        _whole_cents(f"payment {method}", amount, reasons)
        paid += amount
        if method not in m.payment_method:
            reasons.append(f"no account for payment method {method} (payment_methods.{method})")
        else:
            out.append(_jl(m.payment_method[method], cc, third, f"{v.name} {method}", amount, debit=True))
    if paid > credits:
        reasons.append(f"payments {paid} exceed what was sold, {credits}")
    elif paid < credits:
        if "receivable" not in m.account:
            reasons.append(f"{credits - paid} is unpaid and there is no receivable account (accounts.receivable)")
        else:
            out.append(_jl(m.account["receivable"], cc, third, f"{v.name} unpaid", credits - paid, debit=True))
    if reasons:
        raise Held(sorted(set(reasons), key=reasons.index))
    lines = merge(out)
    return reverse(lines) if v.kind in RETURN_KINDS else lines


def reverse(lines: list[dict]) -> list[dict]:
    return [dict(x, debit=x["credit"], credit=x["debit"]) for x in lines]


def merge(lines: list[dict]) -> list[dict]:
    """Lines with the same account, cost centre, third party, description and side added together, zeros dropped."""
    sums: dict[tuple, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for x in lines:
        s = sums[(x["account"], x["cost_centre"], x["third_party"], x["description"], x["debit"] > 0)]
        s[0] += x["debit"]
        s[1] += x["credit"]
    return [{"account": a, "cost_centre": c, "third_party": t, "description": d, "debit": dr, "credit": cr}
            for (a, c, t, d, _), (dr, cr) in sums.items() if dr or cr]


def summarise(lines: list[dict], description: str) -> list[dict]:
    """A day's lines netted per account, cost centre and third party: one debit or credit each."""
    net: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    for x in lines:
        net[(x["account"], x["cost_centre"], x["third_party"])] += x["debit"] - x["credit"]
    return [_jl(a, c, t, description, amount, debit=True) for (a, c, t), amount in sorted(net.items()) if amount]


def totals(lines: list[dict]) -> tuple[Decimal, Decimal]:
    return sum((x["debit"] for x in lines), ZERO), sum((x["credit"] for x in lines), ZERO)


def to_json(lines: list[dict]) -> list[dict]:
    return [dict(x, debit=str(x["debit"].quantize(CENT)), credit=str(x["credit"].quantize(CENT))) for x in lines]


def from_json(lines: list[dict]) -> list[dict]:
    return [dict(x, debit=Decimal(x["debit"]), credit=Decimal(x["credit"])) for x in lines]
