"""`log` (Syscafe's "Examinar log"): filters, JSON lines, --follow, the rotating file, pruning (SPEC §2, §3)."""

from __future__ import annotations

import datetime as dt
import json
import queue
import subprocess
import sys
import threading
import time
import zoneinfo

import pytest

from conftest import run_cli, write_config
from syscafe_sync import synclog
from syscafe_sync.db.models import SyncLog, utcnow

SPEC_KEYS = {"at", "level", "caja", "action", "mode", "imported", "updated", "skipped", "refused", "duration_s", "outcome", "message"}
BOGOTA = zoneinfo.ZoneInfo("America/Bogota")


@pytest.fixture
def log_home(home, cfg):
    """An initialised home whose sync log starts empty (init writes one row)."""
    SyncLog.delete().execute()
    return home


def row(at: dt.datetime, message: str, *, caja: str | None = "CAJA1", action: str = "import", level: str = "info",
        outcome: str = "ok", **kw) -> SyncLog:
    return SyncLog.create(at=at, level=level, caja=caja, action=action, outcome=outcome, message=message, **kw)


def log_json(home, *args: str) -> list[dict]:
    proc = run_cli(home, "--json", "log", *args, check=0)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def messages(home, *args: str) -> list[str]:
    return [r["message"] for r in log_json(home, *args)]


def day_at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), BOGOTA)


# --- the shape ------------------------------------------------------------------------------------

def test_json_lines_carry_every_spec_key_with_the_row_values(log_home):
    synclog.record(synclog.Entry(action="import", outcome="failed", caja="CAJA2", mode="skip", level="error",
                                 imported=3, updated=1, skipped=7, refused=2, duration_s=1.23456, message="2 refused"))
    [line] = log_json(log_home)
    assert SPEC_KEYS <= set(line)
    assert {k: line[k] for k in SPEC_KEYS - {"at"}} == {
        "level": "error", "caja": "CAJA2", "action": "import", "mode": "skip", "imported": 3, "updated": 1,
        "skipped": 7, "refused": 2, "duration_s": 1.235, "outcome": "failed", "message": "2 refused",
    }
    at = dt.datetime.fromisoformat(line["at"])
    assert at.tzinfo is not None
    assert abs((utcnow() - at).total_seconds()) < 60


def test_text_output_shows_caja_action_outcome_and_message(log_home):
    row(day_at(dt.date(2020, 1, 2), 12), "3 imported, 0 updated", caja="CAJA7", mode="skip", imported=3)
    out = run_cli(log_home, "log", check=0).stdout
    [line] = out.splitlines()
    assert line.startswith("2020-01-02 12:00:00")  # shown in the company's time zone
    for part in ("CAJA7", "import", "skip", "ok", "+3 ~0 =0 !0", "3 imported, 0 updated"):
        assert part in line


def test_empty_log_prints_nothing_and_exits_0(log_home):
    assert run_cli(log_home, "--json", "log", check=0).stdout == ""


# --- filters --------------------------------------------------------------------------------------

def test_filter_by_caja(log_home):
    t = day_at(dt.date(2020, 1, 2), 12)
    row(t, "one", caja="CAJA1")
    row(t, "two", caja="CAJA2")
    row(t, "three", caja=None, action="init")
    row(t, "four", caja="CAJA1")
    assert messages(log_home, "--caja", "CAJA1") == ["one", "four"]


def test_a_caja_neither_registered_nor_in_the_log_gives_exit_2_naming_the_known_ones(log_home):
    """Empty output for a mistyped name reads as "nothing happened to it"; a removed caja's rows still show."""
    t = day_at(dt.date(2020, 1, 2), 12)
    row(t, "one", caja="CAJA1")
    row(t, "gone", caja="CAJA5", action="caja remove")  # not registered any more, but in the log
    assert messages(log_home, "--caja", "CAJA5") == ["gone"]
    for _ in range(2):  # the refusal, logged under the name given, does not make the name known
        proc = run_cli(log_home, "log", "--caja", "caja1", check=2)
        assert proc.stdout == ""
        assert "'caja1'" in proc.stderr and "CAJA1, CAJA5" in proc.stderr and "case-sensitive" in proc.stderr
    refused = SyncLog.select().where(SyncLog.outcome == "refused")
    assert [(r.caja, r.action) for r in refused] == [("caja1", "log"), ("caja1", "log")]


def test_filter_by_action(log_home):
    t = day_at(dt.date(2020, 1, 2), 12)
    row(t, "imp", action="import")
    row(t, "add", action="caja add")
    row(t, "edit", action="caja edit")
    assert messages(log_home, "--action", "caja add") == ["add"]
    assert messages(log_home, "--action", "import") == ["imp"]


def test_since_and_until_take_iso_dates_in_the_company_time_zone(log_home):
    for d in (20, 21, 22):
        row(day_at(dt.date(2020, 11, d), 0, 30), f"day {d} early")
        row(day_at(dt.date(2020, 11, d), 23, 30), f"day {d} late")
    assert messages(log_home, "--since", "2020-11-21", "--until", "2020-11-22") == ["day 21 early", "day 21 late"]
    assert messages(log_home, "--since", "2020-11-22") == ["day 22 early", "day 22 late"]
    assert messages(log_home, "--until", "2020-11-21") == ["day 20 early", "day 20 late"]


def test_since_takes_an_iso_datetime_with_or_without_offset(log_home):
    row(day_at(dt.date(2020, 11, 21), 11), "eleven")
    row(day_at(dt.date(2020, 11, 21), 13), "thirteen")
    assert messages(log_home, "--since", "2020-11-21T12:00") == ["thirteen"]
    # 17:00 UTC is 12:00 in Bogota
    assert messages(log_home, "--since", "2020-11-21T17:00+00:00") == ["thirteen"]
    assert messages(log_home, "--until", "2020-11-21T12:00") == ["eleven"]


def test_since_today_and_yesterday(log_home):
    today = dt.datetime.now(BOGOTA).date()
    yesterday = today - dt.timedelta(days=1)
    row(day_at(yesterday, 0) - dt.timedelta(hours=1), "before yesterday")
    row(day_at(yesterday, 0) + dt.timedelta(minutes=1), "yesterday")
    row(day_at(today, 0) + dt.timedelta(seconds=1), "today")
    assert messages(log_home, "--since", "today") == ["today"]
    assert messages(log_home, "--since", "yesterday", "--until", "today") == ["yesterday"]
    assert messages(log_home, "--until", "yesterday") == ["before yesterday"]


def test_since_relative_hours_minutes_days(log_home):
    now = utcnow()
    row(now - dt.timedelta(days=3), "3 days ago")
    row(now - dt.timedelta(hours=3), "3 hours ago")
    row(now - dt.timedelta(minutes=50), "50 minutes ago")
    row(now - dt.timedelta(minutes=5), "5 minutes ago")
    assert messages(log_home, "--since", "2h") == ["50 minutes ago", "5 minutes ago"]
    assert messages(log_home, "--since", "30m") == ["5 minutes ago"]
    assert messages(log_home, "--since", "2d") == ["3 hours ago", "50 minutes ago", "5 minutes ago"]
    assert messages(log_home, "--until", "2d") == ["3 days ago"]


@pytest.mark.parametrize("level,expected", [
    ("debug", ["d", "i", "w", "e"]),
    ("info", ["i", "w", "e"]),
    ("warning", ["w", "e"]),
    ("error", ["e"]),
])
def test_level_means_that_level_and_above(log_home, level, expected):
    t = day_at(dt.date(2020, 1, 2), 12)
    for lv in ("debug", "info", "warning", "error"):
        row(t, lv[0], level=lv)
    assert messages(log_home, "--level", level) == expected


def test_limit_gives_the_newest_rows_oldest_first(log_home):
    base = day_at(dt.date(2020, 1, 2), 12)
    for i in range(5):
        row(base + dt.timedelta(minutes=i), f"r{i}")
    assert messages(log_home, "--limit", "2") == ["r3", "r4"]
    assert messages(log_home, "--limit", "10") == ["r0", "r1", "r2", "r3", "r4"]


def test_filters_combine(log_home):
    base = day_at(dt.date(2020, 1, 2), 12)
    row(base, "c1 warn old", caja="CAJA1", level="warning")
    row(base + dt.timedelta(minutes=1), "c2 warn", caja="CAJA2", level="warning")
    row(base + dt.timedelta(minutes=2), "c1 info", caja="CAJA1", level="info")
    row(base + dt.timedelta(minutes=3), "c1 error", caja="CAJA1", level="error")
    row(base + dt.timedelta(minutes=4), "c1 warn new", caja="CAJA1", level="warning")
    assert messages(log_home, "--caja", "CAJA1", "--level", "warning", "--limit", "2") == ["c1 error", "c1 warn new"]
    assert messages(log_home, "--caja", "CAJA1", "--level", "warning", "--until", "2020-01-02T12:03") == ["c1 warn old"]


# --- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("option,value", [("--since", "banana"), ("--until", "next tuesday"), ("--since", "2h ago"),
                                          ("--since", "2020-13-01"), ("--since", "100000000d"), ("--until", "99999999999d")])
def test_bad_time_gives_exit_2_naming_the_option_and_value(log_home, option, value):
    proc = run_cli(log_home, "log", option, value, check=2)
    [line] = proc.stderr.splitlines()
    assert option in line
    assert repr(value) in line
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [("--limit", "0"), ("--limit", "x"), ("--level", "loud"), ("--limit", "99999999999999999999")])
def test_bad_limit_or_level_gives_exit_2(log_home, args):
    proc = run_cli(log_home, "log", *args, check=2)
    assert args[0] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


# --- follow ---------------------------------------------------------------------------------------

def _reader(stream, q: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        q.put(line)


def test_follow_prints_a_row_recorded_after_it_started(log_home):
    row(day_at(dt.date(2020, 1, 2), 12), "before follow")
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(log_home), "--json", "log", "--follow", "--poll", "0.2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        first = json.loads(q.get(timeout=10))
        assert first["message"] == "before follow"
        synclog.record(synclog.Entry(action="import", outcome="ok", caja="CAJA3", message="recorded while following"))
        started = time.monotonic()
        line = json.loads(q.get(timeout=5))
        assert time.monotonic() - started < 5
        assert (line["caja"], line["action"], line["message"]) == ("CAJA3", "import", "recorded while following")
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_follow_keeps_its_filters(log_home):
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(log_home), "--json", "log", "--follow", "--poll", "0.2",
           "--caja", "CAJA2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        time.sleep(1.0)  # let it start and print the (empty) backlog
        synclog.record(synclog.Entry(action="import", outcome="ok", caja="CAJA1", message="not for me"))
        synclog.record(synclog.Entry(action="import", outcome="ok", caja="CAJA2", message="for me"))
        line = json.loads(q.get(timeout=5))
        assert line["message"] == "for me"
        time.sleep(0.5)
        assert q.empty()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the log file ---------------------------------------------------------------------------------

def test_log_file_has_one_json_object_per_line_with_the_action(log_home, caja_folder):
    folder = caja_folder("CAJA1")
    run_cli(log_home, "caja", "add", "CAJA1", "--path", str(folder.root), check=0)
    lines = (log_home / "logs" / "syscafe-sync.log").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) for e in events)
    added = [e for e in events if e.get("action") == "caja add"]
    assert len(added) == 1
    assert added[0]["caja"] == "CAJA1"
    assert added[0]["outcome"] == "ok"
    assert added[0]["level"] == "info"
    assert dt.datetime.fromisoformat(added[0]["at"]).tzinfo is not None
    # the same action is in the database
    [db_row] = log_json(log_home, "--action", "caja add")
    assert db_row["caja"] == "CAJA1"


def test_refusal_goes_to_the_log_file_too(log_home, caja_folder):
    folder = caja_folder("CAJA1")
    run_cli(log_home, "caja", "add", "bad name!", "--path", str(folder.root), check=2)
    events = [json.loads(x) for x in (log_home / "logs" / "syscafe-sync.log").read_text(encoding="utf-8").splitlines()]
    refused = [e for e in events if e.get("outcome") == "refused"]
    assert len(refused) == 1
    assert refused[0]["action"] == "caja add"
    assert "'bad name!'" in refused[0]["event"]


def test_log_file_rotates_keeping_the_configured_backups(tmp_path, cfg):
    path = tmp_path / "rot" / "syscafe-sync.log"
    synclog.setup(path, 400, 2)
    try:
        for i in range(30):
            synclog.record(synclog.Entry(action="import", outcome="ok", caja="CAJA1", message=f"entry {i:02d}"))
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["syscafe-sync.log", "syscafe-sync.log.1", "syscafe-sync.log.2"]
        for f in path.parent.iterdir():
            assert f.stat().st_size <= 400 + 300
            for line in f.read_text(encoding="utf-8").splitlines():
                assert json.loads(line)["action"] == "import"
        newest = [json.loads(x)["event"] for x in path.read_text(encoding="utf-8").splitlines()]
        assert newest[-1] == "entry 29"
    finally:
        synclog.setup(cfg.log_path, cfg.get("log", "file_max_bytes"), cfg.get("log", "file_backups"))


def test_a_traceback_stays_inside_its_json_line(tmp_path, cfg):
    """The file promises one JSON object a line to log shippers; logging appended a traceback as bare text."""
    path = tmp_path / "tb" / "syscafe-sync.log"
    synclog.setup(path, 1 << 20, 1)
    try:
        try:
            {}["missing"]
        except KeyError:
            synclog.logger().error("unexpected error", command="x", exc_info=True)
            synclog.logger().exception("unexpected error", command="y")
        events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert [e["command"] for e in events] == ["x", "y"]
        for e in events:
            assert "Traceback (most recent call last)" in e["exception"] and "KeyError: 'missing'" in e["exception"]
    finally:
        synclog.setup(cfg.log_path, cfg.get("log", "file_max_bytes"), cfg.get("log", "file_backups"))


def test_a_log_file_that_cannot_be_opened_gives_exit_2_naming_it_and_an_empty_stdout(log_home):
    """As when the service created it as another user; here the name is taken by a folder, which fails for root too."""
    (log_home / "logs" / "syscafe-sync.log").unlink()
    (log_home / "logs" / "syscafe-sync.log").mkdir()
    proc = run_cli(log_home, "--json", "caja", "list", check=2)
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert f"cannot write the log file {log_home / 'logs' / 'syscafe-sync.log'}" in line and "write access" in line


def test_log_file_settings_come_from_the_configuration(log_home):
    write_config(log_home, log={"file_max_bytes": 600, "file_backups": 1})
    for i in range(6):
        run_cli(log_home, "log", "--since", "banana", check=2)  # each refusal writes one line of ~300 bytes
    names = sorted(p.name for p in (log_home / "logs").iterdir())
    assert names == ["syscafe-sync.log", "syscafe-sync.log.1"]


# --- pruning --------------------------------------------------------------------------------------

def test_prune_drops_rows_older_than_the_retention(log_home):
    now = utcnow()
    row(now - dt.timedelta(days=100), "very old")
    row(now - dt.timedelta(days=31), "old")
    row(now - dt.timedelta(days=29), "recent")
    row(now, "now")
    assert synclog.prune(30) == 2
    assert [r.message for r in SyncLog.select().order_by(SyncLog.id)] == ["recent", "now"]
    assert synclog.prune(30) == 0


def test_last_success_per_caja_and_action(log_home):
    base = day_at(dt.date(2020, 1, 2), 12)
    row(base, "ok early", caja="CAJA1", action="import")
    row(base + dt.timedelta(hours=1), "ok late", caja="CAJA1", action="import")
    row(base + dt.timedelta(hours=2), "failed later", caja="CAJA1", action="import", outcome="failed")
    row(base + dt.timedelta(hours=3), "other caja", caja="CAJA2", action="import", outcome="unreachable")
    last = synclog.last_success()
    assert last == {"CAJA1": {"import": base + dt.timedelta(hours=1)}}
