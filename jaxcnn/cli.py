"""The ``jaxcnn`` command.

Each subcommand lives in ``jaxcnn/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``handler(args) -> int``. Errors a user can fix (bad arguments, bad
files) become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from jaxcnn import __version__
from jaxcnn.commands import COMMANDS

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake the user can fix; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line on stderr."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxcnn`` command."""
    parser = _Parser(prog="jaxcnn", description="Convolutional networks from scratch in JAX.")
    parser.add_argument("--version", action="version", version=f"jaxcnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    try:
        return int(args.handler(args))
    except (UsageError, ValueError, TypeError, OSError) as err:
        print(f"jaxcnn {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"jaxcnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
