"""A service's start: opening the home, waiting while the database does not answer yet.

At boot the service may start before PostgreSQL accepts connections (another machine still
starting, a local server replaying its WAL). Refusing then would leave a Windows service stopped
until someone starts it by hand, and a systemd unit restarting on a timer. Here the daemon waits
instead: 1 s, then twice as long each time up to 30 s, until the database answers or the service is
asked to stop. Only DatabaseDown is waited for; a wrong URL, password or home is refused at once.
"""

from __future__ import annotations

import time
from typing import Callable

from . import setup, stopping, synclog
from .config import Config
from .daemon import notify
from .errors import DatabaseDown

FIRST_WAIT_S = 1.0
LONGEST_WAIT_S = 30.0
# The same reason is written again this often, so that a log read hours later shows the wait still going on.
REPEAT_S = 600.0
# What a try may take beyond the wait before it: the connect's own bound (PG_CONNECT_TIMEOUT_S) and more.
EXTEND_SLACK_S = 60.0


def open_when_answering(cfg: Config, tell: Callable[[str], None] = lambda message: None) -> Config | None:
    """setup.open_config(cfg), waiting while the database does not answer; None if a stop was asked for meanwhile.

    `tell` gets each line the wait writes to the log file too: the service's own console (the journal,
    the Windows event log), where a person looks for a service that has not started."""
    started = time.monotonic()
    wait, tries, last_said, last_at = FIRST_WAIT_S, 0, None, 0.0
    while True:
        tries += 1
        try:
            opened = setup.open_config(cfg)
        except DatabaseDown as exc:
            said = str(exc)
            now = time.monotonic()
            if said != last_said or now - last_at >= REPEAT_S:
                if last_said is None:
                    # The file log, as open_config would have set it up: the wait is the first thing in it.
                    setup.open_log(cfg)
                message = f"waiting for the database: {said}"
                synclog.line(synclog.Entry(action="daemon", mode="wait", outcome="failed", level="warning", message=message,
                                           details={"tries": tries}))
                tell(f"{message} Next try in {wait:g} s.")
                last_said, last_at = said, now
            # systemd (Type=notify) would end a start not READY within TimeoutStartSec (90 s by default): each
            # try asks for the wait and the next try's connect bound more.
            notify(f"EXTEND_TIMEOUT_USEC={int((wait + EXTEND_SLACK_S) * 1_000_000)}")
            if stopping.requested.wait(wait):
                synclog.line(synclog.Entry(action="daemon", mode="stop", outcome="ok",
                                           message="daemon stopped while it waited for the database"))
                return None
            wait = min(wait * 2, LONGEST_WAIT_S)
            continue
        if tries > 1:
            waited = time.monotonic() - started
            message = f"the database answers after {waited:.0f} s of waiting and {tries} tries"
            synclog.record(synclog.Entry(action="daemon", mode="wait", outcome="ok", message=message,
                                         duration_s=waited, details={"tries": tries}))
            tell(message)
        return opened
