"""Steps with a deadline (bounded.call): results, errors, time-outs and stops, on threads that are reused."""

from __future__ import annotations

import threading
import time

import pytest

from syscafe_sync import bounded, synclog
from syscafe_sync.db.models import SyncLog, database


def test_the_result_and_the_error_reach_the_caller():
    assert bounded.call(lambda: 42, 5) == 42
    with pytest.raises(ZeroDivisionError):
        bounded.call(lambda: 1 / 0, 5)


def test_steps_one_after_another_run_on_one_thread_not_on_the_callers():
    threads = {bounded.call(threading.get_ident, 5) for _ in range(20)}
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_a_hung_step_is_given_up_and_the_next_step_runs_on_another_thread():
    release = threading.Event()
    hung = []

    def hang():
        hung.append(threading.get_ident())
        release.wait(30)
        return "late"

    started = time.monotonic()
    with pytest.raises(bounded.TimedOut, match="frozen share did not answer within 0.2 s"):
        bounded.call(hang, 0.2, "frozen share")
    assert time.monotonic() - started < 5
    try:
        # The hung thread is not handed the next step: it would wait behind the hang.
        assert bounded.call(threading.get_ident, 5) != hung[0]
    finally:
        release.set()


def test_a_stop_asks_the_step_to_end_and_waits_its_grace():
    stop, asked = threading.Event(), threading.Event()

    def work():
        stop.set()
        asked.wait(5)
        return "stopped at a safe point"

    assert bounded.call(work, 30, stop=stop, on_stop=asked.set, grace=5) == "stopped at a safe point"


def test_a_step_that_does_not_stop_within_its_grace_is_given_up():
    stop = threading.Event()
    release = threading.Event()

    def stubborn():
        stop.set()
        release.wait(30)

    try:
        with pytest.raises(bounded.Stopped, match="did not stop within 0.2 s"):
            bounded.call(stubborn, 30, "import CAJA1", stop=stop, on_stop=lambda: None, grace=0.2)
    finally:
        release.set()


def test_a_connection_a_step_leaves_open_goes_back_to_the_pool(home):
    def log_and_leave_open():
        synclog.record(synclog.Entry(action="test", outcome="ok"))
        return database.connection()

    first = bounded.call(log_and_leave_open, 5)
    # The runner's thread closed it after the step: the next step, on the same thread, checks one out again.
    assert bounded.call(database.is_closed, 5) is True
    assert bounded.call(log_and_leave_open, 5) is first  # the pool handed the same connection back
    assert SyncLog.select().where(SyncLog.action == "test").count() == 2
