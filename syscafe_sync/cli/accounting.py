"""`accounting map load/show`, `accounting post`, `accounting retry`, `accounting export`."""

from __future__ import annotations

from pathlib import Path

import click

from ..accounting import export, journal, mapping
from ..errors import UsageError
from .app import App, DateParam, Group, pass_app, render_table, resolve_day


@click.group(cls=Group, name="accounting")
def accounting():
    """Posting the consolidated vouchers to accounting: the mapping, post, retry, export (docs/accounting.md)."""


@accounting.group(cls=Group, name="map")
def map_group():
    """The mapping to the chart of accounts: payment methods, taxes, product groups, cost centres."""


@map_group.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@pass_app
def map_load(app: App, file: Path):
    """Load FILE (TOML, or CSV with the header kind,key,value) as the whole mapping, replacing the one loaded.

    A bad row refuses the whole file and nothing changes. Then `accounting retry`
    posts the vouchers that were held for want of a mapping.
    """
    app.open()
    r = mapping.load(file)
    app.emit(r, f"mapping loaded from {file}: {r['rows']} rows; added {len(r['added'])}, changed {len(r['changed'])}, removed {len(r['removed'])}")


@map_group.command("show")
@pass_app
def map_show(app: App):
    """Show the mapping loaded: every kind, key and account (or cost centre)."""
    app.open()
    data = mapping.show()
    app.emit(data, render_table(["kind", "key", "account / cost centre"], [[r["kind"], r["key"], r["value"]] for r in data["mapping"]]))


_to = click.option("--to", "to", type=click.Choice(journal.DESTINATIONS),
                   help="Where entries go: csv / json (a file per run in accounting.export_dir) or http (accounting.url); default: accounting.destination.")
_day = click.option("--date", "day", type=DateParam(), help="Only vouchers of this process date (YYYY-MM-DD, today, yesterday).")
_caja = click.option("--caja", help="Only this caja's vouchers.")


def _post_options(fn):
    """The options `post` and `retry` share, written once."""
    for option in reversed([_day, _caja, click.option(
            "--per", type=click.Choice(journal.PER), default="voucher", show_default=True,
            help="One entry per voucher, or one summary entry per caja and day (held vouchers posted later go on their own)."), _to]):
        fn = option(fn)
    return pass_app(fn)


@accounting.command("post")
@_post_options
def post_cmd(app: App, day, caja, per, to):
    """Post the vouchers not posted yet as balanced journal entries, and deliver them.

    A voucher already posted is not posted again; one changed by an overwrite import
    since is posted as the reversal of what it had posted plus its new lines. A voucher
    with something unmapped is held whole, with the reason. Exit 1 when one is held or failed.
    """
    cfg = app.open()
    _finish(app, journal.post(cfg, resolve_day(day, cfg), caja, per, to))


@accounting.command("retry")
@_post_options
def retry_cmd(app: App, day, caja, per, to):
    """Post the held vouchers again (after fixing the mapping or the catalog) and deliver the failed entries again.

    The failed entries go to the destination of this run (--to, or accounting.destination), whichever one they failed on.
    """
    cfg = app.open()
    _finish(app, journal.post(cfg, resolve_day(day, cfg), caja, per, to, retry=True))


@accounting.command("export")
@click.option("--format", "fmt", type=click.Choice(export.FORMATS), required=True, help="The file's layout (docs/accounting.md).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The file to write (replaced whole).")
@_day
@_caja
@pass_app
def export_cmd(app: App, fmt, out, day, caja):
    """Write the journal entries already made (delivered or not) to a CSV or JSON file."""
    cfg = app.open()
    found = [d for _, d in journal.stored(resolve_day(day, cfg), caja)]
    try:
        export.write(found, fmt, out)
    except OSError as exc:
        raise UsageError(f"{export.cannot_write(out, exc)}; give --out a file in a folder you can write to "
                         "(a missing folder is made).") from exc
    app.emit({"file": str(out), "format": fmt, "entries": len(found)}, f"{len(found)} entries written to {out}")


def _finish(app: App, result: journal.PostResult) -> None:
    r = result
    lines = [f"{r.action}: {len(r.posted)} vouchers posted, {len(r.unchanged)} unchanged, {len(r.held)} held, "
             f"{len(r.failed)} failed; {len(r.entries)} entries to {r.destination} ({r.file or r.where})"]
    lines += [f"held {h['voucher']} ({h['caja']} {h['date']}): {h['reason']}" for h in r.held]
    lines += [f"failed {f['voucher']} ({f['caja']} {f['date']}): {f['reason']}" for f in r.failed]
    lines += [f"published {f}, left staged by a run that was killed" for f in r.recovered]
    app.emit(r.as_dict(), "\n".join(lines))
    if r.outcome != "ok":
        raise SystemExit(1)


COMMANDS = [accounting]
