"""Reading one voucher document (SPEC §1) into checked values, or the reason it is refused."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass, field

STATUSES = ("active", "voided")
CONSUMIDOR_FINAL = {"id": "222222222222", "name": "Consumidor Final"}

# Bounds a database column holds (BIGINT for the number, INTEGER for the points), so that one odd
# voucher is refused with its reason instead of failing the batch it is written in.
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
# Amounts: below 10^18 and to at most 12 decimals, far past any sale; "1E+999999" would make the
# findings' arithmetic overflow.
MAX_ADJUSTED = 17
MIN_EXPONENT = -12
# Years a timestamp may have: any offset then converts to UTC and to the company's zone.
YEARS = (2, 9998)


class Refused(Exception):
    """The voucher cannot be imported; the message says why, naming the field."""


@dataclass
class ParsedVoucher:
    header: dict
    lines: list[dict] = field(default_factory=list)
    taxes: list[dict] = field(default_factory=list)
    payments: list[dict] = field(default_factory=list)


def _dec(value, where: str, required: bool = False) -> decimal.Decimal | None:
    if value is None:
        if required:
            raise Refused(f"{where} is missing")
        return None
    if not isinstance(value, str):
        raise Refused(f"{where} must be a decimal string like \"16000.00\", not {json.dumps(value)}")
    try:
        d = decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise Refused(f"{where} = {json.dumps(value)} is not a decimal number") from None
    if not d.is_finite():
        raise Refused(f"{where} = {json.dumps(value)} is not a finite decimal number")
    if not in_range(d):
        raise Refused(f"{where} = {json.dumps(value)} is out of range for an amount (below 10^18, at most 12 decimals)")
    return d


def in_range(d: decimal.Decimal) -> bool:
    return (d.is_zero() or d.adjusted() <= MAX_ADJUSTED) and d.as_tuple().exponent >= MIN_EXPONENT


def _str(obj: dict, key: str, where: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise Refused(f"{where}{key} is missing")
        return None
    if not isinstance(value, str):
        raise Refused(f"{where}{key} must be a string, not {json.dumps(value)}")
    problem = text_problem(value)
    if problem:
        raise Refused(f"{where}{key} {problem}; the point of sale must write plain text there")
    return value


def text_problem(value: str) -> str | None:
    """Why a string is no text a database column holds, or None: a NUL (PostgreSQL's text holds none,
    and no person types one), or JSON's \\ud83d on its own, half of a character cut in two."""
    if "\0" in value:
        return "holds a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds half of a character (\\u{ord(value[exc.start]):04x} without its pair)"
    return None


def _int(obj: dict, key: str, where: str, required: bool = False, bounds: tuple[int, int] = INT64) -> int | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise Refused(f"{where}{key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"{where}{key} must be a whole number, not {json.dumps(value)}")
    if not bounds[0] <= value <= bounds[1]:
        raise Refused(f"{where}{key} = {value} is out of range (from {bounds[0]} to {bounds[1]})")
    return value


def _obj(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise Refused(f"{where} must be a JSON object")
    return value


def _list(value, where: str) -> list:
    if not isinstance(value, list):
        raise Refused(f"{where} must be a JSON array")
    return value


def parse_timestamp(text: str, where: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Refused(f"{where} = {json.dumps(text)} is not an ISO 8601 timestamp") from None
    if t.tzinfo is None:
        raise Refused(f"{where} = {json.dumps(text)} has no UTC offset (write it like 2026-11-22T14:42:10-05:00)")
    if not YEARS[0] <= t.year <= YEARS[1]:
        raise Refused(f"{where} = {json.dumps(text)} is not a plausible date (year {t.year})")
    return t


def parse(raw: bytes) -> ParsedVoucher:
    """Checks the document against SPEC §1; raises Refused with the first problem found."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Refused(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise Refused(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError:  # past what int() converts
        raise Refused("not a voucher: it holds a number thousands of digits long") from None
    except RecursionError:
        raise Refused("not a voucher: its JSON is nested thousands of levels deep") from None
    doc = _obj(doc, "the document")
    fmt = _int(doc, "format", "", required=True)
    if fmt != 1:
        raise Refused(f"format {fmt} is not supported (this syscafe-sync reads format 1)")
    caja = _str(doc, "caja", "", required=True)
    code = _str(doc, "code", "", required=True)
    number = _int(doc, "number", "", required=True)
    issued_text = _str(doc, "issued_at", "", required=True)
    issued = parse_timestamp(issued_text, "issued_at")
    status = _str(doc, "status", "", required=True)
    if status not in STATUSES:
        raise Refused(f"status = {json.dumps(status)} must be \"active\" or \"voided\"")
    if "lines" not in doc:
        raise Refused("lines is missing")
    if "totals" not in doc:
        raise Refused("totals is missing")
    totals = _obj(doc["totals"], "totals")
    customer = _obj(doc.get("customer") or CONSUMIDOR_FINAL, "customer")
    loyalty = _obj(doc["loyalty"], "loyalty") if doc.get("loyalty") is not None else {}
    header = {
        "caja": caja,
        "code": code,
        "number": number,
        "kind": _str(doc, "kind", ""),
        "prefix": _str(doc, "prefix", ""),
        "cude": _str(doc, "cude", ""),
        "issued_at": issued_text,
        "issued_utc": issued,
        "status": status,
        "shift": _str(doc, "shift", ""),
        "cashier": _str(doc, "cashier", ""),
        "seller": _str(doc, "seller", ""),
        "customer_id": _str(customer, "id", "customer.", required=True),
        "customer_id_type": _str(customer, "id_type", "customer."),
        "customer_name": _str(customer, "name", "customer."),
        "base": _dec(totals.get("base"), "totals.base"),
        "tax": _dec(totals.get("tax"), "totals.tax"),
        "tip": _dec(totals.get("tip"), "totals.tip"),
        "total": _dec(totals.get("total"), "totals.total", required=True),
        "loyalty_customer": _str(loyalty, "customer", "loyalty."),
        "loyalty_earned": _int(loyalty, "earned", "loyalty.", bounds=INT32),
        "loyalty_redeemed": _int(loyalty, "redeemed", "loyalty.", bounds=INT32),
    }
    parsed = ParsedVoucher(header=header)
    for i, line in enumerate(_list(doc["lines"], "lines")):
        w = f"lines[{i}]."
        line = _obj(line, f"lines[{i}]")
        parsed.lines.append(
            {
                "line_no": i,
                "product": _str(line, "product", w),
                "description": _str(line, "description", w),
                "quantity": _dec(line.get("quantity"), w + "quantity"),
                "unit_price": _dec(line.get("unit_price"), w + "unit_price"),
                "discount": _dec(line.get("discount"), w + "discount"),
                "base": _dec(line.get("base"), w + "base"),
            }
        )
        for j, tax in enumerate(_list(line.get("taxes") or [], w + "taxes")):
            tw = f"{w}taxes[{j}]."
            tax = _obj(tax, f"{w}taxes[{j}]")
            parsed.taxes.append(
                {
                    "line_no": i,
                    "type": _str(tax, "type", tw, required=True),
                    "rate": _dec(tax.get("rate"), tw + "rate"),
                    "amount": _dec(tax.get("amount"), tw + "amount"),
                }
            )
    for k, pay in enumerate(_list(doc.get("payments") or [], "payments")):
        pw = f"payments[{k}]."
        pay = _obj(pay, f"payments[{k}]")
        parsed.payments.append(
            {
                "line_no": k,
                "method": _str(pay, "method", pw, required=True),
                "amount": _dec(pay.get("amount"), pw + "amount", required=True),
            }
        )
    return parsed
