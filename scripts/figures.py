"""Write the article's figures as PNGs: ``python scripts/figures.py [--run DIR] [--out DIR]``.

The same as ``jaxcnn figures ...`` (see ``jaxcnn figures --help``): without
``--run`` it trains the shapes model first. Run from the repository root with
jaxcnn installed (``pip install -e .``) or with ``PYTHONPATH=.``.
"""

import sys

from jaxcnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:]]))
