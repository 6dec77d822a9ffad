"""Posting: imported vouchers → balanced journal entries kept in the database → the destination.

A run works in two steps. First, in one transaction, it works out what each
voucher must contribute to the books now (`entries.target`), compares it with
what the voucher already contributed (`PostingStatus.posted`) and stores the
difference as entries: nothing when they agree, the reversal of the old lines
and then the new ones when they do not. A voucher with something unmapped is
held, whole. Second, it delivers the stored entries not yet delivered; each
keeps its key for every attempt, so the destination can tell a retry.

So a voucher is posted once; an overwrite import that changes a posted voucher
makes the next run post its reversal and its new lines (a void: the reversal
only); a change that does not touch the books (a seller's name) posts nothing.
Runs hold the "accounting" lease: two never interleave.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from peewee import JOIN, chunked

from .. import lease, synclog
from ..db import write_transaction
from ..db.models import JournalEntry, JournalVoucher, PostingStatus, Voucher, VoucherLine, VoucherPayment, VoucherTax, utcnow
from ..errors import ConfigError, UnknownCaja, UsageError
from . import entries as E
from . import export, mapping
from .http import HttpDestination, resolve_token

PER = ("voucher", "day")
DESTINATIONS = ("csv", "json", "http")
STATUSES = ("pending", "posted", "held", "failed")
LEASE = "accounting"


@dataclass
class PostResult:
    action: str
    per: str
    destination: str
    where: str
    posted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    held: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)  # {key, state, error}
    file: str | None = None
    recovered: list[str] = field(default_factory=list)  # export files a killed run had staged and committed

    @property
    def outcome(self) -> str:
        return "failed" if self.held or self.failed else "ok"

    def as_dict(self) -> dict:
        return {"action": self.action, "outcome": self.outcome, "per": self.per, "destination": self.destination,
                "where": self.where, "file": self.file, "posted": self.posted, "unchanged": self.unchanged,
                "held": self.held, "failed": self.failed, "entries": self.entries, "recovered": self.recovered}


def destination(config, to: str | None, now: dt.datetime):
    to = to or config.get("accounting", "destination")
    if to not in DESTINATIONS:
        raise ConfigError(f"accounting destination {to!r} is not one of {', '.join(DESTINATIONS)}; fix accounting.destination or --to.")
    if to != "http":
        return export.FileDestination(to, export_folder(config), now)
    url = config.get("accounting", "url")
    if not url:
        raise ConfigError(f"--to http needs the API's address: set accounting.url in {config.config_path}.")
    return HttpDestination(url, resolve_token(config), config.get("accounting", "timeout_s"),
                           config.get("accounting", "retries"), config.get("accounting", "backoff_s"))


def export_folder(config) -> Path:
    return Path(config.get("accounting", "export_dir") or config.home / "accounting")


def post(config, day: dt.date | None = None, caja: str | None = None, per: str = "voucher", to: str | None = None,
         retry: bool = False, now: dt.datetime | None = None, dest=None) -> PostResult:
    """Posts what is pending (and, with retry, what was held or failed) for the day and caja given, or all."""
    if per not in PER:
        raise UsageError(f"--per {per!r} must be voucher or day.")
    now = now or utcnow()
    dest = dest or destination(config, to, now)
    m = mapping.current()
    if m.empty:
        raise UsageError("no accounting mapping is loaded; write one (docs/accounting.md) and run `syscafe-sync accounting map load FILE`.")
    if caja and not Voucher.select().where(Voucher.caja == caja).exists():
        raise UnknownCaja(f"no voucher of caja {caja!r} has been imported; see `syscafe-sync caja list` for the names.")
    action = "accounting retry" if retry else "accounting post"
    result = PostResult(action, per, dest.name, dest.where)
    with lease.holding(LEASE, config.limits["lease_s"], config.limits["lock_wait_s"]) as held_lease:
        with write_transaction():
            _plan(result, m, mapping.product_groups(), day, caja, per, dest.name, retry, now)
        _deliver(result, dest, day, caja, retry, held_lease)
    _log(result, day, caja)
    return result


# --- step 1: what to post ------------------------------------------------------------------------


def _candidates(day, caja, retry):
    st = PostingStatus.alias()
    q = (Voucher.select(Voucher, st).join(st, JOIN.LEFT_OUTER, on=(st.voucher == Voucher.id), attr="st"))
    wanted = st.id.is_null() | (st.sha256 != Voucher.sha256)
    if retry:
        wanted |= st.status == "held"
    q = q.where(wanted)
    if day:
        q = q.where(Voucher.day == day.isoformat())
    if caja:
        q = q.where(Voucher.caja == caja)
    return list(q.order_by(Voucher.day, Voucher.caja, Voucher.code, Voucher.number))


def _views(vouchers: list[Voucher]) -> dict[int, E.VoucherView]:
    views = {v.id: E.VoucherView(v.caja, v.code, v.number, v.day, v.kind, v.status, v.customer_id, v.total, v.tip)
             for v in vouchers}
    for ids in chunked(list(views), 500):
        for x in VoucherLine.select().where(VoucherLine.voucher.in_(ids)).order_by(VoucherLine.voucher, VoucherLine.line_no):
            views[x.voucher_id].lines.append(E.Line(x.product, x.base))
        for t in VoucherTax.select().where(VoucherTax.voucher.in_(ids)).order_by(VoucherTax.voucher, VoucherTax.line_no, VoucherTax.id):
            views[t.voucher_id].taxes.append(E.Tax(t.line_no, t.type, t.rate, t.amount))
        for p in VoucherPayment.select().where(VoucherPayment.voucher.in_(ids)).order_by(VoucherPayment.voucher, VoucherPayment.line_no):
            views[p.voucher_id].payments.append((p.method, p.amount))
    return views


def _canon(lines: list[dict]) -> list:
    return sorted(json.dumps(x, sort_keys=True) for x in E.to_json(lines))


def _plan(result: PostResult, m, groups, day, caja, per, dest_name, retry, now) -> None:
    vouchers = _candidates(day, caja, retry)
    views = _views(vouchers)
    by_day: dict[tuple[str, str], list[tuple[Voucher, list[dict]]]] = defaultdict(list)
    for v in vouchers:
        st = v.st if getattr(v, "st", None) is not None and v.st.id is not None else None
        view = views[v.id]
        posted = E.from_json(json.loads(st.posted)) if st else []
        try:
            tgt = E.target(view, m, groups)
        except E.Held as h:
            reason = "; ".join(h.reasons)
            _set_status(v, st, "held", reason, posted, now)
            result.held.append({"caja": v.caja, "voucher": view.name, "date": v.day, "reason": reason})
            continue
        if _canon(tgt) == _canon(posted):
            if st is not None and st.status in ("pending", "failed"):
                # Its entries are still on their way: the change did not touch the books, the status stays.
                _set_status(v, st, st.status, st.reason, tgt, now)
            else:
                why = "voided before it was posted: nothing to post" if v.status == "voided" and not posted else None
                _set_status(v, st, "posted", why, tgt, now)
            result.unchanged.append(view.name)
            continue
        parts = []
        if posted:
            parts.append(("reversal", E.reverse(posted)))
        if tgt:
            parts.append(("return" if view.kind in E.RETURN_KINDS else "sale", tgt))
        seq = st.entries if st else 0
        if per == "voucher":
            for kind, lines in parts:
                seq += 1
                _store(f"{v.caja}:{v.code}:{v.number}:{seq}", v.caja, v.day, "voucher", kind, view.name, lines, [v], dest_name, now)
        else:
            by_day[(v.caja, v.day)].append((v, [x for _, lines in parts for x in lines]))
        _set_status(v, st, "pending", "stored, not delivered yet", tgt, now, entries=seq)
    for (c, d), items in by_day.items():
        lines = E.summarise([x for _, ls in items for x in ls], f"{c} {d} summary")
        if lines:
            n = JournalEntry.select().where((JournalEntry.caja == c) & (JournalEntry.day == d) & (JournalEntry.per == "day")).count()
            _store(f"{c}:{d}:day:{n + 1}", c, d, "day", "summary", None, lines, [v for v, _ in items], dest_name, now)
        else:  # the day's changes cancel out (a sale voided before posting): nothing to deliver
            for v, _ in items:
                PostingStatus.update(status="posted", reason=None).where(PostingStatus.voucher == v.id).execute()
                result.unchanged.append(f"{v.code}-{v.number}")


def _store(key, caja, day, per, kind, voucher, lines, vouchers, dest_name, now) -> None:
    debit, credit = E.totals(lines)
    # The one promise of an entry: it balances to the cent. A bug here must stop the run, not reach the books.
    if debit != credit:
        raise AssertionError(f"entry {key} does not balance: debits {debit}, credits {credit}")
    entry = JournalEntry.create(key=key, caja=caja, day=day, per=per, kind=kind, voucher=voucher,
                                lines=json.dumps(E.to_json(lines), ensure_ascii=False), total=debit.quantize(E.CENT),
                                destination=dest_name, state="ready", created_at=now)
    JournalVoucher.insert_many([{"entry": entry.id, "voucher": v.id} for v in vouchers]).execute()


def _set_status(v, st, status, reason, posted_lines, now, entries=None):
    fields = {"status": status, "reason": reason, "sha256": v.sha256, "updated_at": now,
              "posted": json.dumps(E.to_json(posted_lines), ensure_ascii=False)}
    if entries is not None:
        fields["entries"] = entries
    if st is None:
        return PostingStatus.create(voucher=v.id, **fields)
    PostingStatus.update(**fields).where(PostingStatus.id == st.id).execute()
    return st


# --- step 2: delivery ----------------------------------------------------------------------------


def entry_dict(e: JournalEntry, names: list[str]) -> dict:
    return {"key": e.key, "date": e.day, "caja": e.caja, "per": e.per, "kind": e.kind, "voucher": e.voucher,
            "vouchers": names, "total": str(e.total), "lines": json.loads(e.lines)}


def stored(day=None, caja=None, states=None, destination_name=None) -> list[tuple[JournalEntry, dict]]:
    q = JournalEntry.select()
    if states:
        q = q.where(JournalEntry.state.in_(states))
    if destination_name:
        q = q.where(JournalEntry.destination == destination_name)
    if day:
        q = q.where(JournalEntry.day == day.isoformat())
    if caja:
        q = q.where(JournalEntry.caja == caja)
    found = list(q.order_by(JournalEntry.id))
    names: dict[int, list[str]] = defaultdict(list)
    for ids in chunked([e.id for e in found], 500):
        for eid, code, number in (JournalVoucher.select(JournalVoucher.entry, Voucher.code, Voucher.number)
                                  .join(Voucher).where(JournalVoucher.entry.in_(ids))
                                  .order_by(Voucher.code, Voucher.number).tuples()):
            names[eid].append(f"{code}-{number}")
    return [(e, entry_dict(e, names[e.id])) for e in found]


def _deliver(result: PostResult, dest, day, caja, retry, held_lease) -> None:
    if isinstance(dest, export.FileDestination):
        result.recovered = [str(p) for p in dest.recover(_committed)]
    todo = _to_deliver(day, caja, retry, dest.name)
    if not todo:
        return
    if isinstance(dest, HttpDestination):
        # One by one, renewing the lease, so a slow API never lets a second run in.
        outcomes = []
        for e, d in todo:
            outcomes += dest.deliver([d])
            held_lease.renew()
        _record(result, todo, outcomes, dest.name, dest.where, held_lease)
        return
    path, error = dest.stage([d for _, d in todo])
    _record(result, todo, [error] * len(todo), dest.name, dest.where if error else str(path), held_lease)
    if not error:
        dest.publish(path)
        result.file = str(path)


def _to_deliver(day, caja, retry, dest_name) -> list[tuple[JournalEntry, dict]]:
    """The entries ready for this destination; with retry, also every failed one, whatever destination it
    failed on: `retry --to X` is how a user moves entries off a destination that keeps refusing them."""
    todo = stored(day, caja, ("ready",), dest_name)
    if retry:
        todo = sorted(todo + stored(day, caja, ("failed",)), key=lambda item: item[0].id)
    return todo


def publish_left(config) -> list[str]:
    """Publishes what a post killed between its commit and its rename left staged, and drops what it left
    uncommitted. Every pass of the service runs it, so the accounting program gets a file the database
    already calls delivered within one interval, not at the next post, which may be a day away. A post
    running now holds the lease: then nothing is done, and that post recovers the folder itself."""
    folder = export_folder(config)
    if not export.left_staged(folder):
        return []
    held = lease.CajaLease(LEASE, config.limits["lease_s"])
    if not held.try_acquire():
        return []
    try:
        published = [str(p) for p in export.recover(folder, _committed)]
    finally:
        held.release()
    if published:
        synclog.record(synclog.Entry(
            action="accounting post", outcome="ok", level="warning",
            message=f"published {', '.join(published)}, left staged by a run that was killed after recording its entries delivered"))
    return published


def _committed(path) -> bool:
    """Whether the database has entries delivered to this export file: a killed run's staged file to publish."""
    return JournalEntry.select().where((JournalEntry.delivered_to == str(path)) & (JournalEntry.state == "delivered")).exists()


def _record(result: PostResult, todo, outcomes: list[str | None], dest_name: str, delivered_to: str, held_lease) -> None:
    now = utcnow()
    with write_transaction():
        # The fence: a run whose lease another took commits nothing, so that run's recovery can trust what it sees.
        held_lease.renew()
        for (e, d), error in zip(todo, outcomes):
            JournalEntry.update(state="failed" if error else "delivered", error=error, attempts=JournalEntry.attempts + 1,
                                delivered_at=None if error else now, destination=dest_name,
                                delivered_to=delivered_to).where(JournalEntry.id == e.id).execute()
            result.entries.append({"key": e.key, "state": "failed" if error else "delivered", "error": error})
        _refresh([e.id for e, _ in todo], result)


def _refresh(entry_ids: list[int], result: PostResult) -> None:
    """A voucher's status follows its entries: posted once all are delivered, failed while one failed."""
    voucher_ids = {vid for ids in chunked(entry_ids, 500)
                   for (vid,) in JournalVoucher.select(JournalVoucher.voucher).where(JournalVoucher.entry.in_(ids)).tuples()}
    for ids in chunked(sorted(voucher_ids), 500):
        states: dict[int, list[tuple[str, str | None]]] = defaultdict(list)
        for vid, state, error in (JournalVoucher.select(JournalVoucher.voucher, JournalEntry.state, JournalEntry.error)
                                  .join(JournalEntry).where(JournalVoucher.voucher.in_(ids)).order_by(JournalEntry.id).tuples()):
            states[vid].append((state, error))
        for st in PostingStatus.select(PostingStatus, Voucher).join(Voucher).where(PostingStatus.voucher.in_(ids)):
            if st.status == "held":
                continue
            errors = [err for s, err in states[st.voucher_id] if s == "failed"]
            status = "failed" if errors else "pending" if any(s == "ready" for s, _ in states[st.voucher_id]) else "posted"
            reason = f"{errors[0]}; run `syscafe-sync accounting retry` once it is fixed" if errors else None
            PostingStatus.update(status=status, reason=reason).where(PostingStatus.id == st.id).execute()
            one = {"caja": st.voucher.caja, "voucher": f"{st.voucher.code}-{st.voucher.number}", "date": st.voucher.day}
            if status == "posted":
                result.posted.append(one)
            elif errors:
                result.failed.append(dict(one, reason=reason))


def _log(result: PostResult, day, caja) -> None:
    scope = " ".join(x for x in (caja, day.isoformat() if day else None) if x) or "every caja and day"
    for h in result.held:
        synclog.record(synclog.Entry(action=result.action, caja=h["caja"], outcome="held", level="warning",
                                     message=f"{h['voucher']} ({h['date']}) held: {h['reason']}"))
    for f in result.failed:
        synclog.record(synclog.Entry(action=result.action, caja=f["caja"], outcome="failed", level="warning",
                                     message=f"{f['voucher']} ({f['date']}) failed: {f['reason']}"))
    by_caja: dict[str, list[str]] = defaultdict(list)
    for p in result.posted:
        by_caja[p["caja"]].append(p["voucher"])
    for c, names in sorted(by_caja.items()):
        # One row per caja, so `log --caja C` answers "was it posted?".
        synclog.record(synclog.Entry(action=result.action, caja=c, mode=result.per, outcome="posted", imported=len(names),
                                     message=f"{len(names)} vouchers posted to {result.destination}: {', '.join(names)}"))
    delivered = sum(1 for e in result.entries if e["state"] == "delivered")
    late = f"; published {', '.join(result.recovered)}, left staged by a run that was killed" if result.recovered else ""
    synclog.record(synclog.Entry(
        action=result.action, mode=result.per, outcome=result.outcome, level="warning" if result.outcome != "ok" else "info",
        imported=len(result.posted), skipped=len(result.unchanged), refused=len(result.held) + len(result.failed),
        message=f"{scope}: {len(result.posted)} vouchers posted, {delivered} entries delivered to {result.destination} "
                f"({result.file or result.where}), {len(result.unchanged)} unchanged, {len(result.held)} held, {len(result.failed)} failed{late}",
        details={"entries": [e["key"] for e in result.entries]}))
