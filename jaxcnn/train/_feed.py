"""Data parallelism across processes: every process feeds only its own share of each batch.

When a mesh spans the devices of several processes (after
``jax.distributed.initialize``, see :func:`jaxcnn.train.init_distributed`),
replicating the data set the way one process does (:mod:`._sharding`) would
put the whole data set on every device of every process. Instead:

1. Every process computes the epoch's batch plan on the host from the shared
   key: the same :func:`~jaxcnn.train.epoch_order` permutation and the same
   padded, masked :func:`~jaxcnn.train.batch_plan` as one process, so the
   batch order is the same everywhere, and the same as in one process.
2. Each device of the mesh owns a fixed block of columns of every batch (the
   batch axis is split over the mesh, ``P(None, "batch")`` for the epoch's
   ``[steps, B]`` plan). A process reads, from its host copy of the data,
   only the rows its own devices own (:func:`read_rows`: NumPy fancy indexing
   of sorted, unique row numbers, so ``np.load(path, mmap_mode="r")`` reads
   just those rows from disk), and puts them on those devices only.
3. The global ``[steps, B, H, W, C]`` epoch array is assembled from those
   per-device pieces with ``jax.make_array_from_single_device_arrays``; one
   jitted scan (the same :func:`~jaxcnn.train._epoch.train_on_batch` step as
   one process) trains on it. XLA all-reduces the gradient across processes
   (gloo on CPU, NCCL on GPU).

So each process holds ``1 / P`` of each epoch's samples on its devices, and
no process ever holds the whole data set on a device. An epoch whose images
pass :data:`FEED_CHUNK_BYTES` is fed in chunks of whole steps (each chunk
one scan, carrying the parameters on), so host memory holds about two chunks
at a time however large the data set: this is also how one process trains on
a **streamed** data set (:func:`is_streamed`: a memory map or an array-like
such as :class:`jaxcnn.data.ImageRows`, on a mesh of one device). The per-device
computations are the ones a single process with the same devices runs (same
samples on the same mesh position); only the all-reduce may sum in another
order (see docs/scaling.md for the tolerance).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.layers import Layer, Params
from jaxcnn.train import _dataset, _epoch, _sharding
from jaxcnn.train._epoch import EpochFn, EpochSpec, Metrics
from jaxcnn.train._loss import Loss, resolve_loss
from jaxcnn.train._xla_options import EPOCH_COMPILER_OPTIONS


class HostData(NamedTuple):
    """A data set kept on the host: anything with ``.shape``, ``.dtype`` and row indexing.

    NumPy arrays, ``numpy.memmap`` (``np.load(path, mmap_mode="r")``) and
    other array-likes indexed by a sorted integer array (``x[rows]``) work.
    """

    images: Any  # [N, H, W, C] float
    labels: Any  # [N] int


FEED_CHUNK_BYTES = 64 * 2**20
"""Float32 image bytes (of the global batches) fed per chunk of an epoch or evaluation."""


def is_streamed(images: Any) -> bool:
    """Whether ``images`` stay on the host and are read a chunk at a time.

    True for ``numpy.memmap`` and for array-likes that are neither NumPy nor
    jax arrays (``jaxcnn.data.ImageRows``, ``h5py`` data sets, ...): anything
    with ``shape``, ``dtype`` and indexing by sorted integer arrays.
    """
    if isinstance(images, np.memmap):
        return True
    if isinstance(images, np.ndarray | jax.Array):
        return False
    return all(hasattr(images, name) for name in ("shape", "dtype", "__getitem__"))


def single_device_mesh() -> Mesh:
    """A mesh of the default device alone: the one-process way to feed streamed data."""
    return _sharding.data_mesh("fit", 1)


def spans_processes(mesh: Mesh) -> bool:
    """Whether ``mesh`` holds devices of more than one process."""
    return len({device.process_index for device in mesh.devices.flat}) > 1


def check_mesh_covers_processes(fn: str, mesh: Mesh) -> Mesh:
    """Require a device of every process in ``mesh`` (each process runs the same program)."""
    present = {device.process_index for device in mesh.devices.flat}
    missing = sorted(set(range(jax.process_count())) - present)
    if missing:
        raise InputError(
            f"{fn}: the mesh must include devices of every process, but process(es) "
            f"{missing} of {jax.process_count()} have none; use devices=jax.device_count() "
            f"(all devices) or a mesh over jax.devices()"
        )
    return mesh


def check_host_dataset(
    fn: str, name: str, data: Any, *, model: Layer | None = None, params: Params = None
) -> HostData:
    """:func:`~jaxcnn.train.check_dataset`'s checks on host data, never copied to a device.

    The images are checked in chunks of :data:`CHECK_CHUNK` samples (a
    memory-mapped file is read once, never held whole); the labels (small)
    are read whole and checked against ``model``'s number of logits.
    """
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise InputTypeError(
            f"{fn}: {name} must be an (images, labels) pair, got {type(data).__name__}"
        )
    images, labels = _host_array(data[0]), np.asarray(data[1])
    if len(images.shape) != 4 or not np.issubdtype(np.dtype(images.dtype), np.floating):
        raise InputError(
            f"{fn}: {name} images must be a 4-D (N, H, W, C) float array, "
            f"got shape {tuple(images.shape)} dtype {images.dtype}"
        )
    if images.shape[0] == 0:
        raise InputError(f"{fn}: {name} images must hold at least one sample, got 0")
    if not getattr(images, "always_finite", False):  # ImageRows: bytes / 255
        _check_finite_rows(fn, f"{name} images", images)
    if labels.shape != tuple(images.shape[:1]):
        raise InputError(
            f"{fn}: {name} labels must have shape (N,) = ({images.shape[0]},), "
            f"got {tuple(labels.shape)}"
        )
    if model is not None:
        _dataset.check_input_shape(fn, model, images, f"{name} images")
        classes = _dataset.output_classes(fn, model, params, images)
        _dataset._check_labels(fn, f"{name} labels", labels, classes)
    return HostData(images, labels)


CHECK_CHUNK = 4096
"""Samples per chunk of :func:`check_host_dataset`'s finiteness check."""


def _check_finite_rows(fn: str, name: str, images: Any) -> None:
    """Require finite values in every sample, reading ``CHECK_CHUNK`` samples at a time."""
    for start in range(0, int(images.shape[0]), CHECK_CHUNK):
        block = np.asarray(images[start : start + CHECK_CHUNK])
        finite = np.isfinite(np.max(np.abs(block).reshape(len(block), -1), axis=1))
        if not finite.all():
            bad = int(np.argmin(finite))
            sample = block[bad]
            pixel = tuple(int(i) for i in np.argwhere(~np.isfinite(sample))[0])
            raise InputError(
                f"{fn}: {name}[{start + bad}] holds {sample[pixel]} at pixel {pixel} (row, "
                f"column, channel); images must be finite"
            )


def _host_array(value: Any) -> Any:
    """Array-likes with shape, dtype and indexing as they are; jax arrays and lists to NumPy."""
    if isinstance(value, jax.Array) or not all(
        hasattr(value, attribute) for attribute in ("shape", "dtype", "__getitem__")
    ):
        return np.asarray(value)
    return value


def read_rows(array: Any, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for any integer ``rows`` (repeats, any order), reading each row once.

    The rows are read in increasing order (what ``h5py`` requires and what
    keeps a memory-mapped file's reads sequential), then reordered.
    """
    unique, inverse = np.unique(rows, return_inverse=True)
    return np.asarray(array[unique])[inverse.reshape(rows.shape)]


def plan_sharding(mesh: Mesh) -> NamedSharding:
    """A ``[steps, B, ...]`` plan or epoch array: axis 1 (the batch) split over the mesh."""
    return NamedSharding(mesh, PartitionSpec(None, mesh.axis_names))


def feed(data: HostData, index: np.ndarray, weight: np.ndarray, mesh: Mesh) -> tuple[Any, ...]:
    """Global ``(x [S, B, H, W, C], y [S, B], weight [S, B])`` built from this process's rows.

    Args:
      data: the host data set.
      index: ``[S, B]`` int, the plan's sample numbers (:func:`batch_plan`).
      weight: ``[S, B]`` float32, 1 for real samples and 0 for padding.
      mesh: the mesh the batch axis is split over.

    Every device of this process gets ``data[index[:, its columns]]``; rows of
    other processes' columns are never read.
    """
    sharding = plan_sharding(mesh)
    pieces: dict[str, list[jax.Array]] = {"x": [], "y": [], "w": []}
    for device, where in sharding.addressable_devices_indices_map(index.shape).items():
        rows = index[where]
        pieces["x"].append(jax.device_put(read_rows(data.images, rows), device))
        pieces["y"].append(jax.device_put(read_rows(data.labels, rows), device))
        pieces["w"].append(jax.device_put(weight[where], device))
    image_shape = tuple(data.images.shape[1:])
    return (
        jax.make_array_from_single_device_arrays(
            (*index.shape, *image_shape), sharding, pieces["x"]
        ),
        jax.make_array_from_single_device_arrays(index.shape, sharding, pieces["y"]),
        jax.make_array_from_single_device_arrays(index.shape, sharding, pieces["w"]),
    )


@functools.partial(jax.jit, static_argnums=2)
def _epoch_order(key: jax.Array, epoch: jax.Array, n: int) -> jax.Array:
    return _epoch.epoch_order(key, epoch, n)


def host_plan(key: jax.Array, epoch: int, n: int, batch_size: int) -> tuple[np.ndarray, ...]:
    """The epoch's ``(index, weight)`` plan as NumPy arrays, as the one-process epoch draws it."""
    order = _epoch_order(key, np.int32(epoch), n)
    index, weight = _epoch.batch_plan(n, batch_size, order)
    return np.asarray(index), np.asarray(weight)


def local_key(key: jax.Array) -> jax.Array:
    """A copy of ``key`` on this process's default device (the same bits in every process)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jnp.asarray(np.asarray(jax.random.key_data(key)))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))
    return jnp.asarray(np.asarray(key))


def fed_epoch_fn(
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
    """``epoch_fn(params, opt_state, images, labels, key, epoch)`` over host data.

    ``images`` and ``labels`` are the host arrays of :class:`HostData`;
    ``params`` and ``opt_state`` are replicated over ``mesh`` (donated);
    returns replicated ``(params, opt_state, Metrics)``.
    """
    spec = _sharding.mesh_epoch_spec(
        model,
        optimizer,
        batch_size=batch_size,
        grads=grads,
        unroll=unroll,
        mesh=mesh,
        loss=loss,
        precision=precision,
    )
    return functools.partial(_train_epoch, spec, mesh)


def chunk_steps(batch_size: int, image_shape: tuple[int, ...]) -> int:
    """Steps per fed chunk: as many batches as fit :data:`FEED_CHUNK_BYTES` (at least one)."""
    batch_bytes = batch_size * int(np.prod(image_shape)) * 4
    return max(1, FEED_CHUNK_BYTES // max(1, batch_bytes))


def _train_epoch(
    spec: EpochSpec,
    mesh: Mesh,
    params: Params,
    opt_state: Any,
    images: Any,
    labels: Any,
    key: jax.Array,
    epoch: Any,
) -> tuple[Params, Any, Metrics]:
    n = int(images.shape[0])
    index, weight = host_plan(local_key(key), int(epoch), n, spec.batch_size)
    data = HostData(images, labels)
    steps = chunk_steps(spec.batch_size, tuple(images.shape[1:]))
    loss_sums: list[jax.Array] = []
    hit_counts: list[jax.Array] = []
    for start in range(0, len(index), steps):
        batches = feed(data, index[start : start + steps], weight[start : start + steps], mesh)
        params, opt_state, sums = _jitted_train(mesh)(spec, params, opt_state, *batches)
        _one_ahead(loss_sums)
        loss_sums.append(sums[0])
        hit_counts.append(sums[1])
    return params, opt_state, _mean_metrics(mesh)(n, loss_sums, hit_counts)


def _one_ahead(done: list[jax.Array]) -> None:
    """Wait for the chunk before the one just dispatched: at most two chunks are in memory.

    jax dispatches asynchronously, so without this the loop would read and queue
    every chunk of the epoch while the first one computes: the whole data set.
    While a chunk computes, the next one is read.
    """
    if done:
        jax.block_until_ready(done[-1])


@functools.cache
def _jitted_train(mesh: Mesh) -> Any:
    """The scan over fed batches, with replicated outputs (``spec`` is static)."""
    return jax.jit(
        _scan_train,
        static_argnums=0,
        donate_argnums=(1, 2),
        out_shardings=_sharding.replicated(mesh),
        compiler_options=EPOCH_COMPILER_OPTIONS,
    )


def _scan_train(
    spec: EpochSpec, params: Params, opt_state: Any, *batches: jax.Array
) -> tuple[Params, Any, tuple[jax.Array, jax.Array]]:
    """One chunk of steps: ``(params, opt_state, (loss sum, hit count) per step)``."""
    step = functools.partial(_epoch.train_on_batch, spec)
    carry, per_step = lax.scan(step, (params, opt_state), batches, unroll=spec.unroll)
    return (*carry, per_step)


@functools.cache
def _mean_metrics(mesh: Mesh) -> Any:
    """``(n, [loss sums per chunk], [hit counts per chunk]) -> Metrics`` over all steps."""

    def mean(n: int, loss_sums: list[jax.Array], hit_counts: list[jax.Array]) -> Metrics:
        return Metrics(
            jnp.sum(jnp.concatenate(loss_sums)) / n, jnp.sum(jnp.concatenate(hit_counts)) / n
        )

    return jax.jit(mean, static_argnums=0, out_shardings=_sharding.replicated(mesh))


def evaluator(
    model: Layer, data: HostData, *, batch_size: int, mesh: Mesh, loss: Loss = None
) -> Callable[[Params], Metrics]:
    """``params -> Metrics`` (device scalars) on ``data``; each process feeds its share once.

    The batches are those of :func:`jaxcnn.train.evaluate` on the mesh in one
    process: ``min(batch_size, N)`` rounded up to a multiple of the device
    count, padded and masked.
    """
    n = int(data.images.shape[0])
    size = -(-min(batch_size, n) // mesh.size) * mesh.size
    index, weight = (np.asarray(part) for part in _epoch.batch_plan(n, size))
    steps = chunk_steps(size, tuple(data.images.shape[1:]))
    chunks = [(index[s : s + steps], weight[s : s + steps]) for s in range(0, len(index), steps)]
    fed = [feed(data, *chunk, mesh) for chunk in chunks] if len(chunks) == 1 else None
    loss_fn = resolve_loss("evaluate", model, loss)
    evaluate = _jitted_evaluate(mesh)

    def metrics(params: Params) -> Metrics:
        loss_sums: list[jax.Array] = []
        hit_counts: list[jax.Array] = []
        # a data set of one chunk is fed once; a larger one again for every call
        for batches in fed or (feed(data, *chunk, mesh) for chunk in chunks):
            sums = evaluate(model, loss_fn, params, *batches)
            _one_ahead(loss_sums)
            loss_sums.append(sums[0])
            hit_counts.append(sums[1])
        return _mean_metrics(mesh)(n, loss_sums, hit_counts)

    return metrics


@functools.cache
def _jitted_evaluate(mesh: Mesh) -> Any:
    return jax.jit(
        functools.partial(_scan_evaluate, batch_sharding=_sharding.batch_sharding(mesh)),
        static_argnums=(0, 1),
        out_shardings=_sharding.replicated(mesh),
        compiler_options=EPOCH_COMPILER_OPTIONS,
    )


def _scan_evaluate(
    model: Layer, loss: Any, params: Params, *batches: jax.Array, batch_sharding: Any
) -> tuple[jax.Array, jax.Array]:
    def body(carry: None, batch: Any) -> Any:
        return carry, _epoch.evaluate_batch(model, loss, params, batch, batch_sharding)

    _, per_batch = lax.scan(body, None, batches)
    return per_batch


def evaluate_across_processes(
    model: Layer,
    params: Params,
    host: HostData,
    *,
    batch_size: int,
    mesh: Mesh,
    loss: Loss = None,
) -> Metrics:
    """:func:`jaxcnn.train.evaluate` over a mesh of several processes (device scalars)."""
    check_mesh_covers_processes("evaluate", mesh)
    params = _sharding.replicate(params, mesh)
    return evaluator(model, host, batch_size=batch_size, mesh=mesh, loss=loss)(params)
