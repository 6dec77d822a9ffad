"""Running a step with a deadline, so that a hung share cannot stall a pass.

A call blocked in the operating system (a dead share, a frozen server) cannot
be interrupted from Python. It runs in a daemon thread; when the deadline
passes we stop waiting, report it, and let the thread die with the process.
The caller must not start new work on that root meanwhile.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .db.models import database

T = TypeVar("T")


class TimedOut(Exception):
    """The step did not finish within its bound."""


class Stopped(Exception):
    """The process was asked to stop while the step ran."""


class _Step:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[], T]):
        self.fn, self.done = fn, threading.Event()
        self.result: list = []
        self.error: list[BaseException] = []


class _Runner:
    """A daemon thread that runs steps one after another, and waits IDLE_S for the next before it ends.

    A pass runs two bounded steps for each caja; a thread started for each one cost more than the
    step itself did on a local folder. A runner whose step is still blocked when its caller gives
    up stays out of the idle list until the step ends, so a step never waits behind a hung one."""

    IDLE_S = 30.0
    _idle: list[_Runner] = []
    _lock = threading.Lock()

    def __init__(self, name: str):
        self._inbox: queue.SimpleQueue[_Step] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    @classmethod
    def take(cls, name: str) -> _Runner:
        with cls._lock:
            if cls._idle:
                runner = cls._idle.pop()
                runner.thread.name = name
                return runner
        return cls(name)

    def start(self, step: _Step) -> None:
        self._inbox.put(step)

    def _serve(self) -> None:
        while True:
            try:
                step = self._inbox.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self in self._idle:
                        self._idle.remove(self)
                        return
                continue  # taken at the instant the wait ended: its step is on the way
            try:
                step.result.append(step.fn())
            except BaseException as exc:  # handed to the caller's thread below
                step.error.append(exc)
            finally:
                step.fn = None
                if database.obj is not None and not database.is_closed():
                    database.close()  # a connection a step left open goes back to the pool, not idle with this thread
                # A thread dump (py-spy, faulthandler) names only the steps still running.
                self.thread.name = "bounded:idle"
                with self._lock:
                    self._idle.append(self)
                step.done.set()


class Pending:
    """A step started on a runner; wait() gets its result within a deadline, and may be called again."""

    def __init__(self, fn: Callable[[], T], what: str):
        self.what = what
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self._step = _Step(fn)
        _Runner.take(f"bounded:{what}").start(self._step)

    @property
    def ended(self) -> bool:
        return self._step.done.is_set()

    def wait_ended(self, timeout: float) -> bool:
        """Whether the step ends within `timeout` seconds (its result is not looked at)."""
        return self._step.done.wait(timeout)

    def wait(self, timeout: float, stop: threading.Event | None = None, on_stop: Callable[[], None] | None = None,
             grace: float = 0.0):
        """The step's result (or its error) within `timeout` seconds. When `stop` is set meanwhile,
        `on_stop` asks it to end at its next safe point, which it gets `grace` seconds to reach."""
        step, what = self._step, self.what
        deadline = time.monotonic() + timeout
        while not step.done.is_set() and (left := deadline - time.monotonic()) > 0:
            # wait() returns the moment the step ends; the stop is looked at every 50 ms.
            step.done.wait(left if stop is None else min(left, 0.05))
            if stop is not None and stop.is_set() and not step.done.is_set():
                if on_stop:
                    on_stop()
                step.done.wait(grace)
                if not step.done.is_set():
                    raise Stopped(f"{what} did not stop within {grace:g} s of being asked to")
                break
        if not step.done.is_set():
            raise TimedOut(f"{what} did not answer within {timeout:g} s")
        if step.error:
            raise step.error[0]
        return step.result[0]


# Steps their callers stopped waiting for, by what they were blocked on (a caja's root, a folder). A
# call blocked in the kernel on a frozen mount cannot be woken from Python: until it returns, a
# new step there would only block beside it, one more thread each pass for as long as it stays
# frozen, and the caller would wait its time-out again.
_given_up: dict[str, Pending] = {}
_given_up_lock = threading.Lock()


def give_up(on: str, step: Pending) -> None:
    """Remembers that `step`, blocked on `on`, was given up on while it still ran."""
    with _given_up_lock:
        if not step.ended:
            _given_up[on] = step


def blocked(on: str) -> Pending | None:
    """The step given up on `on` that has not returned yet, if any."""
    with _given_up_lock:
        step = _given_up.get(on)
        if step is not None and step.ended:
            del _given_up[on]
            return None
        return step


def still_blocked(on: str, wait: float, tz: dt.tzinfo, what: str | None = None) -> str | None:
    """What still holds `on`, in words, after giving it `wait` seconds to end; None when nothing does.
    A step cut off for taking too long is usually only winding down (cancelled, rolling back) and
    ends within the time a share has to answer; one blocked on a frozen share does not."""
    step = blocked(on)
    if step is None or step.wait_ended(wait):
        return None
    return f"still has not answered the {what or step.what} given up on at {step.started_at.astimezone(tz):%H:%M:%S %Z}"


def start(fn: Callable[[], T], what: str = "step") -> Pending:
    """fn() started on a runner thread; the caller waits for it with Pending.wait."""
    return Pending(fn, what)


def call(fn: Callable[[], T], timeout: float, what: str = "step", stop: threading.Event | None = None,
         on_stop: Callable[[], None] | None = None, grace: float = 0.0) -> T:
    """fn() within `timeout` seconds. When `stop` is set meanwhile, `on_stop` asks fn to
    end at its next safe point, which it gets `grace` seconds to reach."""
    return Pending(fn, what).wait(timeout, stop, on_stop, grace)
