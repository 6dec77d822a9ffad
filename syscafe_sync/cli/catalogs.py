"""`catalogs load` and `catalogs show`: the main server's catalogs (SPEC §1 "Catalogs")."""

from __future__ import annotations

from pathlib import Path

import click

from .. import catalogs as core
from .app import App, Group, pass_app, render_table


@click.group(cls=Group, name="catalogs")
def catalogs():
    """The main server's catalogs (products, groups, customers, sellers, payment methods, taxes…): load, show."""


@catalogs.command("load")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--key", metavar="FIELD", help="The field that identifies a record; needed for a catalog that is not one of the known ones.")
@pass_app
def load_cmd(app: App, name: str, file: Path, key: str | None):
    """Load FILE (CSV with a header row, a JSON array of objects, or JSONL) as the new full content of catalog NAME.

    Records that did not change keep their version; new and changed records get
    a new one; records missing from FILE become versioned deletions. A bad row
    refuses the whole file and nothing is loaded. Known catalogs and their keys:
    products, groups, sellers, payment_methods, taxes (code), customers (id),
    loyalty_balances (customer).
    """
    app.open()
    result = core.load(name, file, key)
    if result["version"] == result["previous_version"]:
        text = (f"{name}: {file.name} holds no change; still version {result['version']}, "
                f"{result['records']} records ({result['unchanged']} unchanged).")
    else:
        text = (f"{name}: loaded {file.name}, version {result['previous_version']} → {result['version']}: "
                f"{result['upserts']} upserts, {result['deletes']} deletes, {result['unchanged']} unchanged; "
                f"{result['records']} records.")
    app.emit(result, text)


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


@catalogs.command("show")
@click.argument("name")
@click.argument("key", required=False)
@pass_app
def show_cmd(app: App, name: str, key: str | None):
    """Show catalog NAME on the main server: every live record, or only the one whose key is KEY."""
    app.open()
    data = core.show(name, key)
    if app.json_out:
        app.emit(data)
        return
    records = data["records"]
    if key is not None:
        record = data["record"]
        width = max(len(f) for f in record)
        lines = [f"{name} {data['key']} {key}: version {data['record_version']} (catalog at version {data['version']})"]
        lines += [f"  {f:<{width}}  {'' if v is None else v}" for f, v in sorted(record.items(), key=lambda kv: (kv[0] != data["key"], kv[0]))]
        click.echo("\n".join(lines))
        return
    fields = [data["key"]]
    for record in records:
        fields += [f for f in record if f not in fields]
    click.echo(f"{name}: version {data['version']}, {len(records)} records, key {data['key']}")
    if records:
        click.echo(render_table(fields, [[_cell(r.get(f)) for f in fields] for r in records]))


COMMANDS = [catalogs]


def _attach_push() -> None:
    from .push import push_cmd

    catalogs.add_command(push_cmd)


_attach_push()
