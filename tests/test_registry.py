"""The caja registry ("Definir rutas"): `caja add / list / edit / remove / open` and the core API (SPEC §2)."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zoneinfo

import pytest
from peewee import PostgresqlDatabase

from conftest import DAY, cli_env, cli_json, run_cli, write_config
from syscafe_sync import config as config_mod
from syscafe_sync import importer, overview, registry
from syscafe_sync.db import write_transaction
from syscafe_sync.db.models import Caja, Voucher, database
from syscafe_sync.storage import root_key
from syscafe_sync.errors import RegistryError, UnknownCaja, UsageError

BOGOTA = zoneinfo.ZoneInfo("America/Bogota")


def state() -> list[tuple]:
    """The whole registry as the database holds it."""
    return [(c.name, c.root, c.ip, registry.codes_of(c)) for c in registry.all_cajas()]


def logged(home, action: str) -> list[dict]:
    proc = run_cli(home, "--json", "log", "--action", action, check=0)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def refusals(home, action: str = "caja add") -> list[str]:
    return [r["message"] for r in logged(home, action) if r["outcome"] == "refused"]


def error_line(proc) -> str:
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def voucher_count(caja: str | None = None) -> int:
    q = Voucher.select()
    return (q.where(Voucher.caja == caja) if caja else q).count()


# --- add ------------------------------------------------------------------------------------------

def test_add_with_codes_given(home, cfg, tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    proc = run_cli(home, "caja", "add", "CAJA1", "--path", str(root), "--code", "FV1", "--code", "NC1",
                   "--ip", "192.168.1.11", check=0)
    assert proc.stdout.splitlines()[0] == f"registered CAJA1: {root}, codes FV1, NC1"
    assert state() == [("CAJA1", str(root), "192.168.1.11", ["FV1", "NC1"])]
    [row] = [r for r in logged(home, "caja add") if r["level"] == "info"]
    assert (row["caja"], row["outcome"]) == ("CAJA1", "ok")


def test_add_takes_codes_from_caja_json(home, cfg, caja_folder):
    folder = caja_folder("CAJA2")
    out = cli_json(home, "caja", "add", "CAJA2", "--path", str(folder.root))
    assert out == {"caja": "CAJA2", "root": str(folder.root), "ip": None, "codes": ["FV2", "NC2"], "warnings": []}
    assert state() == [("CAJA2", str(folder.root), None, ["FV2", "NC2"])]


def test_add_stores_the_root_normalised(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")
    written = f"{folder.root.parent}/./{folder.root.name}/"
    out = cli_json(home, "caja", "add", "CAJA1", "--path", written)
    assert out["root"] == str(folder.root)


def test_add_without_caja_json_warns_but_registers(home, cfg, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    out = cli_json(home, "caja", "add", "CAJA1", "--path", str(root), "--code", "FV1")
    assert out["warnings"] == [f"{root} has no caja.json"]
    assert state() == [("CAJA1", str(root), None, ["FV1"])]


def test_add_repeated_code_is_registered_once(home, cfg, tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    out = cli_json(home, "caja", "add", "CAJA1", "--path", str(root), "--code", "FV1", "--code", "FV1")
    assert out["codes"] == ["FV1"]


# --- refusals of add: exit 2, nothing changed, logged ---------------------------------------------

@pytest.fixture
def two_folders(home, cfg, caja_folder):
    """CAJA1 registered (FV1, NC1); CAJA2's folder written but not registered."""
    one, two = caja_folder("CAJA1"), caja_folder("CAJA2")
    registry.add("CAJA1", str(one.root))
    return one, two


def _refused_add(home, args, *expected):
    before = state()
    line = error_line(run_cli(home, "caja", "add", *args, check=2))
    for text in expected:
        assert text in line, line
    assert state() == before
    logged_refusals = refusals(home)
    assert len(logged_refusals) == 1
    assert f"Error: {logged_refusals[0]}" == line
    return line


def test_add_refuses_a_name_taken(home, two_folders):
    _, two = two_folders
    _refused_add(home, ["CAJA1", "--path", str(two.root)], "CAJA1", "already registered")


def test_add_refuses_a_root_taken(home, two_folders):
    one, _ = two_folders
    _refused_add(home, ["CAJA3", "--path", str(one.root), "--code", "FV3"], "already the root of caja CAJA1")


@pytest.mark.parametrize("spelling", ["{root}/", "{parent}/./{name}", "{parent}//{name}", "{root}/../{name}", "{root}/."])
def test_add_refuses_the_same_root_written_differently(home, two_folders, spelling):
    one, _ = two_folders
    written = spelling.format(root=one.root, parent=one.root.parent, name=one.root.name)
    _refused_add(home, ["CAJA3", "--path", written, "--code", "FV3"], "already the root of caja CAJA1")


def test_add_refuses_a_code_of_another_caja_given_with_code(home, two_folders):
    _, two = two_folders
    _refused_add(home, ["CAJA2", "--path", str(two.root), "--code", "FV2", "--code", "NC1"],
                 "NC1", "already belongs to caja CAJA1")


def test_add_refuses_a_code_of_another_caja_read_from_caja_json(home, two_folders, caja_folder):
    clash = caja_folder("CAJA3", ["FV3", "FV1"])
    _refused_add(home, ["CAJA3", "--path", str(clash.root)], "FV1", "already belongs to caja CAJA1")


def test_add_refuses_a_caja_with_no_codes_anywhere(home, cfg, tmp_path):
    root = tmp_path / "nothing"
    root.mkdir()
    _refused_add(home, ["CAJA1", "--path", str(root)], "CAJA1 has no voucher codes", "has no caja.json", "--code")


def test_add_refuses_no_codes_when_caja_json_is_broken(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")
    folder.raw("caja.json", "{not json")
    _refused_add(home, ["CAJA1", "--path", str(folder.root)], "has no voucher codes", "is not valid JSON")


@pytest.mark.parametrize("name", ["bad name", "../CAJA", "_CAJA", ".CAJA", "CAJA/2", "C" * 41, ""])
def test_add_refuses_a_bad_name(home, cfg, tmp_path, name):
    _refused_add(home, [name, "--path", str(tmp_path), "--code", "FV1"], f"caja name {name!r} is not usable")


@pytest.mark.parametrize("code", ["FV-2", "F V", "FV2/..", "", "X" * 21])
def test_add_refuses_a_bad_code(home, cfg, tmp_path, code):
    _refused_add(home, ["CAJA1", "--path", str(tmp_path), "--code", code], f"voucher code {code!r} is not usable")


@pytest.mark.parametrize("ip", ["not an ip!", "192.168.1.12/24", "host_name", "-caja2"])
def test_add_refuses_a_bad_ip(home, cfg, tmp_path, ip):
    _refused_add(home, ["CAJA1", "--path", str(tmp_path), "--code", "FV1", "--ip", ip], f"IP {ip!r}")


@pytest.mark.parametrize("ip", ["300.1.1.1", "192.168.1.256"])
def test_add_refuses_an_ip_with_octets_out_of_range(home, cfg, tmp_path, ip):
    _refused_add(home, ["CAJA1", "--path", str(tmp_path), "--code", "FV1", "--ip", ip], f"IP {ip!r}")


def test_add_refuses_a_unc_root_on_linux(home, cfg):
    _refused_add(home, ["CAJA2", "--path", "\\\\CAJA2\\Syscafe\\Datos\\EMP01", "--code", "FV2"], "mount", "--path")


def test_add_accepts_a_good_host_name_and_ipv6(home, cfg, tmp_path):
    for i, ip in enumerate(["caja2.local", "fe80::1"]):
        root = tmp_path / f"r{i}"
        root.mkdir()
        run_cli(home, "caja", "add", f"CAJA{i}", "--path", str(root), "--code", f"FV{i}", "--ip", ip, check=0)
    assert [s[2] for s in state()] == ["caja2.local", "fe80::1"]


# --- two `caja add` at once -----------------------------------------------------------------------

class SilentShare:
    """An SMB server on loopback that takes the first session and never answers it: a share that stops
    answering while `caja add` reads its caja.json, i.e. after the command's first checks and before its
    transaction. The test lets it go with release(). Every later session is cut at once."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.root = f"smb://syscafe@127.0.0.1:{self.listener.getsockname()[1]}/caja/Datos"
        self.spoke = threading.Event()
        self.held: socket.socket | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                first = conn.recv(1)  # nothing from the TCP probe, which only connects; a session negotiates
            except OSError:
                first = b""
            if first and self.held is None:
                self.held = conn
                self.spoke.set()
            else:
                conn.close()

    def release(self) -> None:
        # What the session sent is read first: closed with it unread, the socket would be reset, which
        # smbprotocol reports on stderr, rather than ended.
        if self.held.fileno() == -1:
            return
        self.held.setblocking(False)
        try:
            while self.held.recv(65536):
                pass
        except OSError:
            pass
        self.held.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()
        if self.held is not None:
            self.release()


@pytest.fixture
def silent_share(monkeypatch):
    monkeypatch.setenv("SYSCAFE_SYNC_SMB_PASSWORD", "never-checked")  # without one, no session is tried
    share = SilentShare()
    yield share
    share.close()


def _wait_for_a_writer_blocked_by_this_transaction(timeout: float = 30.0) -> None:
    """On PostgreSQL: until another session waits for a lock this transaction holds (the other
    `caja add`'s INSERT waiting on the caja inserted here). On SQLite the other one waits in its
    BEGIN IMMEDIATE, which nothing shows from here: its outcome is the same whenever it gets there."""
    db = database.obj
    if not isinstance(db, PostgresqlDatabase):
        return
    deadline = time.monotonic() + timeout
    sql = "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    while not db.execute_sql(sql).fetchone()[0]:
        assert time.monotonic() < deadline, f"no other session waited for this transaction within {timeout:g} s"
        time.sleep(0.02)


@pytest.mark.parametrize("clash", ["root", "name"])
@pytest.mark.parametrize("moment", ["before", "during"])
def test_add_racing_another_add_is_refused_naming_the_other_caja(home, cfg, tmp_path, silent_share, clash, moment):
    """The second of two `caja add` for one root (or one name) is refused, exit 2, naming the caja the
    first registered while the second read its caja.json: committed `before` the second's transaction,
    or `during` it (on PostgreSQL the two transactions then overlap, and the unique index decides)."""
    write_config(home, limits={"connect_timeout_s": 60.0})  # the share is let go by the test, not by a bound
    name = "CAJA1" if clash == "name" else "CAJA2"
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(home), "caja", "add", name,
           "--path", silent_share.root, "--code", "FV2"]
    racer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(home))
    try:
        assert silent_share.spoke.wait(60), f"`caja add {name}` never opened {silent_share.root}: {racer.communicate()}"
        # The same share folder written another way; or, for the name, another folder.
        rival_root = silent_share.root.replace("syscafe@", "other@").replace("/Datos", "/datos/") if clash == "root" else str(tmp_path)
        with write_transaction():
            registry.add("CAJA1", rival_root, codes=["FV1"], timeout=10)
            if moment == "during":
                silent_share.release()
                _wait_for_a_writer_blocked_by_this_transaction()
        silent_share.release()
        out, err = racer.communicate(timeout=60)
    finally:
        if racer.poll() is None:
            racer.kill()
            racer.communicate()
    assert racer.returncode == 2, f"exit {racer.returncode}\nstdout: {out}\nstderr: {err}"
    line = error_line(subprocess.CompletedProcess(cmd, racer.returncode, out, err))
    expected = (f"root {silent_share.root} is already the root of caja CAJA1" if clash == "root"
                else "a caja named CAJA1 is already registered")
    assert expected in line, line
    assert [(c[0], c[3]) for c in state()] == [("CAJA1", ["FV1"])]
    [row] = [r for r in logged(home, "caja add") if r["outcome"] == "refused"]
    assert (f"Error: {row['message']}", row["caja"]) == (line, name)


# --- a root written another way: UNC and smb:// ------------------------------------------------------

@pytest.mark.parametrize("spelling", [
    "\\\\CAJA2\\Syscafe\\Datos\\\\EMP01",
    "\\\\CAJA2\\Syscafe\\.\\Datos\\EMP01",
    "\\\\CAJA2\\Syscafe\\Datos\\EMP01\\.",
    "\\\\CAJA2\\Syscafe\\Datos\\EMP01\\",
    "\\\\caja2\\SYSCAFE\\datos\\emp01",
    "//CAJA2/Syscafe/Datos/EMP01/",
    "\\\\CAJA2\\Syscafe\\Datos\\Otro\\..\\EMP01",
    "\\\\?\\UNC\\CAJA2\\Syscafe\\Datos\\EMP01",
    "smb://caja2/Syscafe/Datos/EMP01",
    "smb://cajero@CAJA2:445/syscafe/Datos/EMP01/",
])
def test_a_unc_root_written_another_way_or_as_its_smb_url_is_the_same_root(spelling):
    assert root_key(spelling) == root_key("\\\\CAJA2\\Syscafe\\Datos\\EMP01"), spelling


@pytest.mark.parametrize("other", [
    "\\\\CAJA3\\Syscafe\\Datos\\EMP01",
    "\\\\CAJA2\\Otro\\Datos\\EMP01",
    "\\\\CAJA2\\Syscafe\\Datos\\EMP02",
    "\\\\CAJA2\\Syscafe\\Datos",
    "smb://caja2:4450/Syscafe/Datos/EMP01",
])
def test_a_unc_root_stays_apart_from_other_folders(other):
    assert root_key(other) != root_key("\\\\CAJA2\\Syscafe\\Datos\\EMP01"), other


def test_a_caja_registered_with_a_unc_key_of_the_old_spelling_still_holds_its_root(cfg, tmp_path):
    """Before UNC keys were folded a caja's stored root_key was the path lower-cased; the check reads
    the stored root again, so the same share written as smb:// is still refused."""
    registry.add("CAJA2", str(tmp_path), codes=["FV2"])
    Caja.update(root="\\\\CAJA2\\Syscafe\\Datos\\EMP01", root_key="\\\\caja2\\syscafe\\datos\\emp01").execute()
    with pytest.raises(RegistryError, match="already the root of caja CAJA2"):
        registry.add("CAJA3", "smb://u@caja2/Syscafe/Datos/EMP01", codes=["FV3"], timeout=0.5)


# --- caja.json that disagrees -----------------------------------------------------------------------

def test_caja_json_naming_another_caja_is_a_warning_at_add_and_list(home, cfg, caja_folder):
    folder = caja_folder("CAJA9", ["FV1", "NC1"])
    expected = "caja.json names this caja 'CAJA9', the registry 'CAJA1'"
    out = cli_json(home, "caja", "add", "CAJA1", "--path", str(folder.root))
    assert out["warnings"] == [expected]
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["warnings"] == [expected]
    assert f"CAJA1: {expected}" in run_cli(home, "caja", "list", check=0).stdout.splitlines()
    warned = [r for r in logged(home, "caja add") if r["level"] == "warning"]
    assert [(r["message"], r["outcome"]) for r in warned] == [(expected, "ok")]


def test_caja_json_with_extra_codes_is_a_warning_at_add_and_list(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")  # FV1, NC1
    out = cli_json(home, "caja", "add", "CAJA1", "--path", str(folder.root), "--code", "FV1")
    assert out["codes"] == ["FV1"]
    assert len(out["warnings"]) == 1
    assert "caja.json lists codes NC1 that are not registered to CAJA1" in out["warnings"][0]
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["warnings"] == out["warnings"]


def test_caja_json_with_missing_codes_is_a_warning_at_add_and_list(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")
    out = cli_json(home, "caja", "add", "CAJA1", "--path", str(folder.root), "--code", "FV1", "--code", "NC1", "--code", "XX1")
    assert out["warnings"] == ["codes XX1 are registered to CAJA1 but not in its caja.json"]
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["warnings"] == ["codes XX1 are registered to CAJA1 but not in its caja.json"]


def test_caja_json_changed_after_add_shows_in_list(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")
    registry.add("CAJA1", str(folder.root))
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["warnings"] == []
    folder.writer.write_caja_json("CAJA1", ["FV1", "NC1", "ND1"], "900123456-7")
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert len(row["warnings"]) == 1 and "ND1" in row["warnings"][0]


def test_a_caja_json_on_another_calendar_than_the_company_is_a_warning_at_add_list_and_doctor(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")
    folder.writer.write_caja_json("CAJA1", ["FV1", "NC1"], "900123456-7", timezone="Europe/Madrid")
    out = cli_json(home, "caja", "add", "CAJA1", "--path", folder.url)
    [warning] = out["warnings"]
    assert "caja.json keeps time in 'Europe/Madrid', the company in 'America/Bogota' (sync.timezone)" in warning
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["warnings"] == [warning]
    doctor = json.loads(run_cli(home, "--json", "doctor", check=1).stdout)
    [check] = [c for c in doctor["checks"] if c["check"] == "CAJA1 caja.json"]
    assert check["status"] == "fail" and "Europe/Madrid" in check["message"] and "sync.timezone" in check["fix"]
    # another name for the same calendar all year (Lima keeps UTC-05:00 too) is no disagreement
    folder.writer.write_caja_json("CAJA1", ["FV1", "NC1"], "900123456-7", timezone="America/Lima")
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["warnings"] == []
    folder.writer.write_caja_json("CAJA1", ["FV1", "NC1"], "900123456-7", timezone="Mars/Olympus")
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert len(row["warnings"]) == 1 and "'Mars/Olympus' is not a time zone name known here" in row["warnings"][0]


# --- the API's own answers --------------------------------------------------------------------------

def test_read_caja_json_reports_each_problem(cfg, caja_folder, tmp_path):
    folder = caja_folder("CAJA1")
    good = registry.read_caja_json(str(folder.root), 2)
    assert (good.caja, good.codes, good.problem) == ("CAJA1", ["FV1", "NC1"], None)
    missing = tmp_path / "none"
    missing.mkdir()
    assert registry.read_caja_json(str(missing), 2).problem == f"{missing} has no caja.json"
    folder.raw("caja.json", "[1, 2]")
    assert registry.read_caja_json(str(folder.root), 2).problem == f"{folder.root}/caja.json is not a JSON object"
    folder.raw("caja.json", '{"caja": "CAJA1", "codes": ["FV-1"]}')
    assert "\"codes\" must be a list" in registry.read_caja_json(str(folder.root), 2).problem
    folder.raw("caja.json", b"\xff\xfe")
    assert "is not valid JSON" in registry.read_caja_json(str(folder.root), 2).problem


def test_disagreements_are_silent_when_caja_json_is_unusable(cfg):
    assert registry.disagreements("CAJA1", ["FV1"], registry.CajaJson(problem="x")) == []
    assert registry.disagreements("CAJA1", ["FV1"], registry.CajaJson(caja="CAJA1", codes=["FV1"])) == []
    assert registry.disagreements("CAJA1", ["FV1"], registry.CajaJson(caja=None, codes=["FV1", "NC1"])) == [
        "caja.json lists codes NC1 that are not registered to CAJA1 (add them with `caja edit CAJA1 --code …`)"
    ]


def test_select_and_get(cfg, tmp_path):
    for name in ("CAJA2", "CAJA1"):
        (tmp_path / name).mkdir()
        registry.add(name, str(tmp_path / name), codes=[f"FV{name[-1]}"])
    assert [c.name for c in registry.select([])] == ["CAJA1", "CAJA2"]
    assert [c.name for c in registry.select(["CAJA2"])] == ["CAJA2"]
    with pytest.raises(UnknownCaja) as err:
        registry.select(["CAJA2", "CAJA9"])
    assert "'CAJA9'" in str(err.value) and "CAJA1, CAJA2" in str(err.value)


def test_api_refusals_are_usage_errors(cfg, tmp_path):
    (tmp_path / "a").mkdir()
    registry.add("CAJA1", str(tmp_path / "a"), codes=["FV1"])
    with pytest.raises(RegistryError):
        registry.add("CAJA1", str(tmp_path / "b"), codes=["FV9"])
    with pytest.raises(UsageError):
        registry.add("CAJA 2", str(tmp_path / "b"), codes=["FV2"])
    assert state() == [("CAJA1", str(tmp_path / "a"), None, ["FV1"])]


def test_ip_answers_is_a_tcp_connect_to_the_smb_ports():
    srv = socket.socket()
    try:
        srv.bind(("127.0.0.2", 445))
    except OSError as exc:
        srv.close()
        pytest.skip(f"cannot listen on 127.0.0.2:445 here ({exc})")
    srv.listen(1)
    try:
        assert registry.ip_answers("127.0.0.2", 1.0) is True
        started = time.monotonic()
        assert registry.ip_answers("127.0.0.3", 1.0) is False
        assert time.monotonic() - started < 1.0
    finally:
        srv.close()


# --- edit -----------------------------------------------------------------------------------------

@pytest.fixture
def one_caja(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")
    registry.add("CAJA1", str(folder.root))
    return folder


def test_edit_adds_and_removes_codes(home, one_caja):
    out = cli_json(home, "caja", "edit", "CAJA1", "--code", "ND1", "--remove-code", "NC1")
    assert out["codes"] == ["FV1", "ND1"]
    assert state() == [("CAJA1", str(one_caja.root), None, ["FV1", "ND1"])]
    assert any("ND1" in w for w in out["warnings"]) and any("NC1" in w for w in out["warnings"])
    [row] = logged(home, "caja edit")
    assert (row["caja"], row["outcome"]) == ("CAJA1", "ok")


def test_edit_with_the_same_new_code_twice_adds_it_once(home, one_caja):
    proc = run_cli(home, "--json", "caja", "edit", "CAJA1", "--code", "ND1", "--code", "ND1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["codes"] == ["FV1", "NC1", "ND1"]


def test_edit_sets_a_new_root(home, one_caja, caja_folder):
    moved = caja_folder("CAJA1-new", ["FV1", "NC1"])
    out = cli_json(home, "caja", "edit", "CAJA1", "--path", f"{moved.root}/")
    assert out["root"] == str(moved.root)
    assert state() == [("CAJA1", str(moved.root), None, ["FV1", "NC1"])]


def test_edit_sets_and_clears_the_ip(home, one_caja):
    assert cli_json(home, "caja", "edit", "CAJA1", "--ip", "10.0.0.21")["ip"] == "10.0.0.21"
    assert state()[0][2] == "10.0.0.21"
    assert cli_json(home, "caja", "edit", "CAJA1", "--ip", "")["ip"] is None
    assert state()[0][2] is None


def test_edit_renames_a_caja_without_vouchers(home, one_caja):
    out = cli_json(home, "caja", "edit", "CAJA1", "--name", "CAJA5")
    assert out["caja"] == "CAJA5"
    assert state() == [("CAJA5", str(one_caja.root), None, ["FV1", "NC1"])]


def _refused_edit(home, args, *expected):
    before = state()
    line = error_line(run_cli(home, "caja", "edit", *args, check=2))
    for text in expected:
        assert text in line, line
    assert state() == before
    assert [f"Error: {m}" for m in refusals(home, "caja edit")] == [line]
    return line


def test_edit_refuses_a_code_of_another_caja(home, one_caja, caja_folder):
    registry.add("CAJA2", str(caja_folder("CAJA2").root))
    _refused_edit(home, ["CAJA1", "--code", "FV2"], "FV2", "already belongs to caja CAJA2")


def test_edit_refuses_a_root_of_another_caja(home, one_caja, caja_folder):
    two = caja_folder("CAJA2")
    registry.add("CAJA2", str(two.root))
    _refused_edit(home, ["CAJA1", "--path", f"{two.root.parent}/./{two.root.name}/"], "already the root of caja CAJA2")


def test_edit_refuses_removing_a_code_it_does_not_have(home, one_caja):
    _refused_edit(home, ["CAJA1", "--remove-code", "FV9"], "FV9 is not registered to caja CAJA1")


def test_edit_refuses_removing_the_last_code(home, one_caja):
    _refused_edit(home, ["CAJA1", "--remove-code", "FV1", "--remove-code", "NC1"], "no voucher code")


def test_edit_refuses_a_name_taken(home, one_caja, caja_folder):
    registry.add("CAJA2", str(caja_folder("CAJA2").root))
    _refused_edit(home, ["CAJA1", "--name", "CAJA2"], "CAJA2 is already registered")


def test_edit_refuses_an_unknown_caja(home, one_caja):
    _refused_edit(home, ["CAJA9", "--ip", "10.0.0.9"], "no caja is named 'CAJA9'", "CAJA1")


def test_edit_refuses_a_bad_ip_and_changes_nothing_else(home, one_caja, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    _refused_edit(home, ["CAJA1", "--path", str(other), "--ip", "bad ip!"], "IP 'bad ip!'")


def test_a_refusal_is_logged_under_the_caja_the_command_names(home, one_caja, caja_folder):
    registry.add("CAJA5", str(caja_folder("CAJA5", ["FV5"]).root))
    lines = [
        ("caja edit", error_line(run_cli(home, "caja", "edit", "CAJA5", "--code", "FV1", check=2))),
        ("caja add", error_line(run_cli(home, "caja", "add", "CAJA5", "--path", str(one_caja.root), check=2))),
        ("caja remove", error_line(run_cli(home, "caja", "remove", "CAJA9", check=2))),
        ("import", error_line(run_cli(home, "import", "CAJA9", "CAJA5", check=2))),
    ]

    def refused(caja):
        rows = [json.loads(x) for x in run_cli(home, "--json", "log", "--caja", caja, check=0).stdout.splitlines()]
        return [(r["action"], f"Error: {r['message']}") for r in rows if r["outcome"] == "refused"]
    assert refused("CAJA5") == [lines[0], lines[1], lines[3]]
    assert refused("CAJA9") == [lines[2], lines[3]]


# --- imported vouchers: rename, remove, one code one caja ever ------------------------------------

@pytest.fixture
def imported(home, cfg, caja_folder):
    """CAJA1 registered with three FV1 vouchers of DAY imported."""
    folder = caja_folder("CAJA1")
    folder.add_many(1, 3)
    registry.add("CAJA1", str(folder.root))
    result = importer.import_day(cfg, [], DAY, "skip")
    assert [(r.caja, r.outcome, r.imported) for r in result.results] == [("CAJA1", "ok", 3)]
    return folder


def test_edit_refuses_renaming_once_vouchers_are_imported(home, imported):
    _refused_edit(home, ["CAJA1", "--name", "CAJA5"], "CAJA1 has imported vouchers")


def test_remove_keeps_imported_vouchers(home, imported):
    out = cli_json(home, "caja", "remove", "CAJA1")
    assert out == {"caja": "CAJA1", "removed": True, "vouchers_kept": 3}
    assert state() == []
    assert voucher_count("CAJA1") == 3
    assert cli_json(home, "caja", "list")["cajas"] == []
    [row] = logged(home, "caja remove")
    assert (row["caja"], row["outcome"]) == ("CAJA1", "ok")


def test_remove_refuses_an_unknown_caja(home, imported):
    line = error_line(run_cli(home, "caja", "remove", "CAJA9", check=2))
    assert "'CAJA9'" in line
    assert len(state()) == 1
    assert len(refusals(home, "caja remove")) == 1


def test_code_with_vouchers_never_moves_to_another_caja(home, imported, caja_folder):
    run_cli(home, "caja", "remove", "CAJA1", check=0)
    other = caja_folder("CAJA2", ["FV2"])
    line = _refused_add(home, ["CAJA2", "--path", str(other.root), "--code", "FV2", "--code", "FV1"],
                        "FV1", "has vouchers imported from caja CAJA1")
    assert "never moves" in line
    # a code of the removed caja without vouchers is free
    out = cli_json(home, "caja", "add", "CAJA2", "--path", str(other.root), "--code", "FV2", "--code", "NC1")
    assert out["codes"] == ["FV2", "NC1"]
    # and edit refuses the code with vouchers too
    _refused_edit(home, ["CAJA2", "--code", "FV1"], "has vouchers imported from caja CAJA1")


def test_code_with_vouchers_is_refused_while_its_caja_still_exists_without_it(home, imported, caja_folder):
    # the code is taken off CAJA1 (its vouchers stay), then offered to CAJA2
    registry.edit("CAJA1", add_codes=["ND1"], remove_codes=["FV1"])
    other = caja_folder("CAJA2", ["FV2"])
    _refused_add(home, ["CAJA2", "--path", str(other.root), "--code", "FV1"], "has vouchers imported from caja CAJA1")
    assert voucher_count("CAJA1") == 3


# --- list -----------------------------------------------------------------------------------------

def test_list_json_has_the_spec_shape(home, cfg, caja_folder, tmp_path):
    folder = caja_folder("CAJA1")
    registry.add("CAJA1", str(folder.root), ip="127.0.0.1")
    registry.add("CAJA2", str(tmp_path / "gone"), codes=["FV2"])
    out = cli_json(home, "caja", "list")
    assert set(out) == {"cajas", "daemon"}
    one, two = out["cajas"]
    for row in (one, two):
        assert {"name", "root", "ip", "codes", "reachable", "last_sync"} <= set(row)
    assert (one["name"], one["root"], one["ip"], one["codes"], one["reachable"]) == (
        "CAJA1", str(folder.root), "127.0.0.1", ["FV1", "NC1"], True)
    assert (two["name"], two["root"], two["ip"], two["codes"], two["reachable"]) == (
        "CAJA2", str(tmp_path / "gone"), None, ["FV2"], False)
    assert isinstance(one["last_sync"], dict) and "import" not in one["last_sync"]
    assert one["ip_answers"] is False  # nothing listens on 127.0.0.1:445/139 here
    assert two["pending"] is None


def test_list_of_no_cajas(home, cfg):
    assert cli_json(home, "caja", "list")["cajas"] == []
    assert "no cajas registered yet" in run_cli(home, "caja", "list", check=0).stdout


def test_unreachable_root_is_reported_fast(home, cfg, tmp_path, caja_folder):
    write_config(home, limits={"connect_timeout_s": 1.0})
    registry.add("CAJA1", str(caja_folder("CAJA1").root))
    registry.add("CAJA2", str(tmp_path / "unplugged"), codes=["FV2"])
    started = time.monotonic()
    proc = run_cli(home, "caja", "list", check=0)
    assert time.monotonic() - started < 5
    assert f"CAJA2: {tmp_path / 'unplugged'} did not answer" in proc.stdout


class HungShares:
    """Stands in for shares and machines that stop answering, at the operating-system boundary.

    A root under one of `roots` blocks in os.scandir (listing) or os.open (reading) until the test ends; an IP in
    `silent_ips` lets a TCP connect run into its whole time-out, as a machine whose packets are dropped does.
    """

    def __init__(self, monkeypatch):
        self.release = threading.Event()
        self.list_roots: list[str] = []
        self.read_roots: list[str] = []
        self.silent_ips: set[str] = set()
        real_scandir, real_open, real_connect = os.scandir, os.open, socket.create_connection

        def scandir(path="."):
            if any(os.fspath(path).startswith(r) for r in self.list_roots):
                self.release.wait(60)
                raise OSError(errno.EHOSTDOWN, "share went away", os.fspath(path))
            return real_scandir(path)

        def open_(path, flags, *args, **kw):
            if any(os.fspath(path).startswith(r) for r in self.read_roots):
                self.release.wait(60)
                raise OSError(errno.EHOSTDOWN, "share went away", os.fspath(path))
            return real_open(path, flags, *args, **kw)

        def create_connection(address, timeout=None, *args, **kw):
            if address[0] in self.silent_ips:
                self.release.wait(timeout)
                raise TimeoutError("timed out")
            return real_connect(address, timeout, *args, **kw)

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture
def hung(monkeypatch):
    shares = HungShares(monkeypatch)
    yield shares
    shares.release.set()


def _short_timeout_cfg(home):
    write_config(home, limits={"connect_timeout_s": 1.0})
    return config_mod.load(home)


def test_hung_roots_are_reported_unreachable_within_the_bound(home, cfg, tmp_path, hung):
    cfg = _short_timeout_cfg(home)
    for i in range(1, 4):
        (tmp_path / f"hung{i}").mkdir()
        registry.add(f"CAJA{i}", str(tmp_path / f"hung{i}"), codes=[f"FV{i}"])
        hung.list_roots.append(str(tmp_path / f"hung{i}"))
    (tmp_path / "fine").mkdir()
    registry.add("CAJA4", str(tmp_path / "fine"), codes=["FV4"])
    started = time.monotonic()
    rows = overview.overview(cfg)
    elapsed = time.monotonic() - started
    assert elapsed < 1.8, f"overview took {elapsed:.1f} s with connect_timeout_s = 1"
    assert [(r["name"], r["reachable"]) for r in rows] == [("CAJA1", False), ("CAJA2", False), ("CAJA3", False), ("CAJA4", True)]
    assert rows[0]["reason"] == f"{tmp_path / 'hung1'} did not answer within 1 s"


@pytest.mark.slow
def test_shares_hanging_on_read_do_not_add_up_in_the_listing(home, cfg, tmp_path, hung):
    cfg = _short_timeout_cfg(home)
    for i in range(1, 4):
        (tmp_path / f"slow{i}").mkdir()
        registry.add(f"CAJA{i}", str(tmp_path / f"slow{i}"), codes=[f"FV{i}"])
        hung.read_roots.append(str(tmp_path / f"slow{i}"))
    started = time.monotonic()
    rows = overview.overview(cfg)
    elapsed = time.monotonic() - started
    assert len(rows) == 3
    assert elapsed < 1.8, f"overview took {elapsed:.1f} s with connect_timeout_s = 1"


@pytest.mark.slow
def test_silent_machines_do_not_add_up_in_the_listing(home, cfg, tmp_path, hung):
    cfg = _short_timeout_cfg(home)
    for i in range(1, 3):
        (tmp_path / f"r{i}").mkdir()
        registry.add(f"CAJA{i}", str(tmp_path / f"r{i}"), ip=f"192.0.2.{i}", codes=[f"FV{i}"])
        hung.silent_ips.add(f"192.0.2.{i}")
    started = time.monotonic()
    rows = overview.overview(cfg)
    elapsed = time.monotonic() - started
    assert [r["ip_answers"] for r in rows] == [False, False]
    assert elapsed < 1.8, f"overview took {elapsed:.1f} s with connect_timeout_s = 1"


def test_overview_bounds_the_listing_with_the_api(cfg, tmp_path):
    registry.add("CAJA1", str(tmp_path / "unplugged"), codes=["FV1"])
    started = time.monotonic()
    [row] = overview.overview(cfg)
    assert time.monotonic() - started < cfg.limits["connect_timeout_s"]
    assert (row["reachable"], row["pending"]) == (False, None)
    assert "did not answer" in row["reason"]


def test_last_sync_shows_import_after_an_import(home, imported):
    [row] = cli_json(home, "caja", "list")["cajas"]
    at = dt.datetime.fromisoformat(row["last_sync"]["import"])
    assert at.tzinfo is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - at).total_seconds()) < 120
    [imp] = logged(home, "import")
    assert dt.datetime.fromisoformat(imp["at"]) == at


def test_pending_counts_todays_voucher_files_not_yet_imported(home, cfg, caja_folder):
    today = dt.datetime.now(BOGOTA).date()
    folder = caja_folder("CAJA1")
    registry.add("CAJA1", str(folder.root))
    folder.add_many(1, 3, day=today)
    folder.add(50, day=today - dt.timedelta(days=1))  # yesterday's: not pending today
    folder.raw(f"movements/{today}/.FV1-9.json.tmp", "{}")  # being written
    folder.raw(f"movements/{today}/notes.txt", "hola")
    folder.raw(f"movements/{today}/closing.json", "{}")
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["pending"] == 3
    importer.import_day(cfg, [], today, "skip")
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["pending"] == 0
    folder.add(4, day=today)
    folder.add(1, code="NC1", day=today)
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert row["pending"] == 2


def test_pending_is_zero_without_a_folder_for_today(home, cfg, caja_folder):
    folder = caja_folder("CAJA1")
    registry.add("CAJA1", str(folder.root))
    [row] = cli_json(home, "caja", "list")["cajas"]
    assert (row["reachable"], row["pending"]) == (True, 0)


# --- open -----------------------------------------------------------------------------------------

def test_open_print_prints_the_root(home, one_caja):
    proc = run_cli(home, "caja", "open", "CAJA1", "--print", check=0)
    assert proc.stdout == f"{one_caja.root}\n"
    assert cli_json(home, "caja", "open", "CAJA1") == {"caja": "CAJA1", "root": str(one_caja.root), "opened": False}


def test_open_refuses_an_unknown_caja(home, one_caja):
    line = error_line(run_cli(home, "caja", "open", "CAJA9", "--print", check=2))
    assert "'CAJA9'" in line
    assert len(refusals(home, "caja open")) == 1
