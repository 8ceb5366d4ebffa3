"""The multi-process data path's pieces, in one process: rows, plans, checks, the fed epoch.

The multi-process runs themselves are in test_distributed.py; here the same functions
run on a mesh of this process's one device, where they must compute what the
single-process epoch computes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxcnn import models
from jaxcnn.train import _epoch, _feed, _sharding, check_dataset, make_epoch_fn, make_optimizer
from tests.train._parallel_worker import init_params, small_data, to_float64


@given(st.lists(st.integers(0, 9), min_size=1, max_size=30))
def test_read_rows_is_fancy_indexing(rows: list[int]) -> None:
    array = np.arange(10 * 3).reshape(10, 3) * 1.5
    index = np.asarray(rows).reshape(-1, 1) if len(rows) % 2 else np.asarray(rows)
    np.testing.assert_array_equal(_feed.read_rows(array, index), array[index])


def test_read_rows_reads_each_row_once_in_increasing_order() -> None:
    reads: list[list[int]] = []

    class Rows:
        shape, dtype = (5,), np.dtype(np.float32)

        def __getitem__(self, rows: np.ndarray) -> np.ndarray:
            reads.append(rows.tolist())
            return np.asarray(rows, np.float32) * 10

    got = _feed.read_rows(Rows(), np.asarray([[3, 0], [3, 1]]))
    assert reads == [[0, 1, 3]]
    np.testing.assert_array_equal(got, [[30, 0], [30, 10]])


@pytest.mark.parametrize(("n", "batch_size"), [(70, 32), (64, 32), (5, 8)])
def test_host_plan_is_the_plan_the_one_process_epoch_draws(n: int, batch_size: int) -> None:
    key = jax.random.key(7)

    @jax.jit
    def inside(key: jax.Array, epoch: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _epoch.batch_plan(n, batch_size, _epoch.epoch_order(key, epoch, n))

    for epoch in range(3):
        index, weight = _feed.host_plan(key, epoch, n, batch_size)
        want_index, want_weight = inside(key, np.int32(epoch))
        np.testing.assert_array_equal(index, want_index)
        np.testing.assert_array_equal(weight, want_weight)
        steps = math.ceil(n / batch_size)
        assert index.shape == weight.shape == (steps, batch_size)
        assert sorted(index.ravel()[weight.ravel() == 1].tolist()) == list(range(n))


def test_a_local_mesh_does_not_span_processes() -> None:
    assert not _feed.spans_processes(_sharding.data_mesh("test", 1))


def test_local_key_keeps_the_bits() -> None:
    typed = jax.random.key(3)
    copy = _feed.local_key(typed)
    assert copy.dtype == typed.dtype
    np.testing.assert_array_equal(jax.random.key_data(copy), jax.random.key_data(typed))
    raw = jax.random.key_data(typed)  # a raw uint32[2] key
    np.testing.assert_array_equal(_feed.local_key(raw), raw)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("images", r"^fit: train must be an \(images, labels\) pair, got str$"),
        ((np.zeros((3, 28, 28)), np.zeros(3)), r"images must be a 4-D \(N, H, W, C\) float"),
        ((np.zeros((3, 28, 28, 1), np.int32), np.zeros(3)), r"float array, got .* dtype int32"),
        ((np.zeros((3, 28, 28, 1)), np.zeros(4)), r"labels must have shape \(N,\) = \(3,\)"),
        ((np.zeros((0, 28, 28, 1)), np.zeros(0)), r"must hold at least one sample, got 0"),
    ],
)
def test_host_data_checks(data: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        _feed.check_host_dataset("fit", "train", data)


def test_host_data_is_not_copied() -> None:
    images = np.zeros((4, 28, 28, 1), np.float32)
    checked = _feed.check_host_dataset("fit", "train", (images, [0, 1, 0, 1]))
    assert checked.images is images  # never read or copied: a memmap stays a memmap
    assert isinstance(checked.labels, np.ndarray)


@pytest.mark.parametrize("setup", ["shapes", "dense"])
def test_the_fed_epoch_computes_the_one_device_epoch(setup: str) -> None:
    # float64, 2 epochs on a 1-device mesh: the fed path (host-gathered batches) against
    # make_epoch_fn (batches gathered inside the jitted epoch). Same sums, another program:
    # agreement to the float64 bound of test_parallel.FLOAT64_RTOL.
    with jax.enable_x64(True):
        model, optimizer, classes = {
            "shapes": (models.shapes_cnn(), make_optimizer("sgd", 0.25), 2),
            "dense": (models.mnist_dense(), make_optimizer("adam", 0.01), 10),
        }[setup]
        (images, labels), (test_images, test_labels) = to_float64(small_data(classes=classes))
        params = to_float64(init_params(model, jax.random.key(0)))
        key, mesh = jax.random.key(1), _sharding.data_mesh("test", 1)
        fed = _feed.fed_epoch_fn(
            model, optimizer, batch_size=32, grads="autodiff", unroll=1, mesh=mesh
        )
        plain = make_epoch_fn(model, optimizer, batch_size=32)
        state_fed = _sharding.replicate((params, optimizer.init(params)), mesh)
        state = jax.tree.map(jnp.array, (params, optimizer.init(params)))
        for epoch in range(2):
            *state_fed, fed_metrics = fed(*state_fed, images, labels, key, np.int32(epoch))
            *state, metrics = plain(
                *state, jnp.asarray(images), jnp.asarray(labels), key, np.int32(epoch)
            )
            for got, want in zip(fed_metrics, metrics, strict=True):
                np.testing.assert_allclose(float(got), float(want), rtol=1e-9)
        for got, want in zip(jax.tree.leaves(state_fed), jax.tree.leaves(state), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9)
        evaluate = _feed.evaluator(
            model, _feed.HostData(test_images, test_labels), batch_size=4, mesh=mesh
        )
        got_eval = evaluate(state_fed[0])
        want_eval = _epoch.evaluate_arrays(
            model, state[0], jnp.asarray(test_images), jnp.asarray(test_labels), batch_size=4
        )
        for got, want in zip(got_eval, want_eval, strict=True):
            np.testing.assert_allclose(float(got), float(want), rtol=1e-9)


def _bad_data(case: str) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((9, 28, 28, 1), np.float32)
    labels: np.ndarray = np.zeros(9, np.int32)
    if case == "nan":
        images[6, 3, 4, 0] = np.nan
    elif case == "inf_late":
        images[8, 0, 27, 0] = -np.inf
    elif case == "label_2":
        labels[5] = 2
    elif case == "label_float":
        labels = labels.astype(np.float32) + 0.5
    return images, labels


@pytest.mark.parametrize("case", ["nan", "inf_late", "label_2", "label_float"])
def test_host_data_is_refused_as_check_dataset_refuses_it(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same message from the host check (reading 4 samples per chunk here) as from the
    # device check of one-process training, for the shapes model (one logit: labels 0/1).
    monkeypatch.setattr(_feed, "CHECK_CHUNK", 4)
    model = models.shapes_cnn()
    params = init_params(model, jax.random.key(0))
    data = _bad_data(case)
    with pytest.raises((ValueError, TypeError)) as on_device:
        check_dataset("fit", "train", data, model=model, params=params)
    with pytest.raises(type(on_device.value)) as on_host:
        _feed.check_host_dataset("fit", "train", data, model=model, params=params)
    assert str(on_host.value) == str(on_device.value)
