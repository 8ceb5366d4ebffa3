"""stax-style layer combinators, and the JSON spec that describes a model built from them.

Contract (the same for every layer and model): a layer unpacks into a pair
``init_fn, apply_fn = layer`` with

* ``init_fn(key, input_shape, *, dtype=None) -> (output_shape, params)``:
  shapes include the batch axis, which may be ``-1``; ``output_shape`` is
  computed from the input shape (``conv_output_size``), so no size is ever
  typed by hand; ``dtype`` is the floating dtype of the params (None:
  float32; float64 needs ``jax_enable_x64``);
* ``apply_fn(params, x) -> y``: a pure function of a params pytree (a dict of
  ``jax.Array``; ``{}`` for layers without parameters).

A model built by :func:`serial` may record the shape of one input example it
is built for (``serial(..., input_shape=(28, 28, 1))``, as the named models
of :mod:`jaxcnn.models` do): its ``init`` then needs no shape and refuses
another one, and :func:`jaxcnn.train.predict` and checkpoints rely on it.
The record is part of the model's description, not state: layers are frozen
values. :func:`to_spec` / :func:`from_spec` turn any model made of these
layers into JSON and back (see docs/models.md).
"""

from jaxcnn.layers._core import (
    ApplyFn,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    HeNormal,
    InitFn,
    Initializer,
    Layer,
    MaxPool,
    Params,
    Relu,
    ScaledNormal,
    Shape,
    he_normal,
    input_shape_of,
    scaled_normal,
    serial,
)
from jaxcnn.layers._spec import SPEC_VERSION, from_spec, to_spec

__all__ = [
    "SPEC_VERSION",
    "ApplyFn",
    "AvgPool",
    "Conv",
    "Dense",
    "Flatten",
    "GlobalAvgPool",
    "HeNormal",
    "InitFn",
    "Initializer",
    "Layer",
    "MaxPool",
    "Params",
    "Relu",
    "ScaledNormal",
    "Shape",
    "from_spec",
    "he_normal",
    "input_shape_of",
    "scaled_normal",
    "serial",
    "to_spec",
]
