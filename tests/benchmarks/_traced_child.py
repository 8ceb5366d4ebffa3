"""Run one of the harness's commands with ``jaxcnn.train.fit`` traced.

``python -m tests.benchmarks._traced_child RECORD -m MODULE ARGS...`` runs
``python -m MODULE ARGS...`` in this process after wrapping
``jaxcnn.train.fit``, and writes RECORD (JSON) when the module exits: one entry
per ``fit`` call, with the epochs asked for and the ``EpochEnd.seconds`` that
``fit`` itself passed to ``on_epoch``. The test compares those with what the
harness reported, so the harness is shown to time ``fit`` by construction,
not by a clock comparison between processes.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "-m":
        print("usage: python -m tests.benchmarks._traced_child RECORD -m MODULE ARGS...")
        return 2
    record, module, args = Path(argv[1]), argv[3], argv[4:]
    calls: list[dict[str, Any]] = []
    _trace_fit(calls)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
    else:
        code = 0
    finally:
        record.write_text(json.dumps({"module": module, "fit_calls": calls}))
    return code if isinstance(code, int) else 1


def _trace_fit(calls: list[dict[str, Any]]) -> None:
    """Replace ``jaxcnn.train.fit`` with a wrapper that records each call into ``calls``."""
    from jaxcnn import train

    real_fit = train.fit

    def traced_fit(*args: Any, on_epoch: Any = None, **kwargs: Any) -> Any:
        call: dict[str, Any] = {"epochs": kwargs.get("epochs"), "epoch_seconds": []}
        calls.append(call)

        def hook(end: Any) -> Any:
            call["epoch_seconds"].append(end.seconds)
            return None if on_epoch is None else on_epoch(end)

        return real_fit(*args, on_epoch=hook, **kwargs)

    train.fit = traced_fit


if __name__ == "__main__":
    sys.exit(main(sys.argv))
