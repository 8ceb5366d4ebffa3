"""The pure forward operations of a CNN, in NHWC / HWIO layout.

Every function validates its arguments at trace time and raises a
``ValueError``/``TypeError`` naming the argument; inside ``jit`` the checks
cost nothing because they only read static shapes and dtypes.
"""

from jaxcnn.ops._conv import (
    CONV_IMPLS,
    ConvImpl,
    choose_impl,
    conv2d,
    conv_output_size,
    reference_conv2d,
)
from jaxcnn.ops._dense import dense, flatten, relu, sigmoid, softmax, unflatten
from jaxcnn.ops._losses import LOSSES, LossFn, binary_cross_entropy, softmax_cross_entropy
from jaxcnn.ops._pool import avg_pool2d, global_avg_pool2d, max_pool2d, reference_max_pool2d

__all__ = [
    "CONV_IMPLS",
    "LOSSES",
    "ConvImpl",
    "LossFn",
    "avg_pool2d",
    "binary_cross_entropy",
    "choose_impl",
    "conv2d",
    "conv_output_size",
    "dense",
    "flatten",
    "global_avg_pool2d",
    "max_pool2d",
    "reference_conv2d",
    "reference_max_pool2d",
    "relu",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "unflatten",
]
