"""`daemon` (the service in the foreground) and `service` (installing it as a system service)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from pathlib import Path

import click

from .. import config as config_mod
from .. import db as db_mod
from .. import startup, stopping
from ..daemon import Daemon, notify
from ..errors import UsageError
from .app import App, pass_app

UNIT_TEMPLATE = Path(__file__).resolve().parent.parent / "service" / "syscafe-sync.service"


@click.command("daemon")
@click.option("--interval", type=float, metavar="MINUTES", help="Minutes between two passes (decimals allowed: 0.05 is 3 s); default: sync.interval_minutes of the configuration.")
@click.option("--watch/--no-watch", default=None, help="Start an import as soon as a voucher file appears in a local caja folder; default: sync.watch of the configuration.")
@click.option("--shared/--alone", default=None, help="Share this PostgreSQL database with other daemons, each serving a share of the cajas and taking over those of one that stops; default: sync.shared of the configuration (alone).")
@pass_app
def daemon_cmd(app: App, interval, watch, shared):
    """Runs the service in the foreground: a full pass every interval, until SIGTERM or SIGINT (Ctrl-C).

    The first pass starts at once and catches up the days each caja missed.
    Service managers (systemd, the Windows service) start this.
    """
    # First of all: a SIGTERM while the home and the database are opened must not be lost (run() honours it).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.requested.set())
    cfg = startup.open_when_answering(app.config(), _tell_the_console)
    if cfg is None:  # stopped while it waited for the database: nothing had started
        raise SystemExit(0)
    service = Daemon(cfg, interval, watch, shared)
    if not app.json_out:
        click.echo(f"syscafe-sync daemon: a pass every {service.interval_s / 60:g} min; the log is {cfg.log_path}; stop with Ctrl-C or SIGTERM.", err=True)
    raise SystemExit(service.run())


def _tell_the_console(message: str) -> None:
    """A line of the start's wait for the database, where a person looks: stderr (the journal) and systemctl status."""
    notify(f"STATUS={message}")
    click.echo(f"syscafe-sync daemon: {message}", err=True)


@click.group("service")
def service_group():
    """Installs syscafe-sync as a system service (Windows) or prints its systemd unit (Linux)."""


# A user or group name systemd takes as it is (its strict rules), or a numeric id. An empty User= would be no
# error at all: systemd resets it, and the service runs as root.
_ACCOUNT = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_.-]{0,30}[A-Za-z0-9_.$-]?|[0-9]{1,10})")


def _unit_word(value: str, command: bool = False) -> str:
    """`value` as one word of a unit file. Unquoted, a home with a space was cut there ("Invalid environment
    assignment, ignoring"), and the service used another home. Quoted: its \\ and " escaped, % (systemd's
    specifiers) doubled, and $ too in a command line, where it names a variable."""
    if re.fullmatch(r"[A-Za-z0-9/_.,:@+=-]+", value):
        return value
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return '"' + (value.replace("$", "$$") if command else value) + '"'


@service_group.command("unit")
@click.option("--user", default="syscafe", show_default=True, help="The system account the service runs as.")
@pass_app
def unit_cmd(app: App, user):
    """Prints the systemd unit for this installation (its program, home and --db filled in); save it to /etc/systemd/system/."""
    if not _ACCOUNT.fullmatch(user):
        raise UsageError(f"--user {user!r} is not a user name systemd takes; give the system account the service runs as, "
                         "like syscafe (create it with `useradd --system syscafe`).")
    cfg = app.config(must_exist=False)
    if any(c in str(cfg.home) or c in (app.db_url or "") for c in "\n\r\0"):
        raise UsageError(f"the home {str(cfg.home)!r} or the database URL holds a line break, which a unit file cannot; "
                         "give a --home (and --db) without one.")
    _refuse_a_password(app.db_url, "a unit file is", "~/.pgpass")
    program = shutil.which("syscafe-sync") or os.path.join(os.path.dirname(sys.executable), "syscafe-sync")
    text = UNIT_TEMPLATE.read_text(encoding="utf-8")
    text = text.replace("/opt/syscafe-sync/.venv/bin/syscafe-sync", _unit_word(program, command=True))
    environment = f"Environment={_unit_word(f'SYSCAFE_SYNC_HOME={cfg.home}')}"
    if app.db_url:  # --db or SYSCAFE_SYNC_DB: without it the service would open (and init create) the SQLite file in home
        environment += f"\nEnvironment={_unit_word(f'SYSCAFE_SYNC_DB={app.db_url}')}"
    text = text.replace("Environment=SYSCAFE_SYNC_HOME=/var/lib/syscafe-sync", environment)
    text = text.replace("User=syscafe", f"User={user}").replace("Group=syscafe", f"Group={user}")
    click.echo(text, nl=False)


def _refuse_a_password(db_url: str | None, where_kept: str, pgpass: str) -> None:
    """A --db (or SYSCAFE_SYNC_DB) with a password is not written where the service keeps it, readable by every user."""
    if not db_url:
        return
    parsed = config_mod.parse_db_url(db_url, lambda shown: f"--db / SYSCAFE_SYNC_DB: the database URL {shown!r}", UsageError)
    if parsed.password or config_mod.has_query_password(db_url):
        raise UsageError(f"the database URL {db_mod.redact(db_url)} holds a password, and {where_kept} readable by "
                         f"every user of the machine; give the URL without it, and the password in {pgpass} of the "
                         "service's account, or put the whole URL in database.url of config.toml, readable by that account only.")


@service_group.command("install")
@click.option("--start", type=click.Choice(["auto", "manual"]), default="auto", show_default=True, help="Start with Windows, or only when asked.")
@pass_app
def install_cmd(app: App, start):
    """Installs the Windows service that runs `daemon` for this home and database (Windows only; run as Administrator)."""
    # Before the platform check: the refusal is the same everywhere, and so can be tested anywhere.
    _refuse_a_password(app.db_url, "the service's parameters in the registry are", r"%APPDATA%\postgresql\pgpass.conf")
    winservice = _winservice()
    cfg = app.open()
    winservice.install(str(cfg.home), app.db_url, start)
    click.echo(f"installed the Windows service {winservice.NAME} for home {cfg.home}; start it with: sc start {winservice.NAME}")


@service_group.command("remove")
def remove_cmd():
    """Removes the Windows service (Windows only; stop it first: sc stop syscafe-sync)."""
    winservice = _winservice()
    winservice.remove()
    click.echo(f"removed the Windows service {winservice.NAME}")


def _winservice():
    if sys.platform != "win32":
        raise UsageError("`service install` and `service remove` are for Windows; on Linux run "
                         "`syscafe-sync service unit > /etc/systemd/system/syscafe-sync.service` and `systemctl enable --now syscafe-sync`.")
    try:
        from .. import winservice
    except ImportError as exc:
        raise UsageError(f"the Windows service needs pywin32 ({exc}); install it with `pip install pywin32` in this environment.") from exc
    return winservice


COMMANDS = [daemon_cmd, service_group]
