"""The ``jaxcnn`` command: the parser of every subcommand, and the error policy.

Each subcommand module (``_train``, ``_predict``, ``_data``, ``_figures``) has
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``handler(args) -> int``.

Errors: a :class:`~jaxcnn.errors.JaxcnnError` (bad arguments, files or data,
something the user can fix) is one line on stderr and exit code 2. Anything
else is a bug, in jaxcnn or below it, and shows its traceback (exit code 1).
Ctrl-C, SIGTERM and SIGHUP print one line and exit 130, 143 and 129.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol

from jaxcnn import __version__
from jaxcnn.cli import _data, _explore, _figures, _launch, _predict, _train
from jaxcnn.cli._cache import ENV, enable_compile_cache
from jaxcnn.cli._common import EXIT_USAGE, Parser
from jaxcnn.cli._signals import describe, exit_code, stop_on_signals
from jaxcnn.errors import JaxcnnError


class Command(Protocol):
    """What a subcommand module provides."""

    def register(self, subparsers: argparse._SubParsersAction[Any]) -> None: ...


COMMANDS: list[ModuleType] = [_train, _predict, _data, _figures, _explore, _launch]
"""The subcommand modules, in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxcnn`` command."""
    parser = Parser(prog="jaxcnn", description="Convolutional networks from scratch in JAX.")
    parser.add_argument("--version", action="version", version=f"jaxcnn {__version__}")
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help=f"do not keep compiled programs on disk for the next run (or set {ENV}=off)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    enable_compile_cache(disabled=args.no_compile_cache)
    try:
        with stop_on_signals():
            return int(args.handler(args))
    except JaxcnnError as err:
        print(f"jaxcnn {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM or SIGHUP
        print(f"jaxcnn {args.command}: {describe(interrupt)}", file=sys.stderr)
        return exit_code(interrupt)
