"""The process's request to stop: SIGTERM, SIGINT or the Windows service's stop.

The service sets it; every caja's work checks it between files and batches
through `serve_caja`, so a stop never waits for a whole pass, and never leaves
a batch half-written (the batch in hand is rolled back and redone next pass).
"""

from __future__ import annotations

import threading

requested = threading.Event()

# Seconds a caja's work gets, once asked to stop, to reach its next safe point.
GRACE_S = 5.0
