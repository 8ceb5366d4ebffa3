"""Data sets: the article's generated shapes and MNIST-format IDX files."""

from jaxcnn.data.mnist import (
    MNIST_FILES,
    FetchError,
    FileCheck,
    data_root,
    default_mnist_dir,
    fetch_mnist,
    load_mnist,
    read_idx,
    verify_mnist,
    write_idx,
)
from jaxcnn.data.shapes import make_shapes

__all__ = [
    "MNIST_FILES",
    "FetchError",
    "FileCheck",
    "data_root",
    "default_mnist_dir",
    "fetch_mnist",
    "load_mnist",
    "make_shapes",
    "read_idx",
    "verify_mnist",
    "write_idx",
]
