"""A model as JSON and back: :func:`to_spec` and :func:`from_spec`.

A spec is plain JSON data. Each layer is ``{"kind": ..., "config": {...}}``,
where ``config`` holds the arguments of the layer's constructor (the layer's
own ``config``, tuples written as lists), and a ``serial`` model adds
``"layers": [...]``; the outermost dict also carries ``"spec_version"``::

    {"spec_version": 1, "kind": "shapes_cnn",
     "config": {"loss": "binary_cross_entropy", "impl": "auto", "input_shape": [28, 28, 1]},
     "layers": [{"kind": "conv", "config": {"filters": 2, "kernel_size": [3, 3],
                 "stride": [1, 1], "padding": [[1, 1], [1, 1]], "impl": "auto",
                 "w_init": {"kind": "scaled_normal", "scale": 0.1}}},
                {"kind": "relu", "config": {}}, ...]}

Rebuilding calls the same constructors with the same arguments, so
``from_spec(to_spec(model)) == model`` (they compare by value): the same
``init`` parameters and bit-identical outputs. Only what jaxcnn can rebuild is
described: a layer built by hand (``Layer(init, apply, ...)``, or a
``manual.with_manual_grads`` twin) or an initializer other than
:class:`~jaxcnn.layers.HeNormal` / :class:`~jaxcnn.layers.ScaledNormal` is
refused with an error naming the layer, never written half-described.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from jaxcnn.errors import InputError, InputTypeError, JaxcnnError
from jaxcnn.layers._core import (
    AvgPool,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    HeNormal,
    Initializer,
    Layer,
    MaxPool,
    Relu,
    ScaledNormal,
    he_normal,
    scaled_normal,
    serial,
)

SPEC_VERSION = 1
"""The version of the spec layout written by :func:`to_spec` (its ``"spec_version"``)."""

Spec: TypeAlias = dict[str, Any]

_CONSTRUCTORS: dict[str, Callable[..., Layer]] = {
    "conv": Conv,
    "dense": Dense,
    "max_pool": MaxPool,
    "avg_pool": AvgPool,
    "global_avg_pool": GlobalAvgPool,
    "relu": lambda: Relu,
    "flatten": lambda: Flatten,
}
"""Every leaf kind :func:`from_spec` rebuilds; its config keys are the constructor's arguments."""


def to_spec(model: Layer) -> Spec:
    """Describe a model built from :mod:`jaxcnn.layers` as JSON-ready data.

    Args:
      model: a layer or a ``serial`` model of Conv, Dense, MaxPool, AvgPool,
        GlobalAvgPool, Relu and Flatten (nested ``serial`` too), whose
        initializers are :class:`HeNormal` / :class:`ScaledNormal` and whose
        ``serial`` config values are strings, numbers, booleans or lists.

    Returns:
      a dict that ``json.dumps`` writes as is; :func:`from_spec` rebuilds an
      equal model from it (or from its JSON round trip).

    Raises:
      InputError: a layer jaxcnn cannot describe; the message names its path
        in the model (e.g. ``model/double1``) and why.
    """
    spec = {"spec_version": SPEC_VERSION, **_describe(model, "model")}
    if from_spec(spec) != model:  # a by-value layer whose config does not rebuild it
        raise InputError(
            f"to_spec: model {model.kind!r} does not rebuild from its description, "
            f"so jaxcnn cannot describe it"
        )
    return spec


def from_spec(spec: Any) -> Layer:
    """The model a :func:`to_spec` description stands for (equal to the one described).

    Raises:
      InputError: not a spec of this version, an unknown kind or config key,
        or arguments a constructor refuses (the message names the layer's path).
    """
    if not isinstance(spec, Mapping):
        raise InputTypeError(f"from_spec: spec must be a dict, got {type(spec).__name__}")
    version = spec.get("spec_version")
    if version != SPEC_VERSION:
        raise InputError(
            f"from_spec: spec_version must be {SPEC_VERSION} (a spec written by "
            f"jaxcnn.layers.to_spec), got {version!r}"
        )
    return _build({key: value for key, value in spec.items() if key != "spec_version"}, "model")


def _describe(layer: Any, where: str) -> Spec:
    if not isinstance(layer, Layer):
        raise InputTypeError(f"to_spec: {where} must be a Layer, got {type(layer).__name__}")
    if not layer.by_value:
        raise InputError(
            f"to_spec: layer {where} (kind {layer.kind!r}) was built by hand, not by "
            f"jaxcnn.layers, so jaxcnn cannot describe it; build the model from "
            f"Conv, Dense, MaxPool, AvgPool, GlobalAvgPool, Relu, Flatten and serial"
        )
    if layer.children:
        names = layer.config["names"]
        config = {key: value for key, value in layer.config.items() if key != "names"}
        children = [
            _describe(child, f"{where}/{name}")
            for name, child in zip(names, layer.children, strict=True)
        ]
        return {"kind": layer.kind, "config": _json(config, where), "layers": children}
    config = dict(layer.config)
    if "w_init" in config:
        config["w_init"] = _initializer_spec(config["w_init"], where)
    return {"kind": layer.kind, "config": _json(config, where)}


def _initializer_spec(init: Any, where: str) -> Spec:
    if type(init) is HeNormal:
        return {"kind": "he_normal"}
    if type(init) is ScaledNormal:
        return {"kind": "scaled_normal", "scale": init.scale}
    raise InputError(
        f"to_spec: layer {where} has w_init={init!r}, not one of jaxcnn's initializers "
        f"(layers.HeNormal(), layers.ScaledNormal(scale)), so jaxcnn cannot describe it"
    )


def _json(value: Any, where: str) -> Any:
    """``value`` with tuples as lists; anything JSON cannot hold exactly is an error."""
    if isinstance(value, Mapping):
        return {str(key): _json(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item, where) for item in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise InputError(
        f"to_spec: layer {where} holds {value!r}, which JSON cannot describe "
        f"(config values must be strings, numbers, booleans or lists of them)"
    )


def _build(spec: Any, where: str) -> Layer:
    if not isinstance(spec, Mapping):
        raise InputTypeError(f"from_spec: {where} must be a dict, got {type(spec).__name__}")
    kind, config = spec.get("kind"), spec.get("config", {})
    if set(spec) - {"kind", "config", "layers"} or not isinstance(kind, str):
        raise InputError(
            f"from_spec: {where} must be {{'kind': str, 'config': dict}} (plus 'layers' "
            f"for serial), got keys {sorted(spec)}"
        )
    if not isinstance(config, Mapping):
        raise InputError(f"from_spec: {where}'s config must be a dict, got {config!r}")
    config = {key: _tuples(value) for key, value in config.items()}
    if "layers" in spec:
        return _build_serial(spec["layers"], kind, config, where)
    if kind not in _CONSTRUCTORS:
        raise InputError(
            f"from_spec: {where} has kind {kind!r}; expected one of {sorted(_CONSTRUCTORS)} "
            f"(or a serial model, with 'layers')"
        )
    if "w_init" in config:
        config["w_init"] = _initializer(config["w_init"], where)
    return _construct(where, kind, lambda: _CONSTRUCTORS[kind](**config))


def _build_serial(layers: Any, kind: str, config: dict[str, Any], where: str) -> Layer:
    if not isinstance(layers, list) or not layers:
        raise InputError(f"from_spec: {where}'s layers must be a non-empty list, got {layers!r}")
    children = [
        _build(child, f"{where}/{_kind_of(child)}{index}") for index, child in enumerate(layers)
    ]
    return _construct(where, kind, lambda: serial(*children, kind=kind, **config))


def _construct(where: str, kind: str, build: Callable[[], Layer]) -> Layer:
    """Call a constructor; its complaints name the layer's path."""
    try:
        return build()
    except JaxcnnError as err:
        raise type(err)(f"from_spec: {where}: {err}") from None
    except TypeError as err:  # an unknown or missing constructor argument
        raise InputError(f"from_spec: {where} (kind {kind!r}) has a bad config: {err}") from None


def _kind_of(spec: Any) -> str:
    return str(spec.get("kind", "")) if isinstance(spec, Mapping) else ""


def _initializer(spec: Any, where: str) -> Initializer:
    keys = set(spec) if isinstance(spec, Mapping) else set()
    if keys == {"kind"} and spec["kind"] == "he_normal":
        return he_normal
    scale: Any = spec.get("scale") if keys == {"kind", "scale"} else None
    if keys == {"kind", "scale"} and spec["kind"] == "scaled_normal" and _is_number(scale):
        return scaled_normal(scale)
    raise InputError(
        f"from_spec: {where}'s w_init must be {{'kind': 'he_normal'}} or "
        f"{{'kind': 'scaled_normal', 'scale': number}}, got {spec!r}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (the form the constructors normalise to)."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(item) for item in value)
    return value
