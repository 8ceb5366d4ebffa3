"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

By default they kill Python outright: no message, and a checkpoint write could
be cut anywhere. While a subcommand runs, :func:`stop_on_signals` turns them
into :class:`Terminated`, a ``KeyboardInterrupt``: the stack unwinds exactly
as for Ctrl-C (an atomic write in progress removes its temporary file, the
finished checkpoint stays, the run directory's lock is released) and the
command prints one line and exits ``128 + signal`` (143 for SIGTERM, 129 for
SIGHUP, 130 for Ctrl-C).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP)
"""The signals handled like Ctrl-C (SIGINT, which Python already raises as KeyboardInterrupt)."""


class Terminated(KeyboardInterrupt):
    """A command was stopped by ``signum`` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise :class:`Terminated` on SIGTERM and SIGHUP inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise(signum: int, frame: FrameType | None) -> None:
    del frame
    raise Terminated(signum)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """``128 + signal number``, the shell's convention: 130 for Ctrl-C."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def describe(interrupt: KeyboardInterrupt) -> str:
    """``"interrupted"`` for Ctrl-C, ``"terminated by SIGTERM"`` for a signal."""
    if isinstance(interrupt, Terminated):
        return f"terminated by {signal.Signals(interrupt.signum).name}"
    return "interrupted"
