"""`import` and `vouchers list / show / refused`."""

from __future__ import annotations

import datetime as dt
import sys

import click

from .. import importer, vouchers
from .app import App, DateParam, Group, pass_app, render_table, resolve_day
from .interrupt import stop_at_a_safe_point_on_ctrl_c


class _ProgressBars:
    """One progress bar per caja on a terminal's stderr."""

    def __init__(self):
        self.caja, self.bar, self.done = None, None, 0

    def __call__(self, caja: str, done: int, total: int) -> None:
        if caja != self.caja:
            self.close()
            self.caja, self.done = caja, 0
            self.bar = click.progressbar(length=total, label=f"{caja:<10}", file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("import")
@click.argument("cajas", nargs=-1)
@click.option("--date", "day", type=DateParam(), help="The process date (YYYY-MM-DD, today, yesterday); default: today in the company's time zone.")
@click.option("--mode", type=click.Choice(importer.MODES), default="skip", show_default=True,
              help="skip: only vouchers not yet imported. overwrite: every voucher of the day, updating those that changed.")
@pass_app
def import_cmd(app: App, cajas, day, mode):
    """Import the vouchers of a process date from CAJAS (default: every caja)."""
    cfg = app.open()
    bars = _ProgressBars() if app.interactive else None
    stop_at_a_safe_point_on_ctrl_c()
    try:
        result = importer.import_day(cfg, cajas, resolve_day(day, cfg), mode, progress=bars)
    finally:
        if bars:
            bars.close()
    app.emit(result.as_dict(), render_results(result))
    if result.failed:
        raise SystemExit(1)


def render_results(result: importer.ImportResult) -> str:
    rows = [[r.caja, r.outcome, r.imported, r.updated, r.skipped, r.refused, f"{r.duration_s:.2f}"] for r in result.results]
    out = [f"import {result.day} ({result.mode})",
           render_table(["caja", "outcome", "imported", "updated", "skipped", "refused", "seconds"], rows)]
    for r in result.results:
        if r.outcome != "ok":
            out.append(f"{r.caja}: {r.message}")
        for f in r.refusals:
            out.append(f"{r.caja}: refused {f['path']}: {f['reason']}")
    return "\n".join(out)


@click.group(cls=Group, name="vouchers")
def vouchers_group():
    """What was imported: list, show one, and the refused (quarantined) files."""


@vouchers_group.command("list")
@click.option("--caja", help="Only this caja.")
@click.option("--date", "day", type=DateParam(), help="Only this process date.")
@click.option("--code", help="Only this voucher code.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@pass_app
def vouchers_list(app: App, caja, day, code, limit):
    """List imported vouchers."""
    cfg = app.open()
    rows = vouchers.list_vouchers(caja, resolve_day(day, cfg), code, limit)
    if app.json_out:
        app.emit({"vouchers": rows})
        return
    click.echo(render_table(
        ["caja", "voucher", "date", "issued", "status", "total", "findings", "accounting"],
        [[v["caja"], f"{v['code']}-{v['number']}", v["date"], _clock(v["issued_at"], cfg.timezone), v["status"], v["total"], len(v["findings"]) or "",
          v["accounting"] + (f": {v['accounting_reason']}" if v["accounting"] in ("held", "failed") else "")] for v in rows],
    ))
    click.echo(f"{len(rows)} vouchers")


def _clock(issued_at: str, tz) -> str:
    """The time of day on the company's clock, whatever offset the POS wrote."""
    return dt.datetime.fromisoformat(issued_at).astimezone(tz).strftime("%H:%M:%S")


@vouchers_group.command("show")
@click.argument("voucher")
@pass_app
def vouchers_show(app: App, voucher):
    """Show one voucher, given as CODE-NUMBER (e.g. FV2-1547): header, lines, taxes, payments, findings."""
    app.open()
    v = vouchers.show(voucher)
    if app.json_out:
        app.emit(v)
        return
    click.echo(f"{v['code']}-{v['number']}  {v['kind'] or ''}  {v['status']}  caja {v['caja']}  date {v['date']}  issued {v['issued_at']}")
    click.echo(f"customer {v['customer']['id']} {v['customer']['name'] or ''}   seller {v['seller'] or '-'}   cashier {v['cashier'] or '-'}")
    click.echo(render_table(
        ["#", "product", "description", "qty", "unit price", "discount", "base", "taxes"],
        [[line["line_no"], line["product"], line["description"], line["quantity"], line["unit_price"], line["discount"], line["base"],
          ", ".join(f"{t['type']} {t['rate']}% {t['amount']}" for t in line["taxes"])] for line in v["lines"]],
    ))
    t = v["totals"]
    click.echo(f"base {t['base']}  tax {t['tax']}  tip {t['tip']}  total {t['total']}")
    click.echo("payments: " + (", ".join(f"{p['method']} {p['amount']}" for p in v["payments"]) or "none"))
    for f in v["findings"]:
        click.echo(f"finding ({f['kind']}): {f['message']}")
    click.echo(f"file: {v['path']} (sha256 {v['sha256'][:12]}…), imported {v['imported_at']}")
    click.echo(f"accounting: {v['accounting']}" + (f" ({v['accounting_reason']})" if v["accounting_reason"] else ""))


@vouchers_group.command("refused")
@click.option("--caja", help="Only this caja.")
@click.option("--date", "day", type=DateParam(), help="Only this process date.")
@click.option("--all", "include_resolved", is_flag=True, help="Also files that were refused once and imported later.")
@pass_app
def vouchers_refused(app: App, caja, day, include_resolved):
    """Files refused (quarantined) with their reasons; each is tried again on every pass."""
    cfg = app.open()
    rows = vouchers.refused(caja, resolve_day(day, cfg), include_resolved)
    if app.json_out:
        app.emit({"refused": rows})
        return
    click.echo(render_table(["caja", "file", "attempts", "reason"], [[r["caja"], r["path"], r["attempts"], r["reason"]] for r in rows]))


COMMANDS = [import_cmd, vouchers_group]
