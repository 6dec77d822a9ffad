"""Loyalty points (SPEC §1, "The loyalty ledger"; Syscafe's "Sincronizar fidelización").

Each caja appends its points movements to `loyalty/<YYYY-MM-DD>.jsonl`. A
pass reads only the bytes added since the last pass: per file it remembers
the offset reached and a checksum of the last bytes before it. A file cut
shorter, or whose remembered bytes changed (rewritten), is read again from
the start. Either way an entry counts once: (caja, seq) is unique, and the
entries and the new offset are written in one transaction, so a pass killed
at any instant leaves either all of a file's new entries or none.

A last line with no newline is still being written: it waits for the next
pass. A bad line is refused with its file and line number, logged, and the
rest is read; so is a line longer than a chunk, which is skipped to its end.
Lines end at "\n" only: a bare "\r" is whitespace inside a JSON line. A link
that leads outside the caja root is refused by name, a link inside it is read,
and a name that is not `<YYYY-MM-DD>.jsonl` is logged once and left alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from dataclasses import dataclass, field

from peewee import BigIntegerField, Expression, fn

from . import catalogs, registry, synclog
from .caja import layout
from .caja.voucher import Refused, parse_timestamp, text_problem
from .config import Config
from .db import write_transaction
from .db.models import LedgerCursor, LoyaltyEntry, Notice, Voucher, utcnow
from .errors import OutsideRoot, UsageError
from .serve import CajaJob, serve_caja
from .storage import Storage

KINDS = ("earn", "redeem", "adjust", "expire")
TAIL = 4096  # bytes before the offset whose checksum tells a rewritten file
CHUNK = 4 * 1024 * 1024  # a ledger is read and committed this many bytes at a time: memory stays flat
BATCH = 5000  # entries per insert statement
CATALOG = "loyalty_balances"
_LEDGER_NAME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\.jsonl$")
_VOUCHER_REF = re.compile(r"^(?P<code>[A-Za-z0-9_]+)-(?P<number>[0-9]+)$")
OUTSIDE = "it is a link that leads outside the caja root; the point of sale must write the ledger itself in loyalty/"


def column_bounds(column) -> tuple[int, int]:
    """The whole numbers a column holds: a BIGINT's, or an INTEGER's (int4 on PostgreSQL)."""
    bits = 64 if isinstance(column, BigIntegerField) else 32
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


@dataclass
class LedgerResult:
    caja: str
    outcome: str = "ok"
    message: str = ""
    entries: int = 0  # entries counted for the first time
    duplicates: int = 0  # lines whose (caja, seq) was already counted
    refused: int = 0
    refusals: list[dict] = field(default_factory=list)
    reread: list[str] = field(default_factory=list)  # files read again from the start, and why
    refused_before: set[str] = field(default_factory=set)  # files refused as at an earlier pass: logged then
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return {"caja": self.caja, "outcome": self.outcome, "message": self.message, "entries": self.entries,
                "duplicates": self.duplicates, "refused": self.refused, "refusals": self.refusals,
                "reread": self.reread, "duration_s": round(self.duration_s, 3)}


@dataclass
class SyncResult:
    results: list[LedgerResult]
    findings: list[dict]
    balances_version: int | None

    @property
    def failed(self) -> bool:
        return any(r.outcome != "ok" or r.refused for r in self.results)

    def as_dict(self) -> dict:
        return {"action": "loyalty sync", "results": [r.as_dict() for r in self.results], "findings": self.findings,
                "balances_catalog_version": self.balances_version}


def check_entry(doc, where: str) -> dict:
    """One ledger line checked against SPEC; Refused names the field."""
    if not isinstance(doc, dict):
        raise Refused(f"{where}: not a JSON object")
    row = {}
    for name in ("seq", "points"):
        value = doc.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Refused(f"{where}: {name} must be a whole number, not {json.dumps(value)}")
        low, high = column_bounds(getattr(LoyaltyEntry, name))
        if not low <= value <= high:
            # Refused here, as this one line: at the insert it would fail the whole chunk, every pass.
            raise Refused(f"{where}: {name} = {value} is out of range (from {low} to {high}); "
                          f"the point of sale must write a smaller number")
        row[name] = value
    customer = doc.get("customer")
    if not isinstance(customer, str) or not customer:
        raise Refused(f"{where}: customer must be a non-empty string")
    for name in ("customer", "voucher"):
        problem = text_problem(doc[name]) if isinstance(doc.get(name), str) else None
        if problem:  # refused as this line: at the insert it would fail the chunk, every pass
            raise Refused(f"{where}: {name} {problem}; the point of sale must write plain text there")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise Refused(f"{where}: kind = {json.dumps(kind)} must be one of {', '.join(KINDS)}")
    voucher = doc.get("voucher")
    if voucher is not None and not isinstance(voucher, str):
        raise Refused(f"{where}: voucher must be a string like \"FV2-1547\"")
    at = doc.get("at")
    if at is not None:
        if not isinstance(at, str):
            raise Refused(f"{where}: at must be an ISO 8601 timestamp")
        parse_timestamp(at, f"{where}: at")
    m = _VOUCHER_REF.match(voucher) if voucher else None
    number = _voucher_number(m.group("number"), voucher, where) if m else None
    row.update(customer=customer, kind=kind, voucher=voucher, at=at,
               voucher_code=m.group("code") if m else None, voucher_number=number)
    return row


def _voucher_number(digits: str, voucher: str, where: str) -> int:
    high = column_bounds(LoyaltyEntry.voucher_number)[1]
    # Measured before int(): a number of thousands of digits is past what int() converts.
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(high)) or int(digits) > high:
        shown = voucher if len(voucher) <= 40 else voucher[:40] + "…"
        raise Refused(f"{where}: voucher = {json.dumps(shown)} has a number out of range (at most {high}); "
                      f"the point of sale must write the voucher's own code and number")
    return int(digits)


def sync(config: Config, names: list[str] | tuple[str, ...] = (), now: dt.datetime | None = None) -> SyncResult:
    """Reads every caja's new ledger bytes, then refreshes the loyalty_balances catalog."""
    cajas = registry.select(names)
    results = [sync_caja(config, c) for c in cajas]
    version = refresh_balances_catalog()
    found = findings()
    if found:
        synclog.record(synclog.Entry(action="loyalty sync", outcome="ok", level="warning",
                                     message=f"{len(found)} loyalty findings: " + "; ".join(f["message"] for f in found[:5]),
                                     details={"findings": found[:50], "count": len(found)}))
    return SyncResult(results, found, version)


def sync_caja(config: Config, caja) -> LedgerResult:
    started = time.monotonic()
    result = LedgerResult(caja.name)
    serve_caja(config, caja, f"loyalty:{caja.name}", result, "loyalty sync of",
               "what was counted before stays, the rest comes on the next pass.",
               lambda storage, lease: _LedgerJob(config, caja, storage, result, lease))
    result.duration_s = time.monotonic() - started
    if result.outcome == "ok" and not result.message:
        files = sum(1 for r in result.refusals if r["line"] is None)
        lines = result.refused - files
        result.message = (f"{result.entries} entries counted" + (f", {lines} lines refused" if lines else "")
                          + (f", {files} files refused" if files else ""))
    for r in result.refusals:
        if r["line"] is None and r["path"] in result.refused_before:
            continue
        where = r["path"] if r["line"] is None else f"{r['path']} line {r['line']}"
        synclog.record(synclog.Entry(action="loyalty sync", outcome="refused", caja=caja.name, level="warning", refused=1,
                                     message=f"{where} refused: {r['reason']}", details=r))
    for why in result.reread:
        synclog.record(synclog.Entry(action="loyalty sync", outcome="ok", caja=caja.name, level="warning", message=why))
    level = "info" if result.outcome == "ok" and not result.refused else ("warning" if result.outcome in ("ok", "busy") else "error")
    synclog.record(synclog.Entry(action="loyalty sync", outcome=result.outcome, caja=caja.name, level=level,
                                 imported=result.entries, skipped=result.duplicates, refused=result.refused,
                                 duration_s=result.duration_s, message=result.message))
    return result


class _LedgerJob(CajaJob):
    def __init__(self, config, caja, storage: Storage, result: LedgerResult, lease):
        super().__init__(lease)
        self.caja, self.storage, self.result, self.lease = caja, storage, result, lease

    def _run(self) -> None:
        try:
            entries = self.storage.list(layout.LOYALTY)
        except FileNotFoundError:
            self.result.message = "no loyalty ledger yet"
            return
        for e in sorted(entries, key=lambda e: e.name):
            if self.stop.is_set():
                break
            if layout.is_ignored(e.name):
                continue
            path = f"{layout.LOYALTY}/{e.name}"
            if e.outside:
                self._refuse_link(path)
            elif e.is_dir or not _LEDGER_NAME.match(e.name):
                self._notice(path, "unknown name")
            else:
                self._file(path)
        self.result.refused = len(self.result.refusals)

    def _first_time(self, path: str, kind: str) -> bool:
        """True at the first pass that finds `path` so: what is logged once ever, not on every pass."""
        return bool(Notice.insert(caja=self.caja.name, path=path, kind=kind, at=utcnow()).on_conflict_ignore().as_rowcount().execute())

    def _notice(self, path: str, kind: str) -> None:
        if self._first_time(path, kind):
            synclog.logger().info(f"{path} ignored: {kind}", caja=self.caja.name, action="loyalty sync")

    def _refuse_link(self, path: str) -> None:
        """Counted as refused on every pass, as long as it is there; its warning is logged the first time."""
        self.result.refusals.append({"path": path, "line": None, "reason": OUTSIDE})
        if not self._first_time(path, "link outside the caja root"):
            self.result.refused_before.add(path)

    def _file(self, path: str) -> None:
        cursor = LedgerCursor.get_or_none((LedgerCursor.caja == self.caja.name) & (LedgerCursor.path == path))
        offset, lines, tail_len = (cursor.offset, cursor.lines, cursor.tail_len) if cursor else (0, 0, 0)
        try:
            self._read_file(path, cursor, offset, lines, tail_len)
        except FileNotFoundError:
            return  # removed since the listing
        except OutsideRoot:
            self._refuse_link(path)  # replaced by such a link since the listing

    def _read_file(self, path: str, cursor, offset: int, lines: int, tail_len: int) -> None:
        # No size(): it refuses every link, where a link inside the root is read like the importer reads
        # one. The first read tells the same: fewer bytes than the remembered tail means a shorter file.
        chunk = self.storage.read_range(path, offset - tail_len, tail_len + CHUNK)
        reset = False
        if len(chunk) < tail_len:
            size = offset - tail_len + len(chunk)
            self.result.reread.append(f"{path} is shorter than what was read before ({size} < {offset} bytes): read again from the start")
            reset = True
        elif tail_len and hashlib.sha256(chunk[:tail_len]).hexdigest() != cursor.tail_sha:
            self.result.reread.append(f"{path} was rewritten (its bytes before offset {offset} changed): read again from the start")
            reset = True
        if reset:
            offset = lines = tail_len = 0
            chunk = self.storage.read_range(path, 0, CHUNK)
        # A cursor moved back is saved even with no complete line to count, so the cut is told once.
        save = cursor is None or reset
        while not self.stop.is_set():
            at_end = len(chunk) < tail_len + CHUNK
            if not at_end and b"\n" not in chunk[tail_len:]:
                skipped = self._skip_long_line(path, offset, lines)
                if skipped is None:
                    return
                offset, lines = skipped
            else:
                offset, lines, complete = self._chunk(path, chunk, tail_len, offset, lines, save)
                if not complete or at_end:
                    return
            save = False
            tail_len = min(TAIL, offset)
            chunk = self.storage.read_range(path, offset - tail_len, tail_len + CHUNK)

    def _skip_long_line(self, path: str, offset: int, lines: int) -> tuple[int, int] | None:
        """The line at `offset` fills a whole chunk: refused, and its end looked for a chunk at a time, so
        memory stays flat and the lines after it are read. None while its end is not written yet."""
        at = offset + CHUNK
        while True:
            if self.stop.is_set():
                return None
            piece = self.storage.read_range(path, at, CHUNK)
            newline = piece.find(b"\n")
            if newline >= 0:
                break
            if len(piece) < CHUNK:
                return None
            at += CHUNK
        end, n = at + newline + 1, lines + 1
        self.result.refusals.append({"path": path, "line": n, "reason": (
            f"line {n} is {end - offset} bytes long, over the {CHUNK} bytes a ledger line may hold; "
            f"the point of sale must write one movement per line")})
        tail_len = min(TAIL, end)
        self._commit(path, [], end, n, self.storage.read_range(path, end - tail_len, tail_len))
        return end, n

    def _chunk(self, path: str, chunk: bytes, tail_len: int, offset: int, lines: int, save: bool) -> tuple[int, int, bytes]:
        """Counts the complete lines of one chunk and moves the cursor past them, in one transaction."""
        new = chunk[tail_len:]
        complete = new[: new.rfind(b"\n") + 1]  # a last line with no newline is still being written
        if not complete and not save:
            return offset, lines, complete
        rows = []
        # Split at "\n" only: splitlines() also breaks at a bare "\r", which JSON allows as whitespace.
        for n, raw in enumerate(complete.split(b"\n")[:-1], lines + 1):
            if not raw.strip():
                continue
            try:
                try:
                    doc = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    raise Refused(f"not valid JSON ({exc})") from None
                row = check_entry(doc, f"line {n}")
            except Refused as exc:
                self.result.refusals.append({"path": path, "line": n, "reason": str(exc)})
                continue
            rows.append(dict(row, caja=self.caja.name, path=path, line=n, imported_at=utcnow()))
        end = offset + len(complete)
        read_bytes = chunk[: tail_len + len(complete)]
        lines += complete.count(b"\n")
        self._commit(path, rows, end, lines, read_bytes[-TAIL:])
        return end, lines, complete

    def _commit(self, path: str, rows: list[dict], offset: int, lines: int, tail: bytes) -> None:
        with write_transaction():
            before = LoyaltyEntry.select(fn.COUNT(LoyaltyEntry.id)).where(LoyaltyEntry.caja == self.caja.name).scalar()
            for i in range(0, len(rows), BATCH):
                LoyaltyEntry.insert_many(rows[i:i + BATCH]).on_conflict_ignore().execute()
            after = LoyaltyEntry.select(fn.COUNT(LoyaltyEntry.id)).where(LoyaltyEntry.caja == self.caja.name).scalar()
            values = {"offset": offset, "lines": lines, "tail_sha": hashlib.sha256(tail).hexdigest(),
                      "tail_len": len(tail), "updated_at": utcnow()}
            updated = LedgerCursor.update(**values).where(
                (LedgerCursor.caja == self.caja.name) & (LedgerCursor.path == path)).execute()
            if not updated:
                LedgerCursor.create(caja=self.caja.name, path=path, **values)
            self.lease.renew()
        self.result.entries += after - before
        self.result.duplicates += len(rows) - (after - before)
        self.result.refused = len(self.result.refusals)


# --- balances, findings, the catalog -----------------------------------------------------------

_HALF = 2**32


def balances() -> list[dict]:
    # Summed in two halves, put together here: every entry fits a BIGINT, but SQLite's SUM fails the
    # whole pass ("integer overflow") once a customer's total does not. Integer division truncates
    # toward zero on both databases; no % (peewee's % is LIKE, and psycopg's placeholder).
    high = Expression(LoyaltyEntry.points, "/", _HALF)
    low = LoyaltyEntry.points - high * _HALF
    rows = (LoyaltyEntry.select(LoyaltyEntry.customer, fn.SUM(high), fn.SUM(low))
            .group_by(LoyaltyEntry.customer).order_by(LoyaltyEntry.customer).tuples())
    return [{"customer": c, "points": int(h) * _HALF + int(lo)} for c, h, lo in rows]


def customer(customer_id: str) -> dict:
    entries = list(LoyaltyEntry.select().where(LoyaltyEntry.customer == customer_id)
                   .order_by(LoyaltyEntry.at, LoyaltyEntry.caja, LoyaltyEntry.seq))
    if not entries:
        raise UsageError(f"customer {customer_id!r} has no loyalty movements; `syscafe-sync loyalty show` lists every balance.")
    points = sum(e.points for e in entries)
    return {
        "customer": customer_id,
        "points": points,
        "entries": [{"caja": e.caja, "seq": e.seq, "kind": e.kind, "points": e.points, "voucher": e.voucher, "at": e.at,
                     "file": e.path, "line": e.line} for e in entries],
        "findings": [f for f in findings() if f.get("customer") == customer_id],
    }


def findings() -> list[dict]:
    """Negative consolidated balances, and points on vouchers the main server never received."""
    out = [{"kind": "negative_balance", "customer": b["customer"], "points": b["points"],
            "message": f"customer {b['customer']} has {b['points']} points after consolidation"}
           for b in balances() if b["points"] < 0]
    arrived = Voucher.select(Voucher.id).where(
        (Voucher.code == LoyaltyEntry.voucher_code) & (Voucher.number == LoyaltyEntry.voucher_number))
    missing = (LoyaltyEntry.select(LoyaltyEntry.caja, LoyaltyEntry.seq, LoyaltyEntry.customer, LoyaltyEntry.voucher)
               .where(LoyaltyEntry.voucher.is_null(False) & ~fn.EXISTS(arrived))
               .order_by(LoyaltyEntry.caja, LoyaltyEntry.seq).tuples())
    for caja, seq, cust, ref in missing:
        out.append({"kind": "voucher_missing", "customer": cust, "caja": caja, "seq": seq, "voucher": ref,
                    "message": f"{caja} seq {seq}: points for customer {cust} on voucher {ref}, which the main server never received"})
    return out


def refresh_balances_catalog() -> int | None:
    """Every customer's consolidated points as the loyalty_balances catalog, pushed with the others."""
    def records() -> dict[str, str]:
        return {b["customer"]: catalogs.canonical({"customer": b["customer"], "points": str(b["points"])}) for b in balances()}

    result = catalogs.set_records(CATALOG, "customer", records)
    return result["version"] if result else None
