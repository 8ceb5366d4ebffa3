"""``jaxcnn data fetch mnist [--dir DIR] [--quiet]``: download and verify MNIST."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jaxcnn.data import fetch_mnist, verify_mnist

DATASETS = ("mnist",)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``data`` with its ``fetch`` subcommand."""
    data = subparsers.add_parser("data", help="download and verify data sets")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="download a data set into the cache and verify its SHA-256",
        description=(
            "Download MNIST into DIR (default: $JAXCNN_DATA/mnist, else "
            "$XDG_CACHE_HOME/jaxcnn/mnist, else ~/.cache/jaxcnn/mnist) and verify the "
            "SHA-256 of every file; does nothing if they are already there and verified."
        ),
    )
    fetch.add_argument("dataset", choices=DATASETS, help="which data set")
    fetch.add_argument("--dir", type=Path, default=None, help="folder for the files")
    fetch.add_argument("--quiet", action="store_true", help="no progress; print only the folder")
    fetch.set_defaults(handler=handle_fetch)


def handle_fetch(args: argparse.Namespace) -> int:
    """Fetch, then print the folder and each file's verification status."""
    folder = fetch_mnist(args.dir, progress=not args.quiet)  # None: default_mnist_dir()
    if args.quiet:
        print(folder)
        return 0
    print(f"MNIST in {folder}")
    for check in verify_mnist(folder):
        where = check.path.name if check.path is not None else check.name
        print(f"  {where:<30} {check.detail}")
    return 0
