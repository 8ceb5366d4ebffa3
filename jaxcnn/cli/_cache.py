"""The ``jaxcnn`` command's persistent compilation cache (JAX's, on by default).

Every ``jaxcnn`` process compiles the same few programs (the training epoch,
the evaluation, the parameter init) for the same shapes. JAX can keep the
compiled executables on disk and load them in the next process instead of
compiling again: on the GPU the first epoch drops from ~20 s (mostly XLA's
autotuning) to under 1 s, on the CPU a second ``jaxcnn train shapes`` skips
its ~1.5 s of compiling.

Where: ``data_root()/compile-cache`` (``~/.cache/jaxcnn/compile-cache``, or
under ``$JAXCNN_DATA`` / ``$XDG_CACHE_HOME``), beside the MNIST cache.
``JAXCNN_COMPILE_CACHE=DIR`` moves it; ``JAXCNN_COMPILE_CACHE=off`` (or
``0``, ``false``, ``no``) or ``jaxcnn --no-compile-cache ...`` turns it off.
A cache directory the user already gave JAX (``JAX_COMPILATION_CACHE_DIR``)
is left as it is.

Every program is cached, however fast it compiled (JAX's default skips those
under 1 s, which would leave the evaluation and the init to compile again),
and the cache is capped at :data:`MAX_BYTES` (least recently used first out).
The cap needs the ``filelock`` package (a dependency of jaxcnn): JAX refuses
a capped cache without it and turns the whole cache off, so where it is
missing the cache is left uncapped instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import jax

from jaxcnn.data import data_root

ENV = "JAXCNN_COMPILE_CACHE"
"""Environment variable: a cache directory, or ``off`` to disable the cache."""
OFF = ("off", "0", "false", "no")
"""Values of :data:`ENV` (any case) that turn the cache off."""
MAX_BYTES = 1 << 30
"""Size cap of the cache directory (1 GiB)."""


def cache_dir(*, disabled: bool = False) -> Path | None:
    """The directory the command caches compiled programs in, or None when off."""
    value = os.environ.get(ENV)
    if disabled or (value is not None and value.strip().lower() in OFF):
        return None
    if value:
        return Path(value).expanduser()
    return data_root() / "compile-cache"


def enable_compile_cache(*, disabled: bool = False) -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir`; the directory used.

    Call before the first compilation of the process. A directory that cannot
    be created leaves the cache off, with one warning line on stderr (a cache
    never stops a run).
    """
    given = jax.config.values.get("jax_compilation_cache_dir")
    if given:  # the user configured JAX directly (JAX_COMPILATION_CACHE_DIR)
        return Path(given)
    path = cache_dir(disabled=disabled)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"jaxcnn: warning: compile cache off: cannot create {path}: {err}", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if importlib.util.find_spec("filelock") is not None:  # JAX's cap needs it
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
