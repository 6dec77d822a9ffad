"""`caja add / list / edit / remove / open`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import click

from .. import health, overview, registry, synclog
from .app import App, Group, pass_app, render_table


@click.group(cls=Group)
def caja():
    """Register and inspect cajas (Syscafe's "Definir rutas")."""


def _log(action: str, name: str, message: str) -> None:
    synclog.record(synclog.Entry(action=action, outcome="ok", caja=name, message=message))


@caja.command("add")
@click.argument("name")
@click.option("--path", "root", required=True, help="The caja's data folder: a local path, a mounted share, a UNC path (\\\\CAJA2\\Syscafe\\Datos\\EMP01) or smb://USER@HOST[:PORT]/SHARE/PATH (password in config.toml or SYSCAFE_SYNC_SMB_PASSWORD, never in the URL).")
@click.option("--ip", help="The caja machine's IP or host name; lets `caja list` say whether the machine answers.")
@click.option("--code", "codes", multiple=True, help="A voucher code of this caja (repeat for each); default: the codes in the root's caja.json.")
@pass_app
def caja_add(app: App, name, root, ip, codes):
    """Register caja NAME with its data folder, IP and voucher codes."""
    cfg = app.open()
    done = registry.add(name, root, ip, codes, timeout=cfg.limits["connect_timeout_s"], config=cfg)
    _log("caja add", name, f"registered with root {done.caja.root}, codes {', '.join(done.codes)}")
    for w in done.warnings:
        synclog.record(synclog.Entry(action="caja add", outcome="ok", caja=name, level="warning", message=w))
    app.emit(
        {"caja": name, "root": done.caja.root, "ip": done.caja.ip, "codes": done.codes, "warnings": done.warnings},
        "\n".join([f"registered {name}: {done.caja.root}, codes {', '.join(done.codes)}"] + [f"warning: {w}" for w in done.warnings]),
    )


@caja.command("list")
@pass_app
def caja_list(app: App):
    """Every caja: root, IP, codes, reachable or not, last successful sync per action, pending vouchers."""
    cfg = app.open()
    rows = overview.overview(cfg)
    daemon = health.daemon_status()
    if app.json_out:
        app.emit({"cajas": rows, "daemon": daemon})
        return
    if not rows:
        click.echo("no cajas registered yet; add one with `syscafe-sync caja add NAME --path ROOT`")
        return
    table = []
    for r in rows:
        reach = "yes" if r["reachable"] else "NO"
        if r["ip"]:
            reach += f" (ip {'answers' if r['ip_answers'] else 'silent'})"
        last = ", ".join(f"{a} {t[:16].replace('T', ' ')}" for a, t in r["last_sync"].items()) or "never"
        pending = "?" if r["pending"] is None else r["pending"]
        table.append([r["name"], r["root"], r["ip"] or "", ",".join(r["codes"]), reach, pending, r["refused_open"], last])
    click.echo(render_table(["caja", "root", "ip", "codes", "reachable", "pending", "refused", "last ok (UTC)"], table))
    for r in rows:
        for w in ([r["reason"]] if r["reason"] else []) + r["warnings"]:
            click.echo(f"{r['name']}: {w}")
        if r["failing"]:
            f = r["failing"]
            click.echo(f"{r['name']}: failing {f['passes']} passes in a row since {f['since'][:16].replace('T', ' ')} UTC: {f['reason']}")
    click.echo(health.describe_daemon(daemon))


@caja.command("edit")
@click.argument("name")
@click.option("--name", "new_name", help="A new name (only while it has no imported vouchers).")
@click.option("--path", "root", help="A new data folder.")
@click.option("--ip", help="A new IP or host name ('' to clear it).")
@click.option("--code", "add_codes", multiple=True, help="A voucher code to add (repeatable).")
@click.option("--remove-code", "remove_codes", multiple=True, help="A voucher code to take away (repeatable).")
@pass_app
def caja_edit(app: App, name, new_name, root, ip, add_codes, remove_codes):
    """Change caja NAME: name, root, IP or codes."""
    cfg = app.open()
    done = registry.edit(name, new_name=new_name, root=root, ip=ip, add_codes=add_codes, remove_codes=remove_codes,
                         timeout=cfg.limits["connect_timeout_s"], config=cfg)
    _log("caja edit", done.caja.name, f"root {done.caja.root}, ip {done.caja.ip or '-'}, codes {', '.join(done.codes)}")
    app.emit(
        {"caja": done.caja.name, "root": done.caja.root, "ip": done.caja.ip, "codes": done.codes, "warnings": done.warnings},
        "\n".join([f"{done.caja.name}: {done.caja.root}, ip {done.caja.ip or '-'}, codes {', '.join(done.codes)}"]
                  + [f"warning: {w}" for w in done.warnings]),
    )


@caja.command("remove")
@click.argument("name")
@pass_app
def caja_remove(app: App, name):
    """Forget caja NAME; the vouchers imported from it stay."""
    app.open()
    kept = registry.remove(name)
    _log("caja remove", name, f"removed; {kept} imported vouchers kept")
    app.emit({"caja": name, "removed": True, "vouchers_kept": kept}, f"removed {name}; its {kept} imported vouchers stay")


@caja.command("open")
@click.argument("name")
@click.option("--print", "just_print", is_flag=True, help="Only print the root, do not open a window.")
@pass_app
def caja_open(app: App, name, just_print):
    """Open caja NAME's root in the system's file manager; print it where there is none."""
    app.open()
    root = registry.get(name).root
    opener = None if just_print or app.json_out else _file_manager()
    if opener:
        subprocess.Popen([*opener, root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app.emit({"caja": name, "root": root, "opened": bool(opener)}, root)


def _file_manager() -> list[str] | None:
    if sys.platform == "win32":
        return ["explorer"]
    if sys.platform == "darwin":
        return ["open"]
    if (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


COMMANDS = [caja]
