"""`sync`: one full pass, what the service does every interval."""

from __future__ import annotations

import click

from .. import passes
from .app import App, DateParam, pass_app, render_table, resolve_day
from .interrupt import stop_at_a_safe_point_on_ctrl_c


@click.command("sync")
@click.argument("cajas", nargs=-1)
@click.option("--date", "day", type=DateParam(), help="The process date to import (YYYY-MM-DD, today, yesterday); default: today in the company's time zone.")
@pass_app
def sync_cmd(app: App, cajas, day):
    """One full pass over CAJAS (default: every caja): import (skip), loyalty, rules, catalogs (partial)."""
    cfg = app.open()
    stop_at_a_safe_point_on_ctrl_c()
    result = passes.run_pass(cfg, cajas, resolve_day(day, cfg))
    app.emit(result.as_dict(), render(result))
    if result.failed:
        raise SystemExit(1)


def render(result: passes.PassResult) -> str:
    by_caja: dict[str, list[str]] = {}
    notes = []
    parts = [("import", result.imports, lambda r: f"+{r.imported} ={r.skipped} !{r.refused}"),
             ("loyalty", result.points, lambda r: f"+{r.entries} !{r.refused}"),
             ("rules", result.held_rules, lambda r: f"+{r.new} ~{r.updated} x{r.conflicts}"),
             ("catalogs", result.pushed, lambda r: f"{sum(c.upserts for c in r.catalogs)} up, {r.bytes_written} B")]
    for label, part, counts in parts:
        for r in (part.results if part else []):
            by_caja.setdefault(r.caja, []).append(counts(r) if r.outcome == "ok" else r.outcome)
            if r.outcome != "ok":
                notes.append(f"{r.caja} {label}: {r.message}")
    headers = ["caja", "import", "loyalty", "rules"] + (["catalogs"] if result.pushed else [])
    rows = [[caja] + cells for caja, cells in by_caja.items()]
    out = [f"sync {result.day} ({result.duration_s:.2f} s)", render_table(headers, rows)] + notes
    out += [f"finding: {f['message']}" for f in result.points.findings]
    return "\n".join(out)


COMMANDS = [sync_cmd]
