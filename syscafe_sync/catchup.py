"""Which process dates a pass imports for a caja, so that nothing sold while the server was off is missed.

Today, always. Every earlier day of the window (`sync.catch_up_days`, today
included) that was never imported without failing. And yesterday until it is
imported with its `closing.json` in place, since a caja that sells past
midnight keeps writing the day before until it closes it.
"""

from __future__ import annotations

import datetime as dt

from .db import write_transaction
from .db.models import ImportedDay, utcnow


def mark(caja: str, day: dt.date, closed: bool) -> None:
    """Records that `day` of `caja` was imported without failing."""
    with write_transaction():
        ImportedDay.insert(caja=caja, day=day.isoformat(), closed=closed, at=utcnow()).on_conflict(
            conflict_target=[ImportedDay.caja, ImportedDay.day],
            update={ImportedDay.closed: closed, ImportedDay.at: utcnow()},
        ).execute()


def days(caja: str, today: dt.date, window: int) -> list[dt.date]:
    first = today - dt.timedelta(days=window - 1)
    done = {
        dt.date.fromisoformat(day): closed
        for day, closed in ImportedDay.select(ImportedDay.day, ImportedDay.closed)
        .where((ImportedDay.caja == caja) & (ImportedDay.day >= first.isoformat()))
        .tuples()
    }
    yesterday = today - dt.timedelta(days=1)
    out = []
    for n in range(window):
        day = first + dt.timedelta(days=n)
        if day == today or day not in done or (day == yesterday and not done[day]):
            out.append(day)
    return out
