"""The article's backward formulas as pure functions, and training on them.

The article derives backpropagation by hand (``Conv2D.backward``,
``MaxPool2D.backward``, ``DenseLayer.backward``, "output - label") for one
unpadded, stride-1 example. Here each formula is generalised to batches,
channels, strides and padding, written without ``jax.grad``, and proven equal
to ``jax.grad``/``jax.vjp`` by the tests (docs/gradients.md has the math).

Backward formulas (``g`` is always the upstream gradient ``dL/d output``):

* :func:`conv2d_backward` ``(x, w, g) -> (dx, dw, db)``
* :func:`relu_backward` ``(z, g)``
* :func:`max_pool2d_backward` ``(x, g)``: first maximum of a window, row-major, wins
* :func:`avg_pool2d_backward` ``(x, g)``, :func:`global_avg_pool2d_backward` ``(g, x_shape)``
* :func:`flatten_backward` ``(g, x_shape)``: channel-major un-flatten
* :func:`dense_backward` ``(x, w, g) -> (dx, dw, db)``
* :func:`sigmoid_bce_backward`, :func:`softmax_ce_backward` ``(logits, labels)``:
  "output - label", divided by the batch size

Whole models: :func:`loss_gradient` starts the chain ("output - label" of
the model's loss); :func:`model_grads` / :func:`model_loss_and_grads` chain them
(forward with caches, backward in reverse); :func:`input_gradient` chains
them down to the image, ``d score / d x`` (the ``dx`` the article never
computed: which pixels decided). :func:`with_manual_grads` rebuilds
a model from the custom-VJP ops below, so ``jax.grad`` through it runs these
formulas; :func:`loss_fn` gives the matching custom-VJP loss.

Custom-VJP ops (forward = :mod:`jaxcnn.ops`, backward = the formula above):
:func:`conv2d`, :func:`dense`, :func:`max_pool2d`, :func:`avg_pool2d`,
:func:`global_avg_pool2d`, :func:`relu`, :func:`flatten`,
:func:`binary_cross_entropy`, :func:`softmax_cross_entropy`.
"""

from jaxcnn.manual._conv import conv2d_backward
from jaxcnn.manual._dense import dense_backward, flatten_backward, relu_backward
from jaxcnn.manual._input_gradient import input_gradient
from jaxcnn.manual._losses import sigmoid_bce_backward, softmax_ce_backward
from jaxcnn.manual._model import (
    backward,
    forward,
    loss_fn,
    loss_gradient,
    model_grads,
    model_loss_and_grads,
    with_manual_grads,
)
from jaxcnn.manual._pool import (
    avg_pool2d_backward,
    global_avg_pool2d_backward,
    max_pool2d_backward,
)
from jaxcnn.manual._vjp import (
    avg_pool2d,
    conv2d,
    dense,
    flatten,
    global_avg_pool2d,
    max_pool2d,
    relu,
)
from jaxcnn.manual._vjp_losses import binary_cross_entropy, softmax_cross_entropy

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "backward",
    "binary_cross_entropy",
    "conv2d",
    "conv2d_backward",
    "dense",
    "dense_backward",
    "flatten",
    "flatten_backward",
    "forward",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "input_gradient",
    "loss_fn",
    "loss_gradient",
    "max_pool2d",
    "max_pool2d_backward",
    "model_grads",
    "model_loss_and_grads",
    "relu",
    "relu_backward",
    "sigmoid_bce_backward",
    "softmax_ce_backward",
    "softmax_cross_entropy",
    "with_manual_grads",
]
