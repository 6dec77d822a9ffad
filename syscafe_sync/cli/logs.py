"""`log`: the sync log (Syscafe's "Examinar log")."""

from __future__ import annotations

import json
import time

import click

from .. import synclog
from .app import App, parse_moment, pass_app


def _line(row, tz) -> str:
    local = row.at.astimezone(tz)
    counts = f"+{row.imported} ~{row.updated} ={row.skipped} !{row.refused}" if row.action == "import" else ""
    return "  ".join(
        x for x in [
            local.strftime("%Y-%m-%d %H:%M:%S"), f"{row.level:<7}", f"{row.caja or '-':<8}", f"{row.action:<17}",
            f"{row.mode or '':<9}", f"{row.outcome:<11}", f"{counts:<16}", f"{row.duration_s:6.2f}s", row.message,
        ]
    )


@click.command("log")
@click.option("--caja", help="Only this caja.")
@click.option("--action", help="Only this action (import, caja add, init, …).")
@click.option("--since", metavar="T", help="From this time: 2026-11-22, 2026-11-22T14:00, today, yesterday, 2h, 7d.")
@click.option("--until", metavar="T", help="Before this time (same forms as --since).")
@click.option("--level", type=click.Choice(synclog.LEVELS), help="This level and above.")
@click.option("--limit", type=click.IntRange(min=1, max=2**63 - 1), help="Only the newest N rows.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new rows as they come (Ctrl-C stops).")
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True, help="Seconds between two looks with --follow.")
@pass_app
def log_cmd(app: App, caja, action, since, until, level, limit, follow, poll):
    """Show the sync log: date, time, caja, action, mode, counts, duration, outcome, message."""
    cfg = app.open()
    tz = cfg.timezone
    filters = dict(
        caja=caja, action=action, level=level,
        since=parse_moment(since, cfg, "--since") if since else None,
        until=parse_moment(until, cfg, "--until") if until else None,
    )
    if caja:
        _known_caja(caja, follow)
    last_id = 0

    def show(rows):
        nonlocal last_id
        for row in rows:
            last_id = max(last_id, row.id)
            click.echo(json.dumps(synclog.as_dict(row), ensure_ascii=False) if app.json_out else _line(row, tz))

    show(synclog.query(limit=limit, **filters))
    if not follow:
        return
    try:
        while True:
            time.sleep(poll)
            show(synclog.query(after_id=last_id, **filters))
    except KeyboardInterrupt:
        pass


def _known_caja(name: str, follow: bool) -> None:
    """A mistyped or wrongly cased name (caja2 for CAJA2) would print nothing and exit 0: read as "nothing
    happened to that caja". --follow may wait for a caja about to be registered: it is told, on stderr, and goes on."""
    from ..errors import UnknownCaja

    known = synclog.other_cajas(name)
    if known is None:
        return
    said = (f"--caja {name!r}: no caja of that name is registered or in the log (known: {', '.join(known) or 'none yet'}); "
            "names are case-sensitive, see `syscafe-sync caja list`")
    if follow:
        click.echo(f"Note: {said}; waiting for its rows.", err=True)
        return
    raise UnknownCaja(said + ".")


COMMANDS = [log_cmd]
