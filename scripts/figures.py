"""Write the article's figures as PNGs into docs/figures/ (or --out).

Only calls the package. Run from the repository root with jaxcnn installed
(``pip install -e .``) or with ``PYTHONPATH=.``::

    python scripts/figures.py [--out docs/figures]

Figures needing a trained model (learned filters, training curves) come with
``jaxcnn figures`` once training lands; this script makes the ones that don't.
"""

from __future__ import annotations

import argparse
import pathlib

from jaxcnn import viz

SQUARE_LEFT_EDGE = (10, 5)
"""Top-left of a 3x3 patch on the demo square's left side: dark, bright, bright."""


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the article's figures as PNGs.")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/figures"))
    out = parser.parse_args().out
    square, _ = viz.demo_shapes()
    viz.plot_classical_kernels(square, path=out / "classical_kernels.png")
    viz.plot_pattern_match(square, SQUARE_LEFT_EDGE, path=out / "pattern_match.png")
    viz.plot_output_sizes(path=out / "output_sizes.png")
    for name in ("classical_kernels", "pattern_match", "output_sizes"):
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
