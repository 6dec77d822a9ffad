"""`migrate --to URL` (issue 8): a SQLite main database copied into PostgreSQL, every table compared by
reading both databases directly, then the PostgreSQL one used by the real CLI."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3

import psycopg2
from conftest import DAY, CajaFolder, run_cli

from syscafe_sync import config as config_mod


def fill(home, tmp_path) -> CajaFolder:
    """A SQLite home with something in every kind of table: vouchers, a refusal, points, rules, catalogs, the log."""
    run_cli(home, "init", check=0)
    folder = CajaFolder(tmp_path / "cajas" / "CAJA1", "CAJA1", ["FV1", "NC1"])
    folder.add_many(1, 40)
    folder.raw(f"movements/{DAY}/FV1-999.json", "{not json")
    folder.writer.append_loyalty(DAY, [{"seq": n, "customer": f"C{n % 3}", "kind": "earn", "points": n,
                                        "at": "2026-11-22T10:00:00-05:00"} for n in range(1, 11)])
    folder.writer.write_rule({"format": 1, "id": "R-1", "name": "Café", "version": 2, "active": True,
                              "updated_at": "2026-11-20T10:00:00-05:00", "action": {"percent": "10"}})
    products = tmp_path / "products.csv"
    products.write_text("code,name,price\nALM-EJ,Almuerzo ejecutivo,16000.00\nCAF-500,Café 500 g,20000.00\n", encoding="utf-8")
    run_cli(home, "caja", "add", "CAJA1", "--path", str(folder.root), check=0)
    run_cli(home, "catalogs", "load", "products", str(products), check=0)
    run_cli(home, "sync", "--date", DAY.isoformat(), check=1)  # 1: the broken file is refused
    return folder


def _text(value):
    """One spelling per value, whichever driver read it: SQLite keeps money as text and booleans as 0/1."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (decimal.Decimal, dt.datetime)):
        return str(value)
    return str(value)


def tables(sqlite_path, pg_url) -> dict[str, tuple[list, list]]:
    """{table: (SQLite rows, PostgreSQL rows)}, each row's columns in SQLite's order, rows sorted."""
    src = sqlite3.connect(sqlite_path)
    dst = psycopg2.connect(pg_url)
    out = {}
    try:
        names = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for name in names:
            columns = ", ".join(f'"{r[1]}"' for r in src.execute(f'PRAGMA table_info("{name}")'))
            with dst.cursor() as cur:
                cur.execute(f'SELECT {columns} FROM "{name}"')
                theirs = cur.fetchall()
            ours = src.execute(f'SELECT {columns} FROM "{name}"').fetchall()
            key = lambda row: [(v is None, v or "") for v in row]  # noqa: E731
            out[name] = (sorted((tuple(map(_text, r)) for r in ours), key=key), sorted((tuple(map(_text, r)) for r in theirs), key=key))
    finally:
        src.close()
        dst.close()
    return out


def test_migrate_copies_every_table_verified_and_postgresql_carries_on(tmp_path, pg_url):
    home = tmp_path / "home"
    folder = fill(home, tmp_path)
    proc = run_cli(home, "--json", "migrate", "--to", pg_url, "--batch", "7", check=0)
    done = json.loads(proc.stdout)
    copied = {t["table"]: t["rows"] for t in done["tables"]}
    assert copied["voucher"] == 40 and copied["voucher_line"] == 80 and copied["loyalty_entry"] == 10
    assert copied["refusal"] == 1 and copied["rule"] == 1 and copied["catalog_record"] >= 2
    compared = tables(home / config_mod.DB_FILE, pg_url)
    for name, (ours, theirs) in compared.items():
        if name == "schema_version":
            assert [r[0] for r in ours] == [r[0] for r in theirs], "the same migrations, run there by init's code"
        elif name == "sync_log":
            # each side adds its own `migrate` row after the copy: the one saying where it went, or came from
            assert [r for r in ours if r[4] != "migrate"] == [r for r in theirs if r[4] != "migrate"]
        else:
            assert ours == theirs, f"table {name} differs"
    assert set(compared) >= {"voucher", "voucher_tax", "voucher_payment", "catalog", "ledger_cursor", "imported_day", "caja_health"}
    # the source's log says where it went; the target's says where it came from
    log = [json.loads(x) for x in run_cli(home, "--json", "log", "--action", "migrate", check=0).stdout.splitlines()]
    assert len(log) == 1 and "counts and sha256 verified" in log[0]["message"]
    # PostgreSQL takes over: new ids continue after the copied ones (sequences moved), same answers as before
    folder.add_many(41, 5)
    out = json.loads(run_cli(home, "--db", pg_url, "--json", "import", "--date", DAY.isoformat(), check=1).stdout)
    assert out["results"][0]["imported"] == 5
    before = json.loads(run_cli(home, "--json", "vouchers", "list", "--limit", "100", check=0).stdout)["vouchers"]
    after = json.loads(run_cli(home, "--db", pg_url, "--json", "vouchers", "list", "--limit", "100", check=0).stdout)["vouchers"]
    assert len(after) == 45 and [v for v in after if v["number"] <= 40] == before
    target_log = [json.loads(x) for x in run_cli(home, "--db", pg_url, "--json", "log", "--action", "migrate", check=0).stdout.splitlines()]
    assert "copied from sqlite:///" in target_log[0]["message"]


def test_migrate_refuses_a_target_that_holds_data_and_changes_nothing(tmp_path, pg_url):
    home = tmp_path / "home"
    fill(home, tmp_path)
    run_cli(home, "--db", pg_url, "init", check=0)  # init's own log row is not data: this target is still empty
    other = tmp_path / "other"
    run_cli(other, "--db", pg_url, "init", check=0)
    run_cli(other, "--db", pg_url, "caja", "add", "CAJAX", "--path", str(tmp_path), "--code", "ZZ9", check=0)
    target = lambda: {name: theirs for name, (_, theirs) in tables(home / config_mod.DB_FILE, pg_url).items()}  # noqa: E731
    before = target()
    proc = run_cli(home, "migrate", "--to", pg_url, check=2)
    assert "already holds data (tables: caja, caja_code, sync_log)" in proc.stderr and "nothing was copied" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert target() == before
    refused = [json.loads(x) for x in run_cli(home, "--json", "log", "--action", "migrate", check=0).stdout.splitlines()]
    assert [r["outcome"] for r in refused] == ["refused"]


def test_migrate_refuses_a_target_that_is_not_postgresql(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    proc = run_cli(home, "migrate", "--to", f"sqlite:///{tmp_path / 'x.db'}", check=2)
    assert "the target must be a PostgreSQL database" in proc.stderr
    assert not (tmp_path / "x.db").exists()
