"""Data sets: the article's generated shapes, MNIST-format IDX files, ``.npz`` files, images.

:func:`load_data`, :func:`mnist_data` and :func:`shapes_data` return
:class:`Data` ``(train, test, source)``: the :class:`DataSource` says where
the data came from and pins it by SHA-256 (see docs/models.md).
"""

from jaxcnn.data._cache import ImageRows
from jaxcnn.data._folder import ImageSettings
from jaxcnn.data._image import (
    COLOR_MODES,
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    decode_image,
)
from jaxcnn.data._source import (
    NPZ_KEYS,
    SOURCE_KINDS,
    Data,
    DataSource,
    arrays_sha256,
    class_count,
    class_names,
    load_data,
    load_recorded,
    mnist_data,
    shapes_data,
)
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
from jaxcnn.errors import DataChangedError, ImageFileError

__all__ = [
    "COLOR_MODES",
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MNIST_FILES",
    "NPZ_KEYS",
    "SOURCE_KINDS",
    "Data",
    "DataChangedError",
    "DataSource",
    "FetchError",
    "FileCheck",
    "ImageFileError",
    "ImageRows",
    "ImageSettings",
    "arrays_sha256",
    "class_count",
    "class_names",
    "data_root",
    "decode_image",
    "default_mnist_dir",
    "fetch_mnist",
    "load_data",
    "load_mnist",
    "load_recorded",
    "make_shapes",
    "mnist_data",
    "read_idx",
    "shapes_data",
    "verify_mnist",
    "write_idx",
]
