"""Ctrl-C in a command that serves cajas: the work stops at its next safe point, as the service's does."""

from __future__ import annotations

import signal

import click

from .. import stopping


def stop_at_a_safe_point_on_ctrl_c() -> None:
    """Python's own KeyboardInterrupt reaches only the main thread, which waits for the cajas' workers: they
    went on to the end of their work (up to limits.caja_timeout_s on a share that stopped answering), and
    only then did the command end. The first Ctrl-C now asks every caja's work to stop at its next safe
    point (and no caja not started yet is started); a second one is Python's KeyboardInterrupt."""
    signal.signal(signal.SIGINT, _stop)


def _stop(*_) -> None:
    stopping.requested.set()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    click.echo("stopping at the next safe point; Ctrl-C again to quit at once", err=True)
