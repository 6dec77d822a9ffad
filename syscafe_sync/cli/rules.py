"""`rules sync` and `rules list`."""

from __future__ import annotations

import click

from .. import rules as rules_core
from .app import App, Group, pass_app, render_table
from .interrupt import stop_at_a_safe_point_on_ctrl_c


@click.group(cls=Group, name="rules")
def rules():
    """Commercial rules ("reglas comerciales") defined at the cajas: import them, list them."""


@rules.command("sync")
@click.argument("cajas", nargs=-1)
@pass_app
def rules_sync(app: App, cajas):
    """Import the commercial rules of CAJAS (default: every caja, in the registry's order).

    The main server keeps one version of each rule: the highest version, then
    the latest updated_at. The same id and version with different content is a
    conflict: logged with both cajas named; the version held stays unless the
    other one's updated_at is later. Exit 1 when a caja could not be served or
    a file was refused; conflicts alone exit 0.
    """
    cfg = app.open()
    stop_at_a_safe_point_on_ctrl_c()
    result = rules_core.sync(cfg, cajas)
    app.emit(result.as_dict(), render_sync(result))
    if result.failed:
        raise SystemExit(1)


def render_sync(result: rules_core.RulesResult) -> str:
    rows = [[r.caja, r.outcome, r.new, r.updated, r.conflicts, r.refused, len(r.missing), f"{r.duration_s:.2f}"]
            for r in result.results]
    out = ["rules sync",
           render_table(["caja", "outcome", "new", "updated", "conflicts", "refused", "disappeared", "seconds"], rows)]
    for r in result.results:
        if r.outcome != "ok":
            out.append(f"{r.caja}: {r.message}")
        for f in r.refusals:
            out.append(f"{r.caja}: refused {f['path']}: {f['reason']}")
        for c in r.conflict_details:
            out.append(f"{r.caja}: {c['message']}")
        for m in r.missing_details:
            out.append(f"{r.caja}: rule {m['id']} disappeared from {r.caja}; the main server keeps version {m['version']}")
    return "\n".join(out)


@rules.command("list")
@pass_app
def rules_list(app: App):
    """List the commercial rules the main server holds, with the caja each came from and the cajas that have it."""
    app.open()
    rows = rules_core.list_rules()
    if app.json_out:
        app.emit({"rules": rows})
        return
    click.echo(render_table(
        ["id", "version", "caja", "active", "name", "updated_at", "at cajas", "other versions at"],
        [[r["id"], r["version"], r["caja"], {True: "yes", False: "no"}.get(r["active"], ""), r["name"], r["updated_at"],
          ", ".join(r["sources"]), ", ".join(f"{e['caja']} (v{e['version']})" for e in r["elsewhere"])]
         for r in rows],
    ))
    click.echo(f"{len(rows)} rules")


COMMANDS = [rules]
