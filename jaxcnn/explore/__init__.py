"""``jaxcnn explore``: the article's widgets, live, over your own trained model.

A local page (:func:`serve`) whose every number is computed here, by
jaxcnn's own JAX functions; the browser only draws. Its views:

* **kernels**: a 3x3 kernel (the classical four, or your own) slid over an
  image with a stride and padding, and the output-size formula filled in
  (:func:`kernel_output`, :func:`output_size`);
* **pattern matching**: the patch at a pixel as the kernel, where it matches,
  and every window position with its 9 products and their sum, for Play
  (:func:`match_maps`, :func:`slide`);
* **model**: an image through every layer of a run's model, its class
  probabilities and its saliency (:func:`forward_view`);
* **backward**: that image's gradient at every layer by the article's
  formulas, each beside ``jax.grad`` of a plain forward pass
  (:func:`backward_view`);
* **training**: the run's curves and filters, followed while it trains.

:class:`Explorer` answers the page's requests without HTTP; :class:`Server`
serves it (Werkzeug, loopback by default). docs/explore.md has the API and
the security rules.
"""

from jaxcnn.explore._app import Explorer, NoRunError
from jaxcnn.explore._arrays import decode, encode
from jaxcnn.explore._kernel_views import (
    PADDINGS,
    STRIDES,
    OutputSize,
    kernel_output,
    match_maps,
    output_size,
    slide,
)
from jaxcnn.explore._model_views import (
    FORMULAS,
    Backward,
    Forward,
    ModelViews,
    backward_view,
    forward_view,
)
from jaxcnn.explore._plain import leaves, plain_apply
from jaxcnn.explore._server import Server, is_loopback

__all__ = [
    "FORMULAS",
    "PADDINGS",
    "STRIDES",
    "Backward",
    "Explorer",
    "Forward",
    "ModelViews",
    "NoRunError",
    "OutputSize",
    "Server",
    "backward_view",
    "decode",
    "encode",
    "forward_view",
    "is_loopback",
    "kernel_output",
    "leaves",
    "match_maps",
    "output_size",
    "plain_apply",
    "slide",
]
