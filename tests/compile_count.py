"""Count XLA compilations, from JAX's own monitoring events (a test helper).

>>> with compile_log() as log:
...     train.fit(...)
>>> log.compiles("_train_epoch")
1
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jax

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


class CompileLog:
    """The functions XLA compiled while a :func:`compile_log` block was active."""

    def __init__(self) -> None:
        self.compiled: list[str] = []  # function names, one per XLA compilation
        self.active = False

    def record(self, event: str, duration_secs: float, **kwargs: str | int) -> None:
        del duration_secs
        if self.active and event == BACKEND_COMPILE:
            self.compiled.append(str(kwargs.get("fun_name", "")))

    def compiles(self, name_part: str) -> int:
        """How many XLA compilations of functions whose name contains ``name_part``."""
        return sum(1 for name in self.compiled if name_part in name)


_LOG = CompileLog()
_REGISTERED = False


@contextmanager
def compile_log() -> Iterator[CompileLog]:
    """Collect compilations for the duration of the ``with`` block."""
    global _REGISTERED
    if not _REGISTERED:  # listeners cannot be removed one by one: register once
        jax.monitoring.register_event_duration_secs_listener(_LOG.record)
        _REGISTERED = True
    log = CompileLog()
    _LOG.compiled, _LOG.active = log.compiled, True
    try:
        yield log
    finally:
        _LOG.active = False
