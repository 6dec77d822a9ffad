"""The Windows service: pywin32's ServiceFramework around the same daemon core as Linux.

The service manager's start runs `Daemon.run()`; its stop sets
`stopping.requested`, exactly what SIGTERM does on Linux. The home and the
database URL are kept in the service's registry parameters at install time,
since a service does not see the installing user's environment.

Importable only where pywin32 is installed (Windows).
"""

from __future__ import annotations

import sys

import servicemanager
import win32service
import win32serviceutil

from . import stopping
from .config import load
from .daemon import Daemon
from .startup import open_when_answering

NAME = "syscafe-sync"
DISPLAY = "syscafe-sync (consolidación de cajas)"
DESCRIPTION = "Imports the vouchers of every caja of the LAN and pushes them their catalogs, every few minutes."
# The service manager gives a stop this long before it calls the service hung.
STOP_WAIT_MS = int((stopping.GRACE_S + 10) * 1000)


class SyscafeSyncService(win32serviceutil.ServiceFramework):
    _svc_name_ = NAME
    _svc_display_name_ = DISPLAY
    _svc_description_ = DESCRIPTION

    def SvcStop(self):
        self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_MS)
        stopping.requested.set()

    def SvcShutdown(self):
        # Windows shutting down: pywin32 accepts the service manager's shutdown control only where this exists,
        # and without it the service was never told, and ended in the middle of its pass.
        self.SvcStop()

    def SvcDoRun(self):
        home = win32serviceutil.GetServiceCustomOption(self._svc_name_, "home")
        db_url = win32serviceutil.GetServiceCustomOption(self._svc_name_, "db") or None
        try:
            # A service started at boot before PostgreSQL waits for it (the event log says so) instead of stopping
            # for good: Windows restarts a stopped service only where someone set its recovery actions.
            config = open_when_answering(load(home, db_url), lambda m: servicemanager.LogWarningMsg(f"{NAME}: {m}"))
            if config is None:  # stopped while it waited for the database
                return
            if not stopping.requested.is_set():  # a stop during the opening: it is stopping, not running
                self.ReportServiceStatus(win32service.SERVICE_RUNNING)
                servicemanager.LogInfoMsg(f"{NAME}: serving home {config.home}; the sync log is {config.log_path}")
            Daemon(config).run()  # returns at once after such a stop
        except Exception as exc:  # the event log is the only place a person looks for a service that will not start
            servicemanager.LogErrorMsg(f"{NAME} stopped: {exc}")
            raise


def install(home: str, db_url: str | None, start: str = "auto") -> None:
    """Registers the service to run this interpreter's package, with home and database as its parameters."""
    start_type = win32service.SERVICE_AUTO_START if start == "auto" else win32service.SERVICE_DEMAND_START
    win32serviceutil.InstallService(
        f"{__name__}.SyscafeSyncService", NAME, DISPLAY, startType=start_type, description=DESCRIPTION,
        exeName=_pythonservice_exe(),
    )
    win32serviceutil.SetServiceCustomOption(NAME, "home", home)
    win32serviceutil.SetServiceCustomOption(NAME, "db", db_url or "")


def remove() -> None:
    win32serviceutil.RemoveService(NAME)


def _pythonservice_exe() -> str:
    """pywin32's service host next to this interpreter, so a virtual environment's packages are the ones loaded
    (the default host in the base installation cannot see them: error 1053)."""
    import os

    import win32service as ws

    for folder in (os.path.dirname(sys.executable), os.path.dirname(ws.__file__)):
        candidate = os.path.join(folder, "pythonservice.exe")
        if os.path.exists(candidate):
            return candidate
    return os.path.join(os.path.dirname(ws.__file__), "pythonservice.exe")
