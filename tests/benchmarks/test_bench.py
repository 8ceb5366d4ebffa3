"""``python -m benchmarks``: the harness runs end to end, and its report says what was measured.

No timing is asserted (that would be a flaky test); the numbers themselves are
in docs/benchmarks.md. What is asserted: a training run in a child process
reports positive throughput, compile time and peak memory; the targets table
compares the right rows; the Markdown block is replaced in place; bad
arguments are one-line errors with exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _harness as bench
from benchmarks.__main__ import main
from benchmarks._report import BEGIN, END, targets, write_markdown


def test_a_quick_training_benchmark_runs_in_a_child_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["--quick", "--no-torch", "--models", "shapes", "--convs", "auto"]
    code = main([*argv, "--grads", "autodiff", "--no-ops", "--quiet", "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    (row,) = results["training"]
    assert "error" not in row, row.get("error")
    assert (row["framework"], row["model"], row["conv"]) == ("jax", "shapes", "auto")
    assert row["images_per_second"] > 0
    assert 0 < row["compile_seconds"] < row["first_epoch_seconds"] + 1e-9
    assert row["peak_rss_mb"] >= row["rss_before_training_mb"] > 0
    assert len(row["epoch_seconds"]) == row["repeats"]
    printed = capsys.readouterr().out
    assert "shapes" in printed
    assert "img/s" in printed
    assert "--quick" in printed


def _row(model: str, framework: str, rate: float, rss: float, **extra: Any) -> dict[str, Any]:
    conv, grads = ("auto", "autodiff") if framework == "jax" else ("-", "autograd")
    return {
        "model": model,
        "framework": framework,
        "conv": conv,
        "grads": grads,
        "images_per_second": rate,
        "peak_rss_mb": rss,
        "compile_seconds": 1.0,
        **extra,
    }


def test_targets_compare_the_default_training_path_with_pytorch() -> None:
    results = {
        "training": [
            _row("shapes", "torch", 10_000.0, 300.0),
            _row("shapes", "jax", 25_000.0, 280.0),
            _row("mnist-cnn", "torch", 2_000.0, 400.0),
            _row("mnist-cnn", "jax", 2_400.0, 500.0),
            # An errored row must not be picked up as a measurement.
            _row("mnist-cnn", "jax", 9e9, 1.0, conv="lax", error="boom"),
        ]
    }
    by_name = {row["target"]: row for row in targets(results)}
    shapes = by_name["shapes training >= 2x PyTorch (img/s)"]
    assert shapes["measured"] == pytest.approx(2.5)
    assert shapes["met"] is True
    mnist = by_name["mnist-cnn training >= 1.3x PyTorch (img/s)"]
    assert mnist["measured"] == pytest.approx(1.2)
    assert mnist["met"] is False
    memory = by_name["mnist-cnn peak memory <= PyTorch's (ratio)"]
    assert memory["measured"] == pytest.approx(1.25)
    assert memory["met"] is False


def test_targets_without_pytorch_are_not_measured_rather_than_failed() -> None:
    results = {"training": [_row("shapes", "jax", 25_000.0, 280.0)]}
    by_name = {row["target"]: row for row in targets(results)}
    assert by_name["shapes training >= 2x PyTorch (img/s)"]["met"] is None
    assert by_name["shapes epoch compile < 5 s"]["met"] is True


def test_the_markdown_block_is_replaced_and_the_rest_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nhand-written intro\n\n{BEGIN}\nold numbers\n{END}\n\nnotes\n")
    monkeypatch.setattr(
        "benchmarks._report.markdown", lambda results, command: f"{BEGIN}\nnew\n{END}\n"
    )
    write_markdown({}, page, "jaxcnn bench")
    text = page.read_text()
    assert "old numbers" not in text
    assert "new" in text
    assert text.startswith("# Benchmarks\n\nhand-written intro")
    assert text.rstrip().endswith("notes")
    assert text.count(BEGIN) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--models", "resnet"],
        ["--convs", "fft"],
        ["--grads", ""],
    ],
)
def test_bad_bench_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "must be a comma-separated subset" in err
    assert "Traceback" not in err


def test_bench_options_are_checked_by_the_library_too() -> None:
    with pytest.raises(ValueError, match="bench: models must be a non-empty subset"):
        bench.run(bench.BenchOptions(quick=True, torch=False, models=("resnet",)))
