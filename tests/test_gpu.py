"""On a GPU: the ops, the manual gradients, a short training run and the compile cache.

Marked ``gpu`` and skipped where JAX has no GPU (CI never has one); run by
``scripts/gpu_check.sh`` on a GPU machine (``python -m pytest -m gpu``).

Float32 bounds are derived, not tuned: a sum of ``K`` products computed in
float32 (unit roundoff ``u = 2**-24``) differs from the exact sum by at most
``K * u / (1 - K * u)`` times the sum of the products' magnitudes (Higham's
``gamma_K``), whatever order the GPU adds them in. The exact values come from
the NumPy float64 oracle (tests/oracle.py) on the host.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import manual, models, ops, train
from jaxcnn.data import make_shapes
from tests import oracle
from tests.cli.test_compile_cache import ENV, _run
from tests.reference import plain_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU (jax sees none)"),
]
U = 2.0**-24


def gamma(k: int) -> float:
    """Higham's bound factor for a float32 sum of ``k`` products."""
    return k * U / (1 - k * U)


@pytest.mark.parametrize("impl", ops.CONV_IMPLS)
@pytest.mark.parametrize(("c_in", "padding", "stride"), [(1, "same", 1), (8, "valid", 2)])
def test_conv2d_on_the_gpu_is_within_the_float32_bound_of_the_oracle(
    impl: str, c_in: int, padding: str, stride: int
) -> None:
    rng = np.random.default_rng(c_in)
    x = rng.normal(size=(4, 12, 12, c_in)).astype(np.float32)
    w = rng.normal(size=(3, 3, c_in, 5)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    got = np.asarray(ops.conv2d(x, w, b, stride=stride, padding=padding, impl=impl))  # type: ignore[arg-type]
    pads = ((1, 1), (1, 1)) if padding == "same" else ((0, 0), (0, 0))
    exact = oracle.conv2d(x, w, b, (stride, stride), pads)
    magnitude = oracle.conv2d(np.abs(x), np.abs(w), np.abs(b), (stride, stride), pads)
    k = 3 * 3 * c_in + 1  # products and the bias
    assert np.all(np.abs(got - exact) <= gamma(k) * magnitude + 1e-30)


def test_pooling_on_the_gpu_is_exact() -> None:
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 3)).astype(np.float32)
    got = np.asarray(ops.max_pool2d(x, 2))
    assert np.array_equal(got, oracle.max_pool2d(x, (2, 2), (2, 2), ((0, 0), (0, 0))))


@pytest.mark.parametrize("name", ["shapes", "mnist-cnn"])
def test_manual_gradients_match_jax_grad_on_the_gpu(name: str) -> None:
    """The manual formulas and ``jax.grad``, both float32 on the GPU, against float64.

    The reference is JAX's own derivation of the plain model (no custom VJPs,
    tests/reference.py) in float64 on the host. A gradient entry sums up to
    ``8 * 26 * 26 * 32`` float32 products; rounding errors of such sums add up
    like a random walk, ``~sqrt(n) * u`` relative to the terms (about 1e-5
    here), so ``1e-4`` of the largest entry holds with a wide margin while a
    wrong formula (errors of order 1) cannot pass.
    """
    model = models.get_model(name)
    params = models.init_params(model, jax.random.key(0))
    (raw_images, raw_labels), _ = make_shapes(n_per_class=4, seed=0)
    images, labels = jnp.asarray(raw_images), jnp.asarray(raw_labels)
    loss = models.loss_fn(model, "test")
    manual_grads = manual.model_grads(model, params, images, labels)
    auto = jax.grad(lambda p: loss(model.apply(p, images), labels))(params)
    plain = plain_model(model)
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        images64, labels64 = jnp.asarray(raw_images, jnp.float64), jnp.asarray(raw_labels)
        exact = jax.grad(lambda p: loss(plain(p, images64), labels64))(
            jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), params)
        )
    for grads in (manual_grads, auto):
        for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(exact), strict=True):
            want = np.asarray(want)
            assert np.abs(np.asarray(got) - want).max() <= 1e-4 * np.abs(want).max() + 1e-7


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_a_short_training_run_learns_on_the_gpu(precision: str) -> None:
    (images, labels), test = make_shapes(seed=0)
    model = models.get_model("shapes")
    init_key, order_key = jax.random.split(jax.random.key(0))
    params, history = train.fit(
        model,
        models.init_params(model, init_key),
        (images, labels),
        optimizer=train.make_optimizer("sgd", 0.1),
        epochs=10,
        batch_size=32,
        key=order_key,
        progress=False,
        precision=precision,
    )
    assert jax.tree.leaves(params)[0].devices().pop().platform == "gpu"
    assert history["train_loss"][-1] < history["train_loss"][0]
    # Seeds 0-9 on the CPU: float32 97.00-100%, bf16 96.88-99.75% (docs/accuracy_seeds.json,
    # gentle-10); the GPU rounds otherwise, as another seed differs.
    assert train.evaluate(model, params, test).accuracy >= 0.95


def test_the_second_cli_run_on_the_gpu_compiles_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["train", "shapes", "--epochs", "2", "--out", str(tmp_path / "run"), "--quiet"]
    first, _ = _run(args, {ENV: str(cache)})
    second, _ = _run([*args, "--overwrite"], {ENV: str(cache)})
    assert first["misses"] > 0
    assert second["misses"] == 0
    assert second["hits"] == second["requests"] > 0
