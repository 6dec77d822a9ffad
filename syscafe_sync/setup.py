"""Creating and upgrading a home: folders, configuration, database schema."""

from __future__ import annotations

import datetime as dt
import json

from . import config as config_mod
from . import db as db_mod
from . import findings, resolutions, synclog
from .db import migrations, write_transaction
from .db.models import Resolution, Voucher
from .errors import ConfigError


def open_home(home, db_url) -> config_mod.Config:
    """An initialised home's configuration, with the database connected and the log file set up."""
    cfg = config_mod.load(home, db_url)
    return open_config(cfg)


def open_config(cfg: config_mod.Config) -> config_mod.Config:
    db_mod.require_file(cfg.db_url)
    db = db_mod.connect(cfg.db_url)
    db_mod.require_schema(db)
    open_log(cfg)
    return cfg


def open_log(cfg: config_mod.Config) -> None:
    """The home's rotating JSON log file, as its configuration sizes it."""
    synclog.setup(cfg.log_path, cfg.get("log", "file_max_bytes"), cfg.get("log", "file_backups"))


def recheck_calendar(tz) -> str:
    """Migration 11's data: builds before it took a voucher's day in the offset the POS wrote, so an evening
    sale written in UTC was flagged as another day's (and one written east of the company's offset could be
    missed), and a resolution's validity was checked on that day too. Both are brought onto the company's
    calendar; returns what changed, for init's log row."""
    days = recheck_other_day(tz)
    numbering = sum(resolutions.recheck(code, tz) for (code,) in Resolution.select(Resolution.code).distinct().tuples())
    return f"the day of {days} vouchers and the numbering of {numbering} checked again on the company's calendar"


def recheck_other_day(tz) -> int:
    """Brings every voucher's "issued on another day than its folder" finding in line with the company's
    calendar. Every voucher is looked at, its day and issued_at only: about 5 µs a voucher here."""
    changed, last = 0, 0
    while True:  # by id, a page at a time: a database of years of sales is not read into memory at once
        with write_transaction():
            page = list(Voucher.select(Voucher.id, Voucher.day, Voucher.issued_at, Voucher.findings)
                        .where(Voucher.id > last).order_by(Voucher.id).limit(5000).tuples())
            for vid, day, issued_at, found in page:
                now = findings.other_day(dt.datetime.fromisoformat(issued_at), issued_at, dt.date.fromisoformat(day), tz)
                if now is None and findings.OTHER_DAY not in found:
                    continue
                before = json.loads(found)
                kept = [f for f in before if not (f.get("kind") == "date" and f["message"].startswith(findings.OTHER_DAY))]
                at = next((i for i, f in enumerate(before) if f not in kept), len(kept))
                after = kept[:at] + ([now] if now else []) + kept[at:]
                if after != before:
                    Voucher.update(findings=json.dumps(after, ensure_ascii=False)).where(Voucher.id == vid).execute()
                    changed += 1
        if len(page) < 5000:
            return changed
        last = page[-1][0]


def init(cfg: config_mod.Config) -> dict:
    try:
        cfg.home.mkdir(parents=True, exist_ok=True)
        config_path = config_mod.write_default(cfg.home)
    except OSError as exc:
        raise ConfigError(f"cannot create the home {cfg.home} and its {config_mod.CONFIG_FILE} ({exc.strerror or exc}); "
                          "give --home (or SYSCAFE_SYNC_HOME) a folder this user may write, or run as the user "
                          "the service runs as.") from None
    # Re-read: a configuration that already existed may hold values that must be valid.
    cfg = config_mod.load(cfg.home, cfg.db_url)
    db = db_mod.connect(cfg.db_url)
    fixed: list[str] = []
    ran = migrations.upgrade(db, {migrations.CALENDAR_DAYS_VERSION: lambda: fixed.append(recheck_calendar(cfg.timezone))})
    open_log(cfg)
    message = ("schema upgraded: " + "; ".join(ran + fixed)) if ran else "schema already up to date"
    synclog.record(synclog.Entry(action="init", outcome="ok", message=message))
    return {
        "home": str(cfg.home),
        "config": str(config_path),
        "database": db_mod.redact(cfg.db_url),
        "schema_version": migrations.current_version(db),
        "migrations": ran,
        "log_file": str(cfg.log_path),
    }
