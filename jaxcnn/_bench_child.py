"""``python -m jaxcnn._bench_child SPEC``: run one training benchmark, print its JSON.

Started by :func:`jaxcnn._bench_train.run_child` in a fresh process so that
``ru_maxrss`` is this run's own peak memory. ``SPEC`` is a JSON
:class:`~jaxcnn._bench_train.TrainSpec`; the result is one JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from jaxcnn._bench_train import TrainSpec, jax_training


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m jaxcnn._bench_child SPEC_JSON", file=sys.stderr)
        return 2
    spec = TrainSpec(**json.loads(argv[1]))
    if spec.framework == "torch":
        from jaxcnn._bench_torch import torch_training

        result = torch_training(spec)
    else:
        result = jax_training(spec)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
