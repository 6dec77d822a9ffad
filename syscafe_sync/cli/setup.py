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


@click.command()
@click.option("--to", "target", required=True, metavar="URL",
              help="The empty database to copy into: postgresql://USER@HOST/DBNAME, or a new file sqlite:///PATH (the way back).")
@click.option("--batch", default=2000, show_default=True, help="Rows per INSERT (fewer into SQLite when its limit on parameters needs it).")
@pass_app
def migrate(app: App, target: str, batch: int):
    """Copy the main database into an empty PostgreSQL database (or back into a new SQLite file), then verify every table.

    The schema is created there by the same migrations as `init`; every table is
    copied in batches in one transaction and checked by row count and sha256.
    A target that already holds data is refused (exit 2) and left as it was; a
    copy that does not verify is rolled back (exit 1).
    Afterwards point `[database] url` in config.toml (or --db / SYSCAFE_SYNC_DB) at the target.
    """
    from .. import migrate as migrate_core
    from .. import synclog
    from ..db.models import database

    cfg = app.open()
    show = (lambda line: click.echo(line, err=True)) if not app.json_out else (lambda _: None)
    done = migrate_core.copy(database.obj, cfg.db_url, target, batch, show)
    synclog.record(synclog.Entry(action="migrate", outcome="ok", duration_s=done["duration_s"],
                                 message=f"copied to {done['target']}: {done['rows']} rows in {len(done['tables'])} tables, "
                                         "counts and sha256 verified", details=done))
    # The line to paste: the redacted URL would set the password to "***"; the password belongs in ~/.pgpass.
    paste = done["target"].replace(":***@", "@", 1)
    pgpass = " and its password in ~/.pgpass of the service's user" if paste != done["target"] else ""
    app.emit(done, "\n".join(
        [f"{t['table']:<16} {t['rows']:>9} rows  sha256 {t['sha256'][:16]}…" for t in done["tables"]]
        + [f"copied and verified {done['rows']} rows in {done['duration_s']:.1f} s into {done['target']}",
           f"next: put url = \"{paste}\" under [database] in {cfg.config_path}{pgpass} (or give --db / SYSCAFE_SYNC_DB) "
           "from now on; `syscafe-sync doctor` checks it"]))


COMMANDS = [init, demo, migrate]
