"""The command line (SPEC §2): parse, call the core, render. No sync logic lives here."""

from __future__ import annotations

import click

from .. import __version__
from .app import App, Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", envvar="SYSCAFE_SYNC_HOME", type=click.Path(file_okay=False), help="Where the configuration, the embedded database and the logs live (env SYSCAFE_SYNC_HOME).")
@click.option("--db", "db_url", envvar="SYSCAFE_SYNC_DB", metavar="URL", help="The main database: sqlite:///PATH (default, inside home) or postgresql://… (env SYSCAFE_SYNC_DB; config.toml: [database] url).")
@click.option("--json", "json_out", is_flag=True, help="Machine-readable output: one JSON document (JSON lines for streams).")
@click.version_option(__version__, prog_name="syscafe-sync")
@click.pass_context
def cli(ctx: click.Context, home, db_url, json_out):
    """syscafe-sync consolidates the cajas (points of sale) of a LAN into one main server.

    Start with `syscafe-sync init`, register each caja with `caja add`, then
    `import`. `syscafe-sync demo` shows everything on bundled data.
    """
    ctx.obj = App(home=home, db_url=db_url, json_out=json_out)


def _register() -> None:
    from . import accounting, cajas, catalogs, completeness, doctor, imports, logs, passes, service, setup
    from . import loyalty as loyalty_cli
    from . import rules as rules_cli

    for module in (setup, cajas, imports, catalogs, logs, loyalty_cli, rules_cli, passes, service, doctor, completeness, accounting):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    try:
        cli(prog_name="syscafe-sync")
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours. Python's documented recipe.
        import os
        import sys

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
