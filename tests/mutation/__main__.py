"""The mutation check: every curated mutant must fail the ordinary property tests.

Usage (from the repository root, as .ci/run does)::

    python -m tests.mutation                      # baseline, every mutant, notebook 03
    python -m tests.mutation --only conv-db-batch-mean --no-baseline
    python -m tests.mutation --file jaxcnn/manual/_model.py --no-notebook
    python -m tests.mutation --json docs/mutation.json

Steps: (1) the unmutated copy passes every test the mutants will run (else a
"caught" would mean nothing); (2) each mutant of tests/mutation/mutants.py
runs, in its own temporary copy, against the property tests of the module it
changes, stopping at the first failure; (3) notebook 03 runs under a ``dx``
mutant and must fail. Exit status 0 only if the baseline passes and every
mutant (and the notebook check) is caught; a survivor or an error fails CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tests.mutation import mutants
from tests.mutation._runner import MutantError, Outcome, imports_from_copy, mutate, run_tests

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [
        m
        for m in mutants.MUTANTS
        if (not args.only or m.name in args.only) and (not args.file or m.path in args.file)
    ]
    unknown = set(args.only or ()) - {m.name for m in mutants.MUTANTS}
    if unknown:
        print(f"unknown mutant(s): {sorted(unknown)}", file=sys.stderr)
        return 2
    unmutated = set(args.file or ()) - {m.path for m in mutants.MUTANTS}
    if unmutated:
        print(f"no mutant changes {sorted(unmutated)}", file=sys.stderr)
        return 2
    try:  # every mutant applies to the current code, before anything runs
        for mutant in chosen:
            mutate((ROOT / mutant.path).read_text(), mutant)
    except MutantError as error:
        print(error, file=sys.stderr)
        return 2
    if not imports_from_copy(ROOT):
        print("a child run would import an installed jaxcnn, not its copy", file=sys.stderr)
        return 2
    start = time.perf_counter()
    jobs: list[tuple[str, Callable[[], Outcome]]] = []
    if args.baseline:
        tests = sorted({t for m in chosen for t in mutants.tests_for(m)})
        jobs.append(
            ("baseline", lambda: run_tests("baseline", ROOT, None, tests, stop_early=False))
        )
    for mutant in chosen:
        jobs.append((mutant.name, _mutant_job(mutant)))
    if args.notebook:
        jobs.append(("notebook-03", _notebook_job()))
    outcomes = run_all(jobs, args.jobs)
    total = time.perf_counter() - start
    report(outcomes, total)
    if args.json:
        given = sys.argv[1:] if argv is None else argv
        write_json(Path(args.json), outcomes, total, args.jobs, given)
    return 0 if all(_passed(o) for o in outcomes) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2, help="mutants run in parallel (default 2)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only these mutants")
    parser.add_argument(
        "--file",
        action="append",
        metavar="PATH",
        help="run only the mutants of these source files, e.g. jaxcnn/manual/_model.py",
    )
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument("--no-notebook", dest="notebook", action="store_false")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def _mutant_job(mutant: mutants.Mutant) -> Callable[[], Outcome]:
    tests = mutants.tests_for(mutant)
    return lambda: run_tests(mutant.name, ROOT, mutant, tests, stop_early=True)


def _notebook_job() -> Callable[[], Outcome]:
    mutant, tests = mutants.NOTEBOOK_MUTANT, [mutants.NOTEBOOK_03]
    return lambda: run_tests("notebook-03", ROOT, mutant, tests, stop_early=True)


def run_all(jobs: list[tuple[str, Callable[[], Outcome]]], workers: int) -> list[Outcome]:
    """Run the jobs ``workers`` at a time (each is a subprocess); results in job order."""
    results: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(job): name for name, job in jobs}
        for future in as_completed(futures):
            outcome = future.result()
            results[outcome.name] = outcome
            print(f"{_status(outcome):9s} {outcome.name:40s} {outcome.seconds:6.1f} s", flush=True)
    return [results[name] for name, _ in jobs]


def _passed(outcome: Outcome) -> bool:
    return outcome.verdict == ("survived" if outcome.name == "baseline" else "caught")


def _status(outcome: Outcome) -> str:
    if outcome.name == "baseline":
        return "ok" if outcome.verdict == "survived" else "FAILED"
    return outcome.verdict if outcome.verdict == "caught" else outcome.verdict.upper()


def report(outcomes: list[Outcome], seconds: float) -> None:
    """Print failures in full, then the score."""
    for outcome in outcomes:
        if not _passed(outcome):
            print(f"\n--- {outcome.name}: {_status(outcome)} (pytest exit {outcome.returncode})")
            print(outcome.tail)
    scored = [o for o in outcomes if o.name in {m.name for m in mutants.MUTANTS}]
    caught = sum(o.verdict == "caught" for o in scored)
    print(f"\nmutation score: {caught}/{len(scored)} caught in {seconds:.0f} s")


def write_json(
    path: Path, outcomes: list[Outcome], seconds: float, workers: int, argv: list[str]
) -> None:
    record = {
        "command": " ".join(["python -m tests.mutation", *argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "jobs": workers,
        "seconds": round(seconds, 1),
        "results": [
            {
                "name": o.name,
                "verdict": o.verdict,
                "caught_by": o.caught_by,
                "seconds": o.seconds,
            }
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
