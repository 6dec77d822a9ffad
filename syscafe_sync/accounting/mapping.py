"""The accounting mapping: which account each payment method, tax and product group posts to,
and each caja's cost centre. Configured once in a file, loaded into the database whole.

A TOML file (the sections below) or a CSV file with the header `kind,key,value`
(kinds: payment_method, tax, group, caja, account). `docs/accounting.md` has both.
"""

from __future__ import annotations

import csv
import decimal
import io
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import catalogs, synclog
from ..db import write_transaction
from ..db.models import AccountMap, utcnow
from ..errors import UsageError

# TOML section → the kind stored.
SECTIONS = {"payment_methods": "payment_method", "taxes": "tax", "groups": "group", "cajas": "caja", "accounts": "account"}
KINDS = tuple(SECTIONS.values())
# Accounts used only when a voucher needs them: a sale not fully paid, a tip.
NAMED_ACCOUNTS = ("receivable", "tips")


def tax_key(tax_type: str, rate: decimal.Decimal | str | None) -> str:
    """"IVA 19": the rate without trailing zeros, so "19", "19.0" and "19.00" are one tax."""
    if rate is None:
        return tax_type
    d = decimal.Decimal(str(rate))
    return f"{tax_type} {d.normalize():f}" if d != 0 else f"{tax_type} 0"


@dataclass
class Mapping:
    payment_method: dict[str, str] = field(default_factory=dict)
    tax: dict[str, str] = field(default_factory=dict)
    group: dict[str, str] = field(default_factory=dict)
    caja: dict[str, str] = field(default_factory=dict)
    account: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows) -> "Mapping":
        m = cls()
        for kind, key, value in rows:
            getattr(m, kind)[key] = value
        return m

    def rows(self) -> list[tuple[str, str, str]]:
        return [(kind, key, value) for kind in KINDS for key, value in sorted(getattr(self, kind).items())]

    @property
    def empty(self) -> bool:
        return not self.rows()


def current() -> Mapping:
    return Mapping.from_rows(AccountMap.select(AccountMap.kind, AccountMap.key, AccountMap.value).tuples())


def product_groups() -> dict[str, str | None]:
    """product code → its group, from the products catalog on the main server."""
    out = {}
    for code, data in catalogs.live("products").items():
        group = json.loads(data).get("group") if data else None
        out[code] = group if isinstance(group, str) and group else None
    return out


# --- reading a file -----------------------------------------------------------------------------


def _bad(path: Path, what: str) -> UsageError:
    return UsageError(f"{path}: {what}; fix the file and load it again (nothing was loaded).")


def _check_row(path: Path, where: str, kind: str, key, value) -> tuple[str, str, str]:
    if not isinstance(key, str) or not key.strip():
        raise _bad(path, f"{where}: the key must be a non-empty text")
    if not isinstance(value, str) or not value.strip():
        raise _bad(path, f"{where}: {key} = {value!r} must be a non-empty text (an account or a cost centre, in quotes)")
    key = key.strip()
    if kind == "account" and key not in NAMED_ACCOUNTS:
        raise _bad(path, f"{where}: account {key!r} is not one this program uses; the accounts are {', '.join(NAMED_ACCOUNTS)}")
    if kind == "tax":
        parts = key.split()
        try:
            if len(parts) != 2:
                raise decimal.InvalidOperation
            key = tax_key(parts[0], decimal.Decimal(parts[1]))
        except decimal.InvalidOperation:
            raise _bad(path, f"{where}: tax {key!r} must be written TYPE RATE, e.g. \"IVA 19\" or \"INC 8\"") from None
    return kind, key, value.strip()


def _read_toml(path: Path, text: str) -> list[tuple[str, str, str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(path, f"not valid TOML ({exc})") from None
    rows = []
    for section, table in data.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise _bad(path, f"unknown section [{section}]; the sections are {', '.join(SECTIONS)}")
        rows += [_check_row(path, f"[{section}]", SECTIONS[section], k, v) for k, v in table.items()]
    return rows


def _read_csv(path: Path, text: str) -> list[tuple[str, str, str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != ["kind", "key", "value"]:
        raise _bad(path, "a CSV mapping starts with the header kind,key,value")
    rows = []
    for i, row in enumerate(reader, start=2):
        kind = (row.get("kind") or "").strip()
        if kind not in KINDS:
            raise _bad(path, f"line {i}: kind {kind!r} is not one of {', '.join(KINDS)}")
        rows.append(_check_row(path, f"line {i}", kind, row.get("key"), row.get("value")))
    return rows


def read(path: Path) -> list[tuple[str, str, str]]:
    """The file's rows, checked whole: one bad row refuses the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist; give the path of a TOML or CSV mapping file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} cannot be read as UTF-8 text ({exc}); nothing was loaded.") from None
    rows = _read_csv(path, text) if path.suffix.lower() == ".csv" else _read_toml(path, text)
    seen: set[tuple[str, str]] = set()
    for kind, key, _ in rows:
        if (kind, key) in seen:
            raise _bad(path, f"{kind} {key} is mapped twice")
        seen.add((kind, key))
    if not rows:
        raise _bad(path, "it maps nothing")
    return rows


def load(path: Path) -> dict:
    """Replaces the whole mapping with the file's, in one transaction; returns what changed."""
    rows = read(Path(path))
    new = {(k, key): v for k, key, v in rows}
    with write_transaction():
        old = {(k, key): v for k, key, v in AccountMap.select(AccountMap.kind, AccountMap.key, AccountMap.value).tuples()}
        AccountMap.delete().execute()
        now = utcnow()
        AccountMap.insert_many([{"kind": k, "key": key, "value": v, "loaded_at": now} for (k, key), v in new.items()]).execute()
    result = {
        "file": str(path),
        "rows": len(new),
        "added": sorted(f"{k} {key}" for k, key in new.keys() - old.keys()),
        "changed": sorted(f"{k} {key}" for k, key in new.keys() & old.keys() if new[(k, key)] != old[(k, key)]),
        "removed": sorted(f"{k} {key}" for k, key in old.keys() - new.keys()),
    }
    synclog.record(synclog.Entry(
        action="accounting map", mode="load", outcome="ok", updated=len(result["changed"]), imported=len(result["added"]),
        message=f"mapping loaded from {path}: {len(new)} rows, {len(result['added'])} added, "
                f"{len(result['changed'])} changed, {len(result['removed'])} removed", details=result))
    return result


def show() -> dict:
    m = current()
    return {"mapping": [{"kind": k, "key": key, "value": v} for k, key, v in m.rows()]}


# --- what the vouchers still to post use (doctor) ---------------------------------------------------


def uncovered(m: Mapping) -> list[str]:
    """Payment methods, taxes, groups and cajas used by active vouchers not posted yet that `m` does not map."""
    from peewee import JOIN

    from ..db.models import PostingStatus, Voucher, VoucherLine, VoucherPayment, VoucherTax

    todo = (Voucher.select(Voucher.id).join(PostingStatus, JOIN.LEFT_OUTER, on=(PostingStatus.voucher == Voucher.id))
            .where((Voucher.status == "active") & (PostingStatus.id.is_null() | (PostingStatus.status != "posted")
                                                     | (PostingStatus.sha256 != Voucher.sha256))))
    methods = {x for (x,) in VoucherPayment.select(VoucherPayment.method).where(VoucherPayment.voucher.in_(todo)).distinct().tuples()}
    taxes = {tax_key(t, r) for t, r in VoucherTax.select(VoucherTax.type, VoucherTax.rate).where(VoucherTax.voucher.in_(todo)).distinct().tuples()
             if r is not None and r != 0}
    products = {p for (p,) in VoucherLine.select(VoucherLine.product).where(VoucherLine.voucher.in_(todo)).distinct().tuples() if p}
    cajas = {c for (c,) in Voucher.select(Voucher.caja).where(Voucher.id.in_(todo)).distinct().tuples()}
    groups = product_groups()
    out = [f"payment method {x}" for x in sorted(methods - m.payment_method.keys())]
    out += [f"tax {x}" for x in sorted(taxes - m.tax.keys())]
    out += [f"product {p} (not in the products catalog)" for p in sorted(products - groups.keys())]
    out += [f"group {g}" for g in sorted({groups[p] for p in products if groups.get(p)} - m.group.keys())]
    out += [f"cost centre for caja {c}" for c in sorted(cajas - m.caja.keys())]
    return out
