"""Every notebook in notebooks/ runs top to bottom, and its key outputs are what it claims.

How a notebook's numbers are checked (and how to add a notebook)
-----------------------------------------------------------------
1. End the notebook with a cell that collects its key numbers in a dict named
   ``RESULTS``, e.g.::

       RESULTS = {"parameters": models.count_params(params), "test_accuracy": accuracy}
       RESULTS

   Values must be numbers (ints, floats, 0-d arrays) or bools; keep the names
   readable, the reader sees the cell too.
2. Add the notebook's entry to :data:`EXPECTED` below: for each key a bound,
   ``Expect("<", 1e-10)``, ``Expect(">=", 0.95)``, ``Expect("==", 413)``.
   Derive a bound from the arithmetic (float64 rounding) or from the measured
   spread over seeds with a margin (accuracies), never from one run here:
   the notebook must pass on any CPU.

The test runs the notebook in a fresh kernel, appends one cell that prints
``RESULTS`` as JSON, and checks that the keys are exactly those of
:data:`EXPECTED` and every value meets its bound. A notebook without an entry
fails, and so does a cell that raises (notebooks may ``assert`` too).

Each notebook runs with this interpreter (``sys.executable``, through a
throw-away kernelspec, so no kernel installed elsewhere on the machine can be
picked up instead), with the repository root first on ``PYTHONPATH`` so
``import jaxcnn`` finds this checkout, and with the notebooks folder as
working directory. A notebook that needs data the machine may lack
(:data:`NEEDS`) is skipped, naming what to install.
"""

from __future__ import annotations

import json
import operator
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests import rounding

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
TIMEOUT_SECONDS = 180
"""Per cell; each notebook is meant to run in well under 2 minutes on 2 CPU cores."""
KERNEL_NAME = "jaxcnn-test-python"
MARKER = "JAXCNN_NOTEBOOK_RESULTS="


class Expect(NamedTuple):
    """A bound on one recorded value: ``value <op> limit``."""

    op: str  # one of OPERATORS
    limit: float

    def holds(self, value: float) -> bool:
        return bool(OPERATORS[self.op](value, self.limit))


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}

# Accuracies: measured over seeds 0-9 by `python scripts/accuracy_seeds.py`
# (docs/accuracy_seeds.json); each bound sits below the worst seed by a margin, so another
# CPU's rounding (another trajectory, as another seed gives) still passes. Shapes at lr 0.25:
# 97.38-100%, at lr 0.1: 99.50-100%; notebook 04's brief MNIST runs: dense 91.07-92.21%,
# CNN 96.80-97.43%.
EXPECTED: dict[str, dict[str, Expect]] = {
    "01_convolution.ipynb": {
        "left_edge_blur": Expect("==", 85.0),
        "stride_2_output_side": Expect("==", 2),
        # The patch's own window scores 1 up to float32 rounding: gamma(22), as derived in
        # tests/test_kernels.py (test_match_pattern_peaks_where_patch_was_cut).
        "best_cosine_score": Expect(">=", 1 - rounding.gamma(22)),
        "lax_vs_sliding_over_rounding_bound": Expect("<=", 1.0),
    },
    "02_shapes_cnn.ipynb": {
        "parameters": Expect("==", 413),
        "article_test_accuracy": Expect(">=", 0.95),
        "gentle_test_accuracy": Expect(">=", 0.985),
        "gentle_live_filters": Expect("==", 2),
    },
    "03_gradients.ipynb": {
        "comparisons": Expect(">=", 29),  # every report() call ran
        "largest_difference": Expect("<", 1e-10),  # float64 rounding here is ~1e-15
        "article_as_derived": Expect("<", 1e-10),
        "article_unflatten_slip": Expect(">", 1e-4),  # the slips must show
        "article_bias_slip": Expect(">", 1e-4),
    },
    "04_mnist.ipynb": {
        "dense_parameters": Expect("==", 101_770),
        "cnn_parameters": Expect("==", 225_034),
        "dense_test_accuracy": Expect(">=", 0.90),
        "cnn_test_accuracy": Expect(">=", 0.95),
    },
    "05_your_own_model.ipynb": {
        "test_accuracy": Expect(">", 0.6),  # ten classes: chance is 0.1
        "reload_identical": Expect("==", True),
        "grad_difference": Expect("<", 1e-10),  # float64 rounding here is ~1e-15
        "per_sample_difference": Expect("<", 1e-10),
        "saliency_difference": Expect("<", 1e-10),
    },
}
"""Each notebook's recorded key outputs and the bound each must meet."""

FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
NEEDS = {
    "05_your_own_model.ipynb": (FASHION_MNIST, "apt-get install dataset-fashion-mnist"),
}
"""Notebook -> (the folder it reads, how to get it)."""


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
    """Runs without an error, and ``RESULTS`` meets the notebook's :data:`EXPECTED`."""
    assert path.name in EXPECTED, (
        f"{path.name}: add its key outputs to EXPECTED in {__file__} (see the module docstring)"
    )
    if path.name in NEEDS and not NEEDS[path.name][0].is_dir():
        folder, how = NEEDS[path.name]
        pytest.skip(f"{path.name} reads {folder}, which is missing here ({how})")
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", python_path)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            f"import json\nprint({MARKER!r} + json.dumps(RESULTS, default=float))"
        )
    )
    client = NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path),
        timeout=TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    assert all(
        cell.execution_count is not None for cell in notebook.cells if cell.cell_type == "code"
    ), "every code cell ran"
    check_results(path.name, recorded_results(notebook))


def recorded_results(notebook: Any) -> dict[str, Any]:
    """The ``RESULTS`` dict the appended last cell printed."""
    for output in notebook.cells[-1].outputs:
        text = output.get("text", "")
        if output.output_type == "stream" and text.startswith(MARKER):
            results: dict[str, Any] = json.loads(text[len(MARKER) :])
            return results
    raise AssertionError("the notebook defines no RESULTS dict (see the module docstring)")


def check_results(name: str, results: dict[str, Any]) -> None:
    """Every expected key recorded, nothing else, and every value within its bound."""
    expected = EXPECTED[name]
    assert sorted(results) == sorted(expected), f"{name}: RESULTS keys differ from EXPECTED"
    failures = [
        f"{key} = {results[key]!r}, expected {bound.op} {bound.limit!r}"
        for key, bound in expected.items()
        if not bound.holds(results[key])
    ]
    assert failures == [], f"{name}: " + "; ".join(failures)


def test_check_results_fails_on_a_value_out_of_bounds() -> None:
    """The assertion mechanism is not vacuous."""
    good = {"comparisons": 50, "largest_difference": 1e-15, "article_as_derived": 0.0}
    good |= {"article_unflatten_slip": 0.3, "article_bias_slip": 0.02}
    check_results("03_gradients.ipynb", good)
    with pytest.raises(AssertionError, match=r"largest_difference = 10.3, expected < 1e-10"):
        check_results("03_gradients.ipynb", good | {"largest_difference": 10.3})
    with pytest.raises(AssertionError, match="RESULTS keys differ"):
        check_results("03_gradients.ipynb", {"comparisons": 50})


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
