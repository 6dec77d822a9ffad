"""The service files: the systemd unit, and the Windows service class driven against the daemon core
with stand-ins for the Windows modules (pywin32 only exists on Windows)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest
from conftest import cli_json, run_cli

from syscafe_sync import config as config_mod
from syscafe_sync import setup, stopping
from syscafe_sync.db.models import SyncLog

REPO = Path(__file__).resolve().parent.parent


def test_the_unit_in_service_is_the_one_the_package_carries():
    assert (REPO / "service" / "syscafe-sync.service").read_text() == (REPO / "syscafe_sync" / "service" / "syscafe-sync.service").read_text()


def test_the_printed_unit_passes_systemd_analyze_verify(home, tmp_path):
    if shutil.which("systemd-analyze") is None:
        why = "systemd-analyze is not installed (Debian package systemd)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the unit must be checked by systemd-analyze verify, but {why}; .ci/run installs it")
        pytest.skip(why)
    unit = tmp_path / "syscafe-sync.service"
    unit.write_text(run_cli(home, "service", "unit", check=0).stdout)
    text = unit.read_text()
    assert f"Environment=SYSCAFE_SYNC_HOME={home}" in text
    program = text.split("ExecStart=", 1)[1].split()[0]
    assert Path(program).exists() and program.endswith("syscafe-sync")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # and verify does catch a broken unit, so the check above means something
    unit.write_text(text.replace(program, str(tmp_path / "no-such-program")))
    assert subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True).returncode != 0


@pytest.mark.parametrize("user", ["", "cafe user", "syscafe\nExecStartPre=/bin/true"])
def test_service_unit_refuses_a_user_systemd_would_not_take(home, user):
    # An empty User= is no error to systemd: it resets the setting, and the service runs as root.
    proc = run_cli(home, "service", "unit", "--user", user)
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == "" and f"--user {user!r} is not a user name" in proc.stderr and "useradd --system" in proc.stderr


def _verify(unit: Path) -> subprocess.CompletedProcess:
    if shutil.which("systemd-analyze") is None:
        why = "systemd-analyze is not installed (Debian package systemd)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the unit must be checked by systemd-analyze verify, but {why}; .ci/run installs it")
        pytest.skip(why)
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)


def test_the_unit_keeps_a_home_with_a_space_and_the_database_it_was_printed_for(tmp_path):
    home = tmp_path / "Datos Syscafe" / "100% home"
    db = f"sqlite:///{tmp_path}/other place/sync.db"
    unit = tmp_path / "syscafe-sync.service"
    unit.write_text(run_cli(None, "--home", str(home), "--db", db, "service", "unit", check=0).stdout)
    done = _verify(unit)
    # Unquoted, systemd cut the home at its space: "Invalid environment assignment, ignoring: home", and
    # the service (and its `init`) used another home; without the --db, another database.
    assert done.returncode == 0 and "Invalid environment" not in done.stderr, done.stderr
    lines = unit.read_text().splitlines()
    assert f'Environment="SYSCAFE_SYNC_HOME={str(home).replace("%", "%%")}"' in lines
    assert f'Environment="SYSCAFE_SYNC_DB={db}"' in lines
    # the usual home stays as it was, unquoted
    plain = run_cli(None, "--home", str(tmp_path / "home"), "service", "unit", check=0).stdout.splitlines()
    assert f"Environment=SYSCAFE_SYNC_HOME={tmp_path / 'home'}" in plain
    assert not [line for line in plain if line.startswith("Environment=SYSCAFE_SYNC_DB")]


def test_the_unit_refuses_a_database_url_with_a_password(tmp_path):
    proc = run_cli(None, "--home", str(tmp_path / "home"), "--db", "postgresql://sync:s3cret@db/main", "service", "unit")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "s3cret" not in proc.stderr and "postgresql://sync:***@db/main" in proc.stderr and "~/.pgpass" in proc.stderr


@pytest.mark.parametrize("url, shown", [("postgresql://sync:s3cret@db/main", "postgresql://sync:***@db/main"),
                                        ("postgresql://sync@db/main?password=s3cret", "postgresql://sync@db/main?password=***")])
@pytest.mark.parametrize("given", ["option", "environment"])
def test_service_install_refuses_a_database_url_with_a_password(tmp_path, given, url, shown):
    # The Windows service keeps its --db in the registry, under the service's key, which every user may read.
    args, env = (["--db", url], None) if given == "option" else ([], {"SYSCAFE_SYNC_DB": url})
    proc = run_cli(None, "--home", str(tmp_path / "home"), *args, "service", "install", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "s3cret" not in proc.stderr and shown in proc.stderr
    assert "registry" in proc.stderr and "pgpass.conf" in proc.stderr
    assert not (tmp_path / "home").exists()
    unit = run_cli(None, "--home", str(tmp_path / "home"), *args, "service", "unit", env=env)
    assert unit.returncode == 2 and unit.stdout == "" and "s3cret" not in unit.stderr and "~/.pgpass" in unit.stderr


@pytest.mark.parametrize("command", ["install", "unit"])
def test_service_commands_refuse_a_database_url_that_cannot_be_read_without_a_traceback(tmp_path, command):
    proc = run_cli(None, "--home", str(tmp_path / "home"), "--db", "postgresql://sync:s3cret@[::1/main", "service", command)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cannot be read" in proc.stderr
    assert "s3cret" not in proc.stderr


def test_the_unit_does_not_restart_a_daemon_refused_for_good():
    from syscafe_sync.daemon import AlreadyRunning
    from syscafe_sync.errors import UsageError

    unit = (REPO / "syscafe_sync" / "service" / "syscafe-sync.service").read_text()
    prevented = [line.split("=", 1)[1].split() for line in unit.splitlines() if line.startswith("RestartPreventExitStatus=")]
    # another daemon holding the database, a bad setting: restarting every RestartSec would not change either
    assert prevented == [[str(AlreadyRunning.exit_code)]] and AlreadyRunning.exit_code == UsageError.exit_code == 2
    assert "Restart=on-failure" in unit.splitlines(), "a failure while it ran (exit 1) is still restarted"
    from syscafe_sync.errors import DatabaseDown

    # `init` (ExecStartPre) at a boot where PostgreSQL is not up yet: restarted until it is
    assert DatabaseDown.exit_code not in {int(code) for code in prevented[0]}


@pytest.mark.skipif(sys.platform == "win32", reason="on Windows `service install` installs for real")
def test_service_install_elsewhere_than_windows_says_what_to_do(home):
    proc = run_cli(home, "service", "install")
    assert proc.returncode == 2
    assert "syscafe-sync service unit" in proc.stderr and "systemctl enable" in proc.stderr


# --- the Windows service class --------------------------------------------------------------------

class _FakeWindows:
    """Just enough of pywin32 for the service class: what it reports, the options it stores."""

    SERVICE_STOP_PENDING, SERVICE_RUNNING, SERVICE_AUTO_START, SERVICE_DEMAND_START = 3, 4, 2, 3

    def __init__(self, options: dict):
        self.options = options
        self.reported: list[int] = []
        self.events: list[str] = []
        fake = self

        class ServiceFramework:
            def __init__(self, args):
                self.args = args

            def ReportServiceStatus(self, status, waitHint=0):
                fake.reported.append(status)

        self.modules = {
            "win32serviceutil": types.SimpleNamespace(
                ServiceFramework=ServiceFramework,
                GetServiceCustomOption=lambda name, key: fake.options.get(key),
                SetServiceCustomOption=lambda name, key, value: fake.options.__setitem__(key, value)),
            "win32service": types.SimpleNamespace(
                SERVICE_STOP_PENDING=self.SERVICE_STOP_PENDING, SERVICE_RUNNING=self.SERVICE_RUNNING,
                SERVICE_AUTO_START=self.SERVICE_AUTO_START, SERVICE_DEMAND_START=self.SERVICE_DEMAND_START),
            "servicemanager": types.SimpleNamespace(
                LogInfoMsg=lambda m: fake.events.append(f"info: {m}"), LogErrorMsg=lambda m: fake.events.append(f"error: {m}"),
                LogWarningMsg=lambda m: fake.events.append(f"warning: {m}")),
        }


@pytest.fixture
def windows(monkeypatch):
    def make(options):
        fake = _FakeWindows(options)
        for name, module in fake.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.delitem(sys.modules, "syscafe_sync.winservice", raising=False)
        import syscafe_sync.winservice as winservice

        return fake, winservice

    yield make
    stopping.requested.clear()


def _wait(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


# SvcShutdown: Windows shutting down. pywin32 tells the service of it only when its class has SvcShutdown
# (ServiceFramework.GetAcceptedControls); otherwise the process is ended wherever it is in its pass.
@pytest.mark.parametrize("control", ["SvcStop", "SvcShutdown"])
def test_the_windows_service_runs_the_daemon_core_and_its_stop_ends_it(home, two, windows, control):
    fake, winservice = windows({"home": str(home), "db": ""})
    service = winservice.SyscafeSyncService(["syscafe-sync"])
    runner = threading.Thread(target=service.SvcDoRun)
    runner.start()
    try:
        assert _wait(lambda: SyncLog.select().where((SyncLog.action == "daemon") & (SyncLog.mode == "pass")).exists())
        getattr(service, control, lambda: None)()
        runner.join(15)
    finally:
        if runner.is_alive():
            service.SvcStop()
            runner.join(15)
    assert hasattr(winservice.SyscafeSyncService, control)
    assert fake.reported == [fake.SERVICE_RUNNING, fake.SERVICE_STOP_PENDING]
    assert fake.events[0].startswith(f"info: syscafe-sync: serving home {home}")
    modes = [r.mode for r in SyncLog.select().where(SyncLog.action == "daemon").order_by(SyncLog.id)]
    assert modes[0] == "start" and modes[-1] == "stop", modes


def test_a_stop_before_the_windows_service_has_started_is_not_lost(home, two, windows):
    fake, winservice = windows({"home": str(home), "db": ""})
    service = winservice.SyscafeSyncService(["syscafe-sync"])
    service.SvcStop()  # the service manager's stop, come while the start was still opening the home
    runner = threading.Thread(target=service.SvcDoRun)
    runner.start()
    runner.join(15)
    alive = runner.is_alive()
    if alive:  # the stop was lost: end the thread, or it outlives the test
        service.SvcStop()
        runner.join(15)
    assert not alive, "the early stop reached the daemon core"
    assert fake.reported == [fake.SERVICE_STOP_PENDING], "never reported running"
    rows = list(SyncLog.select().where(SyncLog.action.in_(["daemon", "import"])).order_by(SyncLog.id))
    assert [(r.action, r.mode) for r in rows] == [("daemon", "stop")], "no pass, no import"
    assert "before its first pass" in rows[0].message
    assert not cli_json(home, "caja", "list")["daemon"]["running"]


def test_a_windows_service_that_cannot_start_says_why_in_the_event_log(tmp_path, windows):
    fake, winservice = windows({"home": str(tmp_path / "never-initialised"), "db": ""})
    service = winservice.SyscafeSyncService(["syscafe-sync"])
    with pytest.raises(Exception, match="run `syscafe-sync"):
        service.SvcDoRun()
    assert fake.events and fake.events[0].startswith("error: syscafe-sync stopped:") and "init" in fake.events[0]


def test_a_windows_service_started_before_its_database_answers_waits_and_a_stop_ends_the_wait(tmp_path, windows):
    # Started at boot before PostgreSQL, it stopped for good: Windows restarts a service only where someone set
    # its recovery actions. Now it waits, says so in the event log, and a stop ends the wait.
    home = tmp_path / "home"
    setup.init(config_mod.load(home, must_exist=False))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    fake, winservice = windows({"home": str(home), "db": f"postgresql://syscafe@127.0.0.1:{port}/main"})
    service = winservice.SyscafeSyncService(["syscafe-sync"])
    runner = threading.Thread(target=service.SvcDoRun)
    runner.start()
    try:
        assert _wait(lambda: fake.events), "the wait is in the event log"
        assert fake.events[0].startswith("warning: syscafe-sync: waiting for the database: the database postgresql://syscafe@")
        assert "does not answer" in fake.events[0]
        assert runner.is_alive(), fake.events
    finally:
        service.SvcStop()
        runner.join(15)
    assert not runner.is_alive(), "the stop ended the wait"
    assert fake.reported == [fake.SERVICE_STOP_PENDING], "never reported running"
    assert not any(e.startswith("error:") for e in fake.events), fake.events


def test_install_keeps_home_and_database_as_the_services_parameters(windows, monkeypatch):
    fake, winservice = windows({})
    installed = {}
    monkeypatch.setattr(sys.modules["win32serviceutil"], "InstallService",
                        lambda cls, name, display, **kw: installed.update(cls=cls, name=name, **kw), raising=False)
    monkeypatch.setattr(sys.modules["win32service"], "__file__", str(Path(sys.executable)), raising=False)
    winservice.install("C:\\ProgramData\\syscafe-sync", "postgresql://sync@db/main", "manual")
    assert installed["cls"] == "syscafe_sync.winservice.SyscafeSyncService" and installed["name"] == "syscafe-sync"
    assert installed["startType"] == fake.SERVICE_DEMAND_START
    assert installed["exeName"].endswith("pythonservice.exe")
    assert fake.options == {"home": "C:\\ProgramData\\syscafe-sync", "db": "postgresql://sync@db/main"}
