"""The sync log: one row per action in the database, and JSON lines in a rotating file.

The database rows answer `syscafe-sync log`; the file is for people and log
shippers on the machine (`tail -f`, journald, Windows event forwarders).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from .db import write_transaction
from .db.models import SyncLog, utcnow
from .db.prepared import Prepared, slot
from .errors import ConfigError

LEVELS = ("debug", "info", "warning", "error")
_LOGGER_NAME = "syscafe_sync"


class _OneLine(logging.Formatter):
    """The message only: a traceback is already inside the JSON object (format_exc_info), and the text that
    logging appends after it would break the file's one-object-a-line promise to log shippers."""

    def formatException(self, ei) -> str:
        return ""

    def formatStack(self, stack_info) -> str:
        return ""


def _configure() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="at"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _quiet_until_setup() -> None:
    # Before setup() (a refusal while the home is being opened) an event has no file to go to; structlog's own
    # default would print it on stdout, in the middle of a --json document, and logging's last resort on stderr,
    # beside the CLI's one-line error. The database row is written all the same.
    logger = logging.getLogger(_LOGGER_NAME)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    _configure()


def setup(log_path: Path, max_bytes: int, backups: int) -> None:
    """Sends structlog events as JSON lines to a rotating file under home."""
    logger = logging.getLogger(_LOGGER_NAME)
    for h in list(logger.handlers):
        if getattr(h, "baseFilename", None) == str(log_path):
            return
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    except OSError as exc:
        # Typically a file the service created as another user: say so instead of a traceback.
        raise ConfigError(f"cannot write the log file {log_path} ({exc.strerror or exc}); run this command as the user the "
                          "service runs as, or give this user write access to that folder.") from None
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    handler.setFormatter(_OneLine("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    _configure()


def file_path() -> Path | None:
    """The log file events go to, None before setup()."""
    for h in logging.getLogger(_LOGGER_NAME).handlers:
        if getattr(h, "baseFilename", None):
            return Path(h.baseFilename)
    return None


def logger():
    return structlog.get_logger(_LOGGER_NAME)


_quiet_until_setup()


@dataclass
class Entry:
    action: str
    outcome: str
    caja: str | None = None
    mode: str | None = None
    level: str = "info"
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    refused: int = 0
    duration_s: float = 0.0
    message: str = ""
    details: dict = field(default_factory=dict)


_COLUMNS = ("at", "level", "caja", "action", "mode", "imported", "updated", "skipped", "refused", "duration_s",
            "outcome", "message", "details")
# One row for every caja action: kept compiled (db/prepared.py).
_INSERT = Prepared(lambda: SyncLog.insert({getattr(SyncLog, c): slot(c, getattr(SyncLog, c)) for c in _COLUMNS}))


def _fields(entry: Entry) -> dict:
    return {
        "caja": entry.caja, "action": entry.action, "mode": entry.mode, "outcome": entry.outcome,
        "imported": entry.imported, "updated": entry.updated, "skipped": entry.skipped,
        "refused": entry.refused, "duration_s": round(entry.duration_s, 3),
    }


def record(entry: Entry) -> None:
    """Writes the entry to the database and the log file."""
    with write_transaction():  # queued behind this process's other writers, not left to SQLite's busy sleeps
        row(entry)
    line(entry)


def row(entry: Entry) -> None:
    """The entry's database row, in the write transaction in hand: a caja's work writes it with the
    rows that give its lease back, one commit instead of two (on PostgreSQL, one flush of its WAL)."""
    details = json.dumps(entry.details, ensure_ascii=False, default=str) if entry.details else None
    _INSERT.execute(at=utcnow(), level=entry.level, message=entry.message, details=details, **_fields(entry))


def line(entry: Entry) -> None:
    """The entry's JSON line in the log file; `row` wrote (or writes) it to the database."""
    extra = {"details": entry.details} if entry.details else {}
    getattr(logger(), entry.level)(entry.message or entry.action, **_fields(entry), **extra)


def as_dict(row: SyncLog) -> dict:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "level": row.level,
        "caja": row.caja,
        "action": row.action,
        "mode": row.mode,
        "imported": row.imported,
        "updated": row.updated,
        "skipped": row.skipped,
        "refused": row.refused,
        "duration_s": row.duration_s,
        "outcome": row.outcome,
        "message": row.message,
    }


def query(
    caja: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    level: str | None = None,
    limit: int | None = None,
    after_id: int = 0,
) -> list[SyncLog]:
    """Rows matching every filter given, oldest first; `level` means that level and above."""
    q = SyncLog.select().where(SyncLog.id > after_id)
    if caja:
        q = q.where(SyncLog.caja == caja)
    if action:
        q = q.where(SyncLog.action == action)
    if since:
        q = q.where(SyncLog.at >= since)
    if until:
        q = q.where(SyncLog.at < until)
    if level:
        q = q.where(SyncLog.level.in_(LEVELS[LEVELS.index(level):]))
    if limit:
        # The newest `limit` rows, shown oldest first.
        rows = list(q.order_by(SyncLog.id.desc()).limit(limit))
        return rows[::-1]
    return list(q.order_by(SyncLog.id))


def prune(retention_days: int) -> int:
    cutoff = utcnow() - dt.timedelta(days=retention_days)
    return SyncLog.delete().where(SyncLog.at < cutoff).execute()


# The actions that move data between a caja and the main server; `caja list` shows the last success of each.
SYNC_ACTIONS = ("import", "loyalty sync", "rules sync", "catalogs push", "sync")


def last_success() -> dict[str, dict[str, dt.datetime]]:
    """{caja: {sync action: time of its last ok outcome}}."""
    from peewee import fn

    rows = (
        SyncLog.select(SyncLog.caja, SyncLog.action, fn.MAX(SyncLog.at).alias("last"))
        .where((SyncLog.outcome == "ok") & SyncLog.caja.is_null(False) & SyncLog.action.in_(SYNC_ACTIONS))
        .group_by(SyncLog.caja, SyncLog.action)
        .tuples()
    )
    out: dict[str, dict[str, dt.datetime]] = {}
    for caja, action, last in rows:
        # peewee applies the field's conversion to MAX() on some databases and not on others.
        out.setdefault(caja, {})[action] = last if isinstance(last, dt.datetime) else dt.datetime.fromisoformat(last)
    return out


def other_cajas(name: str) -> list[str] | None:
    """None when `name` is a caja registered or in the log (a removed caja's rows stay, and are shown);
    otherwise the names that are. A `log` refusal is logged under the name it was given: it makes no name known."""
    from .db.models import Caja

    seen = SyncLog.caja.is_null(False) & ~((SyncLog.action == "log") & (SyncLog.outcome == "refused"))
    if Caja.get_or_none(Caja.name == name) or SyncLog.get_or_none(seen & (SyncLog.caja == name)):
        return None
    return sorted({c for (c,) in SyncLog.select(SyncLog.caja).where(seen).distinct().tuples()}
                  | {c.name for c in Caja.select(Caja.name)})
