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

The fast path also hands the importer its insert rows, built from the strings
as they came: handing Decimals to the database driver costs an adapter call
per value, which was a fifth of an import's inserts. So it takes only money
written the way Decimal writes it back (`"16000.00"`, not `" 16000"`), and
the rows hold exactly what the adapter would have stored; other spellings go
to the reference, whose rows `rows_of` builds from the parsed values.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field

import msgspec

from .caja import voucher as reference
from .caja.voucher import ParsedVoucher

# The columns of the importer's rows, in their order; lines, taxes and payments get their voucher id after these.
HEADER = ("caja", "code", "number", "kind", "prefix", "cude", "issued_at", "issued_utc", "status", "shift",
          "cashier", "seller", "customer_id", "customer_id_type", "customer_name", "base", "tax", "tip", "total",
          "loyalty_customer", "loyalty_earned", "loyalty_redeemed")
LINE = ("line_no", "product", "description", "quantity", "unit_price", "discount", "base")
TAX = ("line_no", "type", "rate", "amount")
PAYMENT = ("line_no", "method", "amount")


@dataclass
class Rows:
    """A voucher as database rows: money as its canonical text, `issued_utc` still a datetime.
    Tuples, not lists: holding only strings and numbers, the garbage collector stops tracking
    them, where a batch's worth of lists made every collection walk them all (a fifth of the decoding)."""

    header: tuple
    lines: list[tuple] = field(default_factory=list)
    taxes: list[tuple] = field(default_factory=list)
    payments: list[tuple] = field(default_factory=list)


@dataclass
class Decoded(ParsedVoucher):
    """What the fast path gives: the ParsedVoucher, and its rows, built alongside it."""

    rows: Rows | None = field(default=None, compare=False)

_S = str | None
_I = int | None


class _Tax(msgspec.Struct, gc=False):
    type: _S = None
    rate: _S = None
    amount: _S = None


class _Line(msgspec.Struct, gc=False):
    product: _S = None
    description: _S = None
    quantity: _S = None
    unit_price: _S = None
    discount: _S = None
    base: _S = None
    taxes: list[_Tax] | None = None


class _Totals(msgspec.Struct, gc=False):
    base: _S = None
    tax: _S = None
    tip: _S = None
    total: _S = None


class _Payment(msgspec.Struct, gc=False):
    method: _S = None
    amount: _S = None


class _Customer(msgspec.Struct, gc=False):
    id: _S = None
    id_type: _S = None
    name: _S = None


class _Loyalty(msgspec.Struct, gc=False):
    customer: _S = None
    earned: _I = None
    redeemed: _I = None


class _Voucher(msgspec.Struct, gc=False):
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
    # "NaN", "Infinity": Decimal takes them, the reference refuses them. A spelling Decimal
    # writes otherwise (" 5", "1e3", "1_0") is kept, but stored as Decimal writes it: rows_of does that.
    if not d.is_finite() or str(d) != text:
        raise _Defer()
    return d


class _Money(dict):
    """Money text → its checked Decimal. A day's vouchers spell the same prices, quantities,
    rates and discounts over and over; a hit is one lookup instead of a conversion and its
    checks. Decimals are immutable, so sharing them is safe; a miss that races another
    thread's only computes the same value twice."""

    LIMIT = 50_000

    def __missing__(self, text):
        d = _dec(text)  # _Defer leaves nothing behind
        if len(self) >= self.LIMIT:
            self.clear()
            self[None] = None
        self[text] = d
        return d


_MONEY = _Money({None: None})


def rows_of(parsed: ParsedVoucher) -> Rows:
    """The insert rows of a voucher: the fast path's own, or built from the parsed values."""
    rows = getattr(parsed, "rows", None)
    if rows is not None:
        return rows

    def text(v):
        return str(v) if isinstance(v, decimal.Decimal) else v

    h = parsed.header
    return Rows(tuple(text(h[c]) for c in HEADER), [tuple(text(x[c]) for c in LINE) for x in parsed.lines],
                [tuple(text(x[c]) for c in TAX) for x in parsed.taxes], [tuple(text(x[c]) for c in PAYMENT) for x in parsed.payments])


def parse(raw: bytes) -> ParsedVoucher:
    """The same ParsedVoucher as `caja.voucher.parse(raw)`, or its Refused."""
    try:
        return _fast(raw)
    except (_Defer, msgspec.MsgspecError, ValueError, decimal.InvalidOperation):
        return reference.parse(raw)


def _fast(raw: bytes) -> Decoded:
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
    loy, money = v.loyalty, _MONEY
    l_customer, earned, redeemed = (loy.customer, loy.earned, loy.redeemed) if loy else (None, None, None)
    base, tax, tip, total = totals.base, totals.tax, totals.tip, totals.total
    header = {
        "caja": v.caja, "code": v.code, "number": v.number, "kind": v.kind, "prefix": v.prefix, "cude": v.cude,
        "issued_at": v.issued_at, "issued_utc": issued, "status": v.status, "shift": v.shift,
        "cashier": v.cashier, "seller": v.seller,
        "customer_id": customer_id, "customer_id_type": id_type, "customer_name": name,
        "base": money[base], "tax": money[tax], "tip": money[tip], "total": money[total],
        "loyalty_customer": l_customer, "loyalty_earned": earned, "loyalty_redeemed": redeemed,
    }
    # The same values in HEADER's order, money as the (canonical) text it came as.
    rows = Rows((v.caja, v.code, v.number, v.kind, v.prefix, v.cude, v.issued_at, issued, v.status, v.shift,
                 v.cashier, v.seller, customer_id, id_type, name, base, tax, tip, total, l_customer, earned, redeemed))
    parsed = Decoded(header=header, rows=rows)
    out_lines, out_taxes, line_rows, tax_rows = parsed.lines, parsed.taxes, rows.lines, rows.taxes
    for i, line in enumerate(lines):
        product, description, q, u, d, b = line.product, line.description, line.quantity, line.unit_price, line.discount, line.base
        out_lines.append({
            "line_no": i, "product": product, "description": description,
            "quantity": money[q], "unit_price": money[u], "discount": money[d], "base": money[b],
        })
        line_rows.append((i, product, description, q, u, d, b))
        for t in line.taxes or ():
            kind, rate, amount = t.type, t.rate, t.amount
            if kind is None:
                raise _Defer()
            out_taxes.append({"line_no": i, "type": kind, "rate": money[rate], "amount": money[amount]})
            tax_rows.append((i, kind, rate, amount))
    for k, pay in enumerate(v.payments or ()):
        method, amount = pay.method, pay.amount
        if method is None or amount is None:
            raise _Defer()
        parsed.payments.append({"line_no": k, "method": method, "amount": money[amount]})
        rows.payments.append((k, method, amount))
    return parsed
