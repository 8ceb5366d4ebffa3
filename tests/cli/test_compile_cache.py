"""The jaxcnn command's persistent compilation cache: a second run compiles nothing.

Each run is a fresh ``python`` process (the cache is for the next process; within
one, JAX's in-memory caches already share programs) that counts, from JAX's own
monitoring events, the compilations it asked for, how many the disk cache
answered and how many it missed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jaxcnn.cli._cache import ENV, cache_dir, enable_compile_cache

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, sys
if os.environ.get("PROBE_HIDE_FILELOCK"):
    sys.modules["filelock"] = None  # as if the package were not installed
import jax
counts = {"requests": 0, "hits": 0, "misses": 0}
names = {"/jax/compilation_cache/compile_requests_use_cache": "requests",
         "/jax/compilation_cache/cache_hits": "hits",
         "/jax/compilation_cache/cache_misses": "misses"}
def count(event, **kwargs):
    if event in names:
        counts[names[event]] += 1
jax.monitoring.register_event_listener(count)
from jaxcnn.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, **counts}))
"""


def _run(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *printed, counts = done.stdout.strip().splitlines()
    return json.loads(counts), "\n".join(printed)


def test_the_same_run_twice_compiles_nothing_the_second_time(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["train", "shapes", "--epochs", "2", "--out", str(tmp_path / "run"), "--quiet"]
    first, first_line = _run(args, {ENV: str(cache)})
    second, second_line = _run([*args, "--overwrite"], {ENV: str(cache)})
    assert first["misses"] > 0, first
    assert any(path.name.startswith("jit__train_epoch") for path in cache.iterdir())
    assert second["requests"] == first["requests"] > 0
    assert second["misses"] == 0
    assert second["hits"] == second["requests"]
    # The cached programs compute the same thing.
    assert first_line.split(" in ")[0] == second_line.split(" in ")[0]
    # --no-compile-cache: the same cache directory, and nothing is read from it.
    third, _ = _run(["--no-compile-cache", *args, "--overwrite"], {ENV: str(cache)})
    assert third["hits"] == 0


def test_the_cache_is_written_without_filelock(tmp_path: Path) -> None:
    """JAX refuses a size-capped cache without ``filelock``; the run caches uncapped."""
    cache = tmp_path / "cache"
    args = ["train", "shapes", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]
    counts, _ = _run(args, {ENV: str(cache), "PROBE_HIDE_FILELOCK": "1"})
    assert counts["misses"] > 0, counts
    assert any(path.name.startswith("jit__train_epoch") for path in cache.iterdir())


def test_no_compile_cache_creates_no_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "cache"))
    assert enable_compile_cache(disabled=True) is None
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no"])
def test_off_values_disable_the_cache(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV, value)
    assert cache_dir() is None


def test_the_cache_lives_beside_the_data_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("JAXCNN_DATA", str(tmp_path))
    assert cache_dir() == tmp_path / "compile-cache"
    assert cache_dir(disabled=True) is None
    monkeypatch.setenv(ENV, str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
