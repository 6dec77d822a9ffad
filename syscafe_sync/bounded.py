"""Running a step with a deadline, so that a hung share cannot stall a pass.

A call blocked in the operating system (a dead share, a frozen server) cannot
be interrupted from Python. It runs in a daemon thread; when the deadline
passes we stop waiting, report it, and let the thread die with the process.
The caller must not start new work on that root meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(Exception):
    """The step did not finish within its bound."""


class Stopped(Exception):
    """The process was asked to stop while the step ran."""


def call(fn: Callable[[], T], timeout: float, what: str = "step", stop: threading.Event | None = None,
         on_stop: Callable[[], None] | None = None, grace: float = 0.0) -> T:
    """fn() within `timeout` seconds. When `stop` is set meanwhile, `on_stop` asks fn to
    end at its next safe point, which it gets `grace` seconds to reach."""
    result: list = []
    error: list[BaseException] = []

    def run():
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    t = threading.Thread(target=run, name=f"bounded:{what}", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive() and (left := deadline - time.monotonic()) > 0:
        # join() returns the moment the step ends; the stop is looked at every 50 ms.
        t.join(left if stop is None else min(left, 0.05))
        if stop is not None and stop.is_set() and t.is_alive():
            if on_stop:
                on_stop()
            t.join(grace)
            if t.is_alive():
                raise Stopped(f"{what} did not stop within {grace:g} s of being asked to")
            break
    if t.is_alive():
        raise TimedOut(f"{what} did not answer within {timeout:g} s")
    if error:
        raise error[0]
    return result[0]
