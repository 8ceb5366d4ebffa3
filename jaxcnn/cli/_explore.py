"""``jaxcnn explore [RUN]``: the article's widgets on a local page, over a trained run.

Serves the page of :mod:`jaxcnn.explore` on ``--host`` (default ``127.0.0.1``,
loopback only) and ``--port`` (default 8765; ``0`` picks a free one), prints
its URL and opens it in the browser (unless ``--no-browser``), until Ctrl-C
(or SIGTERM), which stops the server and exits with code 0.
Every JAX function the page needs is compiled before the URL is printed.
The web server is the ``explore`` extra: ``pip install "jaxcnn[explore]"``.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

from jaxcnn.cli._common import UsageError, number

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
PORTS = number(int, "a port in 0..65535", lambda port: 0 <= port <= 65535)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``explore`` subcommand."""
    parser = subparsers.add_parser(
        "explore",
        help="the article's widgets on a local page, over your trained model",
        description=(
            "Serve a local page with the article's interactive widgets: classical kernels, "
            "pattern matching with Play, and a trained run's layers, probabilities, saliency "
            "and backward pass, every number computed by jaxcnn. Without RUN, the kernel and "
            "pattern-matching views only."
        ),
    )
    parser.add_argument(
        "run", type=Path, nargs="?", help="run directory of `jaxcnn train` (or its checkpoint)"
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only); another "
        f"address serves the page to anyone who can reach it",
    )
    parser.add_argument(
        "--port",
        type=PORTS,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0: a free one)",
    )
    parser.add_argument("--no-browser", action="store_true", help="only print the URL")
    parser.set_defaults(handler=run_explore)


def run_explore(args: argparse.Namespace) -> int:
    """Compile the page's functions, serve it and print its URL, until Ctrl-C."""
    try:
        from jaxcnn import explore
    except ImportError as err:
        raise UsageError(
            f"explore needs the web server of the explore extra ({err.name} is missing): "
            f'pip install "jaxcnn[explore]"'
        ) from None
    if not explore.is_loopback(args.host):
        print(
            f"jaxcnn explore: warning: listening on {args.host}, not loopback: anyone who can "
            f"reach this address can use the page",
            file=sys.stderr,
        )
    explorer = explore.Explorer(args.run, note=_note)
    seconds = explorer.warm_up()
    _note(f"compiled the page's functions in {seconds:.1f} s")
    server = explore.Server(explorer, args.host, args.port)
    print(f"jaxcnn explore: serving {server.url} (Ctrl-C stops)", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()  # returns on Ctrl-C (Werkzeug's loop ends on KeyboardInterrupt)
    finally:
        server.shutdown()
    print("jaxcnn explore: stopped", file=sys.stderr)
    return 0


def _note(text: str) -> None:
    print(f"jaxcnn explore: {text}", flush=True)
