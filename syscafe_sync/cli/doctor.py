"""`doctor`: pre-flight checks, each with a plain fix."""

from __future__ import annotations

import click

from .. import doctor, setup, synclog
from .app import App, pass_app, render_table


@click.command("doctor")
@pass_app
def doctor_cmd(app: App):
    """Checks the main server: home, database, every caja and its caja.json, codes, catalogs, accounting mapping, clock, the service.

    Exits 1 when something needs fixing; each problem comes with its fix.
    """
    cfg = app.config()
    checks = doctor.run(cfg)
    bad = [c for c in checks if c.status != "ok"]
    if not any(c.check == "database reachable" and c.status == "fail" for c in checks):
        setup.open_log(cfg)
        synclog.record(synclog.Entry(
            action="doctor", outcome="failed" if doctor.failed(checks) else "ok", level="warning" if bad else "info",
            message="; ".join(f"{c.check}: {c.message}" for c in bad) or f"all {len(checks)} checks ok"))
    rows = [[c.status.upper() if c.status != "ok" else "ok", c.check, c.message] for c in checks]
    fixes = [f"fix {c.check}: {c.fix}" for c in bad if c.fix]
    app.emit(doctor.as_dict(checks), "\n".join([render_table(["", "check", "result"], rows)] + fixes))
    if doctor.failed(checks):
        raise SystemExit(1)


COMMANDS = [doctor_cmd]
