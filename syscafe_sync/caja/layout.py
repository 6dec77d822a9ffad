"""Names in a caja folder, format 1 (SPEC §1), shared by the writer and the reader."""

from __future__ import annotations

import datetime as dt
import re

FORMAT = 1
CAJA_JSON = "caja.json"
MOVEMENTS = "movements"
LOYALTY = "loyalty"
RULES = "rules"
CATALOGS = "catalogs"
CLOSING = "closing.json"

# A code may hold letters, digits and underscores; the number may be zero-padded.
_VOUCHER_NAME = re.compile(r"^(?P<code>[A-Za-z0-9_]+)-(?P<number>[0-9]{1,18})\.json$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def is_ignored(name: str) -> bool:
    """Maildir discipline: temporary and hidden names are never read."""
    return name.startswith(".") or name.endswith(".tmp")


def temp_name(final_name: str) -> str:
    """The temporary name a writer uses before renaming over `final_name`."""
    return f".{final_name}.tmp"


def voucher_name(code: str, number: int, pad: int = 0) -> str:
    return f"{code}-{number:0{pad}d}.json"


def parse_voucher_name(name: str) -> tuple[str, int] | None:
    """(code, number) for a voucher file name, or None when it is not one."""
    m = _VOUCHER_NAME.match(name)
    if not m:
        return None
    return m.group("code"), int(m.group("number"))


def day_folder(day: dt.date) -> str:
    return f"{MOVEMENTS}/{day.isoformat()}"


def parse_day(text: str) -> dt.date | None:
    if not _DAY.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None
