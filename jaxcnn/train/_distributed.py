"""Joining a multi-process run: ``jax.distributed.initialize`` with bounded waits.

JAX's multi-controller runtime runs the same program in every process; after
:func:`init_distributed`, ``jax.devices()`` lists the devices of every
process and ``fit(..., devices=jax.device_count())`` trains over all of them
(each process feeding its own share of every batch, see ``_feed``).

Where a process dies, JAX's coordination service stops the others: a process
that misses heartbeats for ``timeout`` seconds is declared dead and every
other process is terminated with "Terminating process because the JAX
distributed service detected fatal errors ... another task died" (a peer
blocked in a collective with the dead process may see a gloo/NCCL error
first). A process that cannot reach all the others within ``connect_timeout``
seconds is terminated the same way. So no process waits forever.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax

from jaxcnn.errors import InputError, JaxcnnError

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
ENVIRONMENT = (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
"""The environment variables :func:`init_distributed` reads for its missing arguments."""

_UNSET = (
    f" (set {ENV_COORDINATOR}=host:port, {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID}, pass them "
    f"as arguments, or run under Slurm, Open MPI or Kubernetes, which JAX detects)"
)

DEFAULT_TIMEOUT = 60
"""Seconds: connection wait, heartbeat timeout and shutdown wait (JAX's defaults: 300/100/300)."""


class DistributedError(JaxcnnError, RuntimeError):
    """Joining a multi-process run failed (bad settings, or JAX already started)."""


class Cluster(NamedTuple):
    """Where this process stands in a multi-process run."""

    process_id: int  # 0 .. num_processes - 1; process 0 writes files
    num_processes: int
    coordinator_address: str | None  # host:port of process 0's coordinator (None: detected)


def cluster_from_environment(
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, int | None, int | None]:
    """``(coordinator_address, num_processes, process_id)`` from the ``JAX_*`` variables.

    Unset variables give ``None`` (JAX then tries to detect them: Slurm, Open
    MPI, Kubernetes, Cloud TPU).
    """
    environ = os.environ if environ is None else environ
    address = environ.get(ENV_COORDINATOR) or None
    return (
        address,
        _int_variable(environ, ENV_NUM_PROCESSES),
        _int_variable(environ, ENV_PROCESS_ID),
    )


def _int_variable(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise DistributedError(
            f"init_distributed: environment variable {name} must be an integer, got {text!r}"
        ) from None


def init_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout: int = DEFAULT_TIMEOUT,
    connect_timeout: int | None = None,
    heartbeat_timeout: int | None = None,
    local_device_ids: Sequence[int] | None = None,
) -> Cluster:
    """Join the multi-process run (``jax.distributed.initialize``); call before any jax work.

    Missing arguments come from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, then from JAX's cluster
    detection (Slurm, Open MPI, Kubernetes, Cloud TPU). On CPU the
    cross-process collectives are gloo's (TCP). JAX's preemption service is
    turned off: its SIGTERM handler would otherwise keep a process running
    after ``kill`` (a scheduler's stop signal).

    Args:
      coordinator_address: ``host:port`` of process 0 (which starts the
        coordinator there); every process passes the same.
      num_processes: how many processes take part.
      process_id: this process's number, ``0 .. num_processes - 1``.
      timeout: seconds a process may go without a heartbeat before the
        others are stopped; also the wait at shutdown.
      connect_timeout: seconds to wait for every process to connect
        (default ``timeout``).
      heartbeat_timeout: JAX's own heartbeat timeout, when it differs from
        ``timeout`` (default ``timeout``): a caller that watches its peers
        itself (``jaxcnn train``) makes JAX's verdict the later one.
      local_device_ids: optional: the accelerators this process uses
        (``JAX_LOCAL_DEVICE_IDS``; ignored on CPU).

    Returns:
      :class:`Cluster` of this process.

    Raises:
      DistributedError: bad settings, a second call, or jax already running
        computations in this process.
    """
    if jax.distributed.is_initialized():
        raise DistributedError("init_distributed: this process has already joined a run")
    found = cluster_from_environment()
    address = coordinator_address or found[0]
    count = num_processes if num_processes is not None else found[1]
    index = process_id if process_id is not None else found[2]
    timeout = _seconds("timeout", timeout)
    connect = timeout if connect_timeout is None else _seconds("connect_timeout", connect_timeout)
    heartbeat = (
        timeout if heartbeat_timeout is None else _seconds("heartbeat_timeout", heartbeat_timeout)
    )
    _check_ids(count, index)
    if jax.config.jax_cpu_collectives_implementation is None:  # type: ignore[attr-defined]
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_enable_preemption_service", False)
    try:
        jax.distributed.initialize(
            address,
            count,
            index,
            local_device_ids=local_device_ids,
            initialization_timeout=connect,
            heartbeat_timeout_seconds=heartbeat,
            shutdown_timeout_seconds=timeout,
        )
    except (RuntimeError, ValueError, TypeError) as err:
        hint = "" if address and count is not None and index is not None else _UNSET
        raise DistributedError(f"init_distributed: {err}{hint}") from err
    return Cluster(jax.process_index(), jax.process_count(), address)


def _seconds(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"init_distributed: {name} must be an int >= 1 (seconds), got {value!r}")
    return value


def _check_ids(count: int | None, index: int | None) -> None:
    if count is not None and count < 1:
        raise DistributedError(f"init_distributed: num_processes must be >= 1, got {count}")
    if count is not None and index is not None and not 0 <= index < count:
        raise DistributedError(
            f"init_distributed: process_id must be in 0..{count - 1} "
            f"(num_processes={count}), got {index}"
        )
