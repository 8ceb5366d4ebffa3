"""Data sets: the article's generated shapes and MNIST-format IDX files."""

from jaxcnn.data.shapes import make_shapes

__all__ = ["make_shapes"]
