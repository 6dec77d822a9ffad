"""gc_freeze: objects older than a running job are set aside, and handed back when the last job ends."""

from __future__ import annotations

import gc
import threading

from syscafe_sync import gc_freeze


def test_objects_are_frozen_while_a_job_runs_and_handed_back_when_the_last_one_ends():
    assert gc.get_freeze_count() == 0
    old = [object() for _ in range(10)]  # tracked: they count among the frozen ones
    inner_started, inner_may_end = threading.Event(), threading.Event()
    seen = {}

    def other_job():
        with gc_freeze.while_running():
            seen["inner"] = gc.get_freeze_count()
            inner_started.set()
            inner_may_end.wait(5)

    with gc_freeze.while_running():
        seen["outer"] = gc.get_freeze_count()
        t = threading.Thread(target=other_job)
        t.start()
        inner_started.wait(5)
    seen["after_outer"] = gc.get_freeze_count()  # the other job still runs: still frozen (less what died)
    inner_may_end.set()
    t.join(5)
    assert seen["outer"] >= len(old) and seen["inner"] == seen["outer"] and seen["after_outer"] > 0
    assert gc.get_freeze_count() == 0


def test_a_job_that_fails_hands_the_objects_back_too():
    try:
        with gc_freeze.while_running():
            raise ValueError("the job broke")
    except ValueError:
        pass
    assert gc.get_freeze_count() == 0
