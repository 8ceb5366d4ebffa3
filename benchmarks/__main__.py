"""``python -m benchmarks``: time training, convolutions and per-sample gradients vs PyTorch.

Run from a checkout (the harness is not installed with jaxcnn).

Prints a table; ``--json PATH`` writes every number, ``--markdown PATH``
refreshes the generated block of docs/benchmarks.md. See docs/benchmarks.md
for what each number means.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks import _harness as bench
from benchmarks._report import write_json


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Training throughput of the article's models (every conv implementation and "
            "gradient mode, and PyTorch CPU when torch is importable), peak memory, compile "
            "time, conv forward/backward per implementation, per-sample gradients and the "
            "machine's matmul peak. Close other programs first: timings are wall-clock."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="tiny repeats (tests/CI; no numbers)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write all results as JSON")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="refresh docs/benchmarks.md")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    parser.add_argument("--models", type=_names(bench.MODELS), default=bench.MODELS)
    parser.add_argument("--convs", type=_names(bench.CONVS), default=bench.CONVS)
    parser.add_argument("--grads", type=_names(bench.GRADS), default=bench.GRADS)
    parser.add_argument("--no-ops", action="store_true", help="training benchmarks only")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def run_bench(args: argparse.Namespace) -> int:
    """Run, print the table, write the requested files."""
    options = bench.BenchOptions(
        quick=args.quick,
        torch=not args.no_torch,
        models=args.models,
        convs=args.convs,
        grads=args.grads,
        ops=not args.no_ops,
    )
    progress = None if args.quiet else (lambda message: print(f"... {message}", file=sys.stderr))
    results = bench.run(options, progress)
    print(bench.format_table(results))
    if args.json is not None:
        write_json(results, args.json)
    if args.markdown is not None:
        command = shlex.join(["python", "-m", "benchmarks", *sys.argv[1:]])
        bench.write_markdown(results, args.markdown, command)
    return 0


def _names(allowed: tuple[str, ...]) -> Any:
    """argparse type: a comma-separated subset of ``allowed``."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name for name in text.split(",") if name)
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return names

    return parse


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    return run_bench(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
