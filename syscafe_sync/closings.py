"""The cajas' day summaries (closing.json, the informe Z): kept as read at import, checked when used.

Kept whole and unjudged, so that a closing the POS rewrites later is simply
read again, and `audit` can say exactly what is wrong with one it cannot use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .db import write_transaction
from .db.models import DayClosing, utcnow


@dataclass(frozen=True)
class CodeSummary:
    first: int
    last: int
    count: int
    voided: int
    total: Decimal


def keep(caja: str, day: dt.date, raw: bytes) -> None:
    sha = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", errors="replace")
    with write_transaction():
        DayClosing.insert(caja=caja, day=day.isoformat(), document=text, sha256=sha, read_at=utcnow()).on_conflict(
            conflict_target=[DayClosing.caja, DayClosing.day],
            update={DayClosing.document: text, DayClosing.sha256: sha, DayClosing.read_at: utcnow()},
        ).execute()


class Unusable(ValueError):
    """The closing.json cannot be paired with anything; the message says why."""


def summaries(caja: str, day: dt.date) -> dict[str, CodeSummary] | None:
    """{code: what the caja says it issued}; None when the caja wrote no closing.json that day."""
    row = DayClosing.get_or_none((DayClosing.caja == caja) & (DayClosing.day == day.isoformat()))
    if row is None:
        return None
    try:
        # parse_float: a total the POS wrote as a bare number keeps exactly the digits it wrote
        doc = json.loads(row.document, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise Unusable(f"closing.json is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError:  # past what int() converts
        raise Unusable("closing.json cannot be read (it holds a number thousands of digits long)") from None
    except RecursionError:
        raise Unusable("closing.json cannot be read (its JSON is nested thousands of levels deep)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("codes"), dict):
        raise Unusable("closing.json has no \"codes\" object")
    if doc.get("caja") not in (None, caja) or doc.get("date") not in (None, day.isoformat()):
        raise Unusable(f"closing.json is for caja {doc.get('caja')!r}, date {doc.get('date')!r}, not {caja} {day}")
    out = {}
    for code, s in doc["codes"].items():
        if not isinstance(s, dict) or not {"first", "last", "count", "total"} <= s.keys():
            raise Unusable(f"closing.json codes.{code} needs first, last, count and total")
        out[code] = CodeSummary(_whole(s["first"], code, "first"), _whole(s["last"], code, "last"),
                                _whole(s["count"], code, "count"), _whole(s.get("voided", 0), code, "voided"),
                                _money(s["total"], code))
    return out


def _whole(value, code: str, key: str) -> int:
    # int(1.9) would quietly audit against number 1, and int(True) against 1: neither is what the POS meant.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 19:
        return int(value)
    raise Unusable(f"closing.json codes.{code}.{key} is {_shown(value)}, not a whole number; the POS must write it as e.g. 1547")


def _money(value, code: str) -> Decimal:
    try:
        total = Decimal(value) if isinstance(value, (str, Decimal, int)) and not isinstance(value, bool) else None
    except InvalidOperation:
        total = None
    # NaN, sNaN and Infinity parse, but compare to no sum (sNaN even raises when compared)
    if total is None or not total.is_finite():
        raise Unusable(f"closing.json codes.{code}.total is {_shown(value)}, not an amount; "
                       f"the POS must write it as a decimal string with a point, e.g. \"2450000.00\"")
    return total


def _shown(value) -> str:
    text = str(value) if isinstance(value, Decimal) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:40] + "…"
