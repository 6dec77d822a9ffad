"""`vouchers check`, `audit` and `resolution`: proving that every voucher sold reached the main server."""

from __future__ import annotations

import datetime as dt

import click

from .. import audit, resolutions
from .app import App, DateParam, Group, pass_app, render_table, resolve_day
from .imports import vouchers_group


@vouchers_group.command("check")
@click.option("--date", "day", type=DateParam(), help="Only this process date; its gaps continue from the days before. Default: every day.")
@click.option("--caja", help="Only this caja.")
@pass_app
def vouchers_check(app: App, day, caja):
    """Findings (arithmetic, numbering, dates) of the imported vouchers, and the numbers missing per code."""
    cfg = app.open()
    result = audit.check(resolve_day(day, cfg), caja)
    if app.json_out:
        app.emit(result)
        return
    rows = [[f["date"], f["caja"], f"{f['code']}-{f['number']}", f["kind"], f["message"]] for f in result["findings"]]
    click.echo(render_table(["date", "caja", "voucher", "kind", "finding"], rows) if rows else "no findings")
    for g in result["gaps"]:
        click.echo(f"gap: {g['caja']} {g['code']}{' on ' + g['date'] if g['date'] else ''}: numbers missing {audit.listed(g['missing'], g['missing_count'])}")


@click.command("audit")
@click.option("--date", "day", type=DateParam(), help="The process date (YYYY-MM-DD, today, yesterday); default: yesterday, the last closed day.")
@click.option("--caja", help="Only this caja.")
@pass_app
def audit_cmd(app: App, day, caja):
    """Pairs each caja's closing.json with what the main server holds, per code: missing, extra, count, total, voided.

    Exits 1 when a code does not match or a closing.json cannot be used (a day with no closing.json is reported, not failed).
    """
    cfg = app.open()
    day = resolve_day(day, cfg) or dt.datetime.now(cfg.timezone).date() - dt.timedelta(days=1)
    result = audit.audit(day, caja)
    audit.log_audit(result)
    lines = [f"audit {result['date']}"]
    for c in result["cajas"]:
        if not c["codes"] and not c.get("problem"):
            lines.append(f"{c['caja']}: " + ("no vouchers and no closing.json" if c.get("closing") is False
                                            else "no vouchers, and a closing.json that lists none"))
        for code, e in c["codes"].items():
            lines.append(f"{c['caja']} {code}: {audit.describe(e)}")
        if c.get("problem") and not c["codes"]:  # otherwise each code's line says it
            lines.append(f"{c['caja']}: {c['problem']}")
    app.emit(result, "\n".join(lines))
    if audit.failed(result):
        raise SystemExit(1)


@click.group(cls=Group, name="resolution")
def resolution_group():
    """DIAN numbering resolutions per voucher code, used by the numbering checks and doctor."""


@resolution_group.command("add")
@click.argument("code")
@click.option("--prefix", required=True, help="The prefix the resolution authorises, e.g. POS2.")
@click.option("--from", "number_from", type=int, required=True, help="First authorised number.")
@click.option("--to", "number_to", type=int, required=True, help="Last authorised number.")
@click.option("--valid-from", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day of validity (YYYY-MM-DD).")
@click.option("--valid-to", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day of validity (YYYY-MM-DD).")
@click.option("--number", help="The resolution's own number, as DIAN wrote it.")
@pass_app
def resolution_add(app: App, code, prefix, number_from, number_to, valid_from, valid_to, number):
    """Records a numbering resolution for CODE; the code's vouchers are checked against it at once."""
    cfg = app.open()
    added, warnings = resolutions.add(code, prefix, number_from, number_to, valid_from.date(), valid_to.date(), number,
                                      tz=cfg.timezone)
    app.emit({"resolution": resolutions.listing(added.code)[-1] | {"id": added.id}, "warnings": warnings},
             "\n".join([f"added #{added.id} for {added.code}: {added.describe()}"] + [f"warning: {w}" for w in warnings]))


@resolution_group.command("list")
@click.option("--code", help="Only this code.")
@pass_app
def resolution_list(app: App, code):
    """Every resolution: its range, validity, the highest number used and the days it has left."""
    cfg = app.open()
    rows = resolutions.listing(code, dt.datetime.now(cfg.timezone).date())
    if app.json_out:
        app.emit({"resolutions": rows})
        return
    click.echo(render_table(
        ["id", "code", "prefix", "range", "valid", "number", "highest", "used", "days left"],
        [[r["id"], r["code"], r["prefix"], f"{r['from']}–{r['to']}", f"{r['valid_from']} to {r['valid_to']}", r["number"] or "",
          r["highest_number"] if r["highest_number"] is not None else "", f"{r['used_percent']} %", r["days_left"]] for r in rows])
        if rows else "no resolutions; add one per code with `syscafe-sync resolution add CODE --prefix P --from N --to N --valid-from D --valid-to D`")


@resolution_group.command("remove")
@click.argument("resolution_id", type=int, metavar="ID")
@pass_app
def resolution_remove(app: App, resolution_id):
    """Removes resolution ID (see `resolution list`); the code's vouchers are checked again."""
    cfg = app.open()
    gone = resolutions.remove(resolution_id, tz=cfg.timezone)
    app.emit({"removed": gone.id, "code": gone.code}, f"removed #{gone.id} of {gone.code}: {gone.describe()}")


COMMANDS = [audit_cmd, resolution_group]
