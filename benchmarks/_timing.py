"""Timing, compile-time and machine helpers for ``python -m benchmarks``.

Every benchmark follows one protocol: the first call (compilation and the
first run) is excluded, one more call warms up, then ``repeats`` timed calls,
each waited for with ``jax.block_until_ready``; the reported time is their
median. Compile time is read from JAX's own monitoring events (trace, lower to
MLIR and XLA backend compile) for the function being measured.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn.train import EPOCH_COMPILER_OPTIONS

COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
BACKEND_COMPILE = COMPILE_EVENTS[2]


class CompileLog:
    """Durations of JAX's compile stages, per function name, while active."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, float]] = []  # (event, function name, seconds)
        self.active = False

    def record(self, event: str, duration_secs: float, **kwargs: str | int) -> None:
        if self.active and event in COMPILE_EVENTS:
            self.events.append((event, str(kwargs.get("fun_name", "")), duration_secs))

    def seconds(self, name_part: str) -> float:
        """Total trace + lower + compile time of functions whose name contains ``name_part``."""
        return sum(s for _, name, s in self.events if name_part in name)

    def compiles(self, name_part: str) -> int:
        """How many XLA compilations of functions whose name contains ``name_part``."""
        return sum(
            1 for event, name, _ in self.events if event == BACKEND_COMPILE and name_part in name
        )


_LOG = CompileLog()
_REGISTERED = False


@contextmanager
def compile_log() -> Iterator[CompileLog]:
    """Collect compile events for the duration of the ``with`` block."""
    global _REGISTERED
    if not _REGISTERED:  # listeners cannot be removed one by one: register once
        jax.monitoring.register_event_duration_secs_listener(_LOG.record)
        _REGISTERED = True
    log = CompileLog()
    _LOG.events, _LOG.active = log.events, True
    try:
        yield log
    finally:
        _LOG.active = False


def timed_calls(call: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``call`` (each blocked on), after one warm-up."""
    jax.block_until_ready(call())
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(call())
        seconds.append(time.perf_counter() - started)
    return seconds


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def in_loop(fn: Callable[..., Any], length: int) -> Callable[..., Any]:
    """``fn(*args)`` run ``length`` times inside one ``lax.scan`` (as training runs it).

    Every floating-point array in ``args`` is carried through the loop and one
    of its elements bumped by ``step`` (zero at run time, unknown to the
    compiler) in place each iteration, so no part of ``fn`` can be hoisted out
    of the loop as loop-invariant (a gradient that depends only on the weights
    and the cotangent, say); every output is carried too, so none can be
    skipped.
    """

    def bump(leaf: Any, step: jax.Array) -> Any:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        return leaf.at[(0,) * leaf.ndim].add(step.astype(leaf.dtype))

    def looped(step: jax.Array, *args: Any) -> Any:
        def body(carry: Any, _: Any) -> tuple[Any, None]:
            current, _ = carry
            current = jax.tree.map(lambda leaf: bump(leaf, step), current)
            return (current, fn(*current)), None

        shapes = jax.eval_shape(fn, *args)
        start = (args, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))
        return lax.scan(body, start, None, length=length)[0][1]

    return jax.jit(looped, compiler_options=EPOCH_COMPILER_OPTIONS)


def time_in_loop(
    fn: Callable[..., Any], args: tuple[Any, ...], *, length: int, repeats: int
) -> float:
    """Median seconds of one call of ``fn`` measured inside a ``length``-step ``lax.scan``."""
    looped = in_loop(fn, length)
    step = jnp.zeros((), jnp.float32)
    return median(timed_calls(_bound(looped, step, *args), repeats)) / length


def matmul_peak(sizes: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """The machine's fp32 matmul rate: best GFLOP/s of jitted square ``a @ b`` over ``sizes``.

    Each size is timed with XLA's default CPU options and with jaxcnn's epoch
    options (``jaxcnn.train.EPOCH_COMPILER_OPTIONS``); the best rate counts.
    """
    rng = np.random.default_rng(0)
    rates: dict[str, float] = {}
    for n in sizes:
        a = jnp.asarray(rng.standard_normal((n, n), np.float32))
        b = jnp.asarray(rng.standard_normal((n, n), np.float32))
        for options in ({}, EPOCH_COMPILER_OPTIONS):
            matmul = jax.jit(jnp.matmul, compiler_options=options)
            seconds = median(timed_calls(_bound(matmul, a, b), repeats))
            rates[str(n)] = max(rates.get(str(n), 0.0), 2 * n**3 / seconds / 1e9)
    return {"gflops": max(rates.values()), "by_size": rates}


def _bound(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    def call() -> Any:
        return fn(*args)

    return call


def machine_info() -> dict[str, Any]:
    """CPU, cores, versions, date and load: what docs/benchmarks.md states."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in ("jax", "jaxlib", "numpy", "optax", "torch")},
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": list(os.getloadavg()),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
