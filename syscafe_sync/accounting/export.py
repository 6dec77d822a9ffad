"""The CSV and JSON layouts of journal entries (docs/accounting.md), and the file destinations.

A file destination writes the entries a run delivers to one new file in the
export folder, by temporary name and rename, so an accounting program that
picks files up never reads half of one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

from ..caja.writer import atomic_write

CSV_COLUMNS = ["entry", "date", "caja", "per", "kind", "voucher", "line", "account", "cost_centre", "third_party",
               "description", "debit", "credit"]
FORMATS = ("csv", "json")


def to_csv(entries: list[dict]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for e in entries:
        for i, x in enumerate(e["lines"], start=1):
            w.writerow([e["key"], e["date"], e["caja"], e["per"], e["kind"], e["voucher"] or " ".join(e["vouchers"]), i,
                        x["account"], x["cost_centre"], x["third_party"], x["description"], x["debit"], x["credit"]])
    return out.getvalue().encode("utf-8")


def to_json(entries: list[dict]) -> bytes:
    return (json.dumps({"format": 1, "entries": entries}, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write(entries: list[dict], fmt: str, path: Path) -> Path:
    atomic_write(path, to_csv(entries) if fmt == "csv" else to_json(entries))
    return path


class FileDestination:
    def __init__(self, fmt: str, folder: Path, now: dt.datetime):
        self.name, self.folder, self.now = fmt, folder, now

    @property
    def where(self) -> str:
        return str(self.folder)

    def deliver(self, entries: list[dict]) -> list[str | None]:
        """All the run's entries in one file: all delivered, or all failed with the reason."""
        if not entries:
            return []
        # The first key keeps two runs in the same second apart.
        stamp = self.now.strftime("%Y%m%dT%H%M%S")
        first = entries[0]["key"].replace(":", "_").replace("/", "_")
        path = self.folder / f"journal-{stamp}-{first}.{self.name}"
        try:
            write(entries, self.name, path)
        except OSError as exc:
            return [f"cannot write {path} ({exc.strerror or exc})"] * len(entries)
        self.last_file = path
        return [None] * len(entries)
