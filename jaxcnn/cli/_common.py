"""What every subcommand shares: usage error, exit codes, argument types, run-file names."""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import jax

from jaxcnn.errors import JaxcnnError

EXIT_USAGE = 2
"""Bad arguments, files or data: one line on stderr."""
EXIT_DIVERGED = 3
"""Training diverged on valid data (the checkpoint keeps the last finite epoch)."""
EXIT_PEER_LOST = 4
"""A distributed run lost one of its processes (one line names it and the ``--resume`` command)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT)."""

CHECKPOINT = "checkpoint.npz"
"""The checkpoint file of a run directory."""
HISTORY = "history.json"
"""The history (and, once finished, test metrics) of a run directory."""
BEST_CHECKPOINT = "best.npz"
"""The checkpoint of the best validation epoch (``jaxcnn train --keep-best``)."""


class UsageError(JaxcnnError):
    """A mistake the user can fix on the command line; reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line on stderr."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def check_writable(out: Path, what: str = "the run directory") -> None:
    """Create ``out`` and write a file there, or raise a usage error naming ``what``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UsageError(f"cannot write to {what} {out}: {err.strerror or err}") from None


def number(kind: type, wanted: str, ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    """argparse type: ``kind(text)`` for which ``ok`` holds; else ``must be {wanted}``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


def positive(kind: type) -> Callable[[str], Any]:
    """argparse type: an int >= 1 or a finite float > 0."""
    wanted = "an integer >= 1" if kind is int else "a finite number > 0"
    return number(kind, wanted, lambda value: value > 0 and math.isfinite(value))


non_negative_float = number(
    float, "a finite number >= 0", lambda value: math.isfinite(value) and value >= 0
)
"""argparse type: a finite float >= 0."""
fraction = number(float, "a number in [0, 1)", lambda value: 0 <= value < 1)  # rejects nan
"""argparse type: a number in [0, 1)."""
non_negative_int = number(int, "an integer >= 0", lambda value: value >= 0)
"""argparse type: an int >= 0."""


def check_device_count(count: int) -> None:
    """Refuse ``--devices count`` beyond the devices jax sees in this process.

    Checked after parsing, once the command knows it is not distributed: at parse time it
    would judge ``--devices`` before the cluster (and the documented refusal of
    ``--devices`` with ``--distributed``) exists.

    Raises:
      UsageError: ``count`` is above ``jax.device_count()``.
    """
    available = jax.device_count()
    if count > available:
        platform = jax.devices()[0].platform
        raise UsageError(
            f"--devices {count}: must be at most the number of {platform} devices ({available}); "
            f"for N devices on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N"
        )
