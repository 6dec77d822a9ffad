"""The caja-side writer: writes a caja's data folder exactly as SPEC §1 says.

Meant for point-of-sale integrators and for building test data. Standard
library only, so a POS can vendor this file with layout.py and voucher.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

from . import layout
from .voucher import Refused, parse

CENT = Decimal("0.01")
DEFAULT_TIMEZONE = "America/Bogota"


class CajaWriter:
    """Writes one caja root. Every whole file goes through temp + rename."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._zone: dt.tzinfo | None = None

    def write_caja_json(
        self, caja: str, codes: list[str], company: str, timezone: str = DEFAULT_TIMEZONE
    ) -> Path:
        _require_text(caja, "caja")
        if not codes or len(set(codes)) != len(codes):
            raise ValueError("codes: must be a non-empty list without repeats")
        for code in codes:
            _check_code(code, "codes")
        doc = {"format": layout.FORMAT, "caja": caja, "codes": list(codes),
               "company": company, "timezone": timezone}
        self._zone = None
        return self._write_json(self.root / layout.CAJA_JSON, doc)

    def write_voucher(self, doc: dict, day: dt.date | None = None, pad: int = 0) -> Path:
        """Without `day`, the voucher goes in the folder of the day it was issued on the caja's calendar
        (caja.json's `timezone`), whatever offset its `issued_at` is written in."""
        issued = validate_voucher(doc)
        folder_day = _as_day(day) if day is not None else issued.astimezone(self.zone()).date()
        name = layout.voucher_name(doc["code"], doc["number"], pad)
        return self._write_json(self.root / layout.day_folder(folder_day) / name, doc)

    def zone(self) -> dt.tzinfo:
        """The caja's time zone: caja.json's `timezone`, else America/Bogota. Where the OS has no time zone
        database (Windows without the `tzdata` package) a name cannot be looked up: then Colombia's fixed
        UTC-05:00 for the default, and for another name the error says what to install."""
        if self._zone is None:
            try:
                name = json.loads((self.root / layout.CAJA_JSON).read_text(encoding="utf-8")).get("timezone") or DEFAULT_TIMEZONE
            except (OSError, ValueError, AttributeError):
                name = DEFAULT_TIMEZONE
            try:
                self._zone = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                if name != DEFAULT_TIMEZONE:
                    raise ValueError(f"timezone {name!r} in {self.root / layout.CAJA_JSON} is not a time zone known here: "
                                     "write a name like America/Bogota (on Windows, `pip install tzdata` first), "
                                     "or give write_voucher the day") from None
                self._zone = dt.timezone(dt.timedelta(hours=-5), "COT")  # Colombia keeps no summer time
        return self._zone

    def append_loyalty(self, day: dt.date | str, entries: list[dict]) -> Path:
        """Appends entries to the day's ledger; never rewrites a committed line."""
        for i, entry in enumerate(entries):
            _check_ledger_entry(entry, f"entries[{i}]")
        path = self.root / layout.LOYALTY / f"{_as_day(day).isoformat()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(_dumps(e, indent=None).encode("utf-8") + b"\n" for e in entries)
        with open(path, "ab") as f:
            _drop_torn_tail(f)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return path

    def write_rule(self, rule: dict) -> Path:
        rule_id = rule.get("id")
        _require_text(rule_id, "id")
        if "/" in rule_id or "\\" in rule_id or ".." in rule_id or rule_id.startswith("."):
            raise ValueError(f"id: {rule_id!r} must not hold '/', '\\', '..' or start with '.'")
        return self._write_json(self.root / layout.RULES / f"{rule_id}.json", rule)

    def write_closing(self, day: dt.date | str, closing: dict) -> Path:
        day = _as_day(day)
        if "date" in closing and str(closing["date"]) != day.isoformat():
            raise ValueError(f"date: closing is for {closing['date']}, folder is {day}")
        return self._write_json(self.root / layout.day_folder(day) / layout.CLOSING, closing)

    def _write_json(self, path: Path, doc: Any) -> Path:
        _refuse_floats(doc, "")
        atomic_write(path, _dumps(doc, indent=2).encode("utf-8") + b"\n")
        return path


def atomic_write(path: Path, data: bytes) -> None:
    """Maildir discipline: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / layout.temp_name(path.name)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: str | os.PathLike) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open a folder.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_torn_tail(f) -> None:
    """Cuts a last line with no newline, left by a killed append.

    Readers never count such a line (SPEC §1), so dropping it loses nothing
    committed; appending after it would glue two entries into one bad line.
    """
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    with open(f.name, "rb") as r:
        r.seek(max(0, size - 65536))
        tail = r.read()
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    if cut < 0 and size > len(tail):
        raise ValueError(f"{f.name}: last line is over 64 KiB and unterminated")
    f.truncate(size - len(tail) + cut + 1)
    f.seek(0, os.SEEK_END)


# --- validation ------------------------------------------------------------

def validate_voucher(doc: dict) -> dt.datetime:
    """Raises ValueError naming the first bad field; returns issued_at.

    The check is the main server's own (`caja.voucher.parse`), so what the
    writer accepts is exactly what an import accepts; floats anywhere and codes
    that cannot be a file name are refused on top of it.
    """
    if not isinstance(doc, dict):
        raise ValueError("voucher: must be a JSON object")
    _refuse_floats(doc, "")
    try:
        parsed = parse(_dumps(doc, None).encode("utf-8"))
    except Refused as exc:
        raise ValueError(str(exc)) from None
    _check_code(doc["code"], "code")
    if doc["number"] < 0:
        raise ValueError("number: must be a non-negative integer")
    return parsed.header["issued_utc"]


def _check_ledger_entry(entry: dict, where: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be a JSON object")
    for field in ("seq", "customer", "kind", "points"):
        if field not in entry:
            raise ValueError(f"{where}.{field}: required field missing")
    for field in ("seq", "points"):
        if not isinstance(entry[field], int) or isinstance(entry[field], bool):
            raise ValueError(f"{where}.{field}: must be an integer")
    if "at" in entry:
        _aware(entry["at"], f"{where}.at")
    _refuse_floats(entry, where)


def _refuse_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"{where or 'value'}: float {value!r}; money and rates are decimal strings")
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_floats(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _refuse_floats(v, f"{where}[{i}]")
    elif isinstance(value, dt.datetime) and value.tzinfo is None:
        raise ValueError(f"{where}: naive datetime; timestamps need an offset")


def _aware(value: Any, where: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}: not an ISO 8601 timestamp: {value!r}") from None
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{where}: must be an ISO 8601 timestamp")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{where}: naive timestamp; an offset is required")
    return value


def _check_code(code: Any, where: str) -> None:
    # The code is part of a file name: it must round-trip through layout.
    if not isinstance(code, str) or layout.parse_voucher_name(f"{code}-1.json") != (code, 1):
        raise ValueError(f"{where}: {code!r} is not a valid voucher code (letters, digits, _)")


def _require_text(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: must be a non-empty string")


def _as_day(day: dt.date | str) -> dt.date:
    if isinstance(day, dt.datetime):
        raise ValueError("day: give a date, not a datetime")
    if isinstance(day, dt.date):
        return day
    parsed = layout.parse_day(str(day))
    if parsed is None:
        raise ValueError(f"day: {day!r} is not YYYY-MM-DD")
    return parsed


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} must be a decimal string, not a float")
    try:
        result = Decimal(value) if isinstance(value, (str, int, Decimal)) else None
    except InvalidOperation:
        result = None
    if result is None or not result.is_finite():
        raise ValueError(f"{where}: {value!r} is not a decimal")
    return result


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return _aware(value, "datetime").isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(doc: Any, indent: int | None) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=indent, default=_default)


# --- building documents ----------------------------------------------------

def money(value: Any, where: str = "amount") -> Decimal:
    """A decimal rounded to cents, half up, as DIAN rounds."""
    return _decimal(value, where).quantize(CENT, rounding=ROUND_HALF_UP)


def _m(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _build_line(line: dict, where: str) -> tuple[dict, Decimal, Decimal]:
    quantity = _decimal(line["quantity"], f"{where}.quantity")
    unit_price = money(line["unit_price"], f"{where}.unit_price")
    discount = money(line.get("discount", "0"), f"{where}.discount")
    base = money(quantity * unit_price - discount, f"{where}.base")
    taxes, tax_sum = [], Decimal("0")
    for j, tax in enumerate(line.get("taxes", [])):
        rate = _decimal(tax["rate"], f"{where}.taxes[{j}].rate")
        amount = money(base * rate / 100)
        tax_sum += amount
        taxes.append({"type": tax["type"], "rate": str(tax["rate"]), "amount": _m(amount)})
    built = {"product": line["product"], "description": line["description"],
             "quantity": str(line["quantity"]), "unit_price": _m(unit_price),
             "discount": _m(discount), "base": _m(base), "taxes": taxes}
    return built, base, tax_sum


def _build_payments(payments: Iterable | None, total: Decimal) -> list[dict]:
    if payments is None:
        return [{"method": "EF", "amount": _m(total)}]
    out = []
    for i, p in enumerate(payments):
        method, amount = (p["method"], p["amount"]) if isinstance(p, dict) else p
        out.append({"method": method, "amount": _m(money(amount, f"payments[{i}].amount"))})
    return out


def make_voucher(
    caja: str, code: str, number: int, issued_at: dt.datetime | str, lines: list[dict],
    payments: list | None, *, kind: str = "pos_invoice", prefix: str | None = None,
    status: str = "active", customer: dict | None = None, seller: str | None = None,
    cashier: str | None = None, shift: str | None = None, tip: Decimal | str = Decimal("0"),
    loyalty: dict | None = None, references: list[dict] | None = None, cude: str | None = None,
) -> dict:
    """A SPEC voucher with line bases, taxes and totals computed (2 places, half up).

    Optional fields left as None are omitted, so the file carries only what the
    POS knows; a missing customer means "Consumidor Final" to readers.
    """
    built, base_sum, tax_sum = [], Decimal("0"), Decimal("0")
    for i, line in enumerate(lines):
        row, base, tax = _build_line(line, f"lines[{i}]")
        built.append(row)
        base_sum += base
        tax_sum += tax
    tip_d = money(tip, "tip")
    total = base_sum + tax_sum + tip_d
    issued = _aware(issued_at, "issued_at").isoformat()
    doc: dict[str, Any] = {"format": layout.FORMAT, "caja": caja, "code": code,
                           "number": number, "kind": kind}
    optional_head = {"prefix": prefix, "cude": cude}
    doc.update({k: v for k, v in optional_head.items() if v is not None})
    doc.update({"issued_at": issued, "status": status})
    optional_people = {"shift": shift, "cashier": cashier, "seller": seller, "customer": customer}
    doc.update({k: v for k, v in optional_people.items() if v is not None})
    doc["lines"] = built
    doc["totals"] = {"base": _m(base_sum), "tax": _m(tax_sum), "tip": _m(tip_d),
                     "total": _m(total)}
    doc["payments"] = _build_payments(payments, total)
    if loyalty is not None:
        doc["loyalty"] = loyalty
    if references is not None:
        doc["references"] = references
    validate_voucher(doc)
    return doc


def make_closing(caja: str, day: dt.date | str, vouchers: list[dict]) -> dict:
    """The caja's day summary (informe Z) for the given vouchers.

    Per code: first/last number and count over every voucher, voided ones
    included (the number was used); `voided` counts those; `total` sums only
    the active ones, since a voided voucher moved no money.
    """
    codes: dict[str, dict] = {}
    for v in vouchers:
        c = codes.setdefault(v["code"], {"numbers": [], "voided": 0, "total": Decimal("0")})
        c["numbers"].append(v["number"])
        if v["status"] == "voided":
            c["voided"] += 1
        else:
            c["total"] += _decimal(v["totals"]["total"], "totals.total")
    summary = {
        code: {"first": min(c["numbers"]), "last": max(c["numbers"]),
               "count": len(c["numbers"]), "voided": c["voided"], "total": _m(c["total"])}
        for code, c in sorted(codes.items())
    }
    return {"format": layout.FORMAT, "caja": caja, "date": _as_day(day).isoformat(),
            "codes": summary}
