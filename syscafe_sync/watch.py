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
    """One watchdog observer over every watchable caja root (the root: a new caja has no movements/ yet)."""

    def __init__(self, on_voucher: OnVoucher):
        self.on_voucher = on_voucher
        self.observer = None
        self.watches: dict[str, tuple[str, object]] = {}

    def update(self, cajas: list) -> list[str]:
        """Watches these cajas (name and root), no others; returns the names watched."""
        if self.observer is None or not self.observer.is_alive():
            self.stop()
            self.observer = Observer()
            self.observer.start()
            self.watches = {}
        wanted = {c.name: c.root for c in cajas if on_local_disk(c.root)}
        alive = {e.watch for e in self.observer.emitters if e.is_alive()}
        for name, (root, watch) in list(self.watches.items()):
            # a watch whose folder went away (a disk unplugged, a folder restored) is dead: start it again
            if wanted.get(name) != root or not os.path.isdir(root) or watch not in alive:
                self.observer.unschedule(watch)
                del self.watches[name]
        for name, root in wanted.items():
            if name in self.watches or not os.path.isdir(root):
                continue
            try:
                watch = self.observer.schedule(_Handler(name, root, self.on_voucher), root, recursive=True)
            except OSError:
                continue  # inotify limits, permissions: the interval still serves this caja
            self.watches[name] = (root, watch)
        return sorted(self.watches)

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            if self.observer.is_alive():
                self.observer.join(5)
            self.observer = None
