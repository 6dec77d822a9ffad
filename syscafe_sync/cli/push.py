"""`catalogs push`."""

from __future__ import annotations

import click

from .. import push as push_core
from .app import App, pass_app, render_table
from .interrupt import stop_at_a_safe_point_on_ctrl_c


@click.command("push")
@click.argument("cajas", nargs=-1)
@click.option("--mode", type=click.Choice(push_core.MODES), default="partial", show_default=True,
              help="partial: only the changes since what the caja has. total: every record, keeping the caja's own. "
                   "replace: the caja gets exactly the main server's catalog.")
@click.option("--dry-run", is_flag=True, help="Print what each caja would gain, change and lose; write nothing.")
@pass_app
def push_cmd(app: App, cajas, mode, dry_run):
    """Push the main server's catalogs to CAJAS (default: every caja) ("Actualizar catálogos")."""
    cfg = app.open()
    stop_at_a_safe_point_on_ctrl_c()
    result = push_core.push(cfg, cajas, mode, dry_run)
    app.emit(result.as_dict(), render(result))
    if result.failed:
        raise SystemExit(1)


def render(result: push_core.PushResult) -> str:
    title = f"catalogs push ({result.mode}{', dry run: nothing written' if result.dry_run else ''})"
    rows = []
    for r in result.results:
        if not r.catalogs:
            rows.append([r.caja, "", r.outcome, "", "", "", "", ""])
        for c in r.catalogs:
            rows.append([r.caja, c.catalog, r.outcome, c.mode, c.version, c.upserts, c.deletes,
                         f"fallback: {c.fallback}" if c.fallback else ""])
    out = [title, render_table(["caja", "catalog", "outcome", "done", "version", "upserts", "deletes", "note"], rows)]
    for r in result.results:
        if r.outcome != "ok":
            out.append(f"{r.caja}: {r.message}")
        elif not result.dry_run:
            out.append(f"{r.caja}: {r.bytes_written} bytes written")
        if result.dry_run:
            for c in r.catalogs:
                for what in ("gain", "change", "lose"):
                    keys = getattr(c, what)
                    if keys:
                        shown = ", ".join(keys[:10]) + (f" … (+{len(keys) - 10})" if len(keys) > 10 else "")
                        out.append(f"{r.caja} {c.catalog} would {what} {len(keys)}: {shown}")
    return "\n".join(out)
