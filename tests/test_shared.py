"""Several daemons on one PostgreSQL database (`daemon --shared`, issue 8): real subprocesses, SIGKILL."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import CajaFolder, cli_env, run_cli, write_config
from peewee import fn
from test_daemon import log_rows, stop, today, wait_for

from syscafe_sync import registry
from syscafe_sync.db.models import Lease, SyncLog, Voucher, database


def start_daemon(home, *args) -> subprocess.Popen:
    """A daemon whose output goes to a file: a pipe nobody reads would fill and block it on a long run."""
    out = open(home.parent / f"daemon-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "syscafe_sync", "--home", str(home), "daemon", *args],
                            stdout=out, stderr=subprocess.STDOUT, text=True, env=cli_env(home))


@pytest.fixture
def daemons():
    """Every daemon a test starts, killed if it is still running at the end."""
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_shared_on_sqlite_is_refused_with_the_way_to_postgresql(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    proc = run_cli(home, "daemon", "--shared", "--interval", "0.05", check=2)
    assert "--shared (sync.shared) is for several services on one PostgreSQL database" in proc.stderr
    assert "syscafe-sync migrate --to" in proc.stderr
    write_config(home, sync={"shared": True})
    assert "is SQLite" in run_cli(home, "daemon", check=2).stderr


@pytest.mark.slow
def test_a_lone_daemon_and_shared_ones_refuse_each_other(pg_home, daemons):
    home = pg_home
    daemons.append(start_daemon(home, "--shared", "--interval", "0.05", "--no-watch"))
    assert wait_for(lambda: log_rows("daemon", "pass"), 15)
    alone = run_cli(home, "daemon", "--interval", "0.05", timeout=30)
    assert alone.returncode == 2 and "share this database (--shared)" in alone.stderr and "start this one with --shared" in alone.stderr
    second = start_daemon(home, "--shared", "--interval", "0.05", "--no-watch")
    daemons.append(second)
    assert wait_for(lambda: len(log_rows("daemon", "start")) == 2, 15), "a second shared daemon joins"
    listed = run_cli(home, "--json", "caja", "list", check=0).stdout
    assert "2 shared services" in listed
    for p in daemons:
        assert stop(p)[0] == 0
    lone = start_daemon(home, "--interval", "0.05", "--no-watch")
    daemons.append(lone)
    assert wait_for(lambda: len(log_rows("daemon", "start")) == 3, 15)
    joining = run_cli(home, "daemon", "--shared", "--interval", "0.05", timeout=30)
    assert joining.returncode == 2 and "serves this database alone" in joining.stderr
    assert stop(lone)[0] == 0


def _owners() -> dict[str, int]:
    """holder -> cajas it owns now."""
    rows = Lease.select(Lease.holder, fn.COUNT(Lease.name)).where(Lease.name.startswith("owner:")).group_by(Lease.holder).tuples()
    out = dict(rows)
    database.close()  # the daemons' takeovers must not wait on this test's transaction
    return out


@pytest.mark.slow
def test_three_daemons_killed_and_restarted_at_random_import_every_voucher_exactly_once(pg_home, tmp_path, daemons):
    """The issue's done-when: 30 cajas, three shared daemons, SIGKILL and restart at random while
    vouchers keep arriving; at the end every voucher file is in the database exactly once."""
    home = pg_home
    write_config(home, sync={"watch": False}, limits={"lease_s": 3.0, "lock_wait_s": 1.0, "connect_timeout_s": 2.0})
    day = today()
    rng = random.Random(8)
    folders = []
    for n in range(1, 31):
        f = CajaFolder(tmp_path / "cajas" / f"CAJA{n:02d}", f"CAJA{n:02d}", [f"F{n:02d}"])
        f.add_many(1, 10, day=day)
        registry.add(f.name, str(f.root))
        folders.append(f)
    written = {f.name: 10 for f in folders}
    args = ("--shared", "--interval", "0.05", "--no-watch")
    running = [start_daemon(home, *args) for _ in range(3)]
    daemons.extend(running)
    split = False
    kills = 0
    ends = time.monotonic() + 40
    while time.monotonic() < ends:
        time.sleep(rng.uniform(1.0, 3.0))
        for f in rng.sample(folders, 6):  # new sales while the daemons work
            f.add_many(written[f.name] + 1, 5, day=day)
            written[f.name] += 5
        split = split or len(_owners()) >= 2
        victim = rng.randrange(3)
        if rng.random() < 0.6:
            running[victim].send_signal(signal.SIGKILL)
            running[victim].communicate()
            kills += 1
            if rng.random() < 0.7:  # sometimes it stays dead a while: the others take its cajas
                running[victim] = start_daemon(home, *args)
                daemons.append(running[victim])
    for i, p in enumerate(running):
        if p.poll() is not None:
            running[i] = start_daemon(home, *args)
            daemons.append(running[i])

    def counts() -> dict[str, int]:
        got = dict(Voucher.select(Voucher.caja, fn.COUNT(Voucher.id)).group_by(Voucher.caja).tuples())
        database.close()
        return got

    done = wait_for(lambda: counts() == written, 120, every=1.0)
    history = "\n".join(f"{r.caja} {r.action} {r.outcome}: {r.message}" for r in SyncLog.select().where(SyncLog.level != "info").order_by(SyncLog.id.desc()).limit(30))
    assert done, f"missing: { {c: (n, counts().get(c)) for c, n in written.items() if counts().get(c) != n} }\n{history}"
    for p in running:
        assert stop(p, within=20)[0] == 0
    assert kills >= 5 and split, (kills, split)
    # exactly once: one row per (code, number), and every number written is there
    duplicates = list(Voucher.select(Voucher.code, Voucher.number).group_by(Voucher.code, Voucher.number)
                      .having(fn.COUNT(Voucher.id) > 1).tuples())
    assert duplicates == []
    # and never two daemons on one caja at once: the second would have hit the unique index
    clashes = [r.message for r in SyncLog.select().where(SyncLog.message.contains("duplicate key"))]
    assert clashes == []
    for f in folders:
        numbers = sorted(n for (n,) in Voucher.select(Voucher.number).where(Voucher.caja == f.name).tuples())
        assert numbers == list(range(1, written[f.name] + 1)), f.name
    # daemons stopped by SIGTERM give their leases back (expired, or gone for their member row);
    # only the SIGKILLed ones' leases are left held, until they run out
    held = (Lease.name.startswith("owner:") | Lease.name.startswith("member:")) & (Lease.expires_at > 0)
    left = {pid for (pid,) in Lease.select(Lease.pid).where(held).tuples()}
    assert not left & {p.pid for p in running}
