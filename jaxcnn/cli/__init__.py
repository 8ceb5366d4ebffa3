"""The ``jaxcnn`` command: ``train``, ``eval``, ``data fetch``, ``figures``.

Run ``jaxcnn --help`` (or ``python -m jaxcnn``). :func:`main` takes an argv
list and returns the exit code, for use from Python.
"""

from jaxcnn.cli._common import EXIT_DIVERGED, EXIT_USAGE, UsageError
from jaxcnn.cli._main import build_parser, main

__all__ = ["EXIT_DIVERGED", "EXIT_USAGE", "UsageError", "build_parser", "main"]
