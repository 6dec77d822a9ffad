"""The service (SPEC `daemon`): the real daemon in a subprocess — passes on its interval, SIGTERM, one daemon
per database, catch-up of missed days, file events — and the health it reports."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED
from conftest import CajaFolder, cli_env, cli_json, run_cli, voucher, write_config

from syscafe_sync import catchup, passes, registry, stopping
from syscafe_sync.caja import make_closing
from syscafe_sync import config as config_mod
from syscafe_sync.daemon import Daemon
from syscafe_sync.db.models import SyncLog, Voucher, VoucherLine
from syscafe_sync.lease import CajaLease

TZ = dt.timezone(dt.timedelta(hours=-5))  # America/Bogota, the default time zone: no daylight saving


def today() -> dt.date:
    return dt.datetime.now(TZ).date()


def earlier_today() -> dt.datetime:
    """An instant of today that has passed: a voucher of today issued at 08:00 is in the future before 08:00,
    and gets a finding."""
    now = dt.datetime.now(TZ)
    return max(dt.datetime.combine(now.date(), dt.time(0), TZ), now - dt.timedelta(hours=1))


def start_daemon(home: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "syscafe_sync", "--home", str(home), "daemon", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(home, env))


def wait_for(what, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    return what()


def log_rows(action: str, mode: str | None = None) -> list[SyncLog]:
    q = SyncLog.select().where(SyncLog.action == action)
    if mode:
        q = q.where(SyncLog.mode == mode)
    return list(q.order_by(SyncLog.id))


def history() -> str:
    """The log so far, for a failing assertion's message."""
    return "\n".join(f"{r.at:%H:%M:%S.%f} {r.caja or '-'} {r.action} {r.mode or ''} {r.outcome}: {r.message}" for r in SyncLog.select().order_by(SyncLog.id))


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, within: float = 10.0) -> tuple[int, float, str]:
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the daemon did not exit within {within} s of {sig!r}")
    return proc.returncode, time.monotonic() - started, err


@pytest.fixture
def daemon():
    """Starts daemons and makes sure none outlives the test."""
    procs = []

    def start(home, *args, env=None):
        p = start_daemon(home, *args, env=env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.fixture
def core():
    """Runs Daemon cores in this process, each in a thread as the Windows service does; stops them after the test."""
    threads = []

    def start(service: Daemon) -> threading.Thread:
        t = threading.Thread(target=service.run, name="daemon core")
        t.start()
        threads.append(t)
        return t

    yield start
    stopping.requested.set()
    for t in threads:
        t.join(15)
    stopping.requested.clear()


def count(caja: str, day: dt.date | None = None) -> int:
    q = Voucher.select().where(Voucher.caja == caja)
    if day:
        q = q.where(Voucher.day == day.isoformat())
    return q.count()


# --- the schedule ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_new_vouchers_arrive_within_two_intervals_and_sigterm_exits_0(home, two, daemon):
    c1, c2 = two
    c1.add_many(1, 2, day=today())
    interval = 6.0
    proc = daemon(home, "--interval", "0.1", "--no-watch")
    assert wait_for(lambda: count("CAJA1") == 2, 15), f"the first pass starts at once\n{history()}"
    c2.add_many(1, 3, day=today())
    added = time.monotonic()
    # two intervals, plus a second for the pass itself on a busy machine
    assert wait_for(lambda: count("CAJA2") == 3, 2 * interval + 1.0), f"new vouchers within two intervals\n{history()}"
    assert time.monotonic() - added <= 2 * interval + 1.0
    code, took, err = stop(proc)
    assert code == 0, err
    assert took < 10
    assert [r.message.split(":")[0] for r in log_rows("daemon", "start")] == ["daemon started"]
    assert len(log_rows("daemon", "stop")) == 1
    # a pass that SIGTERM cut short says so; it is no caja's failure
    assert all(r.outcome in ("ok", "stopped") for r in log_rows("daemon", "pass")), history()
    # its lease is released: the next daemon starts at once
    assert run_cli(home, "--json", "caja", "list", check=0)


@pytest.mark.slow
def test_sigterm_in_the_middle_of_a_pass_stops_within_seconds_and_leaves_no_half_voucher(home, cfg, caja_folder, daemon):
    write_config(home, limits={"batch_size": 20})
    big = caja_folder("CAJA1")
    big.add_many(1, 1500, day=today())
    registry.add("CAJA1", str(big.root))
    proc = daemon(home, "--interval", "5", "--no-watch")
    assert wait_for(lambda: count("CAJA1") > 0, 30, every=0.01), "the import started"
    code, took, err = stop(proc)
    assert code == 0, err
    assert took < 10
    imported = count("CAJA1")
    # every voucher in the database is whole: its two lines are there
    assert VoucherLine.select().join(Voucher).where(Voucher.caja == "CAJA1").count() == 2 * imported
    assert len(log_rows("daemon", "stop")) == 1
    # the next pass ends exactly where one clean run ends
    run_cli(home, "sync", check=0)
    assert count("CAJA1") == 1500
    assert VoucherLine.select().count() == 3000


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_systemd_is_told_ready_once_the_database_is_taken_and_stopping_at_sigterm(home, two, daemon, kind):
    with tempfile.TemporaryDirectory(prefix="sd") as folder, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        # what systemd gives Type=notify services: a path (/run/systemd/notify), or an abstract name written with @
        address = f"{folder}/notify" if kind == "path" else f"@syscafe-sync-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind(address if kind == "path" else "\0" + address[1:])
        sock.settimeout(20)
        proc = daemon(home, "--interval", "5", "--no-watch", env={"NOTIFY_SOCKET": address})
        ready, status = sock.recv(256).decode().split("\n")
        assert ready == "READY=1", proc.stderr
        assert status == "STATUS=serving: a pass every 5 min"  # what `systemctl status` shows
        assert log_rows("daemon", "start"), "ready only once this daemon holds the database"
        assert wait_for(lambda: log_rows("daemon", "pass"), 15), history()
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(64)  # nothing more while it runs
        code, _, err = stop(proc)
        assert code == 0, err
        assert sock.recv(64) == b"STOPPING=1"
        with pytest.raises(BlockingIOError):
            sock.recv(64)


@pytest.mark.slow
def test_sigint_stops_it_too(home, two, daemon):
    proc = daemon(home, "--interval", "0.05", "--no-watch")
    assert wait_for(lambda: log_rows("daemon", "pass"), 10)
    code, took, err = stop(proc, signal.SIGINT)
    assert code == 0, err


@pytest.mark.slow
def test_a_second_daemon_on_the_same_database_is_refused_and_says_which_holds_it(home, two, daemon):
    first = daemon(home, "--interval", "0.05", "--no-watch")
    assert wait_for(lambda: log_rows("daemon", "pass"), 10)
    second = run_cli(home, "daemon", "--interval", "0.05", timeout=30)
    assert second.returncode == 2, second.stderr
    assert f"process {first.pid} on" in second.stderr and "another syscafe-sync daemon" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.poll() is None, "the first one goes on"
    refused = [r for r in SyncLog.select().where(SyncLog.outcome == "refused") if r.action == "daemon"]
    assert len(refused) == 1
    assert stop(first)[0] == 0
    # a daemon killed with SIGKILL does not lock the database out: its pid is gone
    killed = daemon(home, "--interval", "5", "--no-watch")
    assert wait_for(lambda: len(log_rows("daemon", "start")) == 2, 10)
    killed.kill()
    killed.communicate()
    again = daemon(home, "--interval", "5", "--no-watch")
    assert wait_for(lambda: len(log_rows("daemon", "start")) == 3, 10), again.stderr
    assert stop(again)[0] == 0


@pytest.mark.slow
def test_a_pass_longer_than_the_interval_is_never_run_twice_at_once(home, caja_folder, core):
    interval, wait = 0.25, 1.5
    write_config(home, sync={"catch_up_days": 1}, limits={"lock_wait_s": wait})
    cfg = config_mod.load(home)
    c1 = caja_folder("CAJA1")
    c1.add_many(1, 2, day=today())
    registry.add("CAJA1", str(c1.root))
    # A manual run holds the caja: each pass waits `wait` seconds for it, six intervals, then says busy.
    manual = CajaLease("caja:CAJA1", 60)
    assert manual.try_acquire()
    service = Daemon(cfg, interval / 60, watch=False)
    refused = []
    service.scheduler.add_listener(lambda e: e.job_id == "pass" and refused.append(e), EVENT_JOB_MAX_INSTANCES)
    core(service)
    assert wait_for(lambda: len(log_rows("daemon", "pass")) >= 3, 30, every=0.2), history()
    rows = log_rows("daemon", "pass")  # read before the stop, which cuts the pass in hand short
    stopping.requested.set()
    assert all(r.duration_s >= wait for r in rows), "each pass outlasted several intervals"
    assert refused, "passes fell due while one ran"
    for before, after in zip(rows, rows[1:]):
        started = after.at - dt.timedelta(seconds=after.duration_s)
        # each pass started after the one before had ended (0.1 s: the log rows written after its clock stopped)
        assert started >= before.at - dt.timedelta(seconds=0.1), history()
    manual.release()


@pytest.mark.slow
def test_passes_missed_while_the_machine_slept_run_once_however_late(home, cfg, two, core):
    interval = 3.0
    service = Daemon(cfg, interval / 60, watch=False)
    events = []
    service.scheduler.add_listener(lambda e: e.job_id == "pass" and events.append(e),
                                   EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    core(service)
    assert wait_for(lambda: log_rows("daemon", "pass"), 15), history()
    # The scheduler's thread asleep, as when the machine sleeps: no clock can be handed to APScheduler,
    # so this waits for real, past two runs, the later one 1.6 s late (more than APScheduler's 1 s of grace).
    service.scheduler.pause()
    due = service.scheduler.get_job("pass").next_run_time
    time.sleep((due - dt.datetime.now(due.tzinfo)).total_seconds() + interval + 1.6)
    seen = len(events)
    service.scheduler.resume()
    assert wait_for(lambda: len(log_rows("daemon", "pass")) >= 2, 15), history()
    woke = events[seen:]
    submitted = [e for e in woke if e.code == EVENT_JOB_SUBMITTED]
    assert submitted and submitted[0].scheduled_run_times == [due + dt.timedelta(seconds=interval)], \
        "the two missed runs collapse into the later one"
    first = [e.code for e in woke if e.code != EVENT_JOB_SUBMITTED][0]
    assert first == EVENT_JOB_EXECUTED, "however late, it runs: not dropped as a misfire"
    time.sleep(0.5)  # a second run of the same wake-up would follow at once
    assert len(log_rows("daemon", "pass")) == 2, history()


@pytest.mark.slow
def test_after_the_clock_goes_back_the_passes_go_on(home, cfg, two, core):
    interval = 3.0
    service = Daemon(cfg, interval / 60, watch=False)
    core(service)
    assert wait_for(lambda: log_rows("daemon", "pass"), 15), history()
    # What the clock set back an hour leaves behind: APScheduler keeps its run times in wall-clock time,
    # so the next pass, and the lease's renewal, are an hour and an interval away.
    ahead = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    for job in ("pass", "lease"):
        service.scheduler.modify_job(job, next_run_time=ahead + service.scheduler.get_job(job).trigger.interval)
    assert wait_for(lambda: len(log_rows("daemon", "pass")) >= 3, 4 * interval + 10), f"passes go on\n{history()}"
    told = log_rows("daemon", "clock")
    assert len(told) == 1 and told[0].level == "warning" and re.search(r"clock went back about 3[56]\d\d s", told[0].message), history()
    assert {job.id: job.next_run_time < ahead for job in service.scheduler.get_jobs()} == {"pass": True, "lease": True}


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


@pytest.mark.slow
def test_the_real_clock_set_back_an_hour_does_not_stop_the_passes(home, two, daemon, tmp_path):
    if not os.path.exists(FAKETIME):
        why = f"libfaketime is not installed ({FAKETIME}: Debian package faketime)"
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; .ci/run installs it")
        pytest.skip(why)
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    # Only this daemon's wall clock moves; its monotonic clock, which APScheduler sleeps on, stays real.
    proc = daemon(home, "--interval", "0.05", "--no-watch", env={
        "LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"})
    assert wait_for(lambda: len(log_rows("daemon", "pass")) >= 2, 20), history()
    offset.write_text("-3600\n")
    seen = len(log_rows("daemon", "pass"))
    assert wait_for(lambda: len(log_rows("daemon", "pass")) >= seen + 2, 30), f"passes go on\n{history()}"
    assert [r.level for r in log_rows("daemon", "clock")] == ["warning"], history()
    assert stop(proc)[0] == 0


def test_a_daemon_lease_left_from_before_the_machine_restarted_does_not_keep_the_service_out(home, two, daemon):
    from syscafe_sync.db.models import Lease
    from syscafe_sync.lease import HOST

    # A power cut, and the machine back within lease_s: the lease the old daemon renewed says it has 100 s
    # left, and names a pid that this boot handed out again, to a process that is no syscafe-sync.
    before_the_restart = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    time.sleep(1.5)  # /proc's start times are whole seconds of the boot time, plus clock ticks
    other = subprocess.Popen(["sleep", "120"])
    try:
        Lease.create(name="daemon", holder=f"{HOST}:{other.pid}:00000000", host=HOST, pid=other.pid,
                     acquired_at=before_the_restart, expires_at=time.time() + 100)
        assert not cli_json(home, "caja", "list")["daemon"]["running"]
        proc = daemon(home, "--interval", "5", "--no-watch")
        assert wait_for(lambda: log_rows("daemon", "pass") or proc.poll() is not None, 20), history()
        assert proc.poll() is None, f"refused, exit {proc.returncode}: {proc.communicate()[1]}"
        took = log_rows("daemon", "start")[0]
        assert took.level == "warning" and f"named process {other.pid} on {HOST}" in took.message and "taken over" in took.message
        assert cli_json(home, "caja", "list")["daemon"]["holder"].startswith(f"process {proc.pid} on ")
        assert stop(proc)[0] == 0
    finally:
        other.kill()
        other.wait()


def test_a_daemon_lease_naming_the_new_daemons_own_pid_is_taken_over(home, two):
    # The same boot order after a restart gives the daemon the very pid its predecessor had: `exec` keeps
    # the shell's pid, which the lease names.
    write = ("import datetime as dt, sys, time; from syscafe_sync import setup; from syscafe_sync.db.models import Lease; "
             "from syscafe_sync.lease import HOST; setup.open_home(sys.argv[1], None); pid = int(sys.argv[2]); "
             "Lease.create(name='daemon', holder=f'{HOST}:{pid}:00000000', host=HOST, pid=pid, "
             "acquired_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1), expires_at=time.time() + 100)")
    script = '"$1" -c "$2" "$3" $$ && exec "$1" -m syscafe_sync --home "$3" daemon --interval 5 --no-watch'
    proc = subprocess.Popen(["sh", "-c", script, "sh", sys.executable, write, str(home)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(home))
    try:
        assert wait_for(lambda: log_rows("daemon", "pass") or proc.poll() is not None, 30), history()
        assert proc.poll() is None, f"refused, exit {proc.returncode}: {proc.communicate()[1]}"
        assert f"named process {proc.pid} on" in log_rows("daemon", "start")[0].message
        assert stop(proc)[0] == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


class _CutProxy:
    """A TCP proxy in front of PostgreSQL that can be cut, as when the server restarts: new connections are
    reset, open ones dropped; and put back."""

    def __init__(self, port: int):
        self.target, self.up, self.open = port, threading.Event(), []
        self.up.set()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # a reset, at once
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target))
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def cut(self):
        self.up.clear()
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.cut()
        self.sock.close()


@pytest.mark.slow
def test_postgresql_going_away_and_back_is_logged_and_the_stop_after_it_is_clean(pg_home, caja_folder, daemon):
    from urllib.parse import urlparse

    from conftest import PG_HOMES

    url = urlparse(PG_HOMES[pg_home])
    c1 = caja_folder("CAJA1")
    registry.add("CAJA1", str(c1.root))
    proxy = _CutProxy(url.port)
    try:
        through = url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}").geturl()
        proc = daemon(pg_home, "--interval", "0.05", "--no-watch", env={"SYSCAFE_SYNC_DB": through})
        assert wait_for(lambda: len(log_rows("daemon", "pass")) >= 2, 20), history()
        proxy.cut()
        log_file = pg_home / "logs" / "syscafe-sync.log"
        # Nothing reaches the database now: the file is the only place a person sees the outage in.
        assert wait_for(lambda: "pass could not run" in log_file.read_text(encoding="utf-8"), 20), log_file.read_text()
        seen = len(log_rows("daemon", "pass"))
        proxy.up.set()
        assert wait_for(lambda: len(log_rows("daemon", "pass")) >= seen + 2, 30), history()
        code, _, err = stop(proc)
        assert code == 0, err  # a dead connection kept from the start made the stop fail, and keep the lease
        assert "Traceback" not in err, err
        assert log_rows("daemon", "stop"), history()
    finally:
        proxy.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_daemon_started_before_postgresql_answers_waits_for_it_then_serves(pg_home, caja_folder, daemon, tmp_path):
    # A boot where the service starts first: before, the daemon exited 2 at once, which systemd does not restart.
    from urllib.parse import urlparse

    from conftest import PG_HOMES

    url = urlparse(PG_HOMES[pg_home])
    registry.add("CAJA1", str(caja_folder("CAJA1").root))
    proxy = _CutProxy(url.port)
    proxy.cut()  # PostgreSQL not accepting connections yet: each one is reset
    log_file = pg_home / "logs" / "syscafe-sync.log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(20)
        try:
            through = url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}").geturl()
            proc = daemon(pg_home, "--interval", "0.05", "--no-watch",
                          env={"SYSCAFE_SYNC_DB": through, "NOTIFY_SOCKET": str(tmp_path / "notify")})
            status = sock.recv(1024).decode()
            assert status.startswith("STATUS=waiting for the database: the database postgresql://") and "does not answer" in status
            assert wait_for(lambda: "waiting for the database" in log_file.read_text(encoding="utf-8"), 10)
            time.sleep(2.5)  # a second and a third try, 1 s and 2 s later, still refused
            assert proc.poll() is None, proc.communicate()[1]
            assert not log_rows("daemon", "start"), "no start while the database does not answer"
            proxy.up.set()
            assert wait_for(lambda: log_rows("daemon", "pass"), 20), history()
            extended = 0
            while not (message := sock.recv(1024).decode()).startswith("READY=1"):
                assert message.startswith(("STATUS=", "EXTEND_TIMEOUT_USEC=")), message
                extended += message.startswith("EXTEND_TIMEOUT_USEC=")
            assert extended >= 2, "each try asks systemd for more than its start timeout (90 s by default)"
            waited = log_rows("daemon", "wait")
            assert [r.outcome for r in waited] == ["ok"] and "the database answers after" in waited[0].message, history()
            assert waited[0].duration_s >= 2.5 and waited[0].id < log_rows("daemon", "start")[0].id
            code, _, err = stop(proc)
        finally:
            proxy.close()
    assert code == 0, err
    assert "Traceback" not in err and "syscafe-sync daemon: waiting for the database" in err and "Next try in 1 s" in err
    lines = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    waits = [x for x in lines if x.get("mode") == "wait"]
    assert [w["outcome"] for w in waits] == ["failed", "ok"], "the same reason is written once, not at every try"
    assert waits[0]["level"] == "warning"


@pytest.mark.slow
def test_a_daemon_asked_to_stop_while_it_waits_for_the_database_exits_0_at_once(tmp_path, daemon):
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    log_file = home / "logs" / "syscafe-sync.log"
    proc = daemon(home, "--no-watch", env={"SYSCAFE_SYNC_DB": f"postgresql://syscafe@127.0.0.1:{_closed_port()}/main"})
    assert wait_for(lambda: "waiting for the database" in log_file.read_text(encoding="utf-8"), 15), proc.stderr
    time.sleep(1.5)  # into its second wait, of 2 s
    code, took, err = stop(proc, within=5)
    assert code == 0 and took < 1.5, (code, took, err)
    assert "Traceback" not in err and "Connection refused" in err
    assert "daemon stopped while it waited for the database" in log_file.read_text(encoding="utf-8")


@pytest.mark.slow
def test_config_edited_while_the_daemon_runs_is_in_force_from_the_next_pass_and_a_broken_one_is_refused(home, caja_folder, daemon):
    c1 = caja_folder("CAJA1")
    registry.add("CAJA1", str(c1.root))
    c1.add(1, day=today())
    proc = daemon(home, "--interval", "0.05", "--no-watch")
    assert wait_for(lambda: count("CAJA1") == 1, 20), history()
    # What a person edits while the service runs: a limit, and the interval, which the schedule took at the start.
    write_config(home, limits={"max_file_bytes": 200}, sync={"interval_minutes": 10})
    assert wait_for(lambda: log_rows("daemon", "config"), 20), history()
    row = log_rows("daemon", "config")[0]
    assert "limits.max_file_bytes in force from this pass" in row.message, row.message
    assert "sync.interval_minutes only once the service is restarted" in row.message and row.level == "warning"
    c1.add(2, day=today())  # over 200 bytes, as every voucher is
    assert wait_for(lambda: [r for r in log_rows("import") if r.caja == "CAJA1" and r.refused], 20), history()
    assert count("CAJA1") == 1
    assert "limits.max_file_bytes" in history()
    seen = len(log_rows("daemon", "pass"))
    assert wait_for(lambda: len(log_rows("daemon", "pass")) >= seen + 2, 20), "the interval in force is still 3 s"
    (home / "config.toml").write_text("[limits]\nmax_file_bytes = \n", encoding="utf-8")
    assert wait_for(lambda: len(log_rows("daemon", "config")) == 2, 20), history()
    refused = log_rows("daemon", "config")[1]
    assert refused.outcome == "refused" and refused.level == "error" and "is not valid TOML" in refused.message
    assert "goes on with the settings it had" in refused.message
    seen = len(log_rows("daemon", "pass"))
    assert wait_for(lambda: len(log_rows("daemon", "pass")) >= seen + 2, 20), history()
    assert count("CAJA1") == 1, "the limit in force is still the edited one"
    code, _, err = stop(proc)
    assert code == 0, err
    assert len(log_rows("daemon", "config")) == 2, "an unchanged file is not read again at every pass"


@pytest.mark.slow
def test_smb_credentials_put_right_in_config_toml_while_the_daemon_runs_serve_the_caja_at_the_next_pass(home, smb_caja, daemon):
    # The case that made the daemon read its configuration again: a caja share's password fixed by hand
    # while the service runs; before, the service kept failing on the password it started with.
    from samba import PASSWORD, USER

    from conftest import smb_credentials

    c1, root = smb_caja("CAJA1", "caja1")
    registry.add("CAJA1", root, config=config_mod.load(home))
    c1.add(1, day=today())
    good = (home / "config.toml").read_text(encoding="utf-8")
    (home / "config.toml").write_text(good.split("[smb.hosts.")[0], encoding="utf-8")
    smb_credentials(home, USER, "not-the-password")
    proc = daemon(home, "--interval", "0.05", "--no-watch")
    assert wait_for(lambda: [r for r in log_rows("import") if r.caja == "CAJA1" and r.outcome != "ok"], 30), history()
    assert count("CAJA1") == 0
    (home / "config.toml").write_text(good, encoding="utf-8")
    assert wait_for(lambda: count("CAJA1") == 1, 30), history()
    row = log_rows("daemon", "config")[0]
    assert "smb.hosts in force from this pass" in row.message and PASSWORD not in row.message
    assert PASSWORD not in (home / "logs" / "syscafe-sync.log").read_text(encoding="utf-8")
    code, _, err = stop(proc)
    assert code == 0, err


def test_a_config_file_made_readable_by_chmod_alone_is_read_again(tmp_path):
    # `chmod 640 config.toml` after a root-made 0600 copy changes neither its contents nor its mtime.
    from syscafe_sync.daemon import _stamp

    path = tmp_path / "config.toml"
    path.write_text("[limits]\nworkers = 2\n", encoding="utf-8")
    path.chmod(0o600)
    before = _stamp(path)
    time.sleep(0.05)  # the kernel's file times are coarser than a nanosecond
    path.chmod(0o640)
    assert _stamp(path) != before and _stamp(path)[0] == before[0]


def test_a_bad_interval_is_refused_with_exit_2(home):
    proc = run_cli(home, "daemon", "--interval", "0")
    assert proc.returncode == 2
    assert "--interval 0" in proc.stderr and "greater than zero" in proc.stderr


@pytest.mark.parametrize("minutes", ["inf", "1e300", "10081"])
def test_an_interval_no_schedule_can_hold_is_refused_before_anything_starts(home, minutes):
    proc = run_cli(home, "daemon", "--interval", minutes, "--no-watch", timeout=30)
    assert proc.returncode == 2, proc.stderr  # not 1, which systemd restarts every RestartSec for ever
    assert f"--interval {float(minutes)!r}" in proc.stderr and "at most 10080 (a week)" in proc.stderr
    assert "unexpected" not in proc.stderr
    assert not log_rows("daemon", "start"), "refused before it started"
    assert CajaLease("daemon", 1).try_acquire(), "the database was not left taken"
    if minutes == "inf":
        return  # TOML's inf is refused by the configuration's own check
    write_config(home, sync={"interval_minutes": float(minutes)})
    proc = run_cli(home, "daemon", "--no-watch", timeout=30)
    assert proc.returncode == 2 and f"sync.interval_minutes = {float(minutes)!r}" in proc.stderr, proc.stderr
    assert str(home / "config.toml") in proc.stderr


# --- catch-up -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_first_pass_catches_up_every_missed_day_within_the_window(home, two, daemon):
    c1, c2 = two
    t = today()
    for back, n in ((9, 1), (6, 2), (3, 3), (1, 4), (0, 5)):
        c1.add_many(100 * back + 1, n, day=t - dt.timedelta(days=back))
    proc = daemon(home, "--interval", "5", "--no-watch")
    assert wait_for(lambda: log_rows("daemon", "pass"), 20)
    assert stop(proc)[0] == 0
    by_day = {back: count("CAJA1", t - dt.timedelta(days=back)) for back in (9, 6, 3, 1, 0)}
    # the default window is 7 days, today included: 9 days back is outside it
    assert by_day == {9: 0, 6: 2, 3: 3, 1: 4, 0: 5}


def test_catch_up_imports_every_day_of_the_window_not_closed_yet(cfg, home):
    t = dt.date(2026, 11, 23)
    y = t - dt.timedelta(days=1)
    # never imported: the whole window
    assert catchup.days("CAJA1", t, 7) == [t - dt.timedelta(days=n) for n in range(6, -1, -1)]
    for n in range(2, 7):
        catchup.mark("CAJA1", t - dt.timedelta(days=n), closed=True)
    # past days imported with their closing are done; yesterday stays open until it is closed
    catchup.mark("CAJA1", y, closed=False)
    assert catchup.days("CAJA1", t, 7) == [y, t]
    catchup.mark("CAJA1", y, closed=True)
    assert catchup.days("CAJA1", t, 7) == [t]
    # the server was off for three days
    later = t + dt.timedelta(days=3)
    assert catchup.days("CAJA1", later, 7) == [t, t + dt.timedelta(days=1), t + dt.timedelta(days=2), later]
    assert catchup.days("CAJA1", later, 2) == [later - dt.timedelta(days=1), later]


def test_a_day_imported_partway_is_finished_even_after_more_than_one_midnight(cfg, home):
    t = dt.date(2026, 11, 23)
    for n in range(1, 7):
        catchup.mark("CAJA1", t - dt.timedelta(days=n), closed=True)
    # the last pass before the server went off: the 23rd imported, but the caja had not closed it
    catchup.mark("CAJA1", t, closed=False)
    later = t + dt.timedelta(days=3)
    assert catchup.days("CAJA1", later, 7) == [t + dt.timedelta(days=n) for n in range(4)]
    # the window still bounds it: a week later the 23rd is given up
    assert t not in catchup.days("CAJA1", t + dt.timedelta(days=7), 7)
    catchup.mark("CAJA1", t, closed=True)
    assert catchup.days("CAJA1", later, 7) == [t + dt.timedelta(days=n) for n in range(1, 4)]


def test_the_rest_of_a_day_imported_partway_arrives_days_later(cfg, two):
    c1, _ = two
    t = dt.date(2026, 11, 23)
    c1.add_many(1, 2, day=t)
    evening = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.timezone.utc)  # 21:00 in Bogotá, the caja still selling
    passes.run_pass(cfg, ["CAJA1"], now=evening)
    assert count("CAJA1", t) == 2
    # sold after that pass, then the server was off until three days later
    c1.add_many(3, 2, day=t)
    c1.writer.write_closing(t, make_closing("CAJA1", t, [voucher("CAJA1", "FV1", n, t) for n in range(1, 5)]))
    passes.run_pass(cfg, ["CAJA1"], now=evening + dt.timedelta(days=3))
    assert count("CAJA1", t) == 4
    # and now it is closed, like the days between, which had no folder
    assert catchup.days("CAJA1", t + dt.timedelta(days=3), 7) == [t + dt.timedelta(days=3)]


def test_after_midnight_yesterday_is_finished_until_its_closing_is_there(cfg, two):
    c1, _ = two
    y = today() - dt.timedelta(days=1)
    c1.add_many(1, 2, day=y)
    passes.run_pass(cfg, ["CAJA1"])
    assert count("CAJA1", y) == 2
    # the caja goes on selling on yesterday's process date after midnight, then closes it
    c1.add_many(3, 1, day=y)
    passes.run_pass(cfg, ["CAJA1"])
    assert count("CAJA1", y) == 3
    c1.writer.write_closing(y, make_closing("CAJA1", y, [voucher("CAJA1", "FV1", n, y) for n in (1, 2, 3)]))
    passes.run_pass(cfg, ["CAJA1"])
    assert catchup.days("CAJA1", today(), 7) == [today()]
    # a day with no folder at all, in the past, is not waited for
    assert catchup.days("CAJA2", today(), 7) == [today() - dt.timedelta(days=n) for n in range(6, -1, -1)]
    passes.run_pass(cfg, ["CAJA2"])
    assert catchup.days("CAJA2", today(), 7) == [today()]


# --- file events ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_new_voucher_in_a_local_folder_is_imported_within_seconds(home, two, daemon):
    c1, _ = two
    debounce = 1.0
    write_config(home, sync={"watch_debounce_s": debounce})
    proc = daemon(home, "--interval", "10")  # the interval alone would take 10 minutes
    assert wait_for(lambda: log_rows("daemon", "pass"), 10)
    first_pass = log_rows("daemon", "pass")[0]
    assert "watching 2 local folders" in first_pass.message
    written = time.monotonic()
    for n in (1, 2, 3):  # a POS writing three sales, each file an event or more, all within the debounce
        c1.add(n, day=today(), issued=earlier_today())
        time.sleep(0.1)
    assert wait_for(lambda: count("CAJA1") == 3, 10), "a file event starts the import"
    took = time.monotonic() - written
    assert took < 10
    time.sleep(2 * debounce)  # room for any further import the later events might have started
    after = [r for r in log_rows("import") if r.caja == "CAJA1" and r.id > first_pass.id]
    assert [(r.outcome, r.imported, r.skipped) for r in after] == [("ok", 3, 0)], f"one import for the three files\n{history()}"
    assert len(log_rows("daemon", "pass")) == 1, "it was the event, not a pass"
    assert stop(proc)[0] == 0


def test_network_shares_are_not_watched(tmp_path):
    from syscafe_sync.storage.local import NETWORK_FS, filesystem_type, on_local_disk

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /mnt/caja2 rw,relatime shared:30 - cifs //CAJA2/Syscafe rw,vers=3.1.1\n"
        "41 22 0:51 / /mnt/caja\\0403 rw,relatime - nfs4 caja3:/datos rw\n"
        "42 22 0:52 / /run/user/1000/gvfs rw,nosuid,nodev,relatime - fuse.gvfsd-fuse gvfsd-fuse rw,user_id=1000\n")
    assert filesystem_type("/mnt/caja2/movements", str(mountinfo)) == "cifs"
    assert filesystem_type("/mnt/caja 3", str(mountinfo)) == "nfs4"
    assert filesystem_type("/srv/caja1", str(mountinfo)) == "ext4"
    # a share opened from a desktop's file manager
    assert filesystem_type("/run/user/1000/gvfs/smb-share:server=caja4,share=syscafe", str(mountinfo)) in NETWORK_FS
    assert not on_local_disk("\\\\CAJA2\\Syscafe\\Datos")
    assert not on_local_disk("smb://caja2/syscafe")
    assert on_local_disk(str(tmp_path))


# --- health ---------------------------------------------------------------------------------------

def test_a_caja_failing_n_passes_is_logged_once_and_again_when_it_recovers(home, cfg, two, tmp_path):
    write_config(home, sync={"alert_after_failures": 3}, limits={"connect_timeout_s": 1.0})
    cfg = config_mod.load(home)
    c1, _ = two
    hidden = tmp_path / "hidden"
    c1.root.rename(hidden)
    for _ in range(5):
        passes.run_pass(cfg)
    alerts = log_rows("health")
    assert [(r.caja, r.level) for r in alerts] == [("CAJA1", "error")]
    assert "failed 3 passes in a row" in alerts[0].message and "did not answer" in alerts[0].message
    listed = cli_json(home, "caja", "list")
    failing = {c["name"]: c["failing"] for c in listed["cajas"]}
    assert failing["CAJA2"] is None and failing["CAJA1"]["passes"] == 5
    text = run_cli(home, "caja", "list", check=0).stdout
    assert "CAJA1: failing 5 passes in a row" in text
    hidden.rename(c1.root)
    passes.run_pass(cfg)
    passes.run_pass(cfg)
    alerts = log_rows("health")
    assert [(r.caja, r.level) for r in alerts] == [("CAJA1", "error"), ("CAJA1", "info")]
    assert "recovered after 5 failing passes" in alerts[1].message
    assert cli_json(home, "caja", "list")["cajas"][0]["failing"] is None


@pytest.mark.slow
def test_caja_list_shows_the_daemon_and_its_last_pass(home, two, daemon):
    assert "daemon: not running; no pass yet" in run_cli(home, "caja", "list", check=0).stdout
    proc = daemon(home, "--interval", "5", "--no-watch")
    assert wait_for(lambda: log_rows("daemon", "pass"), 10)
    listed = cli_json(home, "caja", "list")["daemon"]
    assert listed["running"] and listed["holder"].startswith(f"process {proc.pid} on ")
    assert listed["last_pass"]["outcome"] == "ok" and listed["last_pass"]["message"].startswith("pass 1: 2 of 2 cajas ok")
    assert stop(proc)[0] == 0
    after = cli_json(home, "caja", "list")["daemon"]
    assert not after["running"] and after["last_pass"] == listed["last_pass"]


@pytest.mark.slow
def test_a_watched_folder_on_a_mount_that_stops_answering_holds_neither_the_passes_nor_the_stop(home, caja_folder, frozen_mount, daemon):
    write_config(home, limits={"connect_timeout_s": 1.0, "caja_timeout_s": 5.0})
    # A share mounted on the main server, of a type not known as a network one: it looks local, and is watched.
    frozen = CajaFolder(frozen_mount.mountpoint / "CAJA1", "CAJA1", ["FV1", "NC1"])
    registry.add("CAJA1", str(frozen.root))
    registry.add("CAJA2", str(caja_folder("CAJA2").root))
    proc = daemon(home, "--interval", "0.05")
    assert wait_for(lambda: "watching 2 local folders" in ([r.message for r in log_rows("daemon", "pass")] or [""])[-1], 20), history()
    frozen_mount.freeze()
    # The passes go on, CAJA1 failing and CAJA2 served; before, the first one after the freeze blocked in
    # the watcher's look at CAJA1's folder, for as long as the mount stayed frozen, and so did the stop.
    assert wait_for(lambda: len([r for r in log_rows("daemon", "pass") if "failing: CAJA1" in r.message]) >= 2, 60), history()
    last = [r for r in log_rows("daemon", "pass") if "failing: CAJA1" in r.message][-1]
    assert last.message.startswith("pass") and "1 of 2 cajas ok" in last.message and "watching 1 local folders" in last.message
    code, _, err = stop(proc, within=30)
    assert code == 0, err


def test_a_watch_whose_folder_went_away_is_started_again(two, tmp_path):
    from syscafe_sync.watch import Watcher

    c1, c2 = two
    seen = []
    watcher = Watcher(lambda caja, day: seen.append((caja, day)))
    try:
        assert watcher.update(registry.all_cajas()) == ["CAJA1", "CAJA2"]
        c1.root.rename(tmp_path / "away")
        assert watcher.update(registry.all_cajas()) == ["CAJA2"]
        (tmp_path / "away").rename(c1.root)
        assert watcher.update(registry.all_cajas()) == ["CAJA1", "CAJA2"]
        c1.add(7, day=today())
        assert wait_for(lambda: ("CAJA1", today()) in seen, 5)
        c2.writer.write_caja_json("CAJA2", ["FV2", "NC2"], "900123456-7")  # not a voucher: no event handed on
        time.sleep(0.5)
        assert {caja for caja, _ in seen} == {"CAJA1"}
    finally:
        watcher.stop()


def test_watches_whose_threads_died_are_started_again(two):
    from syscafe_sync.watch import Watcher

    c1, c2 = two
    seen = []
    watcher = Watcher(lambda caja, day: seen.append((caja, day)))
    try:
        assert watcher.update(registry.all_cajas()) == ["CAJA1", "CAJA2"]
        # CAJA1's emitter thread ends, as watchdog's own emitters end after an error in their folder
        emitter = next(e for e in watcher.observer.emitters if e.watch == watcher.watches["CAJA1"][1])
        emitter.stop()
        emitter.join(5)
        c1.add(1, day=today())
        c2.add(1, day=today())
        assert wait_for(lambda: ("CAJA2", today()) in seen, 5)
        assert ("CAJA1", today()) not in seen, "that watch is really dead"
        assert watcher.update(registry.all_cajas()) == ["CAJA1", "CAJA2"]
        c1.add(2, day=today())
        assert wait_for(lambda: ("CAJA1", today()) in seen, 5), "started again"
        # the observer's own thread ends: every watch with it
        dead = watcher.observer
        dead.stop()
        dead.join(5)
        seen.clear()
        assert watcher.update(registry.all_cajas()) == ["CAJA1", "CAJA2"]
        assert watcher.observer is not dead and watcher.observer.is_alive()
        c1.add(3, day=today())
        c2.add(3, day=today())
        assert wait_for(lambda: {caja for caja, _ in seen} == {"CAJA1", "CAJA2"}, 5)
    finally:
        watcher.stop()


def test_service_settings_are_checked(home):
    write_config(home, sync={"watch": "yes"})
    proc = run_cli(home, "daemon")
    assert proc.returncode == 2 and "sync.watch = 'yes' must be a bool like true" in proc.stderr
    write_config(home, sync={"catch_up_days": 0})
    proc = run_cli(home, "sync")
    assert proc.returncode == 2 and "sync.catch_up_days = 0 must be a finite number greater than zero" in proc.stderr
