"""Reading back what was imported: `vouchers list / show / refused`."""

from __future__ import annotations

import datetime as dt
import json
import re

from peewee import JOIN

from .db.models import PostingStatus, Refusal, Voucher, VoucherLine, VoucherPayment, VoucherTax
from .errors import UsageError

_KEY = re.compile(r"^(?P<code>[A-Za-z0-9_]+)-(?P<number>[0-9]+)$")


def summary(v: Voucher) -> dict:
    return {
        "caja": v.caja,
        "code": v.code,
        "number": v.number,
        "date": v.day,
        "issued_at": v.issued_at,
        "kind": v.kind,
        "status": v.status,
        "total": str(v.total),
        "findings": json.loads(v.findings),
        **posting(v),
    }


def posting(v: Voucher) -> dict:
    """The accounting status (pending, posted, held, failed) and its reason; no row yet is pending.
    A voucher changed by an overwrite import since its status was set is pending again."""
    st = getattr(v, "st", None)
    if st is None or st.status is None:
        return {"accounting": "pending", "accounting_reason": None}
    if st.sha256 != v.sha256:
        return {"accounting": "pending", "accounting_reason": "changed by an import since it was posted or held"}
    return {"accounting": st.status, "accounting_reason": st.reason}


def _with_posting(q):
    return q.join(PostingStatus, JOIN.LEFT_OUTER, on=(PostingStatus.voucher == Voucher.id), attr="st")


def list_vouchers(caja: str | None = None, day: dt.date | None = None, code: str | None = None, limit: int | None = None) -> list[dict]:
    q = Voucher.select(
        Voucher.caja, Voucher.code, Voucher.number, Voucher.day, Voucher.issued_at, Voucher.kind,
        Voucher.status, Voucher.total, Voucher.findings, Voucher.sha256, PostingStatus.status, PostingStatus.reason,
        PostingStatus.sha256,
    )
    q = _with_posting(q)
    if caja:
        q = q.where(Voucher.caja == caja)
    if day:
        q = q.where(Voucher.day == day.isoformat())
    if code:
        q = q.where(Voucher.code == code)
    q = q.order_by(Voucher.day, Voucher.caja, Voucher.code, Voucher.number)
    if limit:
        q = q.limit(limit)
    return [summary(v) for v in q]


def parse_key(text: str) -> tuple[str, int]:
    m = _KEY.match(text.strip())
    if not m:
        raise UsageError(f"{text!r} does not name a voucher; write it as CODE-NUMBER, e.g. FV2-1547.")
    return m.group("code"), int(m.group("number"))


def show(text: str) -> dict:
    code, number = parse_key(text)
    v = _with_posting(Voucher.select(Voucher, PostingStatus)).where((Voucher.code == code) & (Voucher.number == number)).first()
    if v is None:
        raise UsageError(f"voucher {code}-{number} has not been imported; see `syscafe-sync vouchers list --code {code}`.")
    out = summary(v)
    out.update(
        prefix=v.prefix, cude=v.cude, shift=v.shift, cashier=v.cashier, seller=v.seller,
        customer={"id": v.customer_id, "id_type": v.customer_id_type, "name": v.customer_name},
        totals={"base": _s(v.base), "tax": _s(v.tax), "tip": _s(v.tip), "total": _s(v.total)},
        path=v.path, sha256=v.sha256, imported_at=v.imported_at.isoformat(), updated_at=v.updated_at.isoformat(),
    )
    taxes: dict[int, list[dict]] = {}
    for t in VoucherTax.select().where(VoucherTax.voucher == v).order_by(VoucherTax.line_no, VoucherTax.id):
        taxes.setdefault(t.line_no, []).append({"type": t.type, "rate": _s(t.rate), "amount": _s(t.amount)})
    out["lines"] = [
        {"line_no": line.line_no + 1, "product": line.product, "description": line.description, "quantity": _s(line.quantity),
         "unit_price": _s(line.unit_price), "discount": _s(line.discount), "base": _s(line.base), "taxes": taxes.get(line.line_no, [])}
        for line in VoucherLine.select().where(VoucherLine.voucher == v).order_by(VoucherLine.line_no)
    ]
    out["payments"] = [
        {"method": p.method, "amount": _s(p.amount)}
        for p in VoucherPayment.select().where(VoucherPayment.voucher == v).order_by(VoucherPayment.line_no)
    ]
    out["document"] = json.loads(v.document)
    return out


def refused(caja: str | None = None, day: dt.date | None = None, include_resolved: bool = False) -> list[dict]:
    q = Refusal.select()
    if not include_resolved:
        q = q.where(Refusal.resolved_at.is_null())
    if caja:
        q = q.where(Refusal.caja == caja)
    if day:
        q = q.where(Refusal.day == day.isoformat())
    return [
        {"caja": r.caja, "date": r.day, "path": r.path, "reason": r.reason, "attempts": r.attempts,
         "first_seen": r.first_seen.isoformat(), "last_seen": r.last_seen.isoformat(),
         "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None}
        for r in q.order_by(Refusal.caja, Refusal.path)
    ]


def _s(value) -> str | None:
    return None if value is None else str(value)
