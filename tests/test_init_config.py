"""`init`, the configuration file, --home / SYSCAFE_SYNC_HOME, --db (SQLite and PostgreSQL) — SPEC §2."""

from __future__ import annotations

import json
import socket
import os
import subprocess
import sys
import tomllib

import pytest

from conftest import cli_json, run_cli, write_config
from syscafe_sync.db import migrations
from syscafe_sync import config as config_mod
from syscafe_sync.errors import ConfigError, NotInitialised


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --- init -----------------------------------------------------------------------------------------

def test_init_creates_home_config_database_and_log_file(tmp_path):
    home = tmp_path / "deep" / "home"
    proc = run_cli(home, "init", check=0)
    assert (home / "config.toml").is_file()
    assert (home / "syscafe-sync.db").is_file()
    assert (home / "logs" / "syscafe-sync.log").is_file()
    assert "initial schema" in proc.stdout
    # the configuration written is valid TOML holding the defaults
    data = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    assert data["limits"]["lease_s"] == 120.0
    assert data["sync"]["timezone"] == "America/Bogota"
    assert data["limits"]["max_file_bytes"] == 1024 * 1024
    assert data == config_mod.DEFAULTS, "the template writes every setting, each with its own section's default"


def test_the_embedded_database_is_in_wal_mode_for_every_connection(tmp_path):
    """WAL (readers beside the writer) is set once and kept by the file: a new connection, as
    each worker thread opens, finds it without setting it."""
    import sqlite3

    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    con = sqlite3.connect(home / "syscafe-sync.db")
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()


def test_init_json_names_what_it_made(tmp_path):
    home = tmp_path / "home"
    out = cli_json(home, "init")
    assert out["home"] == str(home)
    assert out["config"] == str(home / "config.toml")
    assert out["database"] == f"sqlite:///{home / 'syscafe-sync.db'}"
    assert out["log_file"] == str(home / "logs" / "syscafe-sync.log")
    assert out["schema_version"] == migrations.LATEST
    assert len(out["migrations"]) == len(migrations.MIGRATIONS)


def test_init_again_is_safe_and_says_the_schema_is_up_to_date(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    folder = tmp_path / "caja1"
    folder.mkdir()
    run_cli(home, "caja", "add", "CAJA1", "--path", str(folder), "--code", "FV1", check=0)
    write_config(home, limits={"lease_s": 7.5})
    proc = run_cli(home, "init", check=0)
    assert "schema already up to date" in proc.stdout
    out = cli_json(home, "init")
    assert (out["schema_version"], out["migrations"]) == (migrations.LATEST, [])
    # nothing was lost: the caja and the edited configuration stay
    assert [c["name"] for c in cli_json(home, "caja", "list")["cajas"]] == ["CAJA1"]
    assert (home / "config.toml").read_text(encoding="utf-8") == "[limits]\nlease_s = 7.5\n"
    inits = [json.loads(x) for x in run_cli(home, "--json", "log", "--action", "init", check=0).stdout.splitlines()]
    assert [r["message"] for r in inits][1:] == ["schema already up to date", "schema already up to date"]


# --- bad configuration ----------------------------------------------------------------------------

BAD_CONFIGS = [
    ('[limits]\nlease_s = "x"\n', "limits.lease_s"),
    ("[limits]\nlease_s = -1\n", "limits.lease_s"),
    ("[limits]\nbatch_size = 0\n", "limits.batch_size"),
    ("[limits]\nbatch_size = 2.5\n", "limits.batch_size"),
    ("[limits]\nbatch_size = true\n", "limits.batch_size"),
    ("[sync]\ninterval_minutes = [1]\n", "sync.interval_minutes"),
    ("[sync]\ntimezone = 5\n", "sync.timezone"),
    ('[sync]\ntimezone = "Mars/Olympus"\n', "sync.timezone"),
    ('[sync]\ntimezone = "../etc/passwd"\n', "sync.timezone"),
    ('[sync]\ntimezone = ""\n', "sync.timezone"),
    ("[bogus]\nx = 1\n", "[bogus]"),
    ("bogus = 1\n", "[bogus]"),
    ("[limits]\nnope = 1\n", "limits.nope"),
    ("[log]\nretention = 3\n", "log.retention"),
    ('[database]\nurl = "mysql://root@localhost/x"\n', "database.url"),
    ('[database]\nurl = "/var/lib/syscafe.db"\n', "database.url"),
    ("[database]\nurl = 5\n", "database.url"),
]


@pytest.mark.parametrize("text,key", BAD_CONFIGS)
def test_bad_config_value_gives_exit_2_naming_file_and_key(home, text, key):
    (home / "config.toml").write_text(text, encoding="utf-8")
    proc = run_cli(home, "caja", "list", check=2)
    line = one_error_line(proc)
    assert str(home / "config.toml") in line
    assert key in line
    assert proc.stdout == ""


@pytest.mark.parametrize("text,key", [
    ("[limits]\nconnect_timeout_s = nan\n", "limits.connect_timeout_s"),
    ("[limits]\nconnect_timeout_s = inf\n", "limits.connect_timeout_s"),
    ("[limits]\nlease_s = nan\n", "limits.lease_s"),
])
def test_non_finite_number_gives_exit_2_naming_file_and_key(home, text, key):
    (home / "config.toml").write_text(text, encoding="utf-8")
    proc = run_cli(home, "caja", "list", check=2)
    line = one_error_line(proc)
    assert str(home / "config.toml") in line
    assert key in line


def test_broken_toml_gives_exit_2_naming_file_and_position(home):
    (home / "config.toml").write_text("[limits\nlease_s = 3\n", encoding="utf-8")
    proc = run_cli(home, "caja", "list", check=2)
    line = one_error_line(proc)
    assert str(home / "config.toml") in line
    assert "line 1" in line
    assert "not valid TOML" in line


def test_config_that_is_not_utf8_gives_exit_2(home):
    (home / "config.toml").write_bytes(b"[sync]\ntimezone = \"Am\xe9rica\"\n")
    line = one_error_line(run_cli(home, "caja", "list", check=2))
    assert str(home / "config.toml") in line
    assert "save it again as UTF-8" in line  # the fix, not only the codec's complaint


def test_config_saved_by_notepad_with_a_byte_order_mark_and_crlf_is_read(home):
    (home / "config.toml").write_bytes("\ufeff# Café\r\n[limits]\r\nlease_s = 7.5\r\n".encode("utf-8"))
    assert config_mod.load(home).limits["lease_s"] == 7.5
    run_cli(home, "caja", "list", check=0)


def test_interval_minutes_takes_decimals_as_the_template_says(home):
    assert "decimals allowed" in config_mod.TEMPLATE
    write_config(home, sync={"interval_minutes": 0.5})
    assert config_mod.load(home).get("sync", "interval_minutes") == 0.5
    run_cli(home, "caja", "list", check=0)
    write_config(home, sync={"interval_minutes": 2})  # a whole number stays good
    assert config_mod.load(home).get("sync", "interval_minutes") == 2


def test_init_over_a_bad_config_refuses_and_keeps_the_file(home):
    text = '[limits]\nlease_s = "x"\n'
    (home / "config.toml").write_text(text, encoding="utf-8")
    line = one_error_line(run_cli(home, "init", check=2))
    assert "limits.lease_s" in line
    assert (home / "config.toml").read_text(encoding="utf-8") == text


def test_good_overrides_are_used(home):
    write_config(home, limits={"connect_timeout_s": 2, "lease_s": 9.5}, sync={"timezone": "Europe/Madrid"})
    cfg = config_mod.load(home)
    assert cfg.limits["connect_timeout_s"] == 2
    assert cfg.limits["lease_s"] == 9.5
    assert cfg.limits["batch_size"] == 500  # untouched default
    assert str(cfg.timezone) == "Europe/Madrid"


def test_load_raises_config_error_in_the_api(home):
    write_config(home, sync={"timezone": "Nowhere/City"})
    with pytest.raises(ConfigError) as err:
        config_mod.load(home)
    assert "sync.timezone = 'Nowhere/City'" in str(err.value)


def test_smb_section_passes_through(home):
    (home / "config.toml").write_text('[smb.hosts."CAJA2"]\nusername = "u"\npassword = "p"\n', encoding="utf-8")
    cfg = config_mod.load(home)
    assert cfg.values["smb"] == {"hosts": {"CAJA2": {"username": "u", "password": "p"}}}


def test_write_default_never_overwrites(tmp_path):
    tmp_path.joinpath("config.toml").write_text("# mine\n", encoding="utf-8")
    config_mod.write_default(tmp_path)
    assert tmp_path.joinpath("config.toml").read_text(encoding="utf-8") == "# mine\n"


# --- a home that was never initialised --------------------------------------------------------------

@pytest.mark.parametrize("args", [("caja", "list"), ("log",), ("caja", "add", "CAJA1", "--path", "/tmp", "--code", "FV1")])
def test_command_in_uninitialised_home_gives_exit_2_telling_to_run_init(tmp_path, args):
    home = tmp_path / "never"
    proc = run_cli(home, *args, check=2)
    line = one_error_line(proc)
    assert "init" in line
    assert str(home) in line
    assert not home.exists()  # nothing was changed


def test_load_of_uninitialised_home_raises_not_initialised(tmp_path):
    with pytest.raises(NotInitialised):
        config_mod.load(tmp_path / "never")


def test_database_without_schema_gives_exit_2_telling_to_run_init(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "--db", f"sqlite:///{tmp_path / 'elsewhere.db'}", "init", check=0)
    proc = run_cli(home, "caja", "list", check=2)  # the default database in home was never initialised
    line = one_error_line(proc)
    assert "syscafe-sync init" in line


def test_database_without_schema_is_not_created_by_a_refused_command(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "--db", f"sqlite:///{tmp_path / 'elsewhere.db'}", "init", check=0)
    run_cli(home, "caja", "list", check=2)
    assert not (home / "syscafe-sync.db").exists()


# --- where home and the database are ----------------------------------------------------------------

def _run_env(args: list[str], env: dict) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("SYSCAFE_SYNC_HOME", "SYSCAFE_SYNC_DB")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "syscafe_sync", *args], capture_output=True, text=True, timeout=120, env=full)


def test_env_home_works_like_the_option(tmp_path):
    home = tmp_path / "envhome"
    proc = _run_env(["--json", "init"], {"SYSCAFE_SYNC_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["home"] == str(home)
    assert (home / "config.toml").is_file() and (home / "syscafe-sync.db").is_file()
    folder = tmp_path / "caja1"
    folder.mkdir()
    proc = _run_env(["caja", "add", "CAJA1", "--path", str(folder), "--code", "FV1"], {"SYSCAFE_SYNC_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    # the same home through --home sees it
    assert [c["name"] for c in cli_json(home, "caja", "list")["cajas"]] == ["CAJA1"]


def test_home_option_wins_over_env(tmp_path):
    opt, env = tmp_path / "opt", tmp_path / "env"
    proc = _run_env(["--home", str(opt), "init"], {"SYSCAFE_SYNC_HOME": str(env)})
    assert proc.returncode == 0, proc.stderr
    assert (opt / "config.toml").is_file()
    assert not env.exists()


def test_db_option_puts_the_database_elsewhere(tmp_path):
    home, db = tmp_path / "home", tmp_path / "data" / "main.db"
    url = f"sqlite:///{db}"
    out = cli_json(home, "--db", url, "init")
    assert out["database"] == url
    assert db.is_file()
    assert not (home / "syscafe-sync.db").exists()
    folder = tmp_path / "caja1"
    folder.mkdir()
    run_cli(home, "--db", url, "caja", "add", "CAJA1", "--path", str(folder), "--code", "FV1", check=0)
    assert [c["name"] for c in cli_json(home, "--db", url, "caja", "list")["cajas"]] == ["CAJA1"]
    # the same database through the environment
    proc = _run_env(["--home", str(home), "--json", "caja", "list"], {"SYSCAFE_SYNC_DB": url})
    assert proc.returncode == 0, proc.stderr
    assert [c["name"] for c in json.loads(proc.stdout)["cajas"]] == ["CAJA1"]


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "nonsense"])
def test_unknown_database_url_gives_exit_2(tmp_path, url):
    proc = run_cli(tmp_path / "home", "--db", url, "init", check=2)
    line = one_error_line(proc)
    assert repr(url) in line


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:main.db"])
def test_a_sqlite_url_that_names_no_file_gives_exit_2_and_creates_nothing(tmp_path, url, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = run_cli(tmp_path / "home", "--db", url, "init", check=2)
    line = one_error_line(proc)
    assert repr(url) in line and "sqlite:///PATH" in line
    assert not any(p.suffix == ".db" for p in tmp_path.rglob("*")), "no database file made from part of the URL"


@pytest.mark.parametrize("url", ["postgresql://syscafe:s3cret-pw@127.0.0.1:notaport/x", "postgresql://syscafe:s3cret-pw@[::1/x",
                                 "postgresql://syscafe:s3cret-pw@127.0.0.1:99999/x"])
@pytest.mark.parametrize("where", ["option", "file"])
def test_a_database_url_that_cannot_be_parsed_gives_exit_2_without_its_password(tmp_path, url, where):
    home = tmp_path / "home"
    if where == "option":
        proc = run_cli(home, "--db", url, "--json", "init", check=2)
        assert not home.exists()
    else:
        home.mkdir()
        write_config(home, database={"url": url})
        proc = run_cli(home, "--json", "init", check=2)
        assert str(home / "config.toml") in proc.stderr
    line = one_error_line(proc)
    assert proc.stdout == ""
    assert "cannot be read" in line and "syscafe:***@" in line and "s3cret-pw" not in line


def test_a_home_whose_path_holds_a_hash_is_refused_before_anything_is_made(tmp_path):
    """A sqlite:/// URL ends its path at '#': the database went to the file "Sucursal " beside the home, and
    every later command said `run init`."""
    home = tmp_path / "Sucursal #2"
    line = one_error_line(run_cli(home, "init", check=2))
    assert str(home) in line and "'#'" in line
    assert list(tmp_path.iterdir()) == []
    # the way out the message gives: the database elsewhere
    db = tmp_path / "data" / "main.db"
    run_cli(home, "--db", f"sqlite:///{db}", "init", check=0)
    run_cli(home, "--db", f"sqlite:///{db}", "caja", "list", check=0)
    assert db.is_file() and not (tmp_path / "Sucursal ").exists()
    # spaces and accents are fine
    cafe = tmp_path / "Café Central"
    run_cli(cafe, "init", check=0)
    run_cli(cafe, "caja", "list", check=0)
    assert (cafe / "syscafe-sync.db").is_file()


def test_a_relative_sqlite_path_in_the_config_file_is_refused(tmp_path, monkeypatch):
    """It would be read from whatever folder a command runs in: the service and the shell would use two databases."""
    home = tmp_path / "home"
    home.mkdir()
    write_config(home, database={"url": "sqlite:///main.db"})
    monkeypatch.chdir(tmp_path)
    line = one_error_line(run_cli(home, "init", check=2))
    assert str(home / "config.toml") in line and "relative" in line
    assert f'"sqlite:///{(home / "main.db").as_posix()}"' in line
    assert not (tmp_path / "main.db").exists()


def test_a_home_that_cannot_be_created_gives_exit_2_naming_it(tmp_path):
    (tmp_path / "afile").write_text("", encoding="utf-8")
    home = tmp_path / "afile" / "home"
    proc = run_cli(home, "--json", "init", check=2)
    line = one_error_line(proc)
    assert proc.stdout == ""
    assert f"cannot create the home {home}" in line


# --- PostgreSQL -----------------------------------------------------------------------------------

def test_postgresql_init_and_caja_add(tmp_path, pg_url, caja_folder):
    home = tmp_path / "home"
    out = cli_json(home, "--db", pg_url, "init")
    assert out["database"] == pg_url
    assert (out["schema_version"], len(out["migrations"])) == (migrations.LATEST, len(migrations.MIGRATIONS))
    assert not (home / "syscafe-sync.db").exists()
    assert "schema already up to date" in run_cli(home, "--db", pg_url, "init", check=0).stdout

    folder = caja_folder("CAJA1")
    added = cli_json(home, "--db", pg_url, "caja", "add", "CAJA1", "--path", str(folder.root))
    assert (added["codes"], added["warnings"]) == (["FV1", "NC1"], [])
    listed = cli_json(home, "--db", pg_url, "caja", "list")["cajas"]
    assert [(c["name"], c["codes"], c["reachable"]) for c in listed] == [("CAJA1", ["FV1", "NC1"], True)]

    # refusals behave the same on PostgreSQL: exit 2, nothing changed, logged
    other = caja_folder("CAJA2", ["FV1"])
    line = one_error_line(run_cli(home, "--db", pg_url, "caja", "add", "CAJA2", "--path", str(other.root), check=2))
    assert "FV1" in line and "CAJA1" in line
    assert [c["name"] for c in cli_json(home, "--db", pg_url, "caja", "list")["cajas"]] == ["CAJA1"]
    logged = [json.loads(x) for x in run_cli(home, "--db", pg_url, "--json", "log", "--action", "caja add", check=0).stdout.splitlines()]
    assert [r["outcome"] for r in logged] == ["ok", "refused"]


def test_database_url_in_the_config_file_and_what_wins_over_it(tmp_path, pg_url, caja_folder):
    """option > SYSCAFE_SYNC_DB > [database] url > the SQLite file in home, through the real CLI."""
    home = tmp_path / "home"
    home.mkdir()
    write_config(home, database={"url": pg_url})
    assert cli_json(home, "init")["database"] == pg_url
    assert not (home / "syscafe-sync.db").exists()
    cli_json(home, "caja", "add", "CAJA1", "--path", str(caja_folder("CAJA1").root))
    names = lambda proc: [c["name"] for c in json.loads(proc.stdout)["cajas"]]  # noqa: E731
    assert names(run_cli(home, "--json", "caja", "list", check=0)) == ["CAJA1"]
    # the environment wins over the file
    env = {"SYSCAFE_SYNC_DB": f"sqlite:///{tmp_path / 'env.db'}"}
    assert json.loads(run_cli(home, "--json", "init", env=env, check=0).stdout)["database"] == env["SYSCAFE_SYNC_DB"]
    assert names(run_cli(home, "--json", "caja", "list", env=env, check=0)) == []
    # the option wins over both
    opt = f"sqlite:///{tmp_path / 'opt.db'}"
    assert json.loads(run_cli(home, "--db", opt, "--json", "init", env=env, check=0).stdout)["database"] == opt
    assert (tmp_path / "opt.db").is_file() and not (home / "syscafe-sync.db").exists()
    # the file's database kept its caja all along
    assert names(run_cli(home, "--json", "caja", "list", check=0)) == ["CAJA1"]


def test_database_url_in_the_config_file_is_shown_without_its_password(home):
    write_config(home, database={"url": "mysql://syscafe:s3cret-pw@dbhost/x"})
    line = one_error_line(run_cli(home, "caja", "list", check=2))
    assert "database.url = 'mysql://syscafe:***@dbhost/x'" in line and "s3cret-pw" not in line


def test_postgresql_password_is_not_printed(tmp_path, pg_url):
    url = pg_url.replace("@", ":s3cret-pw@", 1)
    out = run_cli(tmp_path / "home", "--db", url, "--json", "init", check=0)
    assert "s3cret-pw" not in out.stdout + out.stderr
    assert json.loads(out.stdout)["database"] == pg_url.replace("@", ":***@", 1)


def test_init_adds_to_a_version_9_database_the_column_of_stale_catalog_files_keeping_its_rows(tmp_path):
    import sqlite3

    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    db = sqlite3.connect(home / "syscafe-sync.db")
    with db:  # as syscafe-sync before migration 10 left it
        db.execute('ALTER TABLE caja_catalogs DROP COLUMN stale')
        db.execute("DELETE FROM schema_version WHERE version >= 10")
        db.execute("INSERT INTO caja_catalogs (caja, manifest_sha, extras) VALUES ('CAJA1', 'abc', '{}')")
    out = cli_json(home, "init")
    assert out["schema_version"] == migrations.LATEST
    assert out["migrations"] == [name for version, name, _ in migrations.MIGRATIONS if version >= 10]
    assert db.execute("SELECT caja, manifest_sha, stale FROM caja_catalogs").fetchall() == [("CAJA1", "abc", None)]


def _closed_port() -> int:
    """A loopback port nothing listens on: PostgreSQL's server not started yet."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_postgresql_server_that_does_not_answer_is_exit_1_which_a_service_retries(tmp_path):
    # Exit 2 there left the systemd service dead (RestartPreventExitStatus=2) after a boot where PostgreSQL
    # came up after syscafe-sync's `init` (ExecStartPre); 1 is restarted.
    url = f"postgresql://syscafe:s3cret-pw@127.0.0.1:{_closed_port()}/main"
    proc = run_cli(tmp_path / "home", "--db", url, "init", check=1)
    line = one_error_line(proc)
    assert "does not answer" in line and "Connection refused" in line and "a service tries again" in line
    assert "syscafe:***@" in line and "s3cret-pw" not in line


@pytest.mark.parametrize("wrong, said", [("database", "does not exist"), ("role", "does not exist"),
                                         ("nologin", "not permitted to log in"), ("no_connect", "permission denied")])
def test_a_postgresql_server_that_refuses_the_url_for_good_is_exit_2(tmp_path, pg_url, wrong, said):
    import secrets
    from urllib.parse import urlparse

    import pgtest

    u = urlparse(pg_url)
    admin = pgtest.server().conn.cursor()
    role = f"syscafe_test_{secrets.token_hex(4)}"
    try:
        if wrong == "database":
            url = u._replace(path="/no_such_database").geturl()
        elif wrong == "role":
            url = u._replace(netloc=f"no_such_role@{u.hostname}:{u.port}").geturl()
        else:  # a role that may not log in, or one the database does not let connect
            admin.execute(f'CREATE ROLE "{role}" {"NOLOGIN" if wrong == "nologin" else "LOGIN"}')
            admin.execute(f'REVOKE CONNECT ON DATABASE "{u.path[1:]}" FROM PUBLIC')
            url = u._replace(netloc=f"{role}@{u.hostname}:{u.port}").geturl()
        line = one_error_line(run_cli(tmp_path / "home", "--db", url, "init", check=2))
    finally:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    assert "cannot open the database" in line and said in line and "check --db" in line


def test_a_postgresql_url_with_an_option_libpq_does_not_know_is_exit_2(tmp_path):
    url = f"postgresql://syscafe@127.0.0.1:{_closed_port()}/main?foo=bar"  # refused before any connection
    line = one_error_line(run_cli(tmp_path / "home", "--db", url, "init", check=2))
    assert "cannot open the database" in line and 'invalid connection option "foo"' in line


def test_a_config_file_this_account_cannot_read_is_refused_naming_it():
    from pyfakefs.fake_filesystem_unittest import Patcher

    # A config.toml copied in by root, mode 0600: pyfakefs checks permissions as for another user than root.
    with Patcher(allow_root_user=False) as patcher:
        patcher.fs.create_file("/srv/syscafe/config.toml", contents="[limits]\nworkers = 2\n", st_mode=0o100000)
        with pytest.raises(ConfigError, match=r"cannot read /srv/syscafe/config.toml \(Permission denied\); give the account"):
            config_mod.load("/srv/syscafe")


def test_redact_masks_the_password_of_a_url_it_cannot_parse():
    from syscafe_sync.db import redact

    assert redact("postgresql://syscafe:s3cret-pw@[::1/x") == "postgresql://syscafe:***@[::1/x"
    assert redact("postgresql://syscafe:s3cret-pw@db:5432/x") == "postgresql://syscafe:***@db:5432/x"
    assert redact("postgresql://syscafe@db/x?sslmode=require&password=s3cret-pw") == "postgresql://syscafe@db/x?sslmode=require&password=***"
    assert redact("postgresql://syscafe@[::1/x?password=s3cret-pw") == "postgresql://syscafe@[::1/x?password=***"


def test_changed_settings_names_what_an_edit_changed_never_a_password(home):
    before = config_mod.load(home)
    (home / "config.toml").write_text('[limits]\nworkers = 2\n[smb.hosts."10.0.0.5"]\nusername = "caja"\npassword = "s3cret-pw"\n',
                                      encoding="utf-8")
    after = config_mod.load(home)
    assert config_mod.changed_settings(before, after) == ["limits.workers", "smb.hosts"]
    assert config_mod.changed_settings(after, config_mod.load(home)) == []
