"""Random ``serial`` stacks: every path from a model's ``config`` to its backward formulas.

tests/manual/test_manual_model.py checks the chaining on a fixed zoo of models.
A config field that never varies there (an average pool's window is always 2,
no pool is padded) can be lost between ``layer.config`` and its formula and
that suite still passes. Here Hypothesis draws the models
(:mod:`tests.manual.stacks`: every layer kind, every config field in every
form, nested stacks, both losses) and checks, in float64 to 1e-10:

* :func:`jaxcnn.manual.model_grads` and ``model_loss_and_grads`` (weighted);
* ``jax.grad`` through :func:`jaxcnn.manual.with_manual_grads` with
  :func:`jaxcnn.manual.loss_fn` (its forward pass too);
* :func:`jaxcnn.manual.input_gradient` (a given target or the predicted class);

each against two references that share no code with jaxcnn: ``jax.grad`` of
the plain-lax forward pass built from the same config
(:func:`tests.reference.plain_model` / ``plain_loss``), and the NumPy loop
oracle walking the *drawn* spec (:func:`tests.manual.stacks.oracle_forward` /
``oracle_backward``, the loss gradient by the complex step), which never reads
the model's config at all.

A conv's ``impl`` changes how the sums run, not their value, so numbers cannot
tell whether it reached its formula; :func:`test_conv_impl_reaches_the_programs`
checks the programs instead (``"lax"`` runs XLA convolutions, ``"sliding"``
none), as DESIGN.md defines the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings

from jaxcnn import manual, ops
from tests import oracle, reference
from tests.manual import stacks
from tests.manual.stacks import Stack

RTOL = ATOL = 1e-10  # float64 rounding at these sizes is ~1e-14

# Each example compiles one XLA program (its own shapes and layers), ~0.5-1.5 s on
# 2 cores: a quarter of the profile's examples (10 by default, 25 under "ci").
EXAMPLES = max(10, settings().max_examples // 4)
# Tracing only, no compiling: the whole profile's count.
TRACE_EXAMPLES = settings().max_examples


def assert_close(got: Any, want: Any, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def assert_trees_close(got: Any, want: Any, what: str) -> None:
    """Same structure (paths of every leaf), shapes and values to 1e-10."""
    got_paths = [path for path, _ in jax.tree_util.tree_leaves_with_path(got)]
    want_paths = [path for path, _ in jax.tree_util.tree_leaves_with_path(want)]
    assert got_paths == want_paths, what
    for path, a, b in zip(got_paths, jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert np.shape(a) == np.shape(b), (what, path)
        assert_close(a, b, f"{what} at {jax.tree_util.keystr(path)}")


def class_scores(logits: jax.Array, target: jax.Array) -> jax.Array:
    """Each image's score: its target's logit, or ``+z``/``-z`` (target 1/0) for one logit."""
    if logits.shape[1] == 1:
        return jnp.where(target == 1, logits[:, 0], -logits[:, 0])
    return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]


def predicted(logits: Any, xp: Any = np) -> Any:
    """The predicted class (``xp``: numpy or jax.numpy): ``z > 0`` for one logit, else argmax."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(xp.int32)
    return xp.argmax(logits, axis=1).astype(xp.int32)


def both_sides(stack: Stack) -> Callable[..., tuple[dict[str, Any], dict[str, Any]]]:
    """One jitted program (one compile per example): jaxcnn's gradients and plain lax's."""
    model = stack.model
    twin = manual.with_manual_grads(model)
    twin_loss = manual.loss_fn(twin)
    plain, plain_loss = reference.plain_model(model), reference.plain_loss(model)

    def ours(p: Any, x: Any, y: Any, w: Any, target: Any) -> dict[str, Any]:
        loss, weighted = manual.model_loss_and_grads(model, p, x, y, weights=w)

        def twin_value(p: Any) -> jax.Array:
            return twin_loss(twin.apply(p, x), y, weights=w)

        twin_loss_value, twin_grads = jax.value_and_grad(twin_value)(p)
        return {
            "grads": manual.model_grads(model, p, x, y),
            "loss": loss,
            "weighted": weighted,
            "twin_logits": twin.apply(p, x),
            "twin_loss": twin_loss_value,
            "twin_grads": twin_grads,
            "dx": manual.input_gradient(model, p, x, target=target),
        }

    def by_lax(p: Any, x: Any, y: Any, w: Any, target: Any) -> dict[str, Any]:
        def loss_of(p: Any, w: Any) -> jax.Array:
            return plain_loss(plain(p, x), y, w)

        logits = plain(p, x)
        if target is None:
            target = predicted(logits, jnp)
        loss, weighted = jax.value_and_grad(loss_of)(p, w)
        return {
            "logits": logits,
            "grads": jax.grad(loss_of)(p, None),
            "loss": loss,
            "weighted": weighted,
            "dx": jax.grad(lambda x: jnp.sum(class_scores(plain(p, x), target)))(x),
        }

    return jax.jit(lambda *args: (ours(*args), by_lax(*args)))


def by_oracle(stack: Stack) -> dict[str, Any]:
    """The same quantities from the NumPy loops over the drawn spec (no jaxcnn, no config)."""
    logits, inputs = stacks.oracle_forward(stack.spec, stack.params, stack.x)
    loss = stacks.ORACLE_LOSSES[stack.loss]

    def grads(weights: Any) -> Any:
        g = oracle.complex_step_grad(lambda z: loss(z, stack.y, weights), [logits], 0)
        return stacks.oracle_backward(stack.spec, stack.params, inputs, g)[1]

    target = predicted(logits) if stack.target is None else stack.target
    # d score / d logits: +-1 for one logit, else the target's one-hot.
    one_logit = stack.classes == 1
    score_g = (2.0 * target - 1)[:, None] if one_logit else np.eye(stack.classes)[target]
    return {
        "logits": logits,
        "loss": loss(logits, stack.y, stack.weights),
        "grads": grads(None),
        "weighted": grads(stack.weights),
        "dx": stacks.oracle_backward(stack.spec, stack.params, inputs, score_g)[0],
    }


@settings(max_examples=EXAMPLES)
@given(stack=stacks.stacks())
@stacks.stack_corners
def test_model_gradients_of_random_stacks(stack: Stack) -> None:
    """model_grads, with_manual_grads and input_gradient == plain lax == the oracle."""
    want = by_oracle(stack)
    with jax.enable_x64(True):
        params = jax.tree.map(jnp.asarray, stack.params)
        # The strategy's params are shaped as the model's own init makes them.
        init = jax.eval_shape(lambda: stack.model.init(jax.random.key(0), stack.x.shape)[1])
        assert jax.tree.map(np.shape, init) == jax.tree.map(np.shape, stack.params)
        args = [jnp.asarray(a) for a in (stack.x, stack.y, stack.weights)]
        target = None if stack.target is None else jnp.asarray(stack.target, jnp.int32)
        ours, lax_ = both_sides(stack)(params, *args, target)
    for name, ref in (("plain lax", lax_), ("oracle", want)):
        assert_trees_close(ours["grads"], ref["grads"], f"model_grads vs {name}")
        assert_trees_close(ours["weighted"], ref["weighted"], f"weighted model_grads vs {name}")
        assert_close(ours["loss"], ref["loss"], f"model_loss_and_grads' loss vs {name}")
        assert_close(ours["twin_logits"], ref["logits"], f"with_manual_grads' logits vs {name}")
        assert_close(ours["twin_loss"], ref["loss"], f"with_manual_grads' loss vs {name}")
        assert_trees_close(ours["twin_grads"], ref["weighted"], f"with_manual_grads vs {name}")
        assert_close(ours["dx"], ref["dx"], f"input_gradient vs {name}")
    assert ours["dx"].shape == stack.x.shape


# ----------------------------------------------------------------- impl


def count_convolutions(jaxpr: jex.Jaxpr) -> int:
    """``conv_general_dilated`` equations in ``jaxpr`` and every jaxpr nested in it."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "conv_general_dilated"
        count += sum(count_convolutions(sub) for sub in jex.jaxprs_in_params(eqn.params))
    return count


def conv_shapes(stack: Stack) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """``(impl, x_shape, w_shape)`` of every conv of the stack, from the drawn spec."""
    found: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    shape: tuple[int, ...] = stack.x.shape[1:]
    for leaf in stack.spec:
        if leaf["kind"] == "conv":
            w_shape = (*oracle.pair(leaf["kernel_size"]), shape[2], leaf["filters"])
            found.append((leaf["impl"], (stack.x.shape[0], *shape), w_shape))
        shape = stacks.leaf_output(leaf, shape)
    return found


@settings(max_examples=TRACE_EXAMPLES)
@given(stack=stacks.stacks(require_conv=True))
@stacks.stack_corners
def test_conv_impl_reaches_the_programs(stack: Stack) -> None:
    """Each conv's ``impl`` reaches its forward op and :func:`jaxcnn.manual.backward`'s formula.

    Forward (the model, and its ``with_manual_grads`` twin): ``"lax"`` is one
    ``lax.conv_general_dilated``, ``"sliding"`` none, ``"auto"`` what
    :func:`jaxcnn.ops.choose_impl` picks. Backward of ``model_grads``
    (``conv2d_backward(impl=...)``): ``"lax"`` computes ``dw`` and ``dx`` as
    one convolution each, ``"sliding"`` by offset loops (none); ``"auto"``
    picks per shape, 0 to 2.
    """
    convs = conv_shapes(stack)
    forward = sum(
        impl == "lax" or (impl == "auto" and ops.choose_impl(x_shape, w_shape) == "lax")
        for impl, x_shape, w_shape in convs
    )
    lax_convs = sum(impl == "lax" for impl, _, _ in convs)
    auto_convs = sum(impl == "auto" for impl, _, _ in convs)
    model, twin = stack.model, manual.with_manual_grads(stack.model)
    with jax.enable_x64(True):
        params = jax.tree.map(jnp.asarray, stack.params)
        x = jnp.asarray(stack.x)
        for what, apply in (("model", model.apply), ("with_manual_grads", twin.apply)):
            got = count_convolutions(jax.make_jaxpr(apply)(params, x).jaxpr)
            assert got == forward, (what, got, convs)
        logits, cache = jax.eval_shape(lambda p, x: manual.forward(model, p, x), params, x)

        def backward(p: Any, cache: Any, g: Any) -> Any:
            return manual.backward(model, p, cache, g)

        got = count_convolutions(jax.make_jaxpr(backward)(params, cache, logits).jaxpr)
    assert 2 * lax_convs <= got <= 2 * (lax_convs + auto_convs), (got, convs)
