"""The main server's voucher decoder: the checks of `caja.voucher.parse`, done by msgspec,
and the voucher as the importer uses it.

`caja.voucher.parse` is the reference: standard library only, so a point of
sale can vendor it, and it words every refusal. Decoding and type-checking in
Python was most of an import's time, though, so the importer decodes with
msgspec (JSON and types checked in C). Whatever the fast path cannot take as it
is — a refusal, or one of the reference's lenient corners (an empty `customer`,
a falsy `taxes`) — goes to the reference, which gives the verdict and the
message. So the two can never disagree on what is refused;
tests/test_voucher_decode.py checks that they agree on what is kept.

Either way the importer gets a Decoded voucher: the header, its rows for the
database, and its amounts as Decimals for the findings, and no dict per line:
building the reference's dicts, then rows from them, was a third of an
import's own work. The rows hold money as text, since handing Decimals to the
database driver costs an adapter call per value; so the fast path takes only
money written the way Decimal writes it back (`"16000.00"`, not `" 16000"`),
and the rows hold exactly what the adapter would have stored. Other spellings
go to the reference, and `Decoded.of` stores them as Decimal writes them.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field

import msgspec

from .caja import voucher as reference
from .caja.voucher import ParsedVoucher

# The columns of the rows, in their order; lines, taxes and payments get their voucher id after these.
HEADER = ("caja", "code", "number", "kind", "prefix", "cude", "issued_at", "issued_utc", "status", "shift",
          "cashier", "seller", "customer_id", "customer_id_type", "customer_name", "base", "tax", "tip", "total",
          "loyalty_customer", "loyalty_earned", "loyalty_redeemed")
LINE = ("line_no", "product", "description", "quantity", "unit_price", "discount", "base")
TAX = ("line_no", "type", "rate", "amount")
PAYMENT = ("line_no", "method", "amount")


@dataclass(slots=True)
class Rows:
    """A voucher as database rows, tuples in the column orders above: money as its canonical
    text, `issued_utc` still a datetime."""

    header: tuple
    lines: list[tuple] = field(default_factory=list)
    taxes: list[tuple] = field(default_factory=list)
    payments: list[tuple] = field(default_factory=list)


@dataclass(slots=True)
class Amounts:
    """The money of a voucher as Decimals, for the findings' arithmetic (None where absent)."""

    lines: list[tuple] = field(default_factory=list)  # (quantity, unit_price, discount, base)
    taxes: list[tuple] = field(default_factory=list)  # (line_no, type, rate, amount)
    payments: list[decimal.Decimal] = field(default_factory=list)


@dataclass(slots=True)
class Decoded:
    """A kept voucher as the importer uses it; `header` is the reference's, Decimals and all."""

    header: dict
    rows: Rows
    amounts: Amounts = field(default_factory=Amounts)

    @classmethod
    def of(cls, parsed: ParsedVoucher) -> Decoded:
        """The reference's result in this shape."""

        def text(v):
            return str(v) if isinstance(v, decimal.Decimal) else v

        h = parsed.header
        rows = Rows(tuple(text(h[c]) for c in HEADER), [tuple(text(x[c]) for c in LINE) for x in parsed.lines],
                    [tuple(text(x[c]) for c in TAX) for x in parsed.taxes],
                    [tuple(text(x[c]) for c in PAYMENT) for x in parsed.payments])
        amounts = Amounts([(x["quantity"], x["unit_price"], x["discount"], x["base"]) for x in parsed.lines],
                          [(x["line_no"], x["type"], x["rate"], x["amount"]) for x in parsed.taxes],
                          [x["amount"] for x in parsed.payments])
        return cls(h, rows, amounts)


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
_INT64, _INT32, _YEARS = reference.INT64, reference.INT32, reference.YEARS
_Decimal = decimal.Decimal


class _Defer(Exception):
    """The fast path does not decide this document: the reference does."""


def _dec(text: str) -> decimal.Decimal:
    d = _Decimal(text)  # InvalidOperation goes to the reference, which words it
    # "NaN", "Infinity": Decimal takes them, the reference refuses them. Another spelling than
    # Decimal's own (" 5", "1e3", "1_0") is the reference's too: Decoded.of stores it as Decimal writes it.
    if not d.is_finite() or str(d) != text or not reference.in_range(d):
        raise _Defer()
    return d


class _Money(dict):
    """Money text → its checked Decimal. A day's vouchers spell the same prices, quantities,
    rates and discounts over and over; a hit is one lookup instead of a conversion and its
    checks. Decimals are immutable, so sharing them is safe; a miss that races another
    thread's only computes the same value twice."""

    LIMIT = 10_000  # a few hundred spellings repeat; the cap holds the cache to about 2 MB

    def __missing__(self, text):
        if text is None:  # another thread may look None up between clear() and its return below
            return None
        d = _dec(text)  # a _Defer leaves nothing behind
        if len(self) >= self.LIMIT:
            self.clear()
            self[None] = None
        self[text] = d
        return d


_MONEY = _Money({None: None})


def parse(raw: bytes) -> Decoded:
    """What `caja.voucher.parse(raw)` keeps, as a Decoded voucher, or its Refused."""
    try:
        return _fast(raw)
    except (_Defer, msgspec.MsgspecError, ValueError, decimal.InvalidOperation, RecursionError):
        return Decoded.of(reference.parse(raw))


def _fast(raw: bytes) -> Decoded:
    if b"\\u0000" in raw:
        raise _Defer()  # a NUL in a string: the reference refuses it, naming the field
    v = _DECODER.decode(raw)
    totals, lines = v.totals, v.lines
    if (v.format != 1 or v.caja is None or v.code is None or v.number is None or v.issued_at is None
            or v.status not in reference.STATUSES or lines is None or totals is None or totals.total is None):
        raise _Defer()
    issued = dt.datetime.fromisoformat(v.issued_at)
    if issued.tzinfo is None or not _YEARS[0] <= issued.year <= _YEARS[1] or not _INT64[0] <= v.number <= _INT64[1]:
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
    if (earned is not None and not _INT32[0] <= earned <= _INT32[1]) or (redeemed is not None and not _INT32[0] <= redeemed <= _INT32[1]):
        raise _Defer()
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
    out = Decoded(header, rows)
    line_rows, tax_rows, line_amounts, tax_amounts = rows.lines, rows.taxes, out.amounts.lines, out.amounts.taxes
    for i, line in enumerate(lines):
        q, u, d, b = line.quantity, line.unit_price, line.discount, line.base
        line_rows.append((i, line.product, line.description, q, u, d, b))
        line_amounts.append((money[q], money[u], money[d], money[b]))
        for t in line.taxes or ():
            kind, rate, amount = t.type, t.rate, t.amount
            if kind is None:
                raise _Defer()
            tax_rows.append((i, kind, rate, amount))
            tax_amounts.append((i, kind, money[rate], money[amount]))
    for k, pay in enumerate(v.payments or ()):
        method, amount = pay.method, pay.amount
        if method is None or amount is None:
            raise _Defer()
        rows.payments.append((k, method, amount))
        out.amounts.payments.append(money[amount])
    return out
