"""`migrate --to URL` (issue 8): a SQLite main database copied into PostgreSQL and back into SQLite, every
table compared by reading the databases directly, then the copies used by the real CLI."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import secrets
import signal
import sqlite3
import subprocess
import sys

import pgtest
import psycopg2
import pytest
from conftest import ACCOUNTING_FIXTURES, DAY, MAPPING, CajaFolder, cli_env, run_cli, voucher

from syscafe_sync import config as config_mod
from syscafe_sync import db as db_mod
from syscafe_sync import migrate
from syscafe_sync.caja import make_closing
from syscafe_sync.db import migrations
from syscafe_sync.db.models import Voucher, database


def fill(home, tmp_path) -> CajaFolder:
    """A SQLite home with rows in every table of the schema (asserted: a table added later that this
    does not fill makes the test fail), each filled the way the product fills it."""
    run_cli(home, "init", check=0)
    folder = CajaFolder(tmp_path / "cajas" / "CAJA1", "CAJA1", ["FV1", "NC1"])
    folder.add_many(1, 40)
    folder.raw(f"movements/{DAY}/FV1-999.json", "{not json")  # a refusal
    folder.raw(f"movements/{DAY}/notas.txt", "apuntes del cajero")  # a notice: a name that is no voucher's
    folder.writer.write_closing(DAY, make_closing("CAJA1", DAY, [voucher("CAJA1", "FV1", n) for n in range(1, 41)]))
    folder.writer.append_loyalty(DAY, [{"seq": n, "customer": f"C{n % 3}", "kind": "earn", "points": n,
                                        "at": "2026-11-22T10:00:00-05:00"} for n in range(1, 11)])
    folder.writer.write_rule({"format": 1, "id": "R-1", "name": "Café", "version": 2, "active": True,
                              "updated_at": "2026-11-20T10:00:00-05:00", "action": {"percent": "10"}})
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    run_cli(home, "caja", "add", "CAJA1", "--path", str(folder.root), check=0)
    run_cli(home, "catalogs", "load", "products", str(ACCOUNTING_FIXTURES / "catalogs" / "products.csv"), check=0)
    run_cli(home, "resolution", "add", "FV1", "--prefix", "POS1", "--from", "1", "--to", "5000",
            "--valid-from", "2026-01-01", "--valid-to", "2027-12-31", "--number", "18764000000001", check=0)
    run_cli(home, "accounting", "map", "load", str(tmp_path / "map.toml"), check=0)
    run_cli(home, "sync", "--date", DAY.isoformat(), check=1)  # 1: the broken file is refused
    run_cli(home, "accounting", "post", "--date", DAY.isoformat(), "--to", "csv", check=0)
    _die_holding_a_lease(home, "CAJA1")
    empty = [name for name, count in row_counts(home / config_mod.DB_FILE).items() if count == 0]
    assert empty == [], f"fill() leaves these tables empty, so their copy is never checked: {empty}"
    return folder


def _die_holding_a_lease(home, name: str) -> None:
    """A run killed (SIGKILL) while it held `name`'s lease: its row stays, as after a crash."""
    code = ("import os, signal, sys; from syscafe_sync import setup; from syscafe_sync.lease import CajaLease; "
            "setup.open_home(sys.argv[1], None); assert CajaLease(sys.argv[2], 120).try_acquire(); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(home), name], capture_output=True, text=True, timeout=60, env=cli_env(home))
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def schema_tables(sqlite_path) -> list[str]:
    """The tables a SQLite database really has, whatever the models say."""
    con = sqlite3.connect(sqlite_path)
    try:
        return sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
    finally:
        con.close()


def row_counts(sqlite_path) -> dict[str, int]:
    con = sqlite3.connect(sqlite_path)
    try:
        return {name: con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in schema_tables(sqlite_path)}
    finally:
        con.close()


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
        for name in schema_tables(sqlite_path):
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


def test_migrate_copies_every_table_a_fresh_database_has(tmp_path):
    """The tables `init` really creates, read from the file, against what migrate copies: a table added to
    the schema but not to the copy makes this fail."""
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    assert sorted([m._meta.table_name for m in migrate.MODELS] + ["schema_version"]) == schema_tables(home / config_mod.DB_FILE)
    # and in an order the foreign keys accept: each table after the tables it refers to
    position = {m: i for i, m in enumerate(migrate.MODELS)}
    for model in migrate.MODELS:
        assert all(position[parent] < position[model] for parent in model._meta.refs.values()), model


def test_migrate_refuses_a_source_holding_a_table_it_does_not_know(tmp_path, pg_url):
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    con = sqlite3.connect(home / config_mod.DB_FILE)
    con.execute("CREATE TABLE added_by_hand (x INTEGER)")
    con.commit()
    con.close()
    proc = run_cli(home, "migrate", "--to", pg_url, check=2)
    assert "added_by_hand" in proc.stderr and "nothing was copied" in proc.stderr and "Traceback" not in proc.stderr
    with psycopg2.connect(pg_url) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert cur.fetchone()[0] == 0, "the target was not touched"


def test_migrate_copies_every_table_verified_and_postgresql_carries_on(tmp_path, pg_url):
    home = tmp_path / "home"
    folder = fill(home, tmp_path)
    proc = run_cli(home, "--json", "migrate", "--to", pg_url, "--batch", "7", check=0)
    done = json.loads(proc.stdout)
    copied = {t["table"]: t["rows"] for t in done["tables"]}
    counts = row_counts(home / config_mod.DB_FILE)
    # every table but schema_version (the target's own migrations write it), with the rows the source has;
    # the source's log has one row more by now: the one saying where the copy went
    assert copied == {name: n for name, n in counts.items() if name != "schema_version"} | {"sync_log": counts["sync_log"] - 1}
    assert copied["voucher"] == 40 and copied["voucher_line"] == 80 and copied["loyalty_entry"] == 10
    compared = tables(home / config_mod.DB_FILE, pg_url)
    assert sorted(compared) == schema_tables(home / config_mod.DB_FILE)
    for name, (ours, theirs) in compared.items():
        if name == "schema_version":
            assert [r[0] for r in ours] == [r[0] for r in theirs], "the same migrations, run there by init's code"
        elif name == "sync_log":
            # each side adds its own `migrate` row after the copy: the one saying where it went, or came from
            assert [r for r in ours if r[4] != "migrate"] == [r for r in theirs if r[4] != "migrate"]
        else:
            assert ours == theirs, f"table {name} differs"
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


def test_migrate_whose_copy_does_not_verify_is_rolled_back_whole(tmp_path, pg_url):
    home = tmp_path / "home"
    fill(home, tmp_path)
    run_cli(home, "--db", pg_url, "init", check=0)  # the schema first, so that the target can be given a trigger
    # A target that changes what is written to it: the copy reads back otherwise than the source.
    with psycopg2.connect(pg_url) as con, con.cursor() as cur:
        cur.execute("""CREATE FUNCTION mangle() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN NEW.description := NEW.description || ' (copia)'; RETURN NEW; END $$;
                       CREATE TRIGGER mangle BEFORE INSERT ON voucher_line FOR EACH ROW EXECUTE FUNCTION mangle()""")
    proc = run_cli(home, "--json", "migrate", "--to", pg_url, check=1)
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: table voucher_line: the source has 80 rows") and "the copy read back 80" in proc.stderr
    assert "the whole copy was rolled back" in proc.stderr
    # nothing is kept, the tables copied before voucher_line included: only what `init` wrote there
    held = {name: rows for name, (_, rows) in tables(home / config_mod.DB_FILE, pg_url).items() if rows}
    assert sorted(held) == ["schema_version", "sync_log"] and len(held["sync_log"]) == 1
    with psycopg2.connect(pg_url) as con, con.cursor() as cur:
        cur.execute("SELECT action FROM sync_log")
        assert cur.fetchall() == [("init",)]
        cur.execute("DROP TRIGGER mangle ON voucher_line")
    refused = [json.loads(x) for x in run_cli(home, "--json", "log", "--action", "migrate", check=0).stdout.splitlines()]
    assert [(r["outcome"], "voucher_line" in r["message"]) for r in refused] == [("refused", True)]
    # the target was left fit for another attempt
    assert json.loads(run_cli(home, "--json", "migrate", "--to", pg_url, check=0).stdout)["rows"] > 0


def test_migrate_refuses_a_target_that_holds_data_and_changes_nothing(tmp_path, pg_url):
    home = tmp_path / "home"
    fill(home, tmp_path)
    run_cli(home, "--db", pg_url, "init", check=0)  # init's own log row is not data: this target is still empty
    other = tmp_path / "other"
    run_cli(other, "--db", pg_url, "init", check=0)
    run_cli(other, "--db", pg_url, "caja", "add", "CAJAX", "--path", str(tmp_path), "--code", "ZZ9", check=0)
    with psycopg2.connect(pg_url) as con, con.cursor() as cur:  # another program's table counts as data too
        cur.execute("CREATE TABLE informes (x integer); INSERT INTO informes VALUES (1)")
    target = lambda: {name: theirs for name, (_, theirs) in tables(home / config_mod.DB_FILE, pg_url).items()}  # noqa: E731
    before = target()
    proc = run_cli(home, "migrate", "--to", pg_url, check=2)
    assert "already holds data (tables: caja, caja_code, informes, sync_log)" in proc.stderr and "nothing was copied" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert target() == before
    refused = [json.loads(x) for x in run_cli(home, "--json", "log", "--action", "migrate", check=0).stdout.splitlines()]
    assert [r["outcome"] for r in refused] == ["refused"]


@pytest.mark.parametrize("target, said", [
    ("mysql://root@localhost/x", "must be an empty PostgreSQL database"),
    ("sqlite:///:memory:", "in-memory database is gone"),
    ("SOURCE", "is the database being copied"),
    ("postgresql://syscafe:s3cret-pw@dbhost:notaport/x", "--to postgresql://syscafe:***@dbhost:notaport/x: the URL cannot be read"),
    ("postgresql://syscafe:s3cret-pw@[::1/x", "--to postgresql://syscafe:***@[::1/x: the URL cannot be read"),
])
def test_migrate_refuses_a_target_it_cannot_copy_into(tmp_path, target, said):
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    source = home / config_mod.DB_FILE
    before = row_counts(source)
    target = f"sqlite:///{home / '.' / config_mod.DB_FILE}" if target == "SOURCE" else target  # the same file, spelt otherwise
    proc = run_cli(home, "migrate", "--to", target, check=2)
    assert said in proc.stderr and "Traceback" not in proc.stderr and "s3cret-pw" not in proc.stderr
    assert row_counts(source) == before | {"sync_log": before["sync_log"] + 1}, "only the refusal is logged"


def sqlite_rows(path, name: str) -> list[tuple]:
    """A table's rows as SQLite stores them, sorted; the log without the rows each migrate adds on its
    two sides, schema_version without the time each side's migrations ran."""
    con = sqlite3.connect(path)
    try:
        query = {"sync_log": "SELECT * FROM sync_log WHERE action != 'migrate'",
                 "schema_version": "SELECT version, name FROM schema_version"}.get(name, f'SELECT * FROM "{name}"')
        return sorted(con.execute(query).fetchall(), key=lambda row: [(v is None, str(v)) for v in row])
    finally:
        con.close()


def test_migrate_round_trips_sqlite_postgresql_sqlite(tmp_path, pg_url):
    home = tmp_path / "home"
    folder = fill(home, tmp_path)
    source = home / config_mod.DB_FILE
    run_cli(home, "migrate", "--to", pg_url, check=0)
    back = tmp_path / "back" / "main.db"
    done = json.loads(run_cli(home, "--db", pg_url, "--json", "migrate", "--to", f"sqlite:///{back}", "--batch", "7", check=0).stdout)
    assert done["rows"] > 400
    # back where it started, value for value as SQLite stores them: money as the same text, booleans as 0/1
    assert schema_tables(back) == schema_tables(source)
    for name in schema_tables(source):
        assert sqlite_rows(back, name) == sqlite_rows(source, name), f"table {name} differs after the round trip"
    # the file is a main database like any: imports continue there, new ids after the copied ones
    folder.add_many(41, 5)
    out = json.loads(run_cli(home, "--db", f"sqlite:///{back}", "--json", "import", "--date", DAY.isoformat(), check=1).stdout)
    assert out["results"][0]["imported"] == 5
    # a second copy into the same file is refused: it holds data now
    proc = run_cli(home, "--db", pg_url, "migrate", "--to", f"sqlite:///{back}", check=2)
    assert "already holds data" in proc.stderr and "give a new file" in proc.stderr


def test_migrate_into_a_postgresql_database_sorting_text_by_language(tmp_path):
    """A database made with an en-US collation sorts "bodega" before "Norte", SQLite the other way round:
    the copy is still verified, since both sides are read in byte order."""
    srv = pgtest.server()
    srv.require()
    name = f"syscafe_test_{secrets.token_hex(6)}"
    with srv.conn.cursor() as cur:
        cur.execute(f"""CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'""")
    try:
        home = tmp_path / "home"
        run_cli(home, "init", check=0)
        for caja, code in (("Norte", "FV1"), ("bodega", "FV2")):
            CajaFolder(tmp_path / caja, caja, [code]).add(1, code)
            run_cli(home, "caja", "add", caja, "--path", str(tmp_path / caja), check=0)
        run_cli(home, "sync", "--date", DAY.isoformat(), check=0)
        done = json.loads(run_cli(home, "--json", "migrate", "--to", srv.url(name), check=0).stdout)
        assert {t["table"]: t["rows"] for t in done["tables"]}["caja_health"] == 2
        with psycopg2.connect(srv.url(name)) as con, con.cursor() as cur:
            cur.execute("SELECT caja FROM caja_health ORDER BY caja")
            assert cur.fetchall() == [("bodega",), ("Norte",)], "the database does sort by language"
    finally:
        srv.drop(name)


def test_a_batch_into_sqlite_is_split_under_its_parameter_limit(tmp_path):
    """SQLite refuses a statement with more parameters than its limit (32766 in many builds; this one may
    allow more, so the test lowers it): a batch of vouchers, 30 columns each, is split to fit."""
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    folder = CajaFolder(tmp_path / "CAJA1", "CAJA1", ["FV1"])
    folder.add_many(1, 10)
    run_cli(home, "caja", "add", "CAJA1", "--path", str(folder.root), check=0)
    run_cli(home, "import", "--date", DAY.isoformat(), check=0)
    source = db_mod.connect(config_mod.default_db_url(home))
    target = db_mod.open_url(f"sqlite:///{tmp_path / 'copy.db'}")
    try:
        target.connect()
        target.connection().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # 3 vouchers' worth
        database.initialize(target)
        migrations.upgrade(target)
        with target.atomic():
            assert migrate._copy_table(source, target, Voucher, 2000, lambda _: None)["rows"] == 10
    finally:
        database.initialize(None)
        source.close()
        target.close()


def test_migrate_into_a_url_with_a_password_tells_the_url_to_paste_without_it(tmp_path, pg_url):
    """The redacted URL (`:***@`) pasted under [database] as told would make "***" the password."""
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    proc = run_cli(home, "migrate", "--to", pg_url.replace("@", ":s3cret-pw@", 1), check=0)
    assert "s3cret-pw" not in proc.stdout + proc.stderr + (home / "logs" / "syscafe-sync.log").read_text(encoding="utf-8")
    [next_line] = [x for x in proc.stdout.splitlines() if x.startswith("next:")]
    assert f'url = "{pg_url}"' in next_line and "~/.pgpass" in next_line
    assert "***" not in next_line
