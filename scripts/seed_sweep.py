"""Test accuracy of `jaxcnn train` over seeds: how the default settings were chosen.

Runs `python -m jaxcnn train MODEL --seed S [OPTIONS]` for every seed in a child
process (exactly what a user runs), reads the final `test accuracy` line, and
records the settings, every seed's accuracy and wall time, and the machine in
a JSON file (one entry per model and options; re-running replaces the entry),
with the settings the runs resolved to (the model's defaults plus the options,
read back from the run's history.json). Prints the whole file as a Markdown
table (the one in docs/training.md).

    python scripts/seed_sweep.py shapes --seeds 0-9                   # the defaults
    python scripts/seed_sweep.py shapes --seeds 0-9 -- --article      # the article's
    python scripts/seed_sweep.py shapes --seeds 0-9 -- --lr 0.1 --epochs 30
    python scripts/seed_sweep.py mnist-cnn --seeds 0-4                # ~100 s a seed
    python scripts/seed_sweep.py --table                              # print the table only

The MNIST models need the MNIST cache (`jaxcnn data fetch mnist`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "seed_sweep.json"
FINAL = re.compile(r"^test accuracy (\d+\.\d+)% \((\d+) images\) in ", re.M)
SETTINGS = ("optimizer", "lr", "batch_size", "epochs", "schedule", "weight_decay", "val_fraction")
"""The training settings an entry records (from the run's config)."""


def run_seed(model: str, seed: int, options: list[str], out: Path) -> dict[str, Any]:
    """One `jaxcnn train` run in a child process: its test accuracy (%) and wall time (s)."""
    command = [sys.executable, "-m", "jaxcnn", "train", model, "--seed", str(seed)]
    command += ["--out", str(out), "--overwrite", "--quiet", *options]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    final = FINAL.search(result.stdout)
    if result.returncode != 0 or final is None:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    config = json.loads((out / "history.json").read_text())["config"]
    return {
        "seed": seed,
        "accuracy": float(final.group(1)),
        "seconds": round(seconds, 1),
        "settings": {name: config[name] for name in SETTINGS if name in config},
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import jax  # the child processes use the same interpreter

    return {
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "platform": jax.devices()[0].platform,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "load_average_before": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str | None:
    """The CPU's model name on Linux (``/proc/cpuinfo``), else ``None``."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else None


def sweep(model: str, seeds: list[int], options: list[str]) -> dict[str, Any]:
    """Every seed's run, with the settings and the machine."""
    entry = {
        "model": model,
        "options": options,
        "command": " ".join(["jaxcnn", "train", model, "--seed", "S", *options]),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="jaxcnn-sweep-") as scratch:
        for seed in seeds:
            row = run_seed(model, seed, options, Path(scratch) / "run")
            print(f"{model} {' '.join(options)} seed {seed}: {row}", file=sys.stderr, flush=True)
            entry["settings"] = row.pop("settings")  # the same for every seed
            entry["runs"].append(row)
    return entry


def describe(settings: dict[str, Any]) -> str:
    """``adam lr 0.01, batch 32, 20 epochs`` and what is not plain (schedule, decay, val)."""
    text = (
        f"{settings['optimizer']} lr {settings['lr']:g}, batch {settings['batch_size']}, "
        f"{settings['epochs']} epochs"
    )
    if settings.get("schedule", "constant") != "constant":
        text += f", {settings['schedule']}"
    if settings.get("weight_decay"):
        text += f", weight decay {settings['weight_decay']:g}"
    if settings.get("val_fraction"):
        text += f", val_fraction {settings['val_fraction']:g}"
    return text


def table(entries: list[dict[str, Any]]) -> str:
    """One Markdown row per entry: accuracy range over its seeds and each seed's."""
    lines = [
        "| model | settings | options | seeds | min | median | max | per seed (test accuracy %) "
        "| s per run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in entries:
        accuracies = [run["accuracy"] for run in entry["runs"]]
        seeds = [run["seed"] for run in entry["runs"]]
        each = ", ".join(f"{a:.2f}" for a in accuracies)
        seconds = statistics.median(run["seconds"] for run in entry["runs"])
        options = f"`{' '.join(entry['options'])}`" if entry["options"] else "(the defaults)"
        lines.append(
            f"| {entry['model']} | {describe(entry['settings'])} | {options} | "
            f"{_seed_range(seeds)} | {min(accuracies):.2f} | "
            f"{statistics.median(accuracies):.2f} | {max(accuracies):.2f} | {each} | "
            f"{seconds:.0f} |"
        )
    return "\n".join(lines)


def _seed_range(seeds: list[int]) -> str:
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return (
        f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 1 else ", ".join(map(str, seeds))
    )


def _read(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def parse_seeds(text: str) -> list[int]:
    """``0-9`` or ``0,2,5``."""
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="shapes, mnist-cnn or mnist-dense")
    parser.add_argument("--seeds", type=parse_seeds, default=list(range(10)), help="0-9 or 0,2")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to update")
    parser.add_argument("--table", action="store_true", help="only print the table")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)  # after "--": `jaxcnn train` options
    args, options = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not args.table:
        if args.model is None:
            parser.error("a model is needed (or --table)")
        entry = sweep(args.model, args.seeds, options)
        entries = _read(args.results)  # read after the sweep: keep what others wrote meanwhile
        same = [e for e in entries if (e["model"], e["options"]) == (args.model, options)]
        entries = [e for e in entries if e not in same] + [entry]
        args.results.write_text(json.dumps(entries, indent=1) + "\n")
    print(table(_read(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
