"""`init` upgrades an older database schema in place, keeping its data."""

from __future__ import annotations

import json
import sqlite3

from conftest import run_cli

from syscafe_sync.db.migrations import LATEST


def test_init_upgrades_a_version_1_database_and_keeps_its_data(tmp_path, caja_folder):
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    folder = caja_folder("CAJA1")
    folder.add(1)
    run_cli(home, "caja", "add", "CAJA1", "--path", str(folder.root), check=0)
    run_cli(home, "import", "--date", "2026-11-22", check=0)
    db = home / "syscafe-sync.db"
    con = sqlite3.connect(db)
    # Put the schema back as version 1 left it.
    con.execute("DELETE FROM schema_version WHERE version > 1")
    for table in ("catalog", "catalog_record", "caja_catalogs", "loyalty_entry", "ledger_cursor", "rule", "rule_source"):
        con.execute(f"DROP TABLE {table}")
    con.execute("DROP INDEX voucher_caja_day_code_number_path")
    con.execute('CREATE INDEX voucher_caja_day ON voucher (caja, day)')
    con.commit()
    con.close()
    assert f"needs {LATEST}; run `syscafe-sync init`" in run_cli(home, "vouchers", "list", check=2).stderr
    out = run_cli(home, "init", check=0).stdout
    assert "covering index" in out
    con = sqlite3.connect(db)
    indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'voucher'")}
    assert "voucher_caja_day_code_number_path" in indexes
    assert not indexes & {"voucher_caja_day", "voucher_caja_day_code_number"}  # prefixes of it
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (LATEST,)
    assert con.execute("SELECT count(*) FROM voucher").fetchone() == (1,)
    con.close()
    assert "schema already up to date" in run_cli(home, "init", check=0).stdout


def test_a_postgresql_database_of_version_5_gets_double_precision_lease_times(tmp_path, pg_url):
    """Versions 1-5 made lease expiry REAL on PostgreSQL: rounded to 128 s, leases ran out at the wrong time."""
    import psycopg2

    home = tmp_path / "home"
    run_cli(home, "--db", pg_url, "init", check=0)
    con = psycopg2.connect(pg_url)
    con.autocommit = True

    def types():
        with con.cursor() as cur:
            cur.execute("SELECT table_name, data_type FROM information_schema.columns WHERE column_name IN ('expires_at', 'duration_s') ORDER BY 1")
            return cur.fetchall()

    assert types() == [("lease", "double precision"), ("sync_log", "double precision")]
    with con.cursor() as cur:
        cur.execute('ALTER TABLE lease ALTER COLUMN expires_at TYPE REAL')
        cur.execute('ALTER TABLE sync_log ALTER COLUMN duration_s TYPE REAL')
        cur.execute("DELETE FROM schema_version WHERE version > 5")
    assert "PostgreSQL: lease expiry and durations in double precision" in run_cli(home, "--db", pg_url, "init", check=0).stdout
    assert types() == [("lease", "double precision"), ("sync_log", "double precision")]
    con.close()


def test_a_schema_newer_than_this_program_is_refused_and_left_as_it_is(tmp_path):
    """syscafe-sync downgraded after a later one ran `init`: its tables may hold what this one cannot keep."""
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    db = home / "syscafe-sync.db"
    con = sqlite3.connect(db)
    with con:
        con.execute("INSERT INTO schema_version VALUES (?, 'a later migration', '2027-01-01T00:00:00+00:00')", (LATEST + 1,))
    for args in (("init",), ("caja", "list"), ("log",)):
        proc = run_cli(home, "--json", *args, check=2)
        assert proc.stdout == ""
        [line] = proc.stderr.splitlines()
        assert f"version {LATEST + 1} ('a later migration'), newer than this syscafe-sync knows (version {LATEST})" in line
    checks = {c["check"]: c for c in json.loads(run_cli(home, "--json", "doctor", check=1).stdout)["checks"]}
    assert checks["database reachable"]["status"] == "fail" and f"schema version {LATEST + 1} is newer" in checks["database reachable"]["message"]
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (LATEST + 1,)
    con.close()


def test_a_refusal_before_the_log_file_is_open_leaves_stdout_to_the_json_document(tmp_path):
    """After upgrading syscafe-sync, before `init`: the refusal is logged in the database, and structlog, not yet
    set up, printed it on stdout too, in front of what a script reads as JSON."""
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    con = sqlite3.connect(home / "syscafe-sync.db")
    with con:
        con.execute("DELETE FROM schema_version WHERE version = ?", (LATEST,))
    proc = run_cli(home, "--json", "caja", "list", check=2)
    assert proc.stdout == ""
    assert f"needs {LATEST}; run `syscafe-sync init`" in proc.stderr
    # still logged, where it can be
    assert con.execute("SELECT action, outcome FROM sync_log WHERE outcome = 'refused'").fetchall() == [("caja list", "refused")]
    con.close()
    assert json.loads(run_cli(home, "--json", "init", check=0).stdout)["schema_version"] == LATEST
