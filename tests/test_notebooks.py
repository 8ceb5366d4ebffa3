"""Every notebook in notebooks/ runs top to bottom without an error.

Each notebook runs in a fresh kernel started with this interpreter
(``sys.executable``, through a throw-away kernelspec, so no kernel installed
elsewhere on the machine can be picked up instead), with the repository root
first on ``PYTHONPATH`` so ``import jaxcnn`` finds this checkout, and with the
notebooks folder as working directory. A notebook that needs data the
machine may lack (:data:`NEEDS`) is skipped, naming what to install; one whose
results matter beyond running (:data:`CHECKS`) prints them as a ``RESULTS``
JSON line, which the test reads and asserts on.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
TIMEOUT_SECONDS = 180
"""Per notebook; each is meant to run in well under 2 minutes on 2 CPU cores."""
KERNEL_NAME = "jaxcnn-test-python"
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")

NEEDS = {
    "05_your_own_model.ipynb": (FASHION_MNIST, "apt-get install dataset-fashion-mnist"),
}
"""Notebook -> (the folder it reads, how to get it)."""


def _check_your_own_model(results: dict[str, Any]) -> None:
    assert results["test_accuracy"] > 0.6  # ten classes: chance is 0.1
    assert results["reload_identical"] is True
    for name in ("grad_difference", "per_sample_difference", "saliency_difference"):
        assert 0 <= results[name] < 1e-10, (name, results[name])


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "05_your_own_model.ipynb": _check_your_own_model,
}
"""Notebook -> assertions on the ``RESULTS {json}`` line it prints."""


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: pathlib.Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
            assert cell.execution_count is None, f"{path.name}: clear the execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(
    path: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path.name in NEEDS and not NEEDS[path.name][0].is_dir():
        folder, how = NEEDS[path.name]
        pytest.skip(f"{path.name} reads {folder}, which is missing here ({how})")
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", python_path)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path),
        timeout=TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    assert all(
        cell.execution_count is not None for cell in notebook.cells if cell.cell_type == "code"
    ), "every code cell ran"
    if path.name in CHECKS:
        CHECKS[path.name](_results(notebook))


def _results(notebook: Any) -> dict[str, Any]:
    """The JSON of the ``RESULTS {...}`` line a notebook printed."""
    lines = [
        line
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
        for line in output.text.splitlines()
        if line.startswith("RESULTS ")
    ]
    assert len(lines) == 1, f"expected one RESULTS line, got {lines}"
    results: dict[str, Any] = json.loads(lines[0].removeprefix("RESULTS "))
    return results


def _kernel_manager(folder: pathlib.Path) -> KernelManager:
    """A kernel manager whose only kernelspec runs ipykernel in this interpreter."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jaxcnn tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
