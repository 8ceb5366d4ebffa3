"""Train a model from the command line: ``python scripts/train.py shapes --epochs 20``.

The same as ``jaxcnn train ...``; see ``jaxcnn train --help``.
"""

import sys

from jaxcnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
