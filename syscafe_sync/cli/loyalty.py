"""`loyalty sync` and `loyalty show` (Syscafe's "Sincronizar fidelización" and "Examinar puntos")."""

from __future__ import annotations

import click

from .. import loyalty as core
from .app import App, Group, pass_app, render_table
from .interrupt import stop_at_a_safe_point_on_ctrl_c


@click.group(cls=Group)
def loyalty():
    """Customers' points: read the cajas' ledgers, show balances and movements."""


@loyalty.command("sync")
@click.argument("cajas", nargs=-1)
@pass_app
def sync_cmd(app: App, cajas):
    """Read the new lines of CAJAS' points ledgers (default: every caja) and refresh the loyalty_balances catalog."""
    cfg = app.open()
    stop_at_a_safe_point_on_ctrl_c()
    result = core.sync(cfg, cajas)
    rows = [[r.caja, r.outcome, r.entries, r.duplicates, r.refused, f"{r.duration_s:.2f}"] for r in result.results]
    text = [render_table(["caja", "outcome", "entries", "already counted", "refused", "seconds"], rows)]
    for r in result.results:
        if r.outcome != "ok":
            text.append(f"{r.caja}: {r.message}")
        text += [f"{r.caja}: refused {f['path']} line {f['line']}: {f['reason']}" for f in r.refusals]
        text += [f"{r.caja}: {why}" for why in r.reread]
    text += [f"finding: {f['message']}" for f in result.findings]
    if result.balances_version is not None:
        text.append(f"loyalty_balances catalog at version {result.balances_version}; `catalogs push` takes it to every caja")
    app.emit(result.as_dict(), "\n".join(text))
    if result.failed:
        raise SystemExit(1)


@loyalty.command("show")
@click.argument("customer", required=False)
@pass_app
def show_cmd(app: App, customer):
    """Every customer's consolidated points, or one CUSTOMER's balance with the movements behind it."""
    app.open()
    if customer is None:
        rows = core.balances()
        found = core.findings()
        app.emit({"balances": rows, "findings": found},
                 "\n".join([render_table(["customer", "points"], [[b["customer"], b["points"]] for b in rows])]
                           + [f"finding: {f['message']}" for f in found]))
        return
    doc = core.customer(customer)
    app.emit(doc, "\n".join(
        [f"customer {doc['customer']}: {doc['points']} points",
         render_table(["at", "caja", "seq", "kind", "points", "voucher"],
                      [[e["at"], e["caja"], e["seq"], e["kind"], e["points"], e["voucher"]] for e in doc["entries"]])]
        + [f"finding: {f['message']}" for f in doc["findings"]]))


COMMANDS = [loyalty]
