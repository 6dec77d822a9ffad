"""Shared fixtures: real homes on disk, real caja folders written with the caja writer, the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pgtest
import pytest

from syscafe_sync import config as config_mod
from syscafe_sync import setup
from syscafe_sync.caja import CajaWriter, make_voucher

BOGOTA = dt.timezone(dt.timedelta(hours=-5))
DAY = dt.date(2026, 11, 22)


def voucher(caja: str, code: str, number: int, day: dt.date = DAY, issued: dt.datetime | None = None, **kw) -> dict:
    """A small valid voucher: two lines (INC 8 %, IVA 19 %), split payment; issued at 08:00 of `day` plus
    `number` minutes, unless `issued` says when."""
    issued = issued or dt.datetime.combine(day, dt.time(8, 0), BOGOTA) + dt.timedelta(minutes=number % 600)
    lines = kw.pop("lines", [
        {"product": "ALM-EJ", "description": "Almuerzo ejecutivo", "quantity": "2", "unit_price": "16000.00",
         "discount": "3200.00", "taxes": [{"type": "INC", "rate": "8"}]},
        {"product": "GAS-400", "description": "Gaseosa 400 ml", "quantity": "1", "unit_price": "4000.00",
         "taxes": [{"type": "IVA", "rate": "19"}]},
    ])
    kw.setdefault("prefix", f"POS{caja[-1]}")
    return make_voucher(caja, code, number, issued, lines, kw.pop("payments", None), **kw)


class CajaFolder:
    """A caja's data folder, written as a POS would, on this machine's disk; `url` is the root to
    register: the folder itself, or the smb:// root the Samba server serves it at."""

    def __init__(self, root: Path, name: str, codes: list[str], url: str | None = None):
        self.root, self.name, self.codes = root, name, codes
        self.url = url or str(root)
        self.writer = CajaWriter(root)
        self.writer.write_caja_json(name, codes, "900123456-7")

    def add(self, number: int, code: str | None = None, day: dt.date = DAY, **kw) -> Path:
        return self.writer.write_voucher(voucher(self.name, code or self.codes[0], number, day, **kw), day)

    def add_many(self, first: int, count: int, day: dt.date = DAY) -> None:
        for n in range(first, first + count):
            self.add(n, day=day)

    def raw(self, rel: str, data: bytes | str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def day_folder(self, day: dt.date = DAY) -> Path:
        return self.root / "movements" / day.isoformat()


# home -> the PostgreSQL URL its database lives at, when the suite runs on PostgreSQL (pgtest.ENV)
PG_HOMES: dict[Path, str] = {}


def pytest_sessionfinish(session):
    if pgtest._server is not None:
        pgtest._server.close()


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for this test (skipped without a server, failed under CI=true)."""
    srv = pgtest.server()
    srv.require()
    name = srv.create()
    try:
        yield srv.url(name)
    finally:
        _close_models()
        srv.drop(name)


def _close_models() -> None:
    """Closes every connection of the test's database, the pool's idle ones too, before it is dropped."""
    from playhouse.pool import PooledDatabase

    from syscafe_sync.db.models import database

    if isinstance(database.obj, PooledDatabase):
        database.obj.close_all()
    elif database.obj is not None and not database.is_closed():
        database.close()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An initialised home; the API talks to it. Its database is a real SQLite file in it, or, with
    SYSCAFE_SYNC_TEST_DB=pg, a fresh PostgreSQL database, also given to the CLI run on this home."""
    h = tmp_path / "home"
    if pgtest.mode() == "sqlite":
        setup.init(config_mod.load(h, must_exist=False))
        yield h
        return
    yield from _pg_home(h, monkeypatch)


@pytest.fixture
def pg_home(tmp_path, monkeypatch) -> Path:
    """An initialised home on a fresh PostgreSQL database, whatever SYSCAFE_SYNC_TEST_DB says."""
    yield from _pg_home(tmp_path / "home", monkeypatch)


def _pg_home(h: Path, monkeypatch):
    srv = pgtest.server()
    srv.require()
    name = srv.create(pgtest.schema_template(srv))
    url = srv.url(name)
    monkeypatch.setenv("SYSCAFE_SYNC_DB", url)
    PG_HOMES[h] = url
    try:
        setup.init(config_mod.load(h, url, must_exist=False))
        yield h
    finally:
        PG_HOMES.pop(h, None)
        _close_models()
        srv.drop(name)


def sqlite_only(why: str):
    """For a test that reads the SQLite file itself: skipped, with `why`, when the suite runs on PostgreSQL."""
    return pytest.mark.skipif(pgtest.mode() != "sqlite", reason=f"SQLite only: {why}")


def db_rows(home: Path, sql: str) -> list[tuple]:
    """The rows of `sql` on home's database, whichever it is, sorted, each value as text (or None):
    a SQLite home and a PostgreSQL one holding the same data give the same rows."""
    if Path(home) in PG_HOMES:
        import psycopg2

        con = psycopg2.connect(PG_HOMES[Path(home)])
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall()
        finally:
            con.close()
    else:
        import sqlite3

        con = sqlite3.connect(Path(home) / config_mod.DB_FILE)
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
    return sorted((tuple(None if v is None else str(v) for v in r) for r in rows), key=lambda r: [(v is None, v or "") for v in r])


def cli_env(home: Path | None, env: dict | None = None) -> dict:
    """The environment of a CLI subprocess: this process's, without SYSCAFE_SYNC_HOME/DB (the test says
    which home), except that a home on PostgreSQL (PG_HOMES) keeps its database."""
    full = {k: v for k, v in os.environ.items() if k not in ("SYSCAFE_SYNC_HOME", "SYSCAFE_SYNC_DB")}
    if home is not None and Path(home) in PG_HOMES:
        full["SYSCAFE_SYNC_DB"] = PG_HOMES[Path(home)]
    return {**full, **(env or {})}


@pytest.fixture
def cfg(home):
    return config_mod.load(home)


# --- caja roots: a local folder, or the same kind of folder behind the real Samba server --------

def default_codes(name: str) -> list[str]:
    """CAJA1's codes are FV1 and NC1."""
    return [f"FV{name[-1]}", f"NC{name[-1]}"]


ROOT_KINDS = ("local", "smb")


def pytest_generate_tests(metafunc):
    # A module marked both_roots runs each of its tests that makes caja folders twice: on local
    # folders and on smb:// roots of the session's Samba server. local_only("why") keeps one local.
    if "root_kind" not in metafunc.fixturenames or not metafunc.definition.get_closest_marker("both_roots"):
        return
    local = metafunc.definition.get_closest_marker("local_only")
    if local is not None:
        assert local.args and local.args[0], f"{metafunc.definition.name}: local_only needs the reason"
        return
    metafunc.parametrize("root_kind", ROOT_KINDS, indirect=True)


@pytest.fixture
def root_kind(request) -> str:
    """Where caja_folder puts cajas: "local" unless the module runs its tests on both kinds."""
    return getattr(request, "param", "local")


@pytest.fixture
def caja_folder(tmp_path, root_kind, request):
    """make(name, codes) → a CajaFolder. With root_kind "smb" each caja is a folder of its own share of
    the session's Samba server (caja1, caja2, caja3 in turn), its url the smb:// root, and the password
    in the environment, where every configuration and CLI subprocess of the test finds it."""
    if root_kind == "local":
        return lambda name="CAJA1", codes=None: CajaFolder(tmp_path / "cajas" / name, name, codes or default_codes(name))
    from samba import PASSWORD

    server = request.getfixturevalue("samba")
    request.getfixturevalue("monkeypatch").setenv("SYSCAFE_SYNC_SMB_PASSWORD", PASSWORD)
    server.empty()
    free = iter(server.shares)

    def make(name: str = "CAJA1", codes: list[str] | None = None) -> CajaFolder:
        share = next(free, None)
        assert share, f"the Samba server has {len(server.shares)} shares: no room for caja {name}"
        return CajaFolder(server.shares[share] / "Datos" / "EMP01", name, codes or default_codes(name), server.url(share, "Datos/EMP01"))

    return make


@pytest.fixture
def two(cfg, caja_folder):
    """CAJA1 (FV1/NC1) and CAJA2 (FV2/NC2), registered from their caja.json."""
    from syscafe_sync import registry

    c1, c2 = caja_folder("CAJA1"), caja_folder("CAJA2")
    registry.add("CAJA1", c1.url)
    registry.add("CAJA2", c2.url)
    return c1, c2


def write_config(home: Path, **sections) -> None:
    """Overrides settings in home's config.toml, e.g. write_config(home, limits={"lease_s": 2.0})."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_cli(home: Path | None, *args: str, check: int | None = None, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real program in a subprocess, as a person or a service manager runs it."""
    cmd = [sys.executable, "-m", "syscafe_sync"]
    if home is not None:
        cmd += ["--home", str(home)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, env=cli_env(home, env))
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}, expected {check}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def cli_json(home: Path, *args: str, check: int | None = 0) -> dict:
    proc = run_cli(home, "--json", *args, check=check)
    return json.loads(proc.stdout)


# --- accounting ---------------------------------------------------------------------------------

ACCOUNTING_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

MAPPING = """\
[payment_methods]
EF = "110505"
NEQUI = "11100501"

[taxes]
"INC 8" = "249505"
"IVA 19" = "24080501"

[groups]
ALMUERZOS = "41400501"
EMPACADOS = "41352401"

[cajas]
CAJA1 = "CC-01"
CAJA2 = "CC-02"

[accounts]
tips = "28150501"
"""


@pytest.fixture
def books(cfg, two, tmp_path):
    """Two cajas with vouchers imported, the products catalog and the mapping loaded."""
    from syscafe_sync import catalogs, importer
    from syscafe_sync.accounting import mapping

    c1, c2 = two
    c1.add(1)
    c1.add(2, payments=[("EF", "20000.00"), ("NEQUI", "15864.00")])
    c2.add(1)
    importer.import_day(cfg, [], DAY, "skip")
    catalogs.load("products", ACCOUNTING_FIXTURES / "catalogs" / "products.csv")
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    mapping.load(tmp_path / "map.toml")
    return c1, c2


# --- a real Samba server (tests/samba.py) ---------------------------------------------------------

@pytest.fixture(scope="session")
def samba(tmp_path_factory):
    """One smbd on loopback for the session; skipped with its reason where it cannot run, failed under CI=true."""
    from samba import SambaServer, unavailable

    why = unavailable()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the smb:// tests must run against a real Samba server, but {why}")
        pytest.skip(why)
    server = SambaServer(tmp_path_factory.mktemp("samba")).start()
    yield server
    server.stop()


@pytest.fixture
def frozen_mount(tmp_path):
    """A folder mounted through FUSE by a process the test can freeze (tests/frozen_mount.py), as a share
    mounted on the main server whose machine stops answering; skipped with its reason where FUSE cannot
    mount, failed under CI=true. Thawed and unmounted at the end, whatever the test did."""
    from frozen_mount import FrozenMount, unavailable

    why = unavailable()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the frozen-mount tests must run on a real FUSE mount, but {why}; .ci/run installs fuse3")
        pytest.skip(why)
    mount = FrozenMount(tmp_path / "share-disk", tmp_path / "share").start()
    yield mount
    mount.close()


def smb_credentials(home: Path, user: str, password: str, host: str = "127.0.0.1") -> None:
    """Appends a [smb.hosts."HOST"] entry to home's config.toml."""
    with open(home / "config.toml", "a", encoding="utf-8") as f:
        f.write(f'\n[smb.hosts."{host}"]\nusername = "{user}"\npassword = "{password}"\n')


@pytest.fixture
def smb_caja(samba, home):
    """Caja folders inside the Samba shares, emptied for each test, and home given the share's credentials.
    smb_caja("CAJA1", "caja1") → (CajaFolder written on the server's disk, its smb:// root)."""
    from samba import PASSWORD, USER

    samba.empty()
    smb_credentials(home, USER, PASSWORD)

    def make(name: str, share: str, codes: list[str] | None = None) -> tuple[CajaFolder, str]:
        url = samba.url(share, "Datos/EMP01")
        folder = CajaFolder(samba.shares[share] / "Datos" / "EMP01", name, codes or default_codes(name), url)
        return folder, url

    return make
