"""Curated semantic mutants of jaxcnn's backward formulas and custom VJPs.

Each mutant is one plausible slip (a missing factor, a wrong side, a flipped
tie rule, the article's own mistakes), written as an exact text replacement in
one source file. ``python -m tests.mutation`` applies each to a temporary copy
of the package and runs the ordinary property tests of the mutated module
(:data:`PROPERTY_TESTS`): a mutant must make them fail. None of those tests
was written for a mutant; they compare against :mod:`tests.oracle`.

When the source changes so that a mutant's ``old`` text no longer occurs
exactly once, tests/mutation/test_mutants.py fails: rewrite the mutant for the
new code rather than deleting it.
"""

from __future__ import annotations

from typing import NamedTuple


class Mutant(NamedTuple):
    """One slip: replace ``old`` (exactly one occurrence) with ``new`` in ``path``."""

    name: str
    path: str  # relative to the repository root
    old: str
    new: str
    why: str  # what the slip is, in words (docs/testing.md lists these)


CONV = [
    "tests/ops/test_ops_vjp.py::test_conv2d_custom_vjp_equals_the_oracle",
    "tests/ops/test_ops_vjp.py::test_every_backward_formula_equals_the_oracle",
    "tests/manual/test_manual.py::test_conv2d_backward_equals_the_oracle",
]
POOL = [
    "tests/ops/test_ops_vjp.py::test_max_pool2d_custom_vjp_equals_the_oracle",
    "tests/ops/test_ops_vjp.py::test_avg_pool2d_gradient_equals_the_oracle",
    "tests/manual/test_manual.py::test_pool_backward_equals_the_oracle",
    "tests/manual/test_manual.py::test_global_avg_pool2d_backward_equals_the_oracle",
]
LAYERS = [
    "tests/manual/test_manual.py::test_flatten_and_relu_backward_equal_the_oracle",
    "tests/manual/test_manual.py::test_dense_backward_equals_the_oracle",
]
LOSSES = [
    "tests/manual/test_manual.py::test_sigmoid_bce_gradients_equal_the_complex_step",
    "tests/manual/test_manual.py::test_softmax_ce_gradients_equal_the_complex_step",
]

MODEL = [
    "tests/manual/test_manual_stacks.py::test_conv_impl_reaches_the_programs",
    "tests/manual/test_manual_stacks.py::test_model_gradients_of_random_stacks",
]
"""Random serial stacks: model_grads, with_manual_grads, input_gradient (issue 23 item 5)."""

PROPERTY_TESTS: dict[str, list[str]] = {
    "jaxcnn/_checks.py": CONV + POOL,
    "jaxcnn/ops/_windows.py": CONV + POOL,
    "jaxcnn/ops/_conv_backward.py": CONV,
    "jaxcnn/ops/_pool_backward.py": POOL,
    "jaxcnn/manual/_pool.py": POOL,
    "jaxcnn/manual/_dense.py": LAYERS,
    "jaxcnn/manual/_losses.py": LOSSES,
    "jaxcnn/manual/_vjp_losses.py": LOSSES,
    "jaxcnn/manual/_model.py": MODEL,
    "jaxcnn/manual/_vjp.py": MODEL,
    "jaxcnn/manual/_input_gradient.py": MODEL,
}
"""The ordinary property tests (pytest node ids) a mutant of each module runs against."""

NOTEBOOK_03 = "tests/test_notebooks.py::test_notebook_runs[03_gradients.ipynb]"


def tests_for(mutant: Mutant) -> list[str]:
    """The property tests of the module ``mutant`` changes."""
    return PROPERTY_TESTS[mutant.path]


MUTANTS: list[Mutant] = [
    # --- convolution: ops/_conv_backward.py, shared by ops.conv2d's VJP and manual
    Mutant(
        "conv-db-batch-mean",
        "jaxcnn/ops/_conv_backward.py",
        "db = jnp.sum(g, axis=(0, 1, 2))",
        "db = jnp.sum(g, axis=(1, 2)).mean(axis=0)",
        "conv bias gradient averaged over the batch instead of summed (offsets path)",
    ),
    Mutant(
        "conv-dx-scatter-crop-wrong-side",
        "jaxcnn/ops/_conv_backward.py",
        "return crop_padding(grid, x_shape, pads)",
        "return crop_padding(grid, x_shape, (pads[0][::-1], pads[1][::-1]))",
        "scatter dx crops the padding as if it were on the other side",
    ),
    Mutant(
        "conv-dx-scatter-rotated-kernel",
        "jaxcnn/ops/_conv_backward.py",
        "parts = [_times_transposed(g, w[i, j]) for i, j in offsets(window)]",
        "parts = [_times_transposed(g, w[i, j]) for i, j in offsets(window)[::-1]]",
        "scatter dx sends each offset's share through the kernel rotated 180 degrees",
    ),
    Mutant(
        "conv-dx-scatter-stride-one",
        "jaxcnn/ops/_conv_backward.py",
        "grid = scatter_windows(parts, padded_shape(x_shape, pads), window, strides)",
        "grid = scatter_windows(parts, padded_shape(x_shape, pads), window, (1, 1))",
        "scatter dx places the windows as if the stride were 1",
    ),
    Mutant(
        "conv-dx-correlation-unflipped-kernel",
        "jaxcnn/ops/_conv_backward.py",
        "return jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))",
        "return jnp.transpose(w, (0, 1, 3, 2))",
        "full-correlation dx with the kernel not rotated 180 degrees",
    ),
    Mutant(
        "conv-dx-correlation-unreached-before",
        "jaxcnn/ops/_conv_backward.py",
        "axes.append((k - 1, k - 1 + unreached, s - 1))",
        "axes.append((k - 1 + unreached, k - 1, s - 1))",
        "full-correlation dx pads the rows no window reached at the top, not the bottom",
    ),
    Mutant(
        "conv-dw-offsets-swapped-index",
        "jaxcnn/ops/_conv_backward.py",
        "lax.dot_general(g, shifted(xp, offset, out, strides), _PIXELS, precision=HIGHEST)",
        "lax.dot_general(g, shifted(xp, offset[::-1], out, strides), _PIXELS, precision=HIGHEST)",
        "the article's input[r + kr][c + kc] with kr and kc swapped (offsets dw)",
    ),
    Mutant(
        "conv-dw-offsets-channels-untransposed",
        "jaxcnn/ops/_conv_backward.py",
        "return jnp.transpose(stacked, (0, 1, 3, 2))",
        "return stacked.reshape(w_shape)",
        "offsets dw reads its [C_out, C_in] blocks as [C_in, C_out]",
    ),
    Mutant(
        "conv-dw-patches-stride-ignored",
        "jaxcnn/ops/_conv_backward.py",
        "jnp.moveaxis(shifted(xp, offset, out, strides), 3, 0)",
        "jnp.moveaxis(shifted(xp, offset, out, (1, 1)), 3, 0)",
        "im2col dw reads the input at stride 1 whatever the forward stride",
    ),
    Mutant(
        "conv-dw-lax-undilated",
        "jaxcnn/ops/_conv_backward.py",
        "rhs_dilation=strides,",
        "rhs_dilation=(1, 1),",
        "lax dw convolution without dilating g by the stride",
    ),
    Mutant(
        "same-padding-even-kernel-swapped",
        "jaxcnn/_checks.py",
        "return (k - 1) // 2, k - 1 - (k - 1) // 2",
        "return k - 1 - (k - 1) // 2, (k - 1) // 2",
        'even kernels with "same" pad the extra row/column before instead of after',
    ),
    # --- window helpers: ops/_windows.py, shared by conv dx and pooling
    Mutant(
        "scatter-overlaps-overwrite",
        "jaxcnn/ops/_windows.py",
        "return functools.reduce(operator.add, placed)",
        "return functools.reduce(lambda acc, new: jnp.where(new != 0, new, acc), placed)",
        "the article's out[...] = gradient: overlapping windows overwrite instead of adding",
    ),
    Mutant(
        "interleave-rest-before",
        "jaxcnn/ops/_windows.py",
        "return jnp.pad(grid, ((0, 0), (0, rest_h), (0, rest_w), (0, 0)))",
        "return jnp.pad(grid, ((0, 0), (rest_h, 0), (rest_w, 0), (0, 0)))",
        "stride >= window: the rows/columns no window reached are put first",
    ),
    Mutant(
        "max-pool-manual-last-max",
        "jaxcnn/ops/_windows.py",
        "better = candidate > best",
        "better = candidate >= best",
        "manual max-pool backward: ties go to the last maximum, not the first",
    ),
    # --- pooling: ops/_pool_backward.py (ops.max_pool2d's VJP) and manual/_pool.py
    Mutant(
        "max-pool-vjp-last-max",
        "jaxcnn/ops/_pool_backward.py",
        "return jnp.argmax(pixels, axis=-1).astype(jnp.int32)",
        "return (pixels.shape[-1] - 1 - jnp.argmax(pixels[..., ::-1], axis=-1)).astype(jnp.int32)",
        "ops.max_pool2d's VJP: ties go to the last maximum, not the first",
    ),
    Mutant(
        "max-pool-vjp-window-column-major",
        "jaxcnn/ops/_pool_backward.py",
        "return jnp.transpose(tiles, (0, 1, 3, 5, 2, 4)).reshape(n, out_h, out_w, c, kh * kw)",
        "return jnp.transpose(tiles, (0, 1, 3, 5, 4, 2)).reshape(n, out_h, out_w, c, kh * kw)",
        "tiled windows laid out column-major when finding the winner (routing reads row-major)",
    ),
    Mutant(
        "max-pool-tiled-route-reversed",
        "jaxcnn/ops/_pool_backward.py",
        "index = jnp.arange(kh * kw, dtype=jnp.int32).reshape(1, 1, kh, 1, kw, 1)",
        "index = jnp.arange(kh * kw - 1, -1, -1, dtype=jnp.int32).reshape(1, 1, kh, 1, kw, 1)",
        "tiled routing sends the gradient to the mirror image of the winner",
    ),
    Mutant(
        "max-pool-tiled-rest-before",
        "jaxcnn/ops/_pool_backward.py",
        "rest = ((0, 0), (0, padded[0] - out_h * kh), (0, padded[1] - out_w * kw), (0, 0))",
        "rest = ((0, 0), (padded[0] - out_h * kh, 0), (padded[1] - out_w * kw, 0), (0, 0))",
        "tiled routing: the rows/columns no window covered are put first",
    ),
    Mutant(
        "avg-pool-counts-padding",
        "jaxcnn/ops/_pool_backward.py",
        "share = g / counts",
        "share = g / (window[0] * window[1])",
        "average-pool backward divides by the window size, counting padded pixels",
    ),
    Mutant(
        "global-avg-pool-divides-by-height",
        "jaxcnn/manual/_pool.py",
        "share = g / jnp.asarray(h * w, g.dtype)",
        "share = g / jnp.asarray(h, g.dtype)",
        "global average pool backward divides by H instead of H * W",
    ),
    # --- ReLU, flatten, dense: manual/_dense.py
    Mutant(
        "relu-gradient-at-zero",
        "jaxcnn/manual/_dense.py",
        "return jnp.where(z > 0, g, jnp.zeros((), g.dtype))",
        "return jnp.where(z >= 0, g, jnp.zeros((), g.dtype))",
        "ReLU passes the gradient at z == 0 (the article's rule is z > 0)",
    ),
    Mutant(
        "flatten-backward-channel-last",
        "jaxcnn/manual/_dense.py",
        "return jnp.transpose(g.reshape(n, c, h, w), (0, 2, 3, 1))",
        "return g.reshape(n, h, w, c)",
        "the article's grad.reshape(14, 14, 2): channel-last un-flatten of a channel-major flatten",
    ),
    Mutant(
        "dense-db-batch-mean",
        "jaxcnn/manual/_dense.py",
        "return dx, dw, jnp.sum(g, axis=0)",
        "return dx, dw, jnp.mean(g, axis=0)",
        "dense bias gradient averaged over the batch instead of summed",
    ),
    # --- losses: manual/_losses.py and the twins' rules in manual/_vjp_losses.py
    Mutant(
        "bce-multi-logit-no-1-over-m",
        "jaxcnn/manual/_losses.py",
        "per_example = diff.size // diff.shape[0] if diff.shape[0] else 1",
        "per_example = 1",
        "BCE on [N, m] logits without the 1/m of each example's mean (m times too large)",
    ),
    Mutant(
        "loss-no-batch-mean",
        "jaxcnn/manual/_losses.py",
        "return jnp.asarray(1.0 / max(n * per_example, 1), like.dtype)",
        "return jnp.asarray(1.0 / max(per_example, 1), like.dtype)",
        "the article's per-sample output - label, not divided by the batch size",
    ),
    Mutant(
        "loss-weights-over-n",
        "jaxcnn/manual/_losses.py",
        "scale = weights / (jnp.sum(weights) * per_example)",
        "scale = weights / (n * per_example)",
        "weighted loss gradient normalised by N instead of the sum of the weights",
    ),
    Mutant(
        "softmax-ce-sigmoid",
        "jaxcnn/manual/_losses.py",
        "diff = jax.nn.softmax(logits, axis=-1) - one_hot",
        "diff = jax.nn.sigmoid(logits) - one_hot",
        "softmax cross-entropy gradient with sigmoid outputs",
    ),
    Mutant(
        "bce-label-gradient-sign",
        "jaxcnn/manual/_vjp_losses.py",
        "dlabels = (-g * z * example_scale(fn, weights, z, per_example)).astype(labels.dtype)",
        "dlabels = (g * z * example_scale(fn, weights, z, per_example)).astype(labels.dtype)",
        "BCE gradient in float labels with the wrong sign (d loss / d y = -z)",
    ),
    Mutant(
        "loss-weight-gradient-uncentred",
        "jaxcnn/manual/_vjp_losses.py",
        "return (g * (per_example - loss) / total).astype(weights.dtype)",
        "return (g * per_example / total).astype(weights.dtype)",
        "weight gradient l_n / sum(w) without subtracting the mean loss",
    ),
    # --- whole models: the chaining and config plumbing of manual/_model.py
    Mutant(
        "model-backward-not-reversed",
        "jaxcnn/manual/_model.py",
        "for name, child, child_cache in reversed(named):",
        "for name, child, child_cache in named:",
        "a serial stack backpropagates through its children first to last",
    ),
    Mutant(
        "model-backward-cache-swapped",
        "jaxcnn/manual/_model.py",
        "    x, y = cache\n",
        "    y, x = cache\n",
        "a leaf's backward gets its cached output as its input and vice versa",
    ),
    Mutant(
        "model-loss-weights-dropped",
        "jaxcnn/manual/_model.py",
        "g = _LOSS_BACKWARDS[name](logits, y, weights=weights)",
        "g = _LOSS_BACKWARDS[name](logits, y)",
        "model_loss_and_grads starts the chain from the unweighted loss gradient",
    ),
    Mutant(
        "model-conv-backward-stride-dropped",
        "jaxcnn/manual/_model.py",
        'stride=cfg["stride"], padding=cfg["padding"], impl',
        'padding=cfg["padding"], impl',
        "a conv layer's stride does not reach conv2d_backward",
    ),
    Mutant(
        "model-conv-backward-padding-dropped",
        "jaxcnn/manual/_model.py",
        'padding=cfg["padding"], impl=cfg["impl"]\n',
        'impl=cfg["impl"]\n',
        "a conv layer's padding does not reach conv2d_backward",
    ),
    Mutant(
        "model-conv-backward-impl-dropped",
        "jaxcnn/manual/_model.py",
        ', impl=cfg["impl"]\n',
        "\n",
        "a conv layer's impl does not reach conv2d_backward (same numbers, other program)",
    ),
    Mutant(
        "model-max-pool-backward-padding-dropped",
        "jaxcnn/manual/_model.py",
        'max_pool2d_backward(x, g, size=cfg["size"], stride=cfg["stride"], padding=padding)',
        'max_pool2d_backward(x, g, size=cfg["size"], stride=cfg["stride"])',
        "a max-pool layer's padding does not reach its backward",
    ),
    Mutant(
        "model-max-pool-backward-stride-dropped",
        "jaxcnn/manual/_model.py",
        'max_pool2d_backward(x, g, size=cfg["size"], stride=cfg["stride"]',
        'max_pool2d_backward(x, g, size=cfg["size"]',
        "a max-pool layer's stride does not reach its backward (the window is used)",
    ),
    Mutant(
        "model-avg-pool-backward-size-dropped",
        "jaxcnn/manual/_model.py",
        'avg_pool2d_backward(x, g, size=cfg["size"], ',
        "avg_pool2d_backward(x, g, ",
        "an average-pool layer's window does not reach its backward (the default 2 is used)",
    ),
    Mutant(
        "model-avg-pool-backward-padding-dropped",
        "jaxcnn/manual/_model.py",
        'avg_pool2d_backward(x, g, size=cfg["size"], stride=cfg["stride"], padding=padding)',
        'avg_pool2d_backward(x, g, size=cfg["size"], stride=cfg["stride"])',
        "an average-pool layer's padding does not reach its backward",
    ),
    Mutant(
        "model-max-pool-gets-avg-backward",
        "jaxcnn/manual/_model.py",
        '"max_pool": _max_pool_backward,',
        '"max_pool": _avg_pool_backward,',
        "max-pool layers chained through the average-pool backward",
    ),
    Mutant(
        "model-pool-apply-padding-dropped",
        "jaxcnn/manual/_model.py",
        'pool(x, cfg["size"], cfg["stride"], padding)',
        'pool(x, cfg["size"], cfg["stride"])',
        "with_manual_grads: a pool layer's padding does not reach the twin",
    ),
    Mutant(
        "model-pool-apply-stride-dropped",
        "jaxcnn/manual/_model.py",
        'cfg["stride"], padding)',
        "padding=padding)",
        "with_manual_grads: a pool layer's stride does not reach the twin",
    ),
    Mutant(
        "model-avg-pool-apply-max",
        "jaxcnn/manual/_model.py",
        '"avg_pool": _pool_apply(vjp.avg_pool2d),',
        '"avg_pool": _pool_apply(vjp.max_pool2d),',
        "with_manual_grads: average-pool layers become max-pool twins",
    ),
    Mutant(
        "model-conv-apply-stride-dropped",
        "jaxcnn/manual/_model.py",
        '            stride=cfg["stride"],\n',
        "",
        "with_manual_grads: a conv layer's stride does not reach the twin",
    ),
    Mutant(
        "model-conv-apply-impl-dropped",
        "jaxcnn/manual/_model.py",
        '            impl=cfg["impl"],\n',
        "",
        "with_manual_grads: a conv layer's impl does not reach the twin (same numbers)",
    ),
    # --- the custom-VJP twins' wrappers: manual/_vjp.py
    Mutant(
        "vjp-conv-bwd-stride-dropped",
        "jaxcnn/manual/_vjp.py",
        "g, stride=strides, padding=pads, impl=backward_impl",
        "g, padding=pads, impl=backward_impl",
        "the conv twin's VJP drops the stride",
    ),
    Mutant(
        "vjp-conv-bwd-padding-dropped",
        "jaxcnn/manual/_vjp.py",
        "padding=pads, impl=backward_impl)",
        "impl=backward_impl)",
        "the conv twin's VJP drops the padding",
    ),
    Mutant(
        "vjp-conv-impls-swapped",
        "jaxcnn/manual/_vjp.py",
        "return _conv(x, w, b, strides, pads, impl, backward_impl)",
        "return _conv(x, w, b, strides, pads, backward_impl, impl)",
        "the conv twin's forward runs backward_impl and its backward impl",
    ),
    Mutant(
        "vjp-conv-bias-condition-inverted",
        "jaxcnn/manual/_vjp.py",
        "impl=backward_impl)\n    return dx, dw, None if no_bias else db",
        "impl=backward_impl)\n    return dx, dw, db if no_bias else None",
        "the conv twin's VJP returns no bias gradient when there is a bias",
    ),
    Mutant(
        "vjp-dense-bias-condition-inverted",
        "jaxcnn/manual/_vjp.py",
        "dense_backward(x, w, g)\n    return dx, dw, None if no_bias else db",
        "dense_backward(x, w, g)\n    return dx, dw, db if no_bias else None",
        "the dense twin's VJP returns no bias gradient when there is a bias",
    ),
    Mutant(
        "vjp-pool-bwd-padding-dropped",
        "jaxcnn/manual/_vjp.py",
        "stride=strides, padding=pads)",
        "stride=strides)",
        "the pooling twins' VJP drops the padding",
    ),
    Mutant(
        "vjp-pool-bwd-stride-dropped",
        "jaxcnn/manual/_vjp.py",
        "size=window, stride=strides,",
        "size=window,",
        "the pooling twins' VJP drops the stride (the window is used)",
    ),
    Mutant(
        "vjp-max-pool-avg-backward",
        "jaxcnn/manual/_vjp.py",
        "_max_pool = _pool_with_backward(ops.max_pool2d, max_pool2d_backward)",
        "_max_pool = _pool_with_backward(ops.max_pool2d, avg_pool2d_backward)",
        "the max-pool twin's VJP is the average-pool backward",
    ),
    # --- the saliency chain: manual/_input_gradient.py
    Mutant(
        "input-gradient-one-logit-sign",
        "jaxcnn/manual/_input_gradient.py",
        "return (2 * target - 1).astype(logits.dtype)[:, None]",
        "return (1 - 2 * target).astype(logits.dtype)[:, None]",
        "one logit: the score of class 1 is -z and of class 0 is +z",
    ),
    Mutant(
        "input-gradient-predicts-argmin",
        "jaxcnn/manual/_input_gradient.py",
        "return jnp.argmax(logits, axis=-1).astype(jnp.int32)",
        "return jnp.argmin(logits, axis=-1).astype(jnp.int32)",
        "the default target is the least likely class, not the predicted one",
    ),
]
"""Every mutant the CI mutation check runs (docs/testing.md has the list and the score)."""

NOTEBOOK_MUTANT = next(m for m in MUTANTS if m.name == "conv-dx-correlation-unflipped-kernel")
"""A ``dx`` slip that notebook 03 must fail on (``python -m tests.mutation --notebook``)."""
