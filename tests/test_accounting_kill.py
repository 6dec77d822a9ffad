"""A CSV export killed (SIGKILL) at each step of its delivery: the next run leaves every entry in exactly
one published file, whatever the instant, and no staged file behind."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import cli_env, cli_json, db_rows, run_cli, write_config

from syscafe_sync import bounded, passes
from syscafe_sync import config as config_mod
from syscafe_sync.accounting import journal
from syscafe_sync.db.models import Lease, SyncLog
from syscafe_sync.lease import CajaLease

# The real program, killed by itself at one instant of writing a journal file: after the staged file is on
# disk, just before it is renamed to its final name, or just after; or stopped (SIGSTOP) once it is staged.
# Only the standard library's calls are watched; the program runs unchanged.
KILLED_AT = r"""
import os, runpy, signal, sys

AT = os.environ["KILL_AT"]
real_replace, real_fsync = os.replace, os.fsync


def journal_temp(path):
    name = os.path.basename(os.fsdecode(path))
    return name.startswith(".journal-") and name.endswith(".tmp")


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


def replace(src, dst, *args, **kwargs):
    if AT == "before the rename" and journal_temp(src):
        kill()
    real_replace(src, dst, *args, **kwargs)
    if AT == "after the rename" and journal_temp(src):
        kill()


def fsync(fd):
    real_fsync(fd)
    if journal_temp(os.readlink(f"/proc/self/fd/{fd}")):
        if AT == "staged":
            kill()
        if AT == "stopped when staged":
            os.kill(os.getpid(), signal.SIGSTOP)


os.replace, os.fsync = replace, fsync
sys.argv = ["syscafe-sync", *sys.argv[1:]]
runpy.run_module("syscafe_sync", run_name="__main__")
"""

KEYS = ["CAJA1:FV1:1:1", "CAJA1:FV1:2:1", "CAJA2:FV2:1:1"]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the file being synced through /proc")


def post_killed(home, at: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", KILLED_AT, "--home", str(home), "accounting", "post", "--to", "csv"],
                            env=cli_env(home, {"KILL_AT": at}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def staged(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def in_files(folder: Path) -> Counter:
    """How many published export files hold each entry."""
    return Counter(key for f in sorted(folder.glob("journal-*.csv"))
                   for key in {row["entry"] for row in csv.DictReader(f.open(encoding="utf-8"))})


@linux_only
@pytest.mark.parametrize("at, recovered, new_file", [
    ("staged", 0, True),              # not committed: the staged file is dropped, the entries go in a new file
    ("before the rename", 1, False),  # committed: the next run publishes the killed run's file
    ("after the rename", 0, False),   # all done but the exit
])
def test_a_csv_export_killed_at_any_step_leaves_each_entry_in_exactly_one_file(home, books, at, recovered, new_file):
    folder = home / "accounting"
    killed = post_killed(home, at)
    out, err = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, f"not killed {at}: {out}{err}"
    assert len(staged(folder)) == (0 if at == "after the rename" else 1)
    time.sleep(1.0)  # the next run's file is named by another second: the staged one must go, not be overwritten
    after = cli_json(home, "accounting", "post", "--to", "csv")
    assert (len(after["recovered"]), after["file"] is not None) == (recovered, new_file), after
    assert in_files(folder) == Counter(KEYS)
    assert staged(folder) == [], "a staged file was left behind"
    assert {v["accounting"] for v in cli_json(home, "vouchers", "list")["vouchers"]} == {"posted"}
    if recovered:
        assert "left staged by a run that was killed" in run_cli(home, "log", "--action", "accounting post", check=0).stdout
    # and a third run has nothing to send
    assert cli_json(home, "accounting", "post", "--to", "csv")["file"] is None


@linux_only
def test_a_run_that_lost_its_lease_while_staging_commits_nothing(home, books):
    """Run A stalls with its file staged; its lease runs out and run B takes over, drops A's staged file
    (not committed) and posts the entries itself. A, woken, must not record them as delivered to its file."""
    folder = home / "accounting"
    a = post_killed(home, "stopped when staged")
    try:
        stat = Path(f"/proc/{a.pid}/stat")
        deadline = time.monotonic() + 60
        while stat.read_text().split(")")[-1].split()[0] != "T":
            assert a.poll() is None and time.monotonic() < deadline, "run A never got to stage its file"
            time.sleep(0.02)
        Lease.update(expires_at=0).where(Lease.name == journal.LEASE).execute()  # A's lease runs out
        b = cli_json(home, "accounting", "post", "--to", "csv")
        assert b["file"] and b["recovered"] == [] and len(b["entries"]) == 3
    finally:
        a.send_signal(signal.SIGCONT)
    out, err = a.communicate(timeout=120)
    assert a.returncode == 1 and "lease ran out and another run took it over" in err, out + err
    assert in_files(folder) == Counter(KEYS)
    # where the database says each entry went is the file that holds it
    assert {key: to for key, to in db_rows(home, "SELECT key, delivered_to FROM journal_entry")} == dict.fromkeys(KEYS, b["file"])
    assert staged(folder) == []



@linux_only
def test_the_next_pass_of_the_service_publishes_what_a_killed_post_recorded_delivered(home, books):
    """A post killed between its commit and its rename: the database says delivered, the accounting program
    sees nothing. The next full pass (what the service runs every interval) publishes it, not the next
    post, which may be a day away; while another run holds the accounting lease, the pass leaves the folder alone."""
    folder = home / "accounting"
    killed = post_killed(home, "before the rename")
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL and len(staged(folder)) == 1 and in_files(folder) == Counter()
    other = CajaLease(journal.LEASE, 600)
    other.acquire(5)  # a post running in this process: its staged file may not be committed yet
    try:
        run_cli(home, "sync", check=0)
        assert len(staged(folder)) == 1 and in_files(folder) == Counter(), "a run holding the lease owns the folder"
    finally:
        other.release()
    # the final name taken by a folder: the rename fails, the pass says why and keeps the staged file
    [hidden] = staged(folder)
    (folder / hidden[1:-len(".tmp")]).mkdir()
    run_cli(home, "sync", check=0)
    assert staged(folder) == [hidden]
    failed = run_cli(home, "log", "--action", "accounting post", "--level", "error", check=0).stdout
    assert f"cannot publish the accounting file left staged in {folder}" in failed and "the next pass tries again" in failed
    (folder / hidden[1:-len(".tmp")]).rmdir()
    run_cli(home, "sync", check=0)
    assert in_files(folder) == Counter(KEYS), "published by the pass, each entry once"
    assert staged(folder) == []
    assert "left staged by a run that was killed" in run_cli(home, "log", "--action", "accounting post", check=0).stdout
    after = cli_json(home, "accounting", "post", "--to", "csv")
    assert after["file"] is None and after["recovered"] == [], "nothing left to send or publish"


@linux_only
def test_a_pass_whose_export_share_stops_answering_ends_within_its_bound_and_the_next_one_publishes(home, books, frozen_mount):
    """accounting.export_dir on a share mounted on the main server, whose machine stops answering while a
    killed post's file is staged there: the pass serves its cajas, gives up on the folder after
    caja_timeout_s and says so; once the share answers again, the next pass publishes the file."""
    folder = frozen_mount.mountpoint / "contabilidad"
    write_config(home, accounting={"export_dir": str(folder)}, limits={"caja_timeout_s": 2.0})
    killed = post_killed(home, "before the rename")
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL and len(staged(folder)) == 1
    frozen_mount.freeze()
    try:
        started = time.monotonic()
        run_cli(home, "sync", check=0, timeout=60)
        took = time.monotonic() - started
    finally:
        frozen_mount.thaw()
    assert took < 30, f"the pass took {took:.0f} s with caja_timeout_s = 2"
    failed = run_cli(home, "log", "--action", "accounting post", "--level", "error", check=0).stdout
    assert f"cannot publish the accounting file left staged in {folder} (no answer within 2 s (limits.caja_timeout_s))" in failed
    rows = [json.loads(line) for line in run_cli(home, "--json", "log", "--action", "sync", check=0).stdout.splitlines()]
    assert {(r["caja"], r["outcome"]) for r in rows} == {("CAJA1", "ok"), ("CAJA2", "ok")}, "the cajas were served"
    assert in_files(folder) == Counter() and len(staged(folder)) == 1, "nothing published while the share was frozen"
    # the service, one process for days: while the publish it gave up on stays blocked, a pass starts no other
    cfg = config_mod.load(home)
    frozen_mount.freeze()
    try:
        passes.run_pass(cfg)
        passes.run_pass(cfg)
        publishing = [t for t in threading.enumerate() if t.name.startswith("bounded:publishing the accounting files")]
        assert len(publishing) == 1, "no thread more blocked on the frozen share"
    finally:
        frozen_mount.thaw()
    failed = [r.message for r in SyncLog.select().where((SyncLog.action == "accounting post") & (SyncLog.level == "error"))
              .order_by(SyncLog.id.desc()).limit(2)]
    assert "(no answer within 2 s (limits.caja_timeout_s))" in failed[1]
    assert f"cannot publish the accounting file left staged in {folder} (it still has not answered the publish given up on at " in failed[0]
    deadline = time.monotonic() + 10
    while bounded.blocked(str(folder)) is not None:
        assert time.monotonic() < deadline, "the blocked publish did not return once the share answered"
        time.sleep(0.05)
    run_cli(home, "sync", check=0)
    assert in_files(folder) == Counter(KEYS) and staged(folder) == []
