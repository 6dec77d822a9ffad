"""The main server's voucher decoder: the checks of `caja.voucher.parse`, done by msgspec.

`caja.voucher.parse` is the reference: standard library only, so a point of
sale can vendor it, and it words every refusal. Decoding and type-checking in
Python was most of an import's time, though, so the importer decodes with
msgspec (JSON and types checked in C) into the same ParsedVoucher: 0.19 s for
20,000 vouchers here, against 0.48 s for the reference. Whatever the fast path cannot take as it is — a refusal, or one
of the reference's lenient corners (an empty `customer`, a falsy `taxes`) —
goes to the reference, which gives the verdict and the message. So the two can
never disagree on what is refused; tests/test_voucher_decode.py checks that
they agree on what is kept.
"""

from __future__ import annotations

import datetime as dt
import decimal

import msgspec

from .caja import voucher as reference
from .caja.voucher import ParsedVoucher

_S = str | None
_I = int | None


class _Tax(msgspec.Struct):
    type: _S = None
    rate: _S = None
    amount: _S = None


class _Line(msgspec.Struct):
    product: _S = None
    description: _S = None
    quantity: _S = None
    unit_price: _S = None
    discount: _S = None
    base: _S = None
    taxes: list[_Tax] | None = None


class _Totals(msgspec.Struct):
    base: _S = None
    tax: _S = None
    tip: _S = None
    total: _S = None


class _Payment(msgspec.Struct):
    method: _S = None
    amount: _S = None


class _Customer(msgspec.Struct):
    id: _S = None
    id_type: _S = None
    name: _S = None


class _Loyalty(msgspec.Struct):
    customer: _S = None
    earned: _I = None
    redeemed: _I = None


class _Voucher(msgspec.Struct):
    # Required ones too are optional here: a missing field goes to the reference for its message.
    format: _I = None
    caja: _S = None
    code: _S = None
    number: _I = None
    issued_at: _S = None
    status: _S = None
    lines: list[_Line] | None = None
    totals: _Totals | None = None
    kind: _S = None
    prefix: _S = None
    cude: _S = None
    shift: _S = None
    cashier: _S = None
    seller: _S = None
    customer: _Customer | None = None
    payments: list[_Payment] | None = None
    loyalty: _Loyalty | None = None


_DECODER = msgspec.json.Decoder(_Voucher)
_Decimal = decimal.Decimal


class _Defer(Exception):
    """The fast path does not decide this document: the reference does."""


def _dec(text: str | None) -> decimal.Decimal | None:
    if text is None:
        return None
    d = _Decimal(text)  # InvalidOperation goes to the reference, which words it
    if not d.is_finite():  # "NaN", "Infinity": Decimal takes them, the reference refuses them
        raise _Defer()
    return d


def parse(raw: bytes) -> ParsedVoucher:
    """The same ParsedVoucher as `caja.voucher.parse(raw)`, or its Refused."""
    try:
        return _fast(raw)
    except (_Defer, msgspec.MsgspecError, ValueError, decimal.InvalidOperation):
        return reference.parse(raw)


def _fast(raw: bytes) -> ParsedVoucher:
    v = _DECODER.decode(raw)
    totals, lines = v.totals, v.lines
    if (v.format != 1 or v.caja is None or v.code is None or v.number is None or v.issued_at is None
            or v.status not in reference.STATUSES or lines is None or totals is None or totals.total is None):
        raise _Defer()
    issued = dt.datetime.fromisoformat(v.issued_at)
    if issued.tzinfo is None:
        raise _Defer()
    c = v.customer
    if c is None:
        customer_id, id_type, name = reference.CONSUMIDOR_FINAL["id"], None, reference.CONSUMIDOR_FINAL["name"]
    elif c.id is None:
        raise _Defer()  # `{}` means Consumidor Final to the reference, `{"id": null}` is refused
    else:
        customer_id, id_type, name = c.id, c.id_type, c.name
    loy = v.loyalty
    header = {
        "caja": v.caja, "code": v.code, "number": v.number, "kind": v.kind, "prefix": v.prefix, "cude": v.cude,
        "issued_at": v.issued_at, "issued_utc": issued, "status": v.status, "shift": v.shift,
        "cashier": v.cashier, "seller": v.seller,
        "customer_id": customer_id, "customer_id_type": id_type, "customer_name": name,
        "base": _dec(totals.base), "tax": _dec(totals.tax), "tip": _dec(totals.tip), "total": _dec(totals.total),
        "loyalty_customer": loy.customer if loy else None,
        "loyalty_earned": loy.earned if loy else None,
        "loyalty_redeemed": loy.redeemed if loy else None,
    }
    parsed = ParsedVoucher(header=header)
    out_lines, out_taxes = parsed.lines, parsed.taxes
    for i, line in enumerate(lines):
        out_lines.append({
            "line_no": i, "product": line.product, "description": line.description,
            "quantity": _dec(line.quantity), "unit_price": _dec(line.unit_price),
            "discount": _dec(line.discount), "base": _dec(line.base),
        })
        for tax in line.taxes or ():
            if tax.type is None:
                raise _Defer()
            out_taxes.append({"line_no": i, "type": tax.type, "rate": _dec(tax.rate), "amount": _dec(tax.amount)})
    for k, pay in enumerate(v.payments or ()):
        if pay.method is None or pay.amount is None:
            raise _Defer()
        parsed.payments.append({"line_no": k, "method": pay.method, "amount": _dec(pay.amount)})
    return parsed
