"""Performance regression guards that do not time anything.

Small models on a CPU are dominated by recompiles and host round-trips, not
arithmetic. These tests count XLA compilations of the training epoch and look
for host callbacks in what it compiles to: properties that hold or fail
exactly, whatever the machine's load.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jax
import numpy as np
import optax
import pytest

from jaxcnn import models, train
from jaxcnn.train import make_epoch_fn
from tests.compile_count import compile_log

CALLBACK_PRIMITIVES = ("callback", "io_callback", "pure_callback", "debug_callback")
HOST_HLO_PATTERNS = (r"callback", r"\binfeed\b", r"\boutfeed\b", r"\bsend\(", r"\brecv\(")


def toy_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 28, 28, 1), np.float32)
    return images, rng.integers(0, 2, n).astype(np.int32)


def test_a_fit_compiles_its_epoch_once_with_a_short_last_batch() -> None:
    # 70 samples in batches of 32: two full batches and a short one of 6, every epoch.
    model = models.shapes_cnn()
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    data = toy_data(70)
    with compile_log() as log:
        train.fit(
            model,
            params,
            data,
            val=toy_data(50, seed=1),
            optimizer=optax.sgd(0.1),
            epochs=3,
            batch_size=32,
            key=jax.random.key(1),
            progress=False,
        )
    assert log.compiles("_train_epoch") == 1
    assert log.compiles("_evaluate_jit") == 1


def test_the_epoch_function_is_reused_across_calls_with_the_same_shapes() -> None:
    model = models.shapes_cnn()
    optimizer = optax.sgd(0.1)
    epoch_fn = make_epoch_fn(model, optimizer, batch_size=16)
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    opt_state = optimizer.init(params)
    images, labels = toy_data(40)
    with compile_log() as log:
        for epoch in range(3):
            params, opt_state, _ = epoch_fn(
                params, opt_state, images, labels, jax.random.key(2), np.int32(epoch)
            )
        # A second function from the same model, optimizer and batch size shares the cache.
        again = make_epoch_fn(model, optimizer, batch_size=16)
        jax.block_until_ready(
            again(params, opt_state, images, labels, jax.random.key(2), np.int32(3))
        )
    assert log.compiles("_train_epoch") == 1


def _all_primitives(jaxpr: Any) -> set[str]:
    names = set()
    for equation in jaxpr.eqns:
        names.add(equation.primitive.name)
        for value in equation.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns"):
                    names |= _all_primitives(inner)
    return names


def host_traffic(jitted: Any, *args: Any, **static: Any) -> list[str]:
    """Callback primitives in the jaxpr and host transfers in the compiled HLO."""
    traced = jitted.trace(*args, **static)
    primitives = _all_primitives(traced.jaxpr.jaxpr)
    found = [p for p in sorted(primitives) if any(c in p for c in CALLBACK_PRIMITIVES)]
    hlo = traced.lower().compile().as_text()
    hits = [
        m.group(0)
        for pattern in HOST_HLO_PATTERNS
        for m in [re.search(f".{{80}}{pattern}.{{40}}", hlo)]
        if m
    ]
    return found + hits


def test_the_host_traffic_check_finds_a_callback() -> None:
    def noisy(x: jax.Array) -> jax.Array:
        jax.debug.print("x = {}", x)
        return x * 2

    assert host_traffic(jax.jit(noisy), np.ones(3, np.float32))


@pytest.mark.parametrize("grads", ["autodiff", "manual"])
@pytest.mark.parametrize("name", ["shapes", "mnist-cnn"])
def test_the_compiled_epoch_has_no_host_callbacks(name: str, grads: str) -> None:
    model = models.get_model(name)
    optimizer = train.make_optimizer("adam", 1e-3)
    epoch_fn = make_epoch_fn(model, optimizer, batch_size=8, grads=grads)
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    opt_state = optimizer.init(params)
    images, labels = toy_data(20)
    args = (params, opt_state, images, labels, jax.random.key(0), np.int32(0))
    assert isinstance(epoch_fn, functools.partial)
    jitted: Any = epoch_fn.func
    assert host_traffic(jitted, *args, **epoch_fn.keywords) == []
    primitives = _all_primitives(jitted.trace(*args, **epoch_fn.keywords).jaxpr.jaxpr)
    assert "scan" in primitives  # the whole epoch is one scan, not a Python loop per step


def fit_once(model: Any, optimizer: Any, data: Any, batch_size: int) -> None:
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    train.fit(
        model,
        params,
        data,
        optimizer=optimizer,
        epochs=1,
        batch_size=batch_size,
        key=jax.random.key(1),
        progress=False,
    )


def test_equal_models_and_optimizers_share_one_compiled_epoch() -> None:
    # A batch size no other test uses, so the first fit must compile.
    data = toy_data(40)
    with compile_log() as log:
        for _ in range(2):
            fit_once(models.shapes_cnn(), train.make_optimizer("adam", 1e-3), data, 13)
    assert log.compiles("_train_epoch") == 1


def test_a_different_model_or_optimizer_compiles_again() -> None:
    data = toy_data(40)
    with compile_log() as log:
        fit_once(models.shapes_cnn(), train.make_optimizer("sgd", 0.1), data, 11)
        fit_once(models.shapes_cnn("lax"), train.make_optimizer("sgd", 0.1), data, 11)
        fit_once(models.shapes_cnn("lax"), train.make_optimizer("sgd", 0.2), data, 11)
    assert log.compiles("_train_epoch") == 3


def test_optimizers_built_by_hand_are_keyed_by_identity() -> None:
    # The documented rule: build a hand-made optimizer once and reuse the object.
    data, model = toy_data(40), models.shapes_cnn()
    optimizer = optax.sgd(0.1)
    with compile_log() as log:
        fit_once(model, optimizer, data, 9)
        fit_once(model, optimizer, data, 9)
        fit_once(model, optax.sgd(0.1), data, 9)
    assert log.compiles("_train_epoch") == 2
