"""Checkpoints: parameters, optimizer state, epoch, RNG key and the run's config.

Format (version 1): one uncompressed ``.npz`` file (a zip of ``.npy``
arrays, readable with ``numpy.load(path, allow_pickle=False)``):

* ``params<keypath>`` and ``opt_state<keypath>``: one entry per leaf, named by
  ``jax.tree_util.keystr`` of its path, e.g. ``params['conv0']['w']`` or
  ``opt_state[0].mu['dense4']['b']``;
* ``key``: the batch-order PRNG key as ``jax.random.key_data`` (uint32);
* ``__metadata__``: UTF-8 JSON (as uint8 bytes) with the format name and
  version, the jaxcnn version, the :class:`~jaxcnn.train.TrainConfig`, the
  number of finished epochs, the key's PRNG implementation, the history and
  the SHA-256 of every other entry (name, dtype, shape and bytes).

Loading never unpickles anything, rebuilds the model and optimizer the
config names, and restores the arrays into *their* structure (from
``jax.eval_shape`` of their inits): every leaf must be present with the
right shape and dtype, and nothing else may be there. Any problem raises
:class:`CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import __version__, models
from jaxcnn._io import atomic_file
from jaxcnn.errors import InputError, JaxcnnError
from jaxcnn.layers import Params
from jaxcnn.train._config import TrainConfig

FORMAT = "jaxcnn-checkpoint"
FORMAT_VERSION = 1
METADATA = "__metadata__"
KEY = "key"
ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(JaxcnnError, ValueError):
    """A checkpoint file is missing, unreadable, corrupted or does not fit."""


class Checkpoint(NamedTuple):
    """Everything :func:`load_checkpoint` restores."""

    params: Params
    opt_state: Any
    epoch: int  # finished epochs
    key: jax.Array  # typed PRNG key of the batch order
    config: TrainConfig
    history: dict[str, list[float]] | None


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    params: Params,
    opt_state: Any,
    epoch: int,
    key: jax.Array,
    config: TrainConfig | Mapping[str, Any],
    history: Mapping[str, list[float]] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same directory, then rename).

    Args:
      path: the ``.npz`` file to write (replaced if it exists).
      params: model parameters (pytree of arrays).
      opt_state: optax state of ``config``'s optimizer for ``params``.
      epoch: number of finished epochs (>= 0).
      key: the PRNG key of the batch order (typed or raw ``uint32[2]``).
      config: the run's :class:`~jaxcnn.train.TrainConfig` (or its dict).
      history: optional per-epoch history (lists of finite floats).

    Returns:
      ``path`` as a ``Path``.
    """
    path = Path(path)
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise InputError(f"save_checkpoint: epoch must be an int >= 0, got {epoch!r}")
    key = _typed_key(key)
    arrays = {**_flatten("params", params), **_flatten("opt_state", opt_state)}
    arrays[KEY] = np.asarray(jax.random.key_data(key))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jaxcnn_version": __version__,
        "config": config.to_dict(),
        "epoch": epoch,
        "key_impl": str(jax.random.key_impl(key)),
        "history": None if history is None else {k: list(v) for k, v in history.items()},
        "sha256": _digest(arrays),
    }
    text = json.dumps(metadata, allow_nan=False, sort_keys=True)
    arrays[METADATA] = np.frombuffer(text.encode("utf-8"), np.uint8)
    _write_atomically(path, arrays)
    return path


def load_checkpoint(path: str | os.PathLike[str], *, template: Any = None) -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Args:
      path: the ``.npz`` file.
      template: optional ``(params, opt_state)`` pytree (arrays or
        ``jax.ShapeDtypeStruct``) to restore into; by default the structure
        of the model and optimizer named by the stored config.

    Returns:
      a :class:`Checkpoint` of jax arrays.

    Raises:
      CheckpointError: missing, truncated, corrupted (checksum), wrong-format
        or mismatched file.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    metadata = _read_metadata(path, arrays.pop(METADATA, None))
    if _digest(arrays) != metadata["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch, the arrays are corrupted")
    config = _config(path, metadata)
    params_template, opt_template = _template(config) if template is None else template
    params = _restore(path, "params", params_template, arrays)
    opt_state = _restore(path, "opt_state", opt_template, arrays)
    key = _restore_key(path, arrays.pop(KEY, None), metadata)
    if arrays:
        raise CheckpointError(
            f"{path}: does not fit model {config.model!r} with optimizer {config.optimizer!r}: "
            f"unexpected entries {sorted(arrays)[:5]}"
        )
    return Checkpoint(params, opt_state, metadata["epoch"], key, config, metadata["history"])


def _flatten(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every entry's name, dtype, shape and bytes, in name order."""
    sha = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _write_atomically(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_file(path) as handle:
        np.savez(handle, allow_pickle=False, **arrays)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as handle:
        if handle.read(4) != ZIP_MAGIC:
            raise CheckpointError(f"{path}: not a jaxcnn checkpoint (not an .npz file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{path}: not a readable jaxcnn checkpoint (truncated or corrupted?): {err}"
        ) from None


def _read_metadata(path: Path, raw: np.ndarray | None) -> dict[str, Any]:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: not a jaxcnn checkpoint (no {METADATA} entry)")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable metadata: {err}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a jaxcnn checkpoint (format is not {FORMAT!r})")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}; this jaxcnn {__version__} "
            f"reads version {FORMAT_VERSION}"
        )
    for field, kind in [("sha256", str), ("epoch", int), ("key_impl", str), ("config", dict)]:
        if not isinstance(metadata.get(field), kind):
            raise CheckpointError(
                f"{path}: metadata field {field!r} missing or not a {kind.__name__}"
            )
    if metadata["epoch"] < 0 or not _valid_history(metadata.get("history")):
        raise CheckpointError(f"{path}: metadata has a bad epoch or history")
    return metadata


def _valid_history(history: Any) -> bool:
    if history is None:
        return True
    return isinstance(history, dict) and all(
        isinstance(values, list) and all(isinstance(v, int | float) for v in values)
        for values in history.values()
    )


def _config(path: Path, metadata: Mapping[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(metadata["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad config in metadata: {err}") from None


def _template(config: TrainConfig) -> tuple[Any, Any]:
    """Shapes and dtypes of the config's ``(params, opt_state)``, computed abstractly."""
    model, optimizer = config.build_model(), config.build_optimizer()

    def init() -> tuple[Any, Any]:
        _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
        return params, optimizer.init(params)

    return jax.eval_shape(init)


def _restore(path: Path, prefix: str, template: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Fill ``template``'s structure with ``arrays`` (entries used are removed)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    restored = []
    for key_path, leaf in leaves:
        name = prefix + jax.tree_util.keystr(key_path)
        if name not in arrays:
            raise CheckpointError(f"{path}: does not fit the model: missing entry {name}")
        array = arrays.pop(name)
        if array.shape != tuple(leaf.shape) or array.dtype != leaf.dtype:
            raise CheckpointError(
                f"{path}: does not fit the model: {name} has shape {array.shape} dtype "
                f"{array.dtype}, expected shape {tuple(leaf.shape)} dtype {leaf.dtype}"
            )
        restored.append(jnp.asarray(array))
    return jax.tree_util.tree_unflatten(treedef, restored)


def _restore_key(path: Path, data: np.ndarray | None, metadata: Mapping[str, Any]) -> jax.Array:
    try:
        if data is None:
            raise InputError("no key entry")
        return jax.random.wrap_key_data(jnp.asarray(data), impl=metadata["key_impl"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad PRNG key: {err}") from None


def _typed_key(key: Any) -> jax.Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)
