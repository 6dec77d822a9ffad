"""Importing commercial rules from the cajas (SPEC §1 "A commercial rule", `rules sync`, `rules list`).

A rule's way: `rules/<RULE-ID>.json` at a caja → storage → checks → refused
(with its path and reason, logged, tried again on every pass) or compared
with the version the main server holds → `Rule` (the one current version of
each id) and `RuleSource` (what each caja showed) → the sync log.

What was decided, where SPEC leaves room:

- Contents are compared by their canonical JSON (sorted keys, compact, the
  same as the catalogs' canonical form): a rule written with another
  indentation or key order is the same rule. `sha256` (in `Rule` and
  `RuleSource`) is the hash of that canonical form; `document` keeps the
  file as the caja wrote it.
- The main server keeps, for each id, the highest `version`; at an equal
  version, the strictly later `updated_at` (compared as instants, offsets
  applied). An incoming rule with a lower version changes nothing.
- The same id and version with different content is a conflict, whether it
  comes from two cajas or from one caja that changed a rule without bumping
  its version. It is logged at warning naming both cajas (the held version's
  and the incoming one's) and both sha256 prefixes. The held version stays,
  unless the incoming one has a strictly later `updated_at`: then it
  replaces the held one (SPEC's ordering rule) and the conflict is still
  logged. The same content is never a conflict, and never an update.
- A conflict is reported in the pass where it arises: a caja that shows the
  very version and content it showed at its last pass brings nothing new,
  so the same conflict is not logged again every interval. `rules list`
  still shows, per rule, the cajas whose file differs from the held version.
- Cajas are served one after the other, in the order given on the command
  line, or the registry's order (by name) when none is given. Between two
  cajas with the same version and the same `updated_at` but different
  content, the one served first is kept.
- Each caja's decisions are one transaction (a write transaction, so two
  runs on different cajas cannot decide on the same rule at once on SQLite):
  a pass cut off leaves the database as it was before that caja.
- A rule file present at a caja at its last pass and gone now is reported
  once (the result's `missing`, a warning in the log) and marked
  `present=False` in `RuleSource`; the rule itself stays in `Rule`. A file
  that comes back is tracked again, and reported again if it goes again.
  A missing `rules/` folder is an empty one.
- A refused file is also kept in the quarantine table (`Refusal`, without a
  date), so `vouchers refused` and `caja list`'s open refusals show it; it is
  marked resolved once the file is accepted or is gone.
- `name` and `active` are optional (the model allows none), but when given
  they must be a string and a boolean. `version` is a whole number, 0 or
  more; `true` is not a number.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import time
from dataclasses import dataclass, field

from . import registry, synclog
from .caja import layout
from .caja.catalog import canonical
from .caja.voucher import Refused, parse_timestamp, text_problem
from .config import Config
from .db import lock, write_transaction
from .db.models import Notice, Refusal, Rule, RuleSource, utcnow
from .serve import CajaJob, Cancelled, serve_caja
from .storage import Entry

ACTION = "rules sync"
_SUFFIX = ".json"
_MAX_VERSION = 2**63 - 1  # what a BIGINT holds


@dataclass
class CajaRules:
    caja: str
    outcome: str = "ok"
    message: str = ""
    new: int = 0
    updated: int = 0
    conflicts: int = 0
    skipped: int = 0  # rule files read that changed nothing: unchanged, same content, or an older version
    refused: int = 0
    refusals: list[dict] = field(default_factory=list)  # [{path, reason}]
    refused_before: set[str] = field(default_factory=set)  # refused before as they are now: logged then
    missing: list[str] = field(default_factory=list)  # rule ids whose file disappeared from this caja
    conflict_details: list[dict] = field(default_factory=list)
    missing_details: list[dict] = field(default_factory=list)  # [{id, version}]: the version the main server keeps
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "caja": self.caja,
            "outcome": self.outcome,
            "message": self.message,
            "new": self.new,
            "updated": self.updated,
            "conflicts": self.conflicts,
            "skipped": self.skipped,
            "refused": self.refused,
            "refusals": self.refusals,
            "missing": self.missing,
            "conflict_details": self.conflict_details,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class RulesResult:
    results: list[CajaRules]

    @property
    def failed(self) -> bool:
        """A caja not served, or a file refused; conflicts alone are not a failure (they are logged)."""
        return any(r.outcome != "ok" or r.refused for r in self.results)

    def as_dict(self) -> dict:
        return {"action": "rules sync", "results": [r.as_dict() for r in self.results]}


def sync(config: Config, names: list[str] | tuple[str, ...] = ()) -> RulesResult:
    """Imports the commercial rules of the named cajas, or of every caja, one caja after the other."""
    cajas = registry.select(names)
    return RulesResult([sync_caja(config, c) for c in cajas])


def sync_caja(config: Config, caja) -> CajaRules:
    """One caja, isolated: whatever happens is reported in its result and the log, never raised."""
    started = time.monotonic()
    result = CajaRules(caja.name)
    serve_caja(
        config, caja, f"rules:{caja.name}", result, "rules sync of",
        "the rules the main server holds stay as they were; the caja's come on the next pass.",
        lambda storage, lease: _CajaRulesJob(config, caja, storage, result, lease),
    )
    return _finish(result, started)


def _finish(result: CajaRules, started: float) -> CajaRules:
    result.duration_s = time.monotonic() - started
    if result.outcome == "ok" and not result.message:
        parts = [f"{result.new} new", f"{result.updated} updated", f"{result.skipped} unchanged"]
        if result.conflicts:
            parts.append(f"{result.conflicts} conflicts")
        if result.refused:
            parts.append(f"{result.refused} refused")
            if result.refused_before:
                parts[-1] += f" ({len(result.refused_before)} unchanged since first refused and logged)"
        if result.missing:
            parts.append(f"{len(result.missing)} disappeared")
        result.message = ", ".join(parts)
    for r in result.refusals:
        if r["path"] in result.refused_before:
            continue
        synclog.record(synclog.Entry(action=ACTION, outcome="refused", caja=result.caja, level="warning", refused=1,
                                     message=f"{r['path']} refused: {r['reason']}", details=r))
    for c in result.conflict_details:
        synclog.record(synclog.Entry(action=ACTION, outcome="conflict", caja=result.caja, level="warning",
                                     message=c["message"], details=c))
    for m in result.missing_details:
        kept = (f"the main server keeps version {m['version']}" if m["version"] is not None
                else "the main server holds no version of it")
        synclog.record(synclog.Entry(action=ACTION, outcome="missing", caja=result.caja, level="warning",
                                     message=f"rule {m['id']} disappeared from {result.caja}; {kept}", details=m))
    if result.outcome == "ok":
        level = "warning" if (result.refused or result.conflicts or result.missing) else "info"
    else:
        level = "warning" if result.outcome == "busy" else "error"
    synclog.record(synclog.Entry(
        action=ACTION, outcome=result.outcome, caja=result.caja, level=level,
        imported=result.new, updated=result.updated, skipped=result.skipped, refused=result.refused,
        duration_s=result.duration_s, message=result.message,
        details={"conflicts": result.conflicts, "missing": result.missing} if (result.conflicts or result.missing) else {},
    ))
    return result


def list_rules() -> list[dict]:
    """Every rule the main server holds, by id, with the cajas whose file holds that very version."""
    present: dict[str, list[RuleSource]] = {}
    for s in RuleSource.select().where(RuleSource.present == True).order_by(RuleSource.caja):
        present.setdefault(s.rule_id, []).append(s)
    out = []
    for r in Rule.select().order_by(Rule.rule_id):
        shown = present.get(r.rule_id, [])
        out.append({
            "id": r.rule_id,
            "version": r.version,
            "caja": r.caja,
            "active": r.active,
            "name": r.name,
            "updated_at": r.updated_at,
            "sources": [s.caja for s in shown if s.sha256 == r.sha256],
            # cajas whose file holds another version, or the same version with other content (a conflict)
            "elsewhere": [{"caja": s.caja, "version": s.version, "sha256": s.sha256} for s in shown if s.sha256 != r.sha256],
            "sha256": r.sha256,
            "synced_at": r.synced_at.isoformat() if r.synced_at else None,
        })
    return out


@dataclass
class _Incoming:
    rule_id: str
    path: str
    version: int
    updated_at: str
    updated_utc: object
    name: str | None
    active: bool | None
    sha256: str
    document: str


def check_rule(raw: bytes, stem: str) -> tuple[dict, str, object]:
    """The rule document, its `updated_at` as an instant; raises Refused with the first problem found."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise Refused(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:
        raise Refused(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise Refused("not valid JSON (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise Refused("the document is not a JSON object")
    fmt = doc.get("format")
    if "format" not in doc:
        raise Refused("format is missing (write \"format\": 1)")
    if type(fmt) is not int or fmt != layout.FORMAT:
        raise Refused(f"format {json.dumps(fmt)} is not supported (this syscafe-sync reads format 1)")
    rule_id = doc.get("id")
    if rule_id is None:
        raise Refused("id is missing")
    if not isinstance(rule_id, str):
        raise Refused(f"id = {json.dumps(rule_id)} is not a string")
    if rule_id != stem:
        raise Refused(f"its name says {stem} but the rule inside is {json.dumps(rule_id)}; the file must be rules/<id>.json")
    version = doc.get("version")
    if "version" not in doc:
        raise Refused("version is missing")
    if type(version) is not int or not 0 <= version <= _MAX_VERSION:
        raise Refused(f"version = {json.dumps(version)} is not a whole number (0, 1, 2, …)")
    if "updated_at" not in doc or doc["updated_at"] is None:
        raise Refused("updated_at is missing (write it like 2026-11-20T10:00:00-05:00)")
    if not isinstance(doc["updated_at"], str):
        raise Refused(f"updated_at = {json.dumps(doc['updated_at'])} is not a timestamp string")
    updated = parse_timestamp(doc["updated_at"], "updated_at")
    try:
        # Converted here, where it refuses this file: at the insert, or in a comparison, it would fail the caja's pass.
        updated = updated.astimezone(dt.timezone.utc)
    except OverflowError:
        raise Refused(f"updated_at = {json.dumps(doc['updated_at'])} has no UTC instant (its offset takes it past year 1 "
                      f"or 9999); write the time the rule changed, like 2026-11-20T10:00:00-05:00") from None
    if doc.get("name") is not None and not isinstance(doc["name"], str):
        raise Refused(f"name = {json.dumps(doc['name'], ensure_ascii=False)} is not a string")
    if isinstance(doc.get("name"), str) and (problem := text_problem(doc["name"])):
        raise Refused(f"name {problem}; the point of sale must write plain text there")
    if doc.get("active") is not None and not isinstance(doc["active"], bool):
        raise Refused(f"active = {json.dumps(doc['active'])} is not true or false")
    return doc, text, updated


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def content_sha256(doc: dict) -> str:
    """The hash of a rule's canonical JSON: the same rule formatted differently has the same hash."""
    return hashlib.sha256(canonical(doc).encode("utf-8")).hexdigest()


class _CajaRulesJob(CajaJob):
    """The work for one caja, run in a worker thread with a deadline."""

    def __init__(self, config: Config, caja, storage, result: CajaRules, lease):
        super().__init__(lease)
        self.caja, self.storage, self.result, self.lease = caja, storage, result, lease
        self.limit = config.limits["max_file_bytes"]

    def _run(self) -> None:
        try:
            entries = self.storage.list(layout.RULES)
        except FileNotFoundError:
            entries = []
        listed: set[str] = set()  # ids whose file is there, accepted or not
        incoming: list[_Incoming] = []
        refused: list[tuple[str, str, str | None]] = []
        for entry in sorted(entries, key=lambda e: e.name):
            if self.stop.is_set():
                raise Cancelled()
            if layout.is_ignored(entry.name):
                continue
            path = f"{layout.RULES}/{entry.name}"
            is_rule_name = entry.name.endswith(_SUFFIX) and len(entry.name) > len(_SUFFIX)
            if entry.outside:
                if is_rule_name:
                    listed.add(entry.name[: -len(_SUFFIX)])
                refused.append((path, "it is a link that leads outside the caja root", None))
                continue
            if entry.is_dir or not is_rule_name:
                self._notice(path, "unknown name")
                continue
            stem = entry.name[: -len(_SUFFIX)]
            listed.add(stem)
            got = self._read(entry, path, stem)
            if isinstance(got, _Incoming):
                incoming.append(got)
            else:
                refused.append(got)
        now = utcnow()
        with write_transaction():
            decided = self._decide(incoming, now)
            missing = self._missing(listed)
            before = self._quarantine(refused, now)
            self.lease.renew()
            if self.stop.is_set():
                raise Cancelled()  # rolls this caja's pass back: the next pass does it whole
        r = self.result
        r.new, r.updated, r.skipped = decided["new"], decided["updated"], decided["skipped"]
        r.conflict_details = decided["conflicts"]
        r.conflicts = len(r.conflict_details)
        r.refused = len(refused)
        r.refusals = [{"path": p, "reason": why} for p, why, _ in refused]
        r.refused_before = before
        r.missing_details = missing
        r.missing = [m["id"] for m in missing]

    def _notice(self, path: str, kind: str) -> None:
        """Logs a name we do not recognise, once ever, not on every pass."""
        inserted = Notice.insert(caja=self.caja.name, path=path, kind=kind, at=utcnow()).on_conflict_ignore().as_rowcount().execute()
        if inserted:
            synclog.logger().info(f"{path} ignored: {kind}", caja=self.caja.name, action=ACTION)

    def _read(self, entry: Entry, path: str, stem: str) -> _Incoming | tuple[str, str, str | None]:
        too_big = f"it is over the limit of {self.limit} bytes (limits.max_file_bytes)"
        if entry.size is not None and entry.size > self.limit:
            return path, too_big, None
        try:
            raw = self.storage.read(path, limit=self.limit)
        except FileNotFoundError:
            return path, "it was removed while being read; it is read again on the next pass", None
        except OSError as exc:
            if exc.errno == errno.EFBIG:
                return path, too_big, None
            return path, f"it could not be read ({exc.strerror or exc})", None
        raw_sha = hashlib.sha256(raw).hexdigest()
        try:
            doc, text, updated = check_rule(raw, stem)
        except Refused as exc:
            return path, str(exc), raw_sha
        return _Incoming(
            rule_id=doc["id"], path=path, version=doc["version"], updated_at=doc["updated_at"], updated_utc=updated,
            name=doc.get("name"), active=doc.get("active"), sha256=content_sha256(doc), document=text,
        )

    def _decide(self, incoming: list[_Incoming], now) -> dict:
        out = {"new": 0, "updated": 0, "skipped": 0, "conflicts": []}
        if not incoming:
            return out
        ids = [i.rule_id for i in incoming]
        # Two services deciding on one rule (from two cajas): the second sees what the first kept.
        lock(*(f"rule:{i}" for i in ids))
        held = {r.rule_id: r for r in Rule.select().where(Rule.rule_id.in_(ids))}
        sources = {s.rule_id: s for s in RuleSource.select().where(RuleSource.caja == self.caja.name)}
        for inc in incoming:
            h = held.get(inc.rule_id)
            src = sources.get(inc.rule_id)
            fields = {"version": inc.version, "updated_at": inc.updated_at, "updated_utc": inc.updated_utc,
                      "caja": self.caja.name, "name": inc.name, "active": inc.active, "sha256": inc.sha256,
                      "document": inc.document, "synced_at": now}
            if h is None:
                Rule.insert(rule_id=inc.rule_id, **fields).execute()
                out["new"] += 1
            elif src is not None and src.version == inc.version and src.sha256 == inc.sha256:
                out["skipped"] += 1  # this caja shows what it showed last pass: decided then
            elif inc.version > h.version:
                Rule.update(**fields).where(Rule.rule_id == inc.rule_id).execute()
                out["updated"] += 1
            elif inc.version < h.version or inc.sha256 == h.sha256:
                out["skipped"] += 1
            else:
                later = h.updated_utc is None or inc.updated_utc > h.updated_utc
                out["conflicts"].append(self._conflict(inc, h, later))
                if later:
                    Rule.update(**fields).where(Rule.rule_id == inc.rule_id).execute()
                    out["updated"] += 1
                else:
                    out["skipped"] += 1
            self._seen(inc, src, now)
        return out

    def _conflict(self, inc: _Incoming, held: Rule, replaced: bool) -> dict:
        ours, theirs = held.sha256[:12], inc.sha256[:12]
        if replaced:
            outcome = (f"the main server now keeps {self.caja.name}'s, whose updated_at {inc.updated_at} is later "
                       f"than {held.updated_at}")
        else:
            outcome = (f"the main server keeps {held.caja}'s, as {self.caja.name}'s updated_at {inc.updated_at} "
                       f"is not later than {held.updated_at}")
        message = (f"conflict on rule {inc.rule_id} version {inc.version}: {held.caja} (sha256 {ours}…) and "
                   f"{self.caja.name} (sha256 {theirs}…) hold different contents under the same version; {outcome}. "
                   f"Give the right one a higher version at its caja.")
        return {
            "id": inc.rule_id, "version": inc.version, "message": message,
            "held_caja": held.caja, "held_sha256": held.sha256, "held_updated_at": held.updated_at,
            "caja": self.caja.name, "sha256": inc.sha256, "updated_at": inc.updated_at,
            "kept": self.caja.name if replaced else held.caja, "replaced": replaced, "path": inc.path,
        }

    def _seen(self, inc: _Incoming, src: RuleSource | None, now) -> None:
        if src is None:
            RuleSource.create(caja=self.caja.name, rule_id=inc.rule_id, version=inc.version, sha256=inc.sha256,
                              present=True, last_seen=now)
        else:
            RuleSource.update(version=inc.version, sha256=inc.sha256, present=True, last_seen=now).where(
                RuleSource.id == src.id).execute()

    def _missing(self, listed: set[str]) -> list[dict]:
        """Rule files shown at the last pass and gone now: marked, reported this once."""
        gone = [s for s in RuleSource.select().where((RuleSource.caja == self.caja.name) & (RuleSource.present == True))
                if s.rule_id not in listed]
        if not gone:
            return []
        ids = [s.rule_id for s in gone]
        RuleSource.update(present=False).where((RuleSource.caja == self.caja.name) & RuleSource.rule_id.in_(ids)).execute()
        kept = {r.rule_id: r.version for r in Rule.select(Rule.rule_id, Rule.version).where(Rule.rule_id.in_(ids))}
        return [{"id": s.rule_id, "version": kept.get(s.rule_id), "last_version_here": s.version}
                for s in sorted(gone, key=lambda s: s.rule_id)]

    def _quarantine(self, refused: list[tuple[str, str, str | None]], now) -> set[str]:
        """Refused files kept with their reason until accepted or gone; attempts counted per pass. Returns
        the paths refused before as they are now (same content, same reason): logged then, not again."""
        open_rows = {
            r.path: r for r in Refusal.select().where(
                (Refusal.caja == self.caja.name) & Refusal.resolved_at.is_null() & Refusal.day.is_null())
            if r.path.startswith(f"{layout.RULES}/")
        }
        before = {path for path, reason, sha in refused
                  if path in open_rows and (open_rows[path].reason, open_rows[path].sha256) == (reason, sha)}
        refused_paths = set()
        for path, reason, sha in refused:
            refused_paths.add(path)
            updated = (
                Refusal.update(reason=reason, sha256=sha, last_seen=now, attempts=Refusal.attempts + 1, resolved_at=None)
                .where((Refusal.caja == self.caja.name) & (Refusal.path == path))
                .execute()
            )
            if not updated:
                Refusal.create(caja=self.caja.name, day=None, path=path, reason=reason, sha256=sha, first_seen=now, last_seen=now)
        fine = [p for p in open_rows if p not in refused_paths]
        if fine:
            Refusal.update(resolved_at=now).where((Refusal.caja == self.caja.name) & Refusal.path.in_(fine)).execute()
        return before
