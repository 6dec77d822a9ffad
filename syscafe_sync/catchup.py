"""Which process dates a pass imports for a caja, so that nothing sold while the server was off is missed.

Today, always. And every earlier day of the window (`sync.catch_up_days`,
today included) that is not closed: never imported without failing, or
imported before its `closing.json` was in place. A caja that sells past
midnight keeps writing the day before until it closes it, and a server off
past more than one midnight may have imported any of those days only partway;
each is finished at the next pass, as long as it is inside the window.
"""

from __future__ import annotations

import datetime as dt

from .db import write_transaction
from .db.models import ImportedDay, utcnow


def mark(caja: str, day: dt.date, closed: bool) -> None:
    """Records that `day` of `caja` was imported without failing; `closed`: nothing more will come for it."""
    with write_transaction():
        ImportedDay.insert(caja=caja, day=day.isoformat(), closed=closed, at=utcnow()).on_conflict(
            conflict_target=[ImportedDay.caja, ImportedDay.day],
            update={ImportedDay.closed: closed, ImportedDay.at: utcnow()},
        ).execute()


def days(caja: str, today: dt.date, window: int) -> list[dt.date]:
    first = today - dt.timedelta(days=window - 1)
    closed = {
        dt.date.fromisoformat(day)
        for (day,) in ImportedDay.select(ImportedDay.day)
        .where((ImportedDay.caja == caja) & (ImportedDay.day >= first.isoformat()) & (ImportedDay.closed == True))  # noqa: E712
        .tuples()
    }
    every = [first + dt.timedelta(days=n) for n in range(window)]
    return [day for day in every if day == today or day not in closed]
