"""``python -m benchmarks``: jaxcnn against a plain PyTorch script, end to end and steady.

Run from a checkout (the harness is not installed with jaxcnn)::

    python -m benchmarks                          # both models, 3 interleaved rounds
    python -m benchmarks --json docs/benchmarks.json --markdown docs/benchmarks.md
    python -m benchmarks --quick                  # a smoke run: shapes, 2 epochs, 1 round

Every number comes from a fresh process started the way a user starts it (see
:mod:`benchmarks._runs`): ``jaxcnn.train.fit``, ``python -m jaxcnn train``
(with a new compile cache, then again with the cache it wrote), and
``benchmarks/torch_plain.py`` eagerly and under ``torch.compile`` (when torch
is importable). A round runs them all once, back to back; ``--rounds`` rounds
give medians and the range as noise. The parent imports neither jax nor torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _report, _runs

MODELS = ("shapes", "mnist-cnn")
KINDS = (
    "jax fit",
    "jax fit (2nd call)",
    "jax fit bf16",
    "jax cli",
    "jax cli (cached)",
    "torch",
    "torch.compile",
)
TORCH_KINDS = ("torch", "torch.compile")


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time jaxcnn (fit and the CLI) and a plain PyTorch script, each run "
        "in a fresh process, interleaved over rounds. Close other programs first.",
    )
    parser.add_argument("--models", type=_subset(MODELS), default=MODELS, help="shapes,mnist-cnn")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--epochs", type=int, help="override every run's epochs")
    parser.add_argument(
        "--quick", action="store_true", help="shapes, 2 epochs, 1 round, no torch.compile"
    )
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch runs")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile run")
    parser.add_argument("--bf16", action="store_true", help="add a fit run in bf16 precision")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every number as JSON")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="refresh docs/benchmarks.md")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def options(args: argparse.Namespace) -> dict[str, Any]:
    """What to run: models, kinds, rounds and epochs, with ``--quick`` applied."""
    kinds = list(KINDS)
    torch_reason = None
    if args.no_torch:
        torch_reason = "--no-torch"
    elif importlib.util.find_spec("torch") is None:
        torch_reason = "torch is not importable"
    if torch_reason:
        kinds = [k for k in kinds if k not in TORCH_KINDS]
    if args.no_compile or args.quick:
        kinds = [k for k in kinds if k != "torch.compile"]
    if not args.bf16:
        kinds = [k for k in kinds if k != "jax fit bf16"]
    return {
        "models": ["shapes"] if args.quick else list(args.models),
        "kinds": kinds,
        "rounds": 1 if args.quick else args.rounds,
        "epochs": 2 if args.quick and args.epochs is None else args.epochs,
        "quick": args.quick,
        "torch_skipped": torch_reason,
    }


def run(opts: dict[str, Any], timeout: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Every round of every run; the results dict (JSON-ready)."""
    results: dict[str, Any] = {"machine": _report.machine_info(), "options": opts}
    results["load_start"] = list(os.getloadavg())
    rounds = []
    with tempfile.TemporaryDirectory(prefix="jaxcnn-bench-") as folder:
        for index in range(opts["rounds"]):
            rows = []
            for model in opts["models"]:
                for planned in _runs.plan(
                    model, opts["epochs"], Path(folder), tuple(opts["kinds"])
                ):
                    say(f"round {index + 1}/{opts['rounds']}: {model} {planned.kind}")
                    rows.append(_runs.execute(planned, timeout=timeout))
            rounds.append(rows)
    results["load_end"] = list(os.getloadavg())
    results["rounds_run"] = len(rounds)
    results["rounds"] = rounds
    results["summary"] = _report.summarise(rounds)
    results["targets"] = _report.targets(rounds)
    results["comparisons"] = _report.comparisons(rounds)
    return results


def _subset(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name for name in text.split(",") if name)
        if not names or any(name not in allowed for name in names):
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return names

    return parse


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    say = (lambda message: None) if args.quiet else (lambda m: print(f"... {m}", file=sys.stderr))
    results = run(options(args), args.timeout, say)
    print(_report.format_text(results))
    if args.json is not None:
        _report.write_json(results, args.json)
    if args.markdown is not None:
        command = shlex.join(
            ["python", "-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])]
        )
        _report.write_markdown(results, args.markdown, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
