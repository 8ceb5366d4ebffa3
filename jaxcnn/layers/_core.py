"""The layers: the :class:`Layer` record, the initializers, Conv, Dense, the pools, serial.

The contract every layer follows is written once, in :mod:`jaxcnn.layers`.
A :class:`Layer` also records what it is (``kind``, ``config``, ``children``)
so that :mod:`jaxcnn.manual` can walk a model and chain the hand-derived
backward formulas, and :func:`jaxcnn.layers.to_spec` can describe it as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import jax
import jax.numpy as jnp

from jaxcnn import _checks, ops
from jaxcnn._checks import IntOrPair, PaddingLike
from jaxcnn.errors import InputError, InputTypeError

Shape: TypeAlias = tuple[int, ...]
Params: TypeAlias = Any  # a pytree (nested dicts) of jax.Array
InitFn: TypeAlias = Callable[..., tuple[Shape, Params]]  # (key, input_shape, *, dtype=None)
ApplyFn: TypeAlias = Callable[[Params, jax.Array], jax.Array]


class Initializer(Protocol):
    """``init(key, shape, dtype=float32) -> array``: how a weight array starts."""

    def __call__(self, key: jax.Array, shape: Shape, dtype: Any = ...) -> jax.Array: ...


@dataclass(frozen=True, eq=False)
class Layer:
    """An ``(init_fn, apply_fn)`` pair that also says what it is.

    Layers built by this module compare (and hash) by value: two layers of
    the same ``kind``, ``config`` and ``children`` are equal, so
    ``mnist_cnn() == mnist_cnn()`` and jaxcnn's compiled epochs, keyed on the
    model, are shared between them. A ``Layer`` built by hand from other
    functions (``by_value=False``, the default) compares by identity.
    """

    init: InitFn
    apply: ApplyFn
    kind: str
    config: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[Layer, ...] = ()
    by_value: bool = False  # True: kind, config and children fully determine init and apply

    def __iter__(self) -> Iterator[Any]:
        return iter((self.init, self.apply))

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not (isinstance(other, Layer) and self.by_value and other.by_value):
            return False
        return self._value() == other._value()

    def __hash__(self) -> int:
        return hash(self._value()) if self.by_value else id(self)

    def _value(self) -> tuple[Any, ...]:
        return (self.kind, _frozen(self.config), self.children)


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a config value (mappings and lists become tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


@dataclass(frozen=True)
class ScaledNormal:
    """``N(0, 1) * scale`` (the article's conv init uses ``scale = 0.1``)."""

    scale: float

    def __call__(self, key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.normal(key, shape, dtype) * jnp.asarray(self.scale, dtype)


@dataclass(frozen=True)
class HeNormal:
    """``N(0, 1) * sqrt(2 / fan_in)``, the article's dense init.

    ``fan_in`` is ``n_in`` for ``[n_in, n_out]`` weights and ``kh * kw * C_in``
    for ``[kh, kw, C_in, C_out]`` kernels.
    """

    def __call__(self, key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        fan_in = math.prod(shape[:-1])
        scale = jnp.asarray(math.sqrt(2.0 / fan_in), dtype)
        return jax.random.normal(key, shape, dtype) * scale


def scaled_normal(scale: float) -> Initializer:
    """``N(0, 1) * scale`` as an initializer (equal scales give equal initializers)."""
    return ScaledNormal(float(scale))


he_normal: Initializer = HeNormal()
"""``N(0, 1) * sqrt(2 / fan_in)``, the article's dense init."""


def Conv(  # noqa: N802 - stax naming
    filters: int,
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    impl: ops.ConvImpl = "auto",
    w_init: Initializer = he_normal,
) -> Layer:
    """2-D convolution layer, params ``{"w": [kh, kw, C_in, filters], "b": [filters]}``."""
    filters = _checks.positive_int("Conv", "filters", filters)
    kernel = _checks.int_pair("Conv", "kernel_size", kernel_size)
    strides = _checks.int_pair("Conv", "stride", stride)
    pads = _checks.padding_pairs("Conv", padding, kernel)

    def init(key: jax.Array, input_shape: Shape, *, dtype: Any = None) -> tuple[Shape, Params]:
        dtype = _checks.float_dtype("Conv", dtype)
        n, h, w, c = _image_shape("Conv", input_shape)
        _checks.check_window_fits("Conv", "kernel", kernel, (h, w), pads)
        out_h = _checks.output_length(h, kernel[0], strides[0], *pads[0])
        out_w = _checks.output_length(w, kernel[1], strides[1], *pads[1])
        weights = w_init(key, (*kernel, c, filters), dtype)
        return (n, out_h, out_w, filters), {"w": weights, "b": jnp.zeros(filters, dtype)}

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return ops.conv2d(x, params["w"], params["b"], stride=strides, padding=pads, impl=impl)

    config = {"filters": filters, "kernel_size": kernel, "stride": strides, "padding": pads}
    return Layer(init, apply, "conv", {**config, "impl": impl, "w_init": w_init}, by_value=True)


def Dense(n_out: int, *, w_init: Initializer = he_normal) -> Layer:  # noqa: N802
    """Fully connected layer, params ``{"w": [n_in, n_out], "b": [n_out]}``."""
    n_out = _checks.positive_int("Dense", "n_out", n_out)

    def init(key: jax.Array, input_shape: Shape, *, dtype: Any = None) -> tuple[Shape, Params]:
        dtype = _checks.float_dtype("Dense", dtype)
        if len(input_shape) != 2:
            raise InputError(
                f"Dense: input_shape must be 2-D (N, n_in) (add Flatten first), "
                f"got {tuple(input_shape)}"
            )
        weights = w_init(key, (input_shape[1], n_out), dtype)
        return (input_shape[0], n_out), {"w": weights, "b": jnp.zeros(n_out, dtype)}

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return ops.dense(x, params["w"], params["b"])

    return Layer(init, apply, "dense", {"n_out": n_out, "w_init": w_init}, by_value=True)


def _pool(kind: str, fn: Callable[..., jax.Array], size: IntOrPair, stride: Any) -> Layer:
    name = {"max_pool": "MaxPool", "avg_pool": "AvgPool"}[kind]
    window = _checks.int_pair(name, "size", size)
    strides = window if stride is None else _checks.int_pair(name, "stride", stride)

    def init(key: jax.Array, input_shape: Shape, *, dtype: Any = None) -> tuple[Shape, Params]:
        del key, dtype  # no params
        n, h, w, c = _image_shape(name, input_shape)
        _checks.check_window_fits(name, "size", window, (h, w), ((0, 0), (0, 0)))
        out_h = _checks.output_length(h, window[0], strides[0], 0, 0)
        out_w = _checks.output_length(w, window[1], strides[1], 0, 0)
        return (n, out_h, out_w, c), {}

    def apply(params: Params, x: jax.Array) -> jax.Array:
        del params
        return fn(x, window, strides)

    return Layer(init, apply, kind, {"size": window, "stride": strides}, by_value=True)


def MaxPool(size: IntOrPair = 2, stride: IntOrPair | None = None) -> Layer:  # noqa: N802
    """Max pooling over ``size`` windows (``stride`` defaults to ``size``), no params."""
    return _pool("max_pool", ops.max_pool2d, size, stride)


def AvgPool(size: IntOrPair = 2, stride: IntOrPair | None = None) -> Layer:  # noqa: N802
    """Average pooling over ``size`` windows, no params."""
    return _pool("avg_pool", ops.avg_pool2d, size, stride)


def GlobalAvgPool() -> Layer:  # noqa: N802
    """Average each feature map to one number: ``[N, H, W, C] -> [N, C]``."""

    def init(key: jax.Array, input_shape: Shape, *, dtype: Any = None) -> tuple[Shape, Params]:
        del key, dtype  # no params
        n, _, _, c = _image_shape("GlobalAvgPool", input_shape)
        return (n, c), {}

    return Layer(init, lambda params, x: ops.global_avg_pool2d(x), "global_avg_pool", by_value=True)


def _elementwise(kind: str, fn: Callable[[jax.Array], jax.Array]) -> Layer:
    def init(key: jax.Array, input_shape: Shape, *, dtype: Any = None) -> tuple[Shape, Params]:
        del key, dtype  # no params
        return tuple(input_shape), {}

    return Layer(init, lambda params, x: fn(x), kind, by_value=True)


def _flatten_init(key: jax.Array, input_shape: Shape, *, dtype: Any = None) -> tuple[Shape, Params]:
    del key, dtype  # no params
    n, h, w, c = _image_shape("Flatten", input_shape)
    return (n, h * w * c), {}


Relu = _elementwise("relu", ops.relu)
Flatten = Layer(_flatten_init, lambda params, x: ops.flatten(x), "flatten", by_value=True)


def serial(
    *layers: Layer, kind: str = "serial", input_shape: Sequence[int] | None = None, **config: Any
) -> Layer:
    """Chain layers; params are ``{"<kind><index>": layer_params}``, e.g. ``conv0``.

    Args:
      layers: the layers, first to last.
      kind: what the model is called (``"shapes_cnn"``, ...).
      input_shape: the shape of one input example, without the batch axis,
        e.g. ``(28, 28, 1)``: recorded in ``config["input_shape"]``; ``init``
        then requires it (and uses it when called without a shape), and
        :func:`jaxcnn.train.predict` and checkpoints rely on it.
      config: anything else the model is, e.g. ``loss="softmax_cross_entropy"``
        (a name of :data:`jaxcnn.ops.LOSSES`, the loss ``fit`` uses by default).

    ``init(key, input_shape=None, *, dtype=None)``: ``dtype`` is passed on to
    the layers only when given, so a layer built by hand whose ``init`` takes
    no ``dtype`` still works in float32.
    """
    if not layers:
        raise InputError("serial: expected at least one layer, got none")
    for index, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise InputTypeError(f"serial: layer {index} must be a Layer, got {layer!r}")
    names = [f"{layer.kind}{index}" for index, layer in enumerate(layers)]
    if input_shape is not None:
        config["input_shape"] = _example_shape(kind, input_shape)
    recorded = config.get("input_shape")

    def init(
        key: jax.Array, input_shape: Shape | None = None, *, dtype: Any = None
    ) -> tuple[Shape, Params]:
        shape = _full_input_shape(kind, recorded, input_shape)
        options = {} if dtype is None else {"dtype": _checks.float_dtype(kind, dtype)}
        params = {}
        for name, layer, layer_key in zip(
            names, layers, jax.random.split(key, len(layers)), strict=True
        ):
            shape, params[name] = layer.init(layer_key, shape, **options)
        return shape, params

    def apply(params: Params, x: jax.Array) -> jax.Array:
        for name, layer in zip(names, layers, strict=True):
            x = layer.apply(params[name], x)
        return x

    config = {**config, "names": tuple(names)}
    return Layer(init, apply, kind, config, tuple(layers), by_value=True)


def input_shape_of(model: Layer) -> Shape | None:
    """The shape of one input example a model records (``serial(..., input_shape=...)``)."""
    shape = model.config.get("input_shape")
    return None if shape is None else tuple(shape)


def _example_shape(fn: str, shape: Any) -> Shape:
    """Validate ``serial``'s ``input_shape``: a non-empty sequence of ints >= 1."""
    if isinstance(shape, str) or not isinstance(shape, tuple | list) or not shape:
        raise InputError(
            f"{fn}: input_shape must be the shape of one example without the batch axis, "
            f"e.g. (28, 28, 1), got {shape!r}"
        )
    return tuple(_checks.positive_int(fn, "input_shape", size) for size in shape)


def _full_input_shape(fn: str, recorded: Shape | None, given: Shape | None) -> Shape:
    """``init``'s input shape: ``given``, which must agree with the recorded example shape."""
    if given is None:
        if recorded is None:
            raise InputError(
                f"{fn}: init needs input_shape (N, H, W, C); this model records none "
                f"(build it with serial(..., input_shape=(H, W, C)) to make it the default)"
            )
        return (-1, *recorded)
    given = tuple(given)
    if recorded is not None and given[1:] != tuple(recorded):
        raise InputError(
            f"{fn}: this model is built for inputs of shape {tuple(recorded)} "
            f"(input_shape (N, {', '.join(map(str, recorded))})), got input_shape {given}"
        )
    return given


def _image_shape(fn: str, input_shape: Shape) -> tuple[int, int, int, int]:
    if len(input_shape) != 4:
        raise InputError(f"{fn}: input_shape must be 4-D (N, H, W, C), got {tuple(input_shape)}")
    n, h, w, c = (int(d) for d in input_shape)
    return n, h, w, c
