"""File events from local caja folders: a new voucher starts that caja's import within seconds.

Events are a latency hint, never the only mechanism: the scheduled pass is
the guarantee. Network shares deliver no reliable events to this machine
(inotify does not see another machine's writes on CIFS or NFS), so they are
not watched at all, and a watch that dies (its folder vanished, the disk went
away) is started again at the next pass.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from . import bounded
from .caja import layout
from .storage.local import on_local_disk

OnVoucher = Callable[[str, dt.date], None]


class _Handler(FileSystemEventHandler):
    def __init__(self, caja: str, root: str, on_voucher: OnVoucher):
        self.caja, self.root, self.on_voucher = caja, os.path.realpath(root), on_voucher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "moved", "modified", "closed"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        rel = os.path.relpath(os.fsdecode(path), self.root).split(os.sep)
        # movements/YYYY-MM-DD/CODE-NUMBER.json; temp names are written first, renamed when whole
        if len(rel) != 3 or rel[0] != layout.MOVEMENTS or layout.is_ignored(rel[2]) or not layout.parse_voucher_name(rel[2]):
            return
        day = layout.parse_day(rel[1])
        if day:
            self.on_voucher(self.caja, day)


class Watcher:
    """One watchdog observer over every watchable caja root (the root: a new caja has no movements/ yet).

    Every look at a root is bounded (`timeout`): a root on a mount whose machine stopped answering, but of a
    type not known as a network one, looks local, and one os.path.isdir there blocked the service's pass,
    every pass after it and its stop, for as long as the mount stayed frozen. Such a root is remembered as
    given up on (bounded.give_up, by root, as serve_caja does), and left alone until it answers again."""

    def __init__(self, on_voucher: OnVoucher, timeout: float = 5.0):
        self.on_voucher = on_voucher
        self.timeout = timeout
        self.observer = None
        self.watches: dict[str, tuple[str, object]] = {}

    def _ask(self, root: str, question, what: str):
        """question() within timeout; None when the root does not answer, now or since an earlier question."""
        if bounded.blocked(root) is not None:
            return None
        step = bounded.start(question, f"{what} {root}")
        try:
            return step.wait(self.timeout)
        except bounded.TimedOut:
            bounded.give_up(root, step)
            return None

    def update(self, cajas: list) -> list[str]:
        """Watches these cajas (name and root), no others; returns the names watched."""
        if self.observer is None or not self.observer.is_alive():
            self.stop()
            self.observer = Observer()
            self.observer.start()
            self.watches = {}
        # name -> root, for the local folders there; a root that does not answer is left as it is
        wanted, silent = {}, set()
        for c in cajas:
            local = self._ask(c.root, lambda root=c.root: on_local_disk(root) and os.path.isdir(root), "looking at")
            if local is None:
                silent.add(c.name)
            elif local:
                wanted[c.name] = c.root
        alive = {e.watch for e in self.observer.emitters if e.is_alive()}
        for name, (root, watch) in list(self.watches.items()):
            if name in silent:
                continue
            # a watch whose folder went away (a disk unplugged, a folder restored) is dead: start it again
            if wanted.get(name) != root or watch not in alive:
                self.observer.unschedule(watch)
                del self.watches[name]
        for name, root in wanted.items():
            if name in self.watches:
                continue
            observer = self.observer
            try:
                # watchdog walks the folder to watch it, holding the observer's lock
                watch = self._ask(root, lambda: observer.schedule(_Handler(name, root, self.on_voucher), root, recursive=True),
                                  "watching")
            except OSError:
                continue  # inotify limits, permissions: the interval still serves this caja
            if watch is None:
                # That lock stays held by the walk: the observer can do nothing more, and another one is made
                # at the next pass (this one's threads end with the process).
                self.observer, self.watches = None, {}
                return []
            self.watches[name] = (root, watch)
        return sorted(n for n in self.watches if n not in silent)

    def stop(self) -> None:
        observer, self.observer = self.observer, None
        if observer is None:
            return

        def stop():
            observer.stop()
            if observer.is_alive():
                observer.join(5)

        try:
            bounded.call(stop, self.timeout + 5, "stopping the file events")
        except bounded.TimedOut:
            pass  # a watch still blocked on a frozen folder holds it: its threads end with the process
