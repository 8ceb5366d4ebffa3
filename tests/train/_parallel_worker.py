"""Runs in a subprocess with forced CPU devices for tests/train/test_parallel.py.

``python -m tests.train._parallel_worker OUT SCENARIO [ARG ...]`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set by the caller
(before jax is imported, which is why this is a separate process). Every
scenario writes ``OUT/<scenario>.json`` and, for arrays, ``OUT/<name>.npz``;
the parent test makes the assertions.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcnn import models
from jaxcnn.data import make_shapes
from jaxcnn.layers import Layer
from jaxcnn.train import EpochEnd, TrainConfig, evaluate, fit, make_optimizer, save_checkpoint
from jaxcnn.train import _sharding as _parallel

jax.config.update("jax_numpy_rank_promotion", "raise")  # as tests/conftest.py
jax.config.update("jax_numpy_dtype_promotion", "strict")

SMALL_TEST_FRACTION = 0.125  # make_shapes(40, ...) -> 70 training and 10 test images


def small_data(*, classes: int = 2) -> tuple[Any, Any]:
    """70 training / 10 test shapes; labels redrawn in ``0..classes-1`` for ``classes > 2``."""
    train, test = make_shapes(40, seed=1, test_fraction=SMALL_TEST_FRACTION)
    if classes == 2:
        return train, test
    rng = np.random.default_rng(0)
    relabel = [(x, rng.integers(0, classes, len(y)).astype(np.int32)) for x, y in (train, test)]
    return relabel[0], relabel[1]


def init_params(model: Layer, key: jax.Array) -> Any:
    return model.init(key, (-1, *models.IMAGE_SHAPE))[1]


def flat(tree: Any) -> dict[str, np.ndarray]:
    """``{keystr(path): host array}`` of every leaf."""
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def sharding_facts(tree: Any) -> dict[str, dict[str, Any]]:
    """What every leaf's ``.sharding`` says about it."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        jax.tree_util.keystr(path): {
            "type": type(leaf.sharding).__name__,
            "spec": str(getattr(leaf.sharding, "spec", None)),
            "fully_replicated": bool(leaf.sharding.is_fully_replicated),
            "devices": len(leaf.sharding.device_set),
            "shard_shapes": sorted({tuple(s.data.shape) for s in leaf.addressable_shards}),
            "shape": list(leaf.shape),
        }
        for path, leaf in leaves
    }


def to_float64(tree: Any) -> Any:
    """Every floating leaf as float64 (needs ``jax_enable_x64``)."""
    return jax.tree.map(
        lambda leaf: leaf.astype(np.float64) if np.issubdtype(leaf.dtype, np.floating) else leaf,
        tree,
    )


def fit_three_epochs(
    model: Layer, optimizer: Any, data: Any, *, float64: bool = False, **kwargs: Any
) -> tuple[Any, Any, list[EpochEnd]]:
    """``fit`` 3 epochs, batch 32, from init key 0 and order key 1, validating on the test
    split: ``(params, history, every EpochEnd)``. ``kwargs`` go to ``fit``."""
    ends: list[EpochEnd] = []
    params = init_params(model, jax.random.key(0))
    if float64:
        data, params = to_float64(data), to_float64(params)
    train, test = data
    params, history = fit(
        model,
        params,
        train,
        optimizer=optimizer,
        epochs=3,
        batch_size=32,
        key=jax.random.key(1),
        val=test,
        progress=False,
        on_epoch=ends.append,
        **kwargs,
    )
    return params, history, ends


def save_arrays(path: Path, params: Any, last: EpochEnd, *, host_params: bool = False) -> None:
    """Final ``params`` and the last epoch's opt_state (and params, with ``host_params``)."""
    arrays = {f"params{k}": v for k, v in flat(params).items()}
    arrays |= {f"opt_state{k}": v for k, v in flat(last.opt_state).items()}
    if host_params:
        arrays |= {f"host_params{k}": v for k, v in flat(last.params).items()}
    np.savez(path, allow_pickle=False, **arrays)


def run_fit(
    out: Path,
    name: str,
    model: Layer,
    optimizer: Any,
    data: Any,
    *,
    float64: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """``fit`` 3 epochs; save final params and the last ``on_epoch`` opt_state to ``name.npz``."""
    params, history, ends = fit_three_epochs(model, optimizer, data, float64=float64, **kwargs)
    save_arrays(out / f"{name}.npz", params, ends[-1], host_params=True)
    if name == "shapes_all":  # a checkpoint from the sharded run, for loading on one device
        config = TrainConfig(model="shapes", lr=0.25, batch_size=32, epochs=3)
        last = ends[-1]
        save_checkpoint(
            out / f"{name}.ckpt.npz",
            params=last.params,
            opt_state=last.opt_state,
            epoch=last.epoch,
            key=jax.random.key(1),
            config=config,
            history=last.history,
        )
    return {"history": history, "param_shardings": sharding_facts(params)}


def equivalence(out: Path) -> dict[str, Any]:
    """shapes_cnn + SGD and mnist_dense + Adam, 3 epochs, on 1 device and on the mesh."""
    devices = jax.device_count()
    # jax.make_mesh's default axis type is Explicit; fit uses the same devices as Auto axes.
    explicit_mesh = jax.make_mesh((devices,), (_parallel.BATCH_AXIS,))
    results: dict[str, Any] = {"device_count": devices}
    setups = {
        "shapes": (models.shapes_cnn(), make_optimizer("sgd", 0.25), small_data()),
        "dense": (models.mnist_dense(), make_optimizer("adam", 0.01), small_data(classes=10)),
    }
    for name, (model, optimizer, data) in setups.items():
        results[f"{name}_single"] = run_fit(out, f"{name}_single", model, optimizer, data)
        results[f"{name}_all"] = run_fit(
            out, f"{name}_all", model, optimizer, data, devices=devices
        )
    model, optimizer, data = setups["shapes"]
    results["shapes_one"] = run_fit(out, "shapes_one", model, optimizer, data, devices=1)
    results["shapes_explicit_mesh"] = run_fit(
        out, "shapes_explicit_mesh", model, optimizer, data, mesh=explicit_mesh
    )
    return results


def with_sharding_probe(model: Layer, seen: list[Any]) -> Layer:
    """``model`` whose apply records the sharding of its input ``x`` when compiled."""

    def apply(params: Any, x: jax.Array) -> jax.Array:
        def record(sharding: Any) -> None:
            seen.append(
                {
                    "shape": list(x.shape),
                    "shard_shape": list(sharding.shard_shape(x.shape)),
                    "fully_replicated": bool(sharding.is_fully_replicated),
                    "devices": len(sharding.device_set),
                }
            )

        jax.debug.inspect_array_sharding(x, callback=record)
        return model.apply(params, x)

    return dataclasses.replace(model, apply=apply)


def shardings(out: Path) -> dict[str, Any]:
    """Shardings of placed inputs, of epoch outputs, of the batch inside a step; the HLO."""
    del out
    devices = jax.device_count()
    mesh = _parallel.data_mesh("worker", devices)
    base, optimizer = models.shapes_cnn(), make_optimizer("adam", 0.01)
    seen: list[Any] = []
    model = with_sharding_probe(base, seen)
    train, test = small_data()
    params = init_params(model, jax.random.key(0))
    placed = _parallel.replicate(
        (params, optimizer.init(params), train[0], train[1], jax.random.key(1)), mesh
    )
    epoch_fn = _parallel.sharded_epoch_fn(
        model, optimizer, batch_size=32, grads="autodiff", unroll=1, mesh=mesh
    )
    spec = epoch_fn.args[0]  # type: ignore[attr-defined]
    hlo = _parallel._jitted_epoch(mesh).lower(spec, *placed, np.int32(0)).compile().as_text()
    inputs = sharding_facts(placed)
    new_params, opt_state, metrics = epoch_fn(*placed, np.int32(0))
    step_batches = list(seen)
    seen.clear()
    evaluate(model, new_params, test, batch_size=6, devices=devices)
    return {
        "device_count": devices,
        "inputs": inputs,
        "params": sharding_facts(new_params),
        "opt_state": sharding_facts(opt_state),
        "metrics": sharding_facts(metrics),
        "step_batches": step_batches,
        "eval_batches": list(seen),
        "hlo_ops": {op: hlo.count(f" {op}(") for op in COLLECTIVES},
    }


COLLECTIVES = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter")


def _error(call: Callable[[], Any]) -> dict[str, Any] | None:
    try:
        call()
    except (TypeError, ValueError) as err:
        return {"types": [cls.__name__ for cls in type(err).__mro__], "message": str(err)}
    return None


def errors(out: Path) -> dict[str, Any]:
    """The messages of bad ``devices`` / ``mesh`` / ``batch_size`` arguments."""
    del out
    devices = jax.device_count()
    model, sgd = models.shapes_cnn(), make_optimizer("sgd", 0.1)
    train, test = small_data()
    params = init_params(model, jax.random.key(0))

    def fit_with(**kwargs: Any) -> Callable[[], Any]:
        arguments = {"optimizer": sgd, "epochs": 1, "batch_size": 32, "key": jax.random.key(1)}
        arguments |= {"progress": False, **kwargs}
        return lambda: fit(model, params, train, **arguments)

    mesh = _parallel.data_mesh("worker", devices)
    found = {
        "indivisible": _error(fit_with(batch_size=30, devices=devices)),
        "indivisible_mesh": _error(fit_with(batch_size=30, mesh=mesh)),
        "too_many": _error(fit_with(devices=devices + 1)),
        "both": _error(fit_with(devices=devices, mesh=mesh)),
        "zero": _error(fit_with(devices=0)),
        "float": _error(fit_with(devices=2.0)),
        "not_a_mesh": _error(fit_with(mesh="batch")),
        "evaluate_too_many": _error(lambda: evaluate(model, params, test, devices=devices + 1)),
    }
    # Two programs (one device; batches of 3 rounded up to 4 over the devices): in float64,
    # so that the test compares them to a derived float64 bound.
    with jax.enable_x64(True):
        params64, test64 = to_float64(params), to_float64(test)
        single = evaluate(model, params64, test64, batch_size=3)
        sharded = evaluate(model, params64, test64, batch_size=3, devices=devices)  # 3 -> 4
    return {
        "device_count": devices,
        "errors": found,
        "evaluate": {"single": single._asdict(), "sharded": sharded._asdict()},
    }


def accuracy(out: Path, lr: str, epochs: str, *seeds: str) -> dict[str, Any]:
    """Full shapes training (CLI seeding) on 1 device and on every device."""
    del out
    results: dict[str, Any] = {"device_count": jax.device_count()}
    model, optimizer = models.shapes_cnn(), make_optimizer("sgd", float(lr))
    for seed in map(int, seeds):
        train, test = make_shapes(seed=seed)
        init_key, order_key = jax.random.split(jax.random.key(seed))
        params = init_params(model, init_key)
        for devices in (None, jax.device_count()):
            _, history = fit(
                model,
                params,
                train,
                optimizer=optimizer,
                epochs=int(epochs),
                batch_size=32,
                key=order_key,
                val=test,
                progress=False,
                devices=devices,
            )
            results[f"seed{seed}_devices{devices or 0}"] = history
    return results


def float64_equivalence(out: Path, epochs: str) -> dict[str, Any]:
    """Training in float64 on 1 device, on a 1-device mesh and on every device.

    The small setups of :func:`equivalence` (3 epochs, params saved as
    ``{setup}_f64_{run}.npz``), and the article's shapes training for ``epochs``.
    """
    jax.config.update("jax_enable_x64", True)
    results: dict[str, Any] = {"device_count": jax.device_count()}
    setups = {
        "shapes": (models.shapes_cnn(), make_optimizer("sgd", 0.25), small_data()),
        "dense": (models.mnist_dense(), make_optimizer("adam", 0.01), small_data(classes=10)),
    }
    for name, (model, optimizer, data) in setups.items():
        for run, devices in (("single", None), ("one", 1), ("all", jax.device_count())):
            results[f"{name}_f64_{run}"] = run_fit(
                out, f"{name}_f64_{run}", model, optimizer, data, float64=True, devices=devices
            )
    model, optimizer = models.shapes_cnn(), make_optimizer("sgd", 0.25)
    (images, labels), test = make_shapes(seed=0)
    train = (images.astype(np.float64), labels)
    val = (test[0].astype(np.float64), test[1])
    init_key, order_key = jax.random.split(jax.random.key(0))
    params = jax.tree.map(lambda leaf: leaf.astype(np.float64), init_params(model, init_key))
    for devices in (None, jax.device_count()):
        trained, history = fit(
            model,
            params,
            train,
            optimizer=optimizer,
            epochs=int(epochs),
            batch_size=32,
            key=order_key,
            val=val,
            progress=False,
            devices=devices,
        )
        dtypes = {str(leaf.dtype) for leaf in jax.tree.leaves(trained)}
        results[f"article_devices{devices or 0}"] = {"history": history, "dtypes": sorted(dtypes)}
    return results


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "float64_equivalence": float64_equivalence,
    "equivalence": equivalence,
    "shardings": shardings,
    "errors": errors,
    "accuracy": accuracy,
}


def main(argv: list[str]) -> int:
    out, scenario, *args = argv
    result = SCENARIOS[scenario](Path(out), *args)
    (Path(out) / f"{scenario}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
