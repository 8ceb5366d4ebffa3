"""Checkpoints: the model's spec, parameters, optimizer state, epoch, key, config and data.

Format (version 2): one uncompressed ``.npz`` file (a zip of ``.npy``
arrays, readable with ``numpy.load(path, allow_pickle=False)``):

* ``params<keypath>`` and ``opt_state<keypath>``: one entry per leaf, named by
  ``jax.tree_util.keystr`` of its path, e.g. ``params['conv0']['w']`` or
  ``opt_state[0].mu['dense4']['b']``;
* ``key``: the batch-order PRNG key as ``jax.random.key_data`` (uint32), if any;
* ``__metadata__``: UTF-8 JSON (as uint8 bytes) with the format name and
  version, the jaxcnn version, the model's JSON spec
  (:func:`jaxcnn.layers.to_spec`) and its params' dtype, whether an optimizer
  state is stored, the :class:`~jaxcnn.train.TrainConfig` (or null), the data
  source (or null), the number of finished epochs, the key's PRNG
  implementation (or null), the history and the SHA-256 of every other entry
  (name, dtype, shape and bytes).

Loading never unpickles anything, rebuilds the model from its spec and the
optimizer from the config (or the one passed in), and restores the arrays
into *their* structure (from ``jax.eval_shape`` of their inits): every leaf
must be present with the right shape and dtype, and nothing else may be
there. Version 1 files (config only, one of the three built-in models) still
load.

Loading refuses before it reads (see :mod:`jaxcnn.train._npz`): the zip
directory's member count, names and declared sizes are checked first, the
metadata is read (at most ``MAX_METADATA_BYTES``) and range-checked, and then
only the members the model needs are read, each bounded by its array's size.
Non-finite weights are refused. Any problem, whatever the bytes, raises
:class:`CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn import __version__
from jaxcnn._io import atomic_file
from jaxcnn.data import DataSource
from jaxcnn.errors import InputError, JaxcnnError
from jaxcnn.layers import Layer, Params
from jaxcnn.train import _checkpoint_model as contents
from jaxcnn.train import _npz
from jaxcnn.train._config import TrainConfig
from jaxcnn.train._dataset import first_nonfinite

FORMAT = "jaxcnn-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
METADATA = "__metadata__"
KEY = "key"
MAX_METADATA_BYTES = 16 * 1024**2
"""Bound on the metadata entry: the JSON of ~100,000 epochs of history."""
HISTORY_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


class CheckpointError(JaxcnnError, ValueError):
    """A checkpoint file is missing, unreadable, corrupted or does not fit."""


class Checkpoint(NamedTuple):
    """Everything :func:`load_checkpoint` restores."""

    params: Params
    opt_state: Any  # None when none was saved
    epoch: int  # finished epochs
    key: jax.Array | None  # typed PRNG key of the batch order
    config: TrainConfig | None  # how the run trained
    history: dict[str, list[float]] | None
    model: Layer  # what the model is, rebuilt from its spec
    data: DataSource | None  # what it trained on


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    params: Params,
    model: Layer | None = None,
    opt_state: Any = None,
    epoch: int = 0,
    key: jax.Array | None = None,
    config: TrainConfig | Mapping[str, Any] | None = None,
    history: Mapping[str, list[float]] | None = None,
    data: DataSource | Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same directory, then rename).

    Args:
      path: the ``.npz`` file to write (replaced if it exists).
      params: model parameters (pytree of arrays of one floating dtype).
      model: the model, any built from :mod:`jaxcnn.layers` that records its
        input shape (its spec is stored); default: the built-in model the
        ``config`` names.
      opt_state: optional optax state for ``params``: of ``config``'s
        optimizer when a config is given, else of any optimizer (pass it to
        :func:`load_checkpoint` to restore the state).
      epoch: number of finished epochs (>= 0).
      key: optional PRNG key of the batch order (typed or raw ``uint32[2]``).
      config: optional :class:`~jaxcnn.train.TrainConfig` (or its dict).
      history: optional per-epoch history (lists of finite floats).
      data: optional :class:`~jaxcnn.data.DataSource` (or its dict).

    Returns:
      ``path`` as a ``Path``.

    Raises:
      InputError: a model jaxcnn cannot describe (the message names the
        layer), params / optimizer state that do not fit the model and config,
        non-finite values, or an epoch and history that do not agree: nothing
        is written then.
    """
    path = Path(path)
    if config is not None and not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise InputError(f"save_checkpoint: epoch must be an int >= 0, got {epoch!r}")
    problem = progress_problem(epoch, None if config is None else config.epochs, history)
    if problem is not None:
        raise InputError(f"save_checkpoint: {problem}")
    for name, tree in (("params", params), ("opt_state", opt_state)):
        found = first_nonfinite(tree)
        if found is not None:
            raise InputError(f"save_checkpoint: {name}{found}; a checkpoint holds finite values")
    model, spec = contents.model_to_save(model, config)
    dtype = contents.check_state(model, config, params, opt_state)
    source = data if data is None or isinstance(data, DataSource) else DataSource.from_dict(data)
    typed = None if key is None else _typed_key(key)
    arrays = {**_flatten("params", params), **_flatten("opt_state", opt_state)}
    if typed is not None:
        arrays[KEY] = np.asarray(jax.random.key_data(typed))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jaxcnn_version": __version__,
        "model": spec,
        "params_dtype": dtype,
        "has_opt_state": opt_state is not None,
        "config": None if config is None else config.to_dict(),
        "data": None if source is None else source.to_dict(),
        "epoch": epoch,
        "key_impl": None if typed is None else str(jax.random.key_impl(typed)),
        "history": None if history is None else {k: list(v) for k, v in history.items()},
        "sha256": _digest(arrays),
    }
    text = json.dumps(metadata, allow_nan=False, sort_keys=True)
    arrays[METADATA] = np.frombuffer(text.encode("utf-8"), np.uint8)
    _write_atomically(path, arrays)
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    template: Any = None,
    optimizer: optax.GradientTransformation | None = None,
) -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Args:
      path: the ``.npz`` file.
      template: optional ``(params, opt_state)`` pytree (arrays or
        ``jax.ShapeDtypeStruct``) to restore into; by default the structure
        of the stored model and of the optimizer.
      optimizer: the optax optimizer whose state was saved, needed only when
        the checkpoint has an optimizer state but no config naming it.

    Returns:
      a :class:`Checkpoint` of jax arrays, with the model rebuilt from its spec.

    Raises:
      CheckpointError: missing, truncated, corrupted (checksum), hostile
        (sizes beyond what the model needs), wrong-format or mismatched file,
        metadata out of range, or non-finite weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not _starts_with_zip_magic(path):
        raise CheckpointError(f"{path}: not a jaxcnn checkpoint (not an .npz file)")
    try:
        with _npz.open_archive(path) as archive:
            metadata = _read_metadata(path, archive)
            config = _config(path, metadata)
            model = _checked(path, contents.stored_model, metadata, config)
            params_template, opt_template = (
                _checked(path, contents.stored_templates, metadata, model, config, optimizer)
                if template is None
                else template
            )
            expected = {
                **_entries("params", params_template),
                **_entries("opt_state", opt_template),
            }
            if metadata["key_impl"] is not None:
                expected[KEY] = _key_entry(path, metadata["key_impl"])
            arrays = _read_entries(path, archive, expected, model, config)
    except _npz.ArrayMismatchError as err:
        raise CheckpointError(f"{path}: does not fit the model: {err}") from None
    except _npz.ArchiveError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if _digest(arrays) != metadata["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch, the arrays are corrupted")
    _check_finite(path, arrays)
    params = _restore("params", params_template, arrays)
    opt_state = None if opt_template is None else _restore("opt_state", opt_template, arrays)
    key = None
    if metadata["key_impl"] is not None:
        key = jax.random.wrap_key_data(jnp.asarray(arrays[KEY]), impl=metadata["key_impl"])
    data = _checked(path, contents.stored_data, metadata)
    history = metadata["history"]
    return Checkpoint(params, opt_state, metadata["epoch"], key, config, history, model, data)


def _flatten(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    if tree is None:
        return {}
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


def _starts_with_zip_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_npz.ZIP_MAGIC)) == _npz.ZIP_MAGIC
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None


def _read_metadata(path: Path, archive: _npz.Archive) -> dict[str, Any]:
    if METADATA not in archive.members:
        raise CheckpointError(f"{path}: not a jaxcnn checkpoint (no {METADATA} entry)")
    try:
        raw = _npz.read_array(
            archive, METADATA, np.dtype(np.uint8), None, max_bytes=MAX_METADATA_BYTES
        )
    except _npz.ArrayMismatchError:
        raise CheckpointError(
            f"{path}: not a jaxcnn checkpoint ({METADATA} is not 1-D uint8 bytes)"
        ) from None
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError too
        raise CheckpointError(f"{path}: unreadable metadata: {err}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a jaxcnn checkpoint (format is not {FORMAT!r})")
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}; this jaxcnn {__version__} "
            f"reads versions {list(READABLE_VERSIONS)}"
        )
    for field, kinds in _METADATA_FIELDS[version]:
        value = metadata.get(field)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
            raise CheckpointError(f"{path}: metadata field {field!r} missing or not a {names}")
    return metadata


_METADATA_FIELDS: dict[int, list[tuple[str, tuple[type, ...]]]] = {
    1: [("sha256", (str,)), ("epoch", (int,)), ("key_impl", (str,)), ("config", (dict,))],
    2: [
        ("sha256", (str,)),
        ("epoch", (int,)),
        ("key_impl", (str, type(None))),
        ("config", (dict, type(None))),
        ("model", (dict,)),
        ("params_dtype", (str,)),
        ("has_opt_state", (bool,)),
        ("data", (dict, type(None))),
    ],
}
"""The metadata fields each format version requires, and their JSON types."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def progress_problem(epoch: int, epochs: int | None, history: Any) -> str | None:
    """What is wrong with a checkpoint's ``epoch`` and ``history`` (None if nothing).

    ``0 <= epoch <= epochs`` (``epochs`` None: no config, no upper bound); the
    history is None, or a dict of some of :data:`HISTORY_NAMES` to lists of
    exactly ``epoch`` finite numbers.
    """
    if epoch < 0 or (epochs is not None and epoch > epochs):
        return f"epoch must be in [0, epochs={epochs}], got {epoch}"
    if history is None:
        return None
    if not isinstance(history, Mapping) or not set(history) <= set(HISTORY_NAMES):
        keys = sorted(history) if isinstance(history, Mapping) else type(history).__name__
        return f"history must map some of {list(HISTORY_NAMES)} to lists, got {keys}"
    for name, values in history.items():
        if not isinstance(values, list | tuple) or len(values) != epoch:
            return f"history[{name!r}] must hold {epoch} values (one per epoch)"
        if not all(_finite_number(value) for value in values):
            return f"history[{name!r}] must hold finite numbers"
    return None


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _config(path: Path, metadata: Mapping[str, Any]) -> TrainConfig | None:
    config = None
    if metadata["config"] is not None:
        try:
            config = TrainConfig.from_dict(metadata["config"])
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: bad config in metadata: {err}") from None
    epochs = None if config is None else config.epochs
    problem = progress_problem(metadata["epoch"], epochs, metadata.get("history"))
    if problem is not None:
        raise CheckpointError(f"{path}: bad metadata: {problem}")
    return config


def _checked(path: Path, read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, its complaints (a ``ValueError`` or ``TypeError``) as CheckpointErrors."""
    try:
        return read(*args)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from None


def _entries(prefix: str, template: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """Entry name -> shape and dtype of every leaf of ``template``."""
    leaves = jax.tree_util.tree_flatten_with_path(template)[0]
    return {
        prefix + jax.tree_util.keystr(key_path): jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
        for key_path, leaf in leaves
    }


def _key_entry(path: Path, impl: str) -> jax.ShapeDtypeStruct:
    """Shape and dtype of the key data of PRNG implementation ``impl``."""
    try:
        return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=impl)))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad PRNG key: {err}") from None


def _read_entries(
    path: Path,
    archive: _npz.Archive,
    expected: Mapping[str, jax.ShapeDtypeStruct],
    model: Layer,
    config: TrainConfig | None,
) -> dict[str, np.ndarray]:
    """Every expected entry, after checking the directory holds exactly those."""
    names = set(archive.members) - {METADATA}
    missing = [name for name in expected if name not in names]
    if missing:
        raise CheckpointError(f"{path}: does not fit the model: missing entry {missing[0]}")
    unexpected = sorted(names - set(expected))
    if unexpected:
        optimizer = "" if config is None else f" with optimizer {config.optimizer!r}"
        raise CheckpointError(
            f"{path}: does not fit model {model.kind!r}{optimizer}: "
            f"unexpected entries {unexpected[:5]}"
        )
    return {
        name: _npz.read_array(archive, name, np.dtype(spec.dtype), tuple(spec.shape))
        for name, spec in expected.items()
    }


def _check_finite(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        found = first_nonfinite(array)
        if found is not None:
            raise CheckpointError(
                f"{path}: {name}{found}: a checkpoint holds finite weights only "
                f"(corrupted, or saved from a diverged run)"
            )


def _restore(prefix: str, template: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """``template``'s structure filled with the (checked) ``arrays``."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    restored = [jnp.asarray(arrays[prefix + jax.tree_util.keystr(p)]) for p, _ in leaves]
    return jax.tree_util.tree_unflatten(treedef, restored)


def _typed_key(key: Any) -> jax.Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)
