"""Compiled epochs: one jitted function trains a whole epoch, one evaluates a data set.

Both scan over fixed-size batches of indices into data arrays that are passed
as *arguments* (a jitted function that closes over a data set embeds it as a
constant and compiles for minutes). The number of samples rarely divides by
the batch size, so the index list is padded to a whole number of batches and
every sample carries a weight: 1 for a real sample, 0 for padding. Losses are
``sum(weight * loss) / sum(weight)``, so the short last batch's gradient is
the mean over its real samples, exactly the article's ``bs = len(batch_idx)``,
and no batch ever has a different shape (one compile per data-set size).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, TypeAlias, get_args

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxcnn import _checks, manual
from jaxcnn.errors import InputError
from jaxcnn.layers import ApplyFn, Layer, Params
from jaxcnn.ops import LossFn
from jaxcnn.train._dataset import Dataset
from jaxcnn.train._loss import Loss, check_scalar, resolve_loss
from jaxcnn.train._precision import check_precision, for_compute
from jaxcnn.train._xla_options import EPOCH_COMPILER_OPTIONS

EpochFn: TypeAlias = Callable[..., tuple[Params, Any, "Metrics"]]


class Metrics(NamedTuple):
    """Mean loss and accuracy over a data set (scalars)."""

    loss: Any  # shape=(), float
    accuracy: Any  # shape=(), float in [0, 1]


def batch_plan(
    n: int, batch_size: int, order: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Sample indices and weights for ``ceil(n / batch_size)`` equal batches.

    Args:
      n: number of samples.
      batch_size: samples per batch.
      order: ``[n]`` int, the order to visit samples in (default ``0..n-1``).

    Returns:
      ``(index, weight)``: ``index: [steps, batch_size]`` int32, every sample
      exactly once, then padding that repeats sample 0; ``weight: [steps,
      batch_size]`` float32, 1 for real samples and 0 for padding.
    """
    steps = math.ceil(n / batch_size)
    order = jnp.arange(n, dtype=jnp.int32) if order is None else order.astype(jnp.int32)
    padding = jnp.zeros(steps * batch_size - n, jnp.int32)
    index = jnp.concatenate([order, padding]).reshape(steps, batch_size)
    weight = (jnp.arange(steps * batch_size) < n).astype(jnp.float32)
    return index, weight.reshape(steps, batch_size)


def epoch_order(key: jax.Array, epoch: jax.Array, n: int) -> jax.Array:
    """The epoch's shuffle: a permutation of ``0..n-1`` drawn from ``fold_in(key, epoch)``.

    Depending only on ``(key, epoch)`` makes a resumed run see the same batches.
    """
    return jax.random.permutation(jax.random.fold_in(key, epoch), n)


def hits(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``[N]`` float32, 1 where the prediction is right.

    One logit (``[N, 1]``): predicts 1 when the logit is > 0 (sigmoid > 0.5).
    ``K`` logits (``[N, K]``): predicts the argmax.
    """
    if logits.shape[-1] == 1:
        predicted = (logits[:, 0] > 0).astype(labels.dtype)
    else:
        predicted = jnp.argmax(logits, axis=-1).astype(labels.dtype)
    return (predicted == labels).astype(jnp.float32)


Grads: TypeAlias = Literal["autodiff", "manual"]
GRADS: tuple[str, ...] = get_args(Grads)
"""How training gets gradients: ``jax.grad`` of the model, or the article's manual formulas."""


def check_grads(fn: str, grads: Any) -> str:
    """Require one of :data:`GRADS`."""
    if grads not in GRADS:
        raise InputError(f"{fn}: grads must be one of {GRADS}, got {grads!r}")
    return str(grads)


def training_apply(model: Layer, grads: str) -> ApplyFn:
    """The apply function to differentiate: the model's, or its manual-gradient twin."""
    return model.apply if grads == "autodiff" else manual.with_manual_grads(model).apply


class EpochSpec(NamedTuple):
    """The static part of a training epoch (hashable: the key of its compile cache).

    Models built by :mod:`jaxcnn.layers` hash by value and optimizers made by
    :func:`jaxcnn.train.make_optimizer` are built once per setting, so equal
    specs, and one compiled epoch, come from equal arguments.
    """

    model: Layer  # the network (by value for jaxcnn's layers)
    grads: str  # one of GRADS
    loss: LossFn  # loss(logits, labels, weights): a module function, or the user's by identity
    optimizer: optax.GradientTransformation
    batch_size: int
    unroll: int
    batch_sharding: Any  # None, or the sharding each batch of images is constrained to
    precision: str = "float32"  # one of PRECISIONS: the forward/backward compute dtype


def make_epoch_fn(
    model: Layer,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    grads: str = "autodiff",
    unroll: int = 1,
    batch_sharding: Any = None,
    jit_kwargs: Mapping[str, Any] | None = None,
    loss: Loss = None,
    precision: str = "float32",
) -> EpochFn:
    """Compile-once training epoch: ``epoch_fn(params, opt_state, images, labels, key, epoch)``.

    The jitted function shuffles with :func:`epoch_order`, scans
    ``ceil(N / batch_size)`` optimizer steps over :func:`batch_plan`
    batches, and returns ``(params, opt_state, Metrics)`` where the metrics
    are the mean training loss and accuracy of the epoch, each batch measured
    before its update (as Keras reports them). ``params`` and ``opt_state``
    are donated: do not use the arrays passed in afterwards.

    Without ``jit_kwargs`` every call with an equal model, the same optimizer
    object, batch size and data shapes shares one compiled function (the
    static :class:`EpochSpec` is the cache key), so repeated ``fit`` calls do
    not recompile. jaxcnn's models compare by value and ``make_optimizer``
    returns one object per setting; an optimizer built by hand is compared by
    identity, so build it once and reuse it.

    Args:
      model: the network.
      optimizer: an optax ``GradientTransformation``.
      batch_size: samples per step.
      grads: ``"autodiff"`` or ``"manual"`` (see :func:`training_apply`).
      unroll: ``lax.scan`` unroll factor (speed only).
      batch_sharding: optional sharding each batch's images are constrained
        to, for data parallelism: e.g. a ``NamedSharding`` splitting the batch
        axis over a mesh with ``AxisType.Auto`` axes (``jit_kwargs`` can then
        replicate params and optimizer state with ``in_shardings``).
      jit_kwargs: extra ``jax.jit`` arguments, e.g. ``in_shardings``; the
        function is then jitted afresh.
      loss: the loss to minimise: None (the model's ``config["loss"]``), a
        name of :data:`jaxcnn.ops.LOSSES`, or a function ``(logits, labels,
        weights) -> scalar`` (see docs/models.md).
      precision: ``"float32"``, or ``"bf16"``: bfloat16 forward and backward
        passes over float32 parameters, optimizer state and loss (see
        :mod:`jaxcnn.train._precision`).

    Shapes:
      images: ``[N, H, W, C]``; labels: ``[N]``; key: a PRNG key; epoch: int.
    """
    grads = check_grads("make_epoch_fn", grads)
    spec = EpochSpec(
        model,
        grads,
        resolve_loss("make_epoch_fn", model, loss, grads),
        optimizer,
        _checks.positive_int("make_epoch_fn", "batch_size", batch_size),
        _checks.positive_int("make_epoch_fn", "unroll", unroll),
        batch_sharding,
        check_precision("make_epoch_fn", precision),
    )
    if jit_kwargs:
        options = {"compiler_options": EPOCH_COMPILER_OPTIONS, "donate_argnums": (0, 1)}
        return jax.jit(functools.partial(_train_epoch, spec=spec), **{**options, **jit_kwargs})
    return functools.partial(train_epoch, spec=spec)


def _train_epoch(
    params: Params,
    opt_state: Any,
    images: Any,
    labels: Any,
    key: Any,
    epoch: Any,
    *,
    spec: EpochSpec,
) -> tuple[Params, Any, Metrics]:
    n = images.shape[0]
    plan = batch_plan(n, spec.batch_size, epoch_order(key, epoch, n))
    step = functools.partial(_train_step, spec, (images, labels))
    carry, (loss_sums, hit_counts) = lax.scan(step, (params, opt_state), plan, unroll=spec.unroll)
    return (*carry, Metrics(jnp.sum(loss_sums) / n, jnp.sum(hit_counts) / n))


train_epoch = jax.jit(
    _train_epoch,
    static_argnames="spec",
    donate_argnums=(0, 1),
    compiler_options=EPOCH_COMPILER_OPTIONS,
)
"""The jitted epoch shared by every :func:`make_epoch_fn` without ``jit_kwargs``."""


def _train_step(
    spec: EpochSpec, data: Dataset, carry: Any, batch: tuple[jax.Array, jax.Array]
) -> Any:
    """One optimizer step on the batch ``data[index]``; returns its loss sum and hit count."""
    index, weight = batch
    return train_on_batch(spec, carry, (data[0][index], data[1][index], weight))


def train_on_batch(
    spec: EpochSpec, carry: Any, batch: tuple[jax.Array, jax.Array, jax.Array]
) -> Any:
    """One optimizer step on a gathered batch ``(x [B, H, W, C], y [B], weight [B])``.

    Returns ``((params, opt_state), (loss_sum, hit_count))``.
    """
    params, opt_state = carry
    x, y, weight = batch
    if spec.batch_sharding is not None:
        x = lax.with_sharding_constraint(x, spec.batch_sharding)
    apply = training_apply(spec.model, spec.grads)

    def batch_loss(params: Params) -> Any:
        logits = apply(for_compute(params, spec.precision), for_compute(x, spec.precision))
        if spec.precision != "float32":
            logits = logits.astype(jnp.float32)  # the loss in float32
        return check_scalar("fit", spec.loss(logits, y, weight)), logits

    (value, logits), grad = jax.value_and_grad(batch_loss, has_aux=True)(params)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int step counts and floats
        updates, opt_state = spec.optimizer.update(grad, opt_state, params)
    params = optax.apply_updates(params, updates)
    loss_sum = value * jnp.sum(weight).astype(value.dtype)
    return (params, opt_state), (loss_sum, jnp.sum(weight * hits(logits, y)))


def evaluate_arrays(
    model: Layer,
    params: Params,
    images: jax.Array,
    labels: jax.Array,
    *,
    batch_size: int,
    batch_sharding: Any = None,
    loss: Loss = None,
) -> Metrics:
    """:func:`evaluate` on checked arrays, returning device scalars (no host sync).

    With ``batch_sharding`` (split over ``d`` devices) each batch is
    constrained to it and the batch size rounded up to a multiple of ``d``.
    """
    batch_size = min(batch_size, images.shape[0])
    if batch_sharding is not None:
        shards = batch_sharding.num_devices
        batch_size = -(-batch_size // shards) * shards
    return _evaluate_jit(
        params,
        images,
        labels,
        model=model,
        loss=resolve_loss("evaluate", model, loss),
        batch_size=batch_size,
        batch_sharding=batch_sharding,
    )


@functools.partial(
    jax.jit,
    static_argnames=("model", "loss", "batch_size", "batch_sharding"),
    compiler_options=EPOCH_COMPILER_OPTIONS,
)
def _evaluate_jit(
    params: Params,
    images: jax.Array,
    labels: jax.Array,
    *,
    model: Layer,
    loss: LossFn,
    batch_size: int,
    batch_sharding: Any = None,
) -> Metrics:
    n = images.shape[0]

    def body(carry: Any, batch: tuple[jax.Array, jax.Array]) -> Any:
        index, weight = batch
        gathered = (images[index], labels[index], weight)
        return carry, evaluate_batch(model, loss, params, gathered, batch_sharding)

    _, (loss_sums, hit_counts) = lax.scan(body, None, batch_plan(n, batch_size))
    return Metrics(jnp.sum(loss_sums) / n, jnp.sum(hit_counts) / n)


def evaluate_batch(
    model: Layer,
    loss: LossFn,
    params: Params,
    batch: tuple[jax.Array, jax.Array, jax.Array],
    batch_sharding: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """Loss sum and hit count of a gathered batch ``(x [B, H, W, C], y [B], weight [B])``."""
    x, y, weight = batch
    if batch_sharding is not None:
        x = lax.with_sharding_constraint(x, batch_sharding)
    logits = model.apply(params, x)
    value = check_scalar("evaluate", loss(logits, y, weight))
    return value * jnp.sum(weight).astype(value.dtype), weight @ hits(logits, y)
