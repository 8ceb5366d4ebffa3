"""Regenerate the repository's figures: ``python scripts/figures.py [--run DIR]``.

The same as ``jaxcnn figures --out docs/figures ...`` (see ``jaxcnn figures
--help``), with ``docs/figures`` found from this file, so it works from any
working directory: without ``--run`` it trains the shapes model first. Run
with jaxcnn installed (``pip install -e .``) or with ``PYTHONPATH=.``.
"""

import sys
from pathlib import Path

from jaxcnn.cli import main

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"

if __name__ == "__main__":
    sys.exit(main(["figures", "--out", str(FIGURES), *sys.argv[1:]]))
