"""``python -m benchmarks._child SPEC``: run one training benchmark, print its JSON.

Started by :func:`benchmarks._train.run_child` in a fresh process so that
its peak resident memory (VmHWM) is this run's own. ``SPEC`` is a JSON
:class:`~benchmarks._train.TrainSpec`; the result is one JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from benchmarks._train import TrainSpec, jax_training


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m benchmarks._child SPEC_JSON", file=sys.stderr)
        return 2
    spec = TrainSpec(**json.loads(argv[1]))
    if spec.framework == "torch":
        from benchmarks._torch import torch_training

        result = torch_training(spec)
    else:
        result = jax_training(spec)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
