"""Data parallelism with ``jax.sharding``: one mesh axis over the batch.

The global batch of every step is split across the devices of a 1-D
:class:`jax.sharding.Mesh`; parameters, optimizer state and the data set are
replicated on every device. Inside the jitted epoch each step gathers its
batch from the (replicated) data and constrains it to the batch sharding, so
every device gathers and processes only its own ``batch_size / devices``
samples; XLA's SPMD partitioner inserts the all-reduce that turns the
per-device partial sums of the loss and of the gradient into the global-batch
mean. Nothing else changes: the same epoch function (``make_epoch_fn``),
the same batch plan, the same masked padding, the same optimizer update, run
on every device on replicated values.

Why replicate the data rather than shard it over the sample axis: the data
sets here are small (MNIST is 188 MB as float32), a replicated copy makes the
per-step gather of a random batch local to each device, while a
sample-sharded copy needs a collective per step to bring each device the
samples its part of a shuffled batch lives on (measured in docs/scaling.md).

The same code runs on several CPU devices (``XLA_FLAGS=
--xla_force_host_platform_device_count=N``) or several GPUs. A mesh spanning
several processes (after :func:`jaxcnn.train.init_distributed`) does not
replicate the data: each process feeds only its share of each batch
(``_feed``). See docs/scaling.md.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.layers import Layer, Params
from jaxcnn.train import _epoch
from jaxcnn.train._epoch import EpochFn, EpochSpec, Metrics
from jaxcnn.train._loss import Loss, resolve_loss
from jaxcnn.train._precision import check_precision
from jaxcnn.train._xla_options import EPOCH_COMPILER_OPTIONS

BATCH_AXIS = "batch"
"""Name of the mesh axis the batch is split over (meshes built by :func:`data_mesh`)."""

FORCE_HOST_DEVICES = "XLA_FLAGS=--xla_force_host_platform_device_count=N"


def data_mesh(fn: str, devices: Any) -> Mesh:
    """A 1-D mesh over the first ``devices`` devices of ``jax.devices()``.

    Args:
      fn: name of the calling function (for error messages).
      devices: number of devices, an int >= 1.

    Raises:
      ValueError: if fewer devices exist; the message says how to force more
        CPU devices.
    """
    if isinstance(devices, bool) or not isinstance(devices, int):
        raise InputTypeError(f"{fn}: devices must be an int, got {devices!r}")
    if devices < 1:
        raise InputError(f"{fn}: devices must be >= 1, got {devices}")
    available = jax.devices()
    if devices > len(available):
        platform = available[0].platform
        raise InputError(
            f"{fn}: devices={devices} but only {len(available)} {platform} device(s) exist; "
            f"on CPU, force more host devices by setting {FORCE_HOST_DEVICES} in the "
            f"environment before jax is imported"
        )
    return jax.make_mesh(
        (devices,), (BATCH_AXIS,), axis_types=(AxisType.Auto,), devices=available[:devices]
    )


def resolve_mesh(fn: str, *, devices: Any, mesh: Any) -> Mesh | None:
    """The mesh to train on: from ``devices=N`` or ``mesh=``; ``None`` for neither.

    A given mesh may have several axes: the batch is split over all of them
    (``mesh.size`` ways). Its axes are used as ``AxisType.Auto`` (sharding
    decided by XLA's propagation from the constraints this module sets).
    """
    if devices is not None and mesh is not None:
        raise InputError(f"{fn}: pass devices or mesh, not both (got devices={devices!r})")
    if devices is not None:
        return data_mesh(fn, devices)
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise InputTypeError(f"{fn}: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if any(kind != AxisType.Auto for kind in mesh.axis_types):
        mesh = Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)
    return mesh


def check_batch_size(fn: str, batch_size: int, mesh: Mesh) -> int:
    """Require a global batch that splits evenly over the mesh's devices."""
    if batch_size % mesh.size:
        raise InputError(
            f"{fn}: batch_size must be divisible by the number of devices ({mesh.size}) to "
            f"split every batch evenly, got batch_size={batch_size}"
        )
    return batch_size


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Axis 0 (the batch) split over every axis of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """A copy of every leaf (arrays, NumPy arrays, PRNG keys) on every device of ``mesh``.

    Built from host copies with ``jax.make_array_from_process_local_data``:
    with several processes each one passes its own copy, which must be the
    same everywhere (same data, same seed).
    """
    sharding = replicated(mesh)

    def place(leaf: Any) -> Any:
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            data = place(jax.random.key_data(leaf))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))

    return jax.tree.map(place, tree)


def sharded_epoch_fn(
    model: Layer,
    optimizer: Any,
    *,
    batch_size: int,
    grads: str,
    unroll: int,
    mesh: Mesh,
    loss: Loss = None,
    precision: str = "float32",
) -> EpochFn:
    """:func:`jaxcnn.train.make_epoch_fn` split over ``mesh``'s devices.

    Same signature and results as the single-device epoch function
    (``epoch_fn(params, opt_state, images, labels, key, epoch)``), with every
    input and output replicated and each step's batch sharded. One compiled
    function per mesh and :class:`EpochSpec`, shared by repeated calls.
    """
    spec = mesh_epoch_spec(
        model,
        optimizer,
        batch_size=batch_size,
        grads=grads,
        unroll=unroll,
        mesh=mesh,
        loss=loss,
        precision=precision,
    )
    return functools.partial(_jitted_epoch(mesh), spec)


def mesh_epoch_spec(
    model: Layer,
    optimizer: Any,
    *,
    batch_size: int,
    grads: str,
    unroll: int,
    mesh: Mesh,
    loss: Loss = None,
    precision: str = "float32",
) -> EpochSpec:
    """The checked :class:`EpochSpec` of an epoch whose batches are split over ``mesh``.

    Shared by the single-process sharded epoch and the multi-process fed one
    (:mod:`jaxcnn.train._feed`): equal arguments give equal specs, hence one
    compiled program.
    """
    grads = _epoch.check_grads("fit", grads)
    return EpochSpec(
        model=model,
        grads=grads,
        loss=resolve_loss("fit", model, loss, grads),
        optimizer=optimizer,
        batch_size=check_batch_size("fit", batch_size, mesh),
        unroll=unroll,
        batch_sharding=batch_sharding(mesh),
        precision=check_precision("fit", precision),
    )


@functools.cache
def _jitted_epoch(mesh: Mesh) -> Any:
    """The epoch jitted with replicated in/out shardings (the spec is static)."""
    everywhere = replicated(mesh)
    return jax.jit(
        _epoch_positional,
        static_argnums=0,
        donate_argnums=(1, 2),
        in_shardings=everywhere,
        out_shardings=everywhere,
        compiler_options=EPOCH_COMPILER_OPTIONS,
    )


def _epoch_positional(spec: EpochSpec, *args: Any) -> Any:
    # jit takes in_shardings only for positional arguments, so the spec comes first.
    return _epoch._train_epoch(*args, spec=spec)


def evaluate_sharded(
    model: Layer,
    params: Params,
    images: jax.Array,
    labels: jax.Array,
    *,
    batch_size: int,
    devices: Any,
    mesh: Any,
    loss: Loss = None,
) -> Metrics:
    """``evaluate_arrays`` with every batch split over a mesh.

    ``params`` and the data are replicated on the mesh first; the batch size
    is rounded up to a multiple of the device count (the padding is masked,
    so results do not change).
    """
    resolved = resolve_mesh("evaluate", devices=devices, mesh=mesh)
    if resolved is None:
        return _epoch.evaluate_arrays(
            model, params, images, labels, batch_size=batch_size, loss=loss
        )
    params, images, labels = replicate((params, images, labels), resolved)
    return _epoch.evaluate_arrays(
        model,
        params,
        images,
        labels,
        batch_size=batch_size,
        batch_sharding=batch_sharding(resolved),
        loss=loss,
    )
