"""`init` and `demo`."""

from __future__ import annotations

import click

from .. import setup as setup_core
from .app import App, pass_app


@click.command()
@pass_app
def init(app: App):
    """Create the home, its configuration and the database schema; run again to upgrade the schema."""
    cfg = app.config(must_exist=False)
    done = setup_core.init(cfg)
    app.emit(done, "\n".join([
        f"home:          {done['home']}",
        f"configuration: {done['config']}",
        f"database:      {done['database']} (schema version {done['schema_version']})",
        f"log file:      {done['log_file']}",
        ("migrations run: " + ", ".join(done["migrations"])) if done["migrations"] else "schema already up to date",
        "next: register a caja with `syscafe-sync caja add NAME --path ROOT`",
    ]))


@click.command()
@click.option("--keep/--no-keep", default=True, show_default=True, help="Keep the throw-away folders afterwards so you can look further.")
@pass_app
def demo(app: App, keep: bool):
    """A complete run on the bundled demo company: three cajas, two days, refusals included."""
    from .. import demo as demo_core

    report = demo_core.run(home=app.home, db_url=app.db_url, keep=keep)
    app.emit(report, demo_core.render(report))
    raise SystemExit(0)


COMMANDS = [init, demo]
