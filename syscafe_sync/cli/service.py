"""`daemon` (the service in the foreground) and `service` (installing it as a system service)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import click

from .. import stopping
from ..daemon import Daemon
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
    cfg = app.open()
    service = Daemon(cfg, interval, watch, shared)
    if not app.json_out:
        click.echo(f"syscafe-sync daemon: a pass every {service.interval_s / 60:g} min; the log is {cfg.log_path}; stop with Ctrl-C or SIGTERM.", err=True)
    raise SystemExit(service.run())


@click.group("service")
def service_group():
    """Installs syscafe-sync as a system service (Windows) or prints its systemd unit (Linux)."""


@service_group.command("unit")
@click.option("--user", default="syscafe", show_default=True, help="The system account the service runs as.")
@pass_app
def unit_cmd(app: App, user):
    """Prints the systemd unit for this installation (its program and home filled in); save it to /etc/systemd/system/."""
    cfg = app.config(must_exist=False)
    program = shutil.which("syscafe-sync") or os.path.join(os.path.dirname(sys.executable), "syscafe-sync")
    text = UNIT_TEMPLATE.read_text(encoding="utf-8")
    text = text.replace("/opt/syscafe-sync/.venv/bin/syscafe-sync", program)
    text = text.replace("Environment=SYSCAFE_SYNC_HOME=/var/lib/syscafe-sync", f"Environment=SYSCAFE_SYNC_HOME={cfg.home}")
    text = text.replace("User=syscafe", f"User={user}").replace("Group=syscafe", f"Group={user}")
    click.echo(text, nl=False)


@service_group.command("install")
@click.option("--start", type=click.Choice(["auto", "manual"]), default="auto", show_default=True, help="Start with Windows, or only when asked.")
@pass_app
def install_cmd(app: App, start):
    """Installs the Windows service that runs `daemon` for this home and database (Windows only; run as Administrator)."""
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
