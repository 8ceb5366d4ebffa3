"""``jaxcnn train --distributed``: join a multi-process run before jax starts; process 0 writes.

A run is distributed when ``--distributed`` is given or ``JAX_COORDINATOR_ADDRESS``
is set. Every process then runs the same ``jaxcnn train`` command line;
:func:`join` calls :func:`jaxcnn.train.init_distributed` with
``--peer-timeout`` and training uses every device of every process. Only
process 0 (:attr:`Cluster.process_id`) writes the checkpoint, the history and
any output; ``--out`` must be storage every process can read (the same
folder on one machine, a shared file system across hosts) so that
``--resume`` finds the checkpoint in each of them.

A process that cannot reach the others within ``--peer-timeout`` seconds
prints one line and exits with code 2; one whose peer dies during training is
stopped by JAX's coordination service within ``--peer-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

import jax

from jaxcnn import train
from jaxcnn.cli._common import EXIT_USAGE, UsageError, positive
from jaxcnn.train._distributed import (
    DEFAULT_TIMEOUT,
    ENV_COORDINATOR,
    ENV_NUM_PROCESSES,
    ENV_PROCESS_ID,
    cluster_from_environment,
)

CONNECT_GRACE = 15
"""Seconds JAX's own connection timeout exceeds ``--peer-timeout``, so that
:func:`join`'s watchdog reports a failed connection (one line) before JAX aborts."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--distributed`` and ``--peer-timeout`` to the ``train`` parser."""
    group = parser.add_argument_group("multi-process training (docs/scaling.md)")
    group.add_argument(
        "--distributed",
        action="store_true",
        help=(
            f"join a multi-process run (jax.distributed) and train over every device of every "
            f"process: {ENV_COORDINATOR}, {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} name it, "
            f"or Slurm / Open MPI / Kubernetes are detected; implied when {ENV_COORDINATOR} "
            f"is set. Start the processes with 'jaxcnn launch' on one machine"
        ),
    )
    group.add_argument(
        "--peer-timeout",
        type=positive(int),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=(
            f"with --distributed: how long to wait for every process to connect, and how long "
            f"a silent (dead) process may go unnoticed before the others stop "
            f"(default {DEFAULT_TIMEOUT})"
        ),
    )


def wanted(args: argparse.Namespace) -> bool:
    """Whether this ``train`` command is one process of a distributed run."""
    return bool(args.distributed or os.environ.get(ENV_COORDINATOR))


def join(args: argparse.Namespace) -> train.Cluster | None:
    """Join the run (before anything else touches jax's devices); ``None`` when not distributed.

    Raises:
      UsageError: ``--devices`` given as well (every device of every process is used).
      DistributedError: bad ``JAX_*`` settings.
    """
    if not wanted(args):
        return None
    if args.devices is not None:
        raise UsageError(
            "--devices cannot be combined with --distributed: a distributed run splits every "
            "batch over every device of every process"
        )
    address, count, index = cluster_from_environment()
    timeout = args.peer_timeout
    watchdog = threading.Timer(timeout, _connection_failed, args=(address, count, index, timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        return train.init_distributed(timeout=timeout, connect_timeout=timeout + CONNECT_GRACE)
    finally:
        watchdog.cancel()


def _connection_failed(address: Any, count: Any, index: Any, timeout: int) -> None:
    """Runs in the watchdog thread while the main thread is stuck connecting: one line, exit 2."""
    where = f"the coordinator at {address}" if address else "the detected coordinator"
    who = f"process {index} of {count}" if count is not None else "this process"
    print(
        f"jaxcnn train: error: {who} could not reach every process through {where} within "
        f"{timeout} s (--peer-timeout); start all processes with the same {ENV_COORDINATOR} "
        f"and {ENV_NUM_PROCESSES}, each with its own {ENV_PROCESS_ID} (docs/scaling.md)",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(EXIT_USAGE)  # the main thread is blocked inside JAX's connect call


def describe(cluster: train.Cluster) -> str:
    """One line for process 0's log."""
    where = f" through {cluster.coordinator_address}" if cluster.coordinator_address else ""
    return (
        f"joined a run of {cluster.num_processes} processes{where}: "
        f"{jax.device_count()} {jax.devices()[0].platform} devices, "
        f"{jax.local_device_count()} in process 0, which writes the run directory"
    )
