"""The CSV and JSON layouts of journal entries (docs/accounting.md), and the file destinations.

A file destination writes the entries a run delivers to one new file in the
export folder, in three steps, so that an accounting program picking files up
never reads half of one, and a run killed at any instant neither loses an
entry nor sends it twice:

1. stage: the whole file under a hidden temporary name, synced to disk;
2. commit: the database records its entries delivered to the final name
   (journal.py) — the one decision;
3. publish: the rename to the final name.

The next run finishes a run killed between the steps (`recover`): a staged
file the database committed is published, one it did not is deleted (its
entries are still ready and go in that run's new file).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

from ..caja.layout import temp_name
from ..caja.writer import atomic_write, fsync_dir

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


def cannot_write(path: Path, exc: OSError) -> str:
    """Why `path` could not be written, in words: for a folder that is a file the system only says "File exists"."""
    with contextlib.suppress(OSError):  # a parent we may not even look at: the system's words will do
        for parent in path.parents:
            if parent.is_dir():
                break
            if parent.exists():
                return f"cannot write {path}: {parent} is a file, not a folder"
    return f"cannot write {path} ({exc.strerror or exc})"


def write(entries: list[dict], fmt: str, path: Path) -> Path:
    atomic_write(path, to_csv(entries) if fmt == "csv" else to_json(entries))
    return path


class FileDestination:
    def __init__(self, fmt: str, folder: Path, now: dt.datetime):
        self.name, self.folder, self.now = fmt, folder, now

    @property
    def where(self) -> str:
        return str(self.folder)

    def stage(self, entries: list[dict]) -> tuple[Path, str | None]:
        """Step 1: the final path the entries will have, and the reason when they cannot be written."""
        # The first key keeps two runs in the same second apart.
        stamp = self.now.strftime("%Y%m%dT%H%M%S")
        first = entries[0]["key"].replace(":", "_").replace("/", "_")
        path = self.folder / f"journal-{stamp}-{first}.{self.name}"
        staged = _staged(path)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(staged, "wb") as f:
                f.write(to_csv(entries) if self.name == "csv" else to_json(entries))
                f.flush()
                os.fsync(f.fileno())  # on disk before the database says delivered
        except OSError as exc:
            # The folder may be no folder at all (a file, gone): then there is nothing staged to remove, and
            # removing must not raise over the reason the entries failed.
            with contextlib.suppress(OSError):
                staged.unlink(missing_ok=True)
            return path, f"{cannot_write(path, exc)}; set accounting.export_dir to a folder this program can write"
        return path, None

    def publish(self, path: Path) -> None:
        """Step 3, once the database has committed `path`."""
        publish(path)

    def recover(self, committed: Callable[[Path], bool]) -> list[Path]:
        return recover(self.folder, committed)


def publish(path: Path) -> None:
    os.replace(_staged(path), path)
    fsync_dir(path.parent)


def left_staged(folder: Path) -> list[Path]:
    """Files a run staged in `folder` and did not publish (csv and json: the destination may have changed since)."""
    return sorted(folder.glob(".journal-*.tmp")) if folder.is_dir() else []


def recover(folder: Path, committed: Callable[[Path], bool]) -> list[Path]:
    """Finishes what a killed run left staged in `folder`; returns the files it published. Only while holding
    the accounting lease: a file staged by a run still going is not committed yet, and would be dropped."""
    published = []
    for staged in left_staged(folder):
        path = folder / staged.name[1:-len(".tmp")]
        if committed(path):
            publish(path)
            published.append(path)
        else:
            staged.unlink(missing_ok=True)
    return published


def _staged(path: Path) -> Path:
    return path.parent / temp_name(path.name)
