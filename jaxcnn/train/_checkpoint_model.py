"""What a checkpoint's arrays must be: the model's spec, its params, its optimizer state.

Saving describes the model with :func:`jaxcnn.layers.to_spec` (a layer
jaxcnn cannot describe is refused there, by name) and checks that the params,
and the optimizer state when the config names its optimizer, have exactly the
structure, shapes and dtypes the model and optimizer make, so a checkpoint
that could not be loaded is never written. Loading rebuilds the same
structures abstractly (``jax.eval_shape``: no computation) to restore the
arrays into. Format 1 (jaxcnn 0.1) stored no spec, only a ``TrainConfig``
naming one of the three built-in models, which rebuilds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import optax

from jaxcnn import models
from jaxcnn.data import DataSource
from jaxcnn.errors import InputError, JaxcnnError
from jaxcnn.layers import Layer, Params, from_spec, input_shape_of, to_spec
from jaxcnn.train._config import TrainConfig


def model_to_save(model: Layer | None, config: TrainConfig | None) -> tuple[Layer, dict[str, Any]]:
    """The model a checkpoint stores (given, or the one ``config`` names) and its spec."""
    if model is None:
        if config is None or config.model is None:
            raise InputError(
                "save_checkpoint: pass model= (the Layer the params belong to); without it "
                "the config must name a built-in model"
            )
        model = config.build_model()
    try:
        spec = to_spec(model)
    except JaxcnnError as err:
        raise InputError(f"save_checkpoint: cannot store the model: {err}") from None
    if input_shape_of(model) is None:
        raise InputError(
            f"save_checkpoint: model {model.kind!r} records no input shape, so it could not "
            f"be rebuilt; build it with serial(..., input_shape=(H, W, C))"
        )
    return model, spec


def params_dtype(params: Params) -> str:
    """The one floating dtype of every leaf of ``params``, by name (``"float32"``)."""
    dtypes = {np.dtype(leaf.dtype) for leaf in jax.tree.leaves(params)}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        raise InputError(
            f"save_checkpoint: params must all have one floating dtype, got "
            f"{sorted(str(dtype) for dtype in dtypes)}"
        )
    return str(next(iter(dtypes)))


def params_template(model: Layer, dtype: str) -> Any:
    """Shapes and dtypes of ``model.init``'s params at its recorded input shape."""
    shape = (-1, *(input_shape_of(model) or models.IMAGE_SHAPE))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), shape, dtype=dtype)[1])


def opt_state_template(optimizer: optax.GradientTransformation, params: Any) -> Any:
    """Shapes and dtypes of ``optimizer.init(params)``."""
    return jax.eval_shape(optimizer.init, params)


def check_fits(fn: str, what: str, template: Any, tree: Any) -> None:
    """Require ``tree`` to have ``template``'s structure, shapes and dtypes."""
    problem = mismatch(template, tree)
    if problem is not None:
        raise InputError(f"{fn}: {what}: {problem}")


def mismatch(template: Any, tree: Any) -> str | None:
    """The first difference between two pytrees' structure, shapes or dtypes, or None."""
    want = dict(_leaves(template))
    got = dict(_leaves(tree))
    if set(want) != set(got):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    for name, (shape, dtype) in want.items():
        if got[name] != (shape, dtype):
            return (
                f"{name} has shape {got[name][0]} dtype {got[name][1]}, "
                f"expected shape {shape} dtype {dtype}"
            )
    return None


def check_state(model: Layer, config: TrainConfig | None, params: Params, opt_state: Any) -> str:
    """Require params (and the config's optimizer state) to fit; return the params' dtype."""
    dtype = params_dtype(params)
    template = params_template(model, dtype)
    check_fits("save_checkpoint", f"params do not fit model {model.kind!r}", template, params)
    if opt_state is not None and config is not None:
        optimizer = config.build_optimizer(steps_per_epoch=1)  # any schedule length: same state
        optimizer_template = opt_state_template(optimizer, template)
        what = f"opt_state is not the state of the config's {config.optimizer!r} optimizer"
        check_fits("save_checkpoint", what, optimizer_template, opt_state)
    return dtype


def stored_model(metadata: Mapping[str, Any], config: TrainConfig | None) -> Layer:
    """The model a checkpoint holds: its spec (format 2) or the built-in model its config names.

    Format 2 with a config naming a built-in model: the spec must describe that kind.
    """
    if metadata["format_version"] == 1:
        if config is None:
            raise InputError("a format 1 checkpoint needs its config, and has none")
        return config.build_model()
    try:
        model = from_spec(metadata["model"])
    except (TypeError, ValueError) as err:
        raise InputError(f"bad model spec in metadata: {err}") from None
    if config is not None and config.model is not None:
        named = config.build_model().kind
        if model.kind != named:
            raise InputError(
                f"does not fit the model: its config names {config.model!r} (a {named!r} "
                f"model) but its spec describes a {model.kind!r} model"
            )
    return model


def stored_templates(
    metadata: Mapping[str, Any],
    model: Layer,
    config: TrainConfig | None,
    optimizer: optax.GradientTransformation | None,
) -> tuple[Any, Any]:
    """Shapes and dtypes of the stored ``(params, opt_state)``, computed abstractly.

    The optimizer state's is None when none was saved (format 2 says so); it
    is that of ``optimizer``, else of the config's.
    """
    try:
        params = params_template(model, metadata.get("params_dtype", "float32"))
    except (TypeError, ValueError) as err:
        raise InputError(f"cannot rebuild the model's params: {err}") from None
    if not metadata.get("has_opt_state", True):
        return params, None
    if optimizer is None and config is not None:
        optimizer = config.build_optimizer(steps_per_epoch=1)  # any schedule length: same state
    if optimizer is None:
        raise InputError(
            "holds an optimizer state but no config naming its optimizer; pass "
            "load_checkpoint(path, optimizer=...) with the optax optimizer it was saved with"
        )
    return params, opt_state_template(optimizer, params)


def stored_data(metadata: Mapping[str, Any]) -> DataSource | None:
    """The data source a checkpoint records (format 1: none)."""
    try:
        return None if metadata.get("data") is None else DataSource.from_dict(metadata["data"])
    except (TypeError, ValueError) as err:
        raise InputError(f"bad data source in metadata: {err}") from None


def _leaves(tree: Any) -> list[tuple[str, tuple[tuple[int, ...], str]]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [
        (jax.tree_util.keystr(path), (tuple(leaf.shape), str(np.dtype(leaf.dtype))))
        for path, leaf in leaves
    ]
