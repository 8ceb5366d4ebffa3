"""The runs ``python -m benchmarks`` times: each one a fresh process, as a user starts it.

======================  ===================================================================
``jax fit``             ``fit`` on the training split, no ``val`` (``benchmarks._fit_child``)
``jax fit (2nd call)``  the same child calling ``fit`` twice; the second call's epochs
``jax fit bf16``        the same with ``precision="bf16"`` (``--bf16``)
``jax cli``             ``python -m jaxcnn train MODEL --quiet``, a new compile cache
``jax cli (cached)``    the same command again, with the cache the previous one wrote
``torch``               ``python benchmarks/torch_plain.py MODEL`` (a plain PyTorch loop)
``torch.compile``       the same script with ``--compile``
======================  ===================================================================

Every run is timed from process start to exit (``end_to_end_seconds``: import,
data, compiling, training, evaluation, the printed test accuracy), and its peak
memory read from the kernel (``os.wait4``'s ``ru_maxrss`` of that child: the
parent imports neither jax nor torch, so the figure is the child's own). The
``fit`` and PyTorch runs also report every epoch's seconds, whose steady part
(all but the first epoch) gives images per second.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
TORCH_SCRIPT = ROOT / "benchmarks" / "torch_plain.py"
ACCURACY = re.compile(r"test accuracy ([0-9.]+)% \((\d+) images\)")


class Run(NamedTuple):
    """One process to start and time."""

    kind: str  # a key of KINDS
    model: str
    command: list[str]
    env: dict[str, str]
    json_path: Path | None  # where the child writes its epoch times (torch), if anywhere


def plan(model: str, epochs: int | None, folder: Path, kinds: tuple[str, ...]) -> list[Run]:
    """The runs of one round for ``model``, in order (the cached CLI after the cold one).

    ``epochs``: override the model's default epochs (``--quick``); the ``fit``
    run does at least 3 (one to compile, two to time).
    """
    python = sys.executable
    cache = Path(tempfile.mkdtemp(prefix="compile-cache-", dir=folder))
    cli = [python, "-m", "jaxcnn", "train", model, "--quiet", "--overwrite"]
    cli += ["--out", str(folder / f"jax-{model}")]
    torch = [python, str(TORCH_SCRIPT), model, "--quiet", "--out", str(folder / "torch")]
    if epochs is not None:
        cli += ["--epochs", str(epochs)]
        torch += ["--epochs", str(epochs)]
    fit_epochs = max(3, epochs or (20 if model == "shapes" else 3))
    fit = [python, "-m", "benchmarks._fit_child", model, str(fit_epochs)]
    cached = {"JAXCNN_COMPILE_CACHE": str(cache)}
    runs = {
        "jax fit": Run("jax fit", model, fit, {"JAXCNN_COMPILE_CACHE": "off"}, None),
        "jax fit (2nd call)": Run(
            "jax fit (2nd call)",
            model,
            [*fit, "--calls", "2"],
            {"JAXCNN_COMPILE_CACHE": "off"},
            None,
        ),
        "jax fit bf16": Run("jax fit bf16", model, [*fit, "bf16"], {}, None),
        "jax cli": Run("jax cli", model, cli, cached, None),
        "jax cli (cached)": Run("jax cli (cached)", model, cli, cached, None),
        "torch": Run("torch", model, torch, {}, folder / f"torch-{model}.json"),
        "torch.compile": Run(
            "torch.compile", model, [*torch, "--compile"], {}, folder / f"compile-{model}.json"
        ),
    }
    chosen = [runs[kind] for kind in runs if kind in kinds]
    return [r._replace(command=[*r.command, "--json", str(r.json_path)]) if r.json_path else r
            for r in chosen]  # fmt: skip


def execute(run: Run, *, timeout: float) -> dict[str, Any]:
    """Start ``run``, wait for it; its times, accuracy and memory, or an ``error``."""
    env = {**os.environ, **run.env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    row: dict[str, Any] = {"kind": run.kind, "model": run.model}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(run.command, stdout=out, stderr=err, env=env, cwd=ROOT)
        status, usage = _wait(child, timeout)
        row["end_to_end_seconds"] = time.perf_counter() - started
        row["peak_rss_mb"] = usage.ru_maxrss / 1024 if usage is not None else None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if status != 0:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        return {**row, "error": f"exit status {status}: {tail}"}
    row.update(_parse(run, stdout))
    return row


def _wait(child: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any]:
    """Wait for ``child`` (killed after ``timeout`` s); its exit status and resource usage."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode, usage
        time.sleep(0.01)
    child.kill()
    child.wait()
    return -9, None


def _parse(run: Run, stdout: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    if match := ACCURACY.search(stdout):
        parsed["test_accuracy"] = float(match.group(1)) / 100
    if run.json_path is not None:
        parsed.update(json.loads(run.json_path.read_text()))
    elif run.kind.startswith("jax fit"):
        parsed.update(json.loads(stdout.strip().splitlines()[-1]))
    return parsed
