"""Benchmark from the command line: ``python scripts/benchmark.py --markdown docs/benchmarks.md``.

The same as ``jaxcnn bench ...``; see ``jaxcnn bench --help``.
"""

import sys

from jaxcnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
