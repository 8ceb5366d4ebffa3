"""Figures of the article: kernels, pattern matching, learned filters, curves, saliency.

Every function returns a ``matplotlib.figure.Figure`` built without
``pyplot`` (no display, no global figure registry, nothing to close, the
user's backend untouched) and, given ``path``, saves it as a PNG at
``DPI`` = 100 dots per inch, so the pixel size is fixed and documented in
each function. In a notebook, run ``%matplotlib inline`` once and a returned
figure shows as the cell's result.

>>> square, circle = demo_shapes()
>>> fig = plot_classical_kernels(square, path="classical_kernels.png")  # 1000 x 460 px
"""

from jaxcnn.viz._common import DPI, demo_shapes
from jaxcnn.viz._kernels import best_positions, plot_classical_kernels, plot_pattern_match
from jaxcnn.viz._model import load_history, plot_filters_and_feature_maps, plot_history
from jaxcnn.viz._saliency import plot_saliency
from jaxcnn.viz._sizes import SizeCase, output_size_cases, plot_output_sizes

__all__ = [
    "DPI",
    "SizeCase",
    "best_positions",
    "demo_shapes",
    "load_history",
    "output_size_cases",
    "plot_classical_kernels",
    "plot_filters_and_feature_maps",
    "plot_history",
    "plot_output_sizes",
    "plot_pattern_match",
    "plot_saliency",
]
