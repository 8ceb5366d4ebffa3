"""The ``jaxcnn`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxcnn import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxcnn`` command."""
    parser = argparse.ArgumentParser(
        prog="jaxcnn", description="Convolutional networks from scratch in JAX."
    )
    parser.add_argument("--version", action="version", version=f"jaxcnn {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
