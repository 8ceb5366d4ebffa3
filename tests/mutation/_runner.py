"""Apply mutants to temporary copies of the repository and run the property tests there.

The working tree is never written to: each run copies the package and the tests
(:data:`COPIED`) into a fresh temporary directory, rewrites one file there, and
runs pytest in that directory with only that copy on ``PYTHONPATH``. The
Hypothesis profile is ``mutation`` (tests/conftest.py): the default number of
examples, derandomized and without the example database, so a verdict never
depends on an earlier run or on luck.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.mutation.mutants import Mutant

COPIED = ("jaxcnn", "tests", "notebooks", "pyproject.toml")
"""What a mutated copy holds: enough to import jaxcnn and run any test."""

TIMEOUT_SECONDS = 900


class MutantError(Exception):
    """A mutant does not apply: its ``old`` text is not in the file exactly once."""


@dataclass(frozen=True)
class Outcome:
    """The result of running some tests against one copy (mutated or not)."""

    name: str
    verdict: str  # "caught", "survived" (tests passed), "error" (pytest could not run them)
    seconds: float
    caught_by: str  # the first failing test, "" if none
    returncode: int
    tail: str  # the end of pytest's output


def mutate(text: str, mutant: Mutant) -> str:
    """``text`` with ``mutant.old`` replaced by ``mutant.new``; the old text must occur once."""
    count = text.count(mutant.old)
    if count != 1:
        raise MutantError(
            f"mutant {mutant.name}: expected its old text once in {mutant.path}, found it "
            f"{count} times; rewrite the mutant for the current code:\n{mutant.old}"
        )
    return text.replace(mutant.old, mutant.new)


def make_copy(root: Path, dest: Path, mutant: Mutant | None) -> None:
    """Copy :data:`COPIED` from ``root`` into ``dest`` and apply ``mutant`` to the copy."""
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".ipynb_checkpoints")
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    if mutant is not None:
        target = dest / mutant.path
        target.write_text(mutate(target.read_text(), mutant))


def child_env(copy: Path) -> dict[str, str]:
    """The environment of a run in ``copy``: only the copy importable, the mutation profile."""
    env = {**os.environ, "PYTHONPATH": str(copy), "HYPOTHESIS_PROFILE": "mutation"}
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def run_tests(
    name: str, root: Path, mutant: Mutant | None, node_ids: Sequence[str], *, stop_early: bool
) -> Outcome:
    """Run ``node_ids`` against a copy of ``root`` (mutated by ``mutant``, if given).

    ``stop_early`` (``-x``): stop at the first failure, enough to catch a mutant.
    """
    with tempfile.TemporaryDirectory(prefix=f"jaxcnn-mutant-{name}-") as folder:
        copy = Path(folder)
        make_copy(root, copy, mutant)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *node_ids]
        if stop_early:
            command.insert(4, "-x")
        start = time.perf_counter()
        try:
            result = subprocess.run(
                command,
                cwd=copy,
                env=child_env(copy),
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
            returncode, output = result.returncode, result.stdout + result.stderr
        except subprocess.TimeoutExpired as timeout:
            returncode, output = -1, f"timed out after {timeout.timeout} s"
        seconds = time.perf_counter() - start
    verdict = {0: "survived", 1: "caught"}.get(returncode, "error")
    failed = re.search(r"^FAILED (\S+)", output, re.MULTILINE)
    caught_by = failed.group(1) if failed else ""
    return Outcome(name, verdict, round(seconds, 1), caught_by, returncode, output[-3000:])


def imports_from_copy(root: Path) -> bool:
    """Whether a child run imports jaxcnn from its copy, not from an installed jaxcnn."""
    with tempfile.TemporaryDirectory(prefix="jaxcnn-mutant-check-") as folder:
        copy = Path(folder)
        make_copy(root, copy, None)
        code = "import jaxcnn, pathlib; print(pathlib.Path(jaxcnn.__file__).resolve())"
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=copy,
            env=child_env(copy),
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(result.stdout.strip()).is_relative_to(copy.resolve())
