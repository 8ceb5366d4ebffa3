"""Reproduce the article's MNIST results: `jaxcnn train` over several seeds.

Runs `python -m jaxcnn train MODEL --seed S` for each model and seed in a child
process (so each run's peak resident memory is its own), and prints a Markdown
table: test accuracy, wall time of the whole command, training throughput of
the epochs after the first (the first includes compilation) and peak RSS.

    python scripts/mnist_results.py --seeds 0 1 2 --models mnist-dense mnist-cnn

MNIST must be cached first (`jaxcnn data fetch mnist`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EPOCH = re.compile(r"^epoch (\d+)/(\d+): .*\((\d+\.\d+) s\)$", re.M)
FINAL = re.compile(r"^test accuracy (\d+\.\d+)% \((\d+) images\)", re.M)
TRAIN_IMAGES = 60_000


def run(model: str, seed: int, out: Path) -> dict[str, float]:
    """One training run in a child process; its accuracy, times and peak memory."""
    command = [sys.executable, "-m", "jaxcnn", "train", model, "--seed", str(seed)]
    command += ["--out", str(out), "--overwrite"]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    text = child.stdout.read() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{text}")
    epochs = [float(seconds) for _, _, seconds in EPOCH.findall(text)]
    final = FINAL.search(text)
    if final is None or not epochs:
        raise SystemExit(f"unexpected output of {' '.join(command)}:\n{text}")
    steady = epochs[1:] or epochs
    return {
        "accuracy": float(final.group(1)),
        "wall": wall,
        "first_epoch": epochs[0],
        "steady_epoch": statistics.median(steady),
        "images_per_s": TRAIN_IMAGES / statistics.median(steady),
        "epochs": len(epochs),
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist-dense", "mnist-cnn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    print(
        "| model | seed | epochs | test accuracy | command wall time | first epoch (incl. "
        "compile) | later epochs (median) | img/s (60,000 / later epoch) | peak RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            for seed in args.seeds:
                row = run(model, seed, Path(scratch) / f"{model}-{seed}")
                print(
                    f"| {model} | {seed} | {row['epochs']:.0f} | {row['accuracy']:.2f}% | "
                    f"{row['wall']:.1f} s | {row['first_epoch']:.1f} s | "
                    f"{row['steady_epoch']:.2f} s | {row['images_per_s']:,.0f} | "
                    f"{row['peak_rss_mb']:,.0f} MB |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
