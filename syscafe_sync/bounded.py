"""Running a step with a deadline, so that a hung share cannot stall a pass.

A call blocked in the operating system (a dead share, a frozen server) cannot
be interrupted from Python. It runs in a daemon thread; when the deadline
passes we stop waiting, report it, and let the thread die with the process.
The caller must not start new work on that root meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(Exception):
    """The step did not finish within its bound."""


def call(fn: Callable[[], T], timeout: float, what: str = "step") -> T:
    result: list = []
    error: list[BaseException] = []

    def run():
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    t = threading.Thread(target=run, name=f"bounded:{what}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimedOut(f"{what} did not answer within {timeout:g} s")
    if error:
        raise error[0]
    return result[0]
