"""Subcommands of the ``jaxcnn`` command, one module each.

Each module has ``register(subparsers) -> None``; it adds a parser whose
``handler`` default is a function ``handler(args: argparse.Namespace) -> int``.
Add a new module to ``COMMANDS`` below.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any, Protocol

from jaxcnn.commands import bench, data, figures, train


class Command(Protocol):
    """What a subcommand module provides."""

    def register(self, subparsers: argparse._SubParsersAction[Any]) -> None: ...


COMMANDS: list[ModuleType] = [train, data, figures, bench]
