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
prints one line and exits with code 2. One whose peer dies (or hangs) during
the run is told by :mod:`jaxcnn.cli._peers` within ``--peer-timeout`` seconds:
it prints one line naming the lost process and the ``--resume`` command, and
exits with code 4. Only the loss of process 0, which hosts JAX's coordination
service, cannot be reported so: JAX aborts the others first (exit code 134),
and ``jaxcnn launch`` names it instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax

from jaxcnn import train
from jaxcnn.cli._common import EXIT_PEER_LOST, EXIT_USAGE, UsageError, positive
from jaxcnn.cli._peers import PeerWatch, jax_heartbeat_timeout
from jaxcnn.errors import JaxcnnError
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
        return train.init_distributed(
            timeout=timeout,
            connect_timeout=timeout + CONNECT_GRACE,
            heartbeat_timeout=jax_heartbeat_timeout(timeout),
        )
    finally:
        watchdog.cancel()


@contextlib.contextmanager
def joined(args: argparse.Namespace, checkpoint: Path) -> Iterator[train.Cluster | None]:
    """:func:`join`, then watch the other processes for the block; ``None`` when not distributed.

    A lost process ends this one with one line and exit code 4
    (:class:`_Lost`). An unexpected error in the block that a lost peer
    can cause (gloo's "Connection reset by peer" in a collective) waits up to
    ``--peer-timeout`` seconds for the watch's verdict before it propagates.
    """
    cluster = join(args)
    if cluster is None or cluster.num_processes < 2:
        yield cluster
        return
    client = _runtime_client()
    if client is None:  # a jax without the key-value client: JAX's own verdict only
        yield cluster
        return
    lost = _Lost(cluster.num_processes, args.peer_timeout, checkpoint)
    watch = PeerWatch(client, cluster.process_id, cluster.num_processes, args.peer_timeout, lost)
    watch.start()
    try:
        yield cluster
    except (JaxcnnError, KeyboardInterrupt):
        raise
    except Exception:
        watch.settle()
        raise
    finally:
        watch.stop()


def _runtime_client() -> Any:
    """JAX's distributed runtime client (key-value store), or ``None``.

    Private to JAX (``jax._src.distributed.global_state.client``, which
    jax.experimental.multihost_utils uses too); checked, not assumed.
    """
    try:
        from jax._src import distributed
    except ImportError:
        return None
    client = getattr(getattr(distributed, "global_state", None), "client", None)
    needed = ("key_value_set", "key_value_dir_get")
    return client if all(hasattr(client, name) for name in needed) else None


class _Lost:
    """``on_lost`` of the watch: one line naming the lost process and how to go on; exit 4."""

    def __init__(self, count: int, timeout: int, checkpoint: Path) -> None:
        self.count, self.timeout, self.checkpoint = count, timeout, checkpoint

    def __call__(self, process: int, unreachable: bool) -> None:
        print(self.line(process, unreachable, sys.argv[1:]), file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_PEER_LOST)  # the main thread may be blocked in a collective with it

    def line(self, process: int, unreachable: bool, argv: Sequence[str]) -> str:
        """The line, for this process's command line ``argv`` (without the program)."""
        why = (
            "the coordinator, which stopped answering"
            if unreachable
            else f"no heartbeat for {self.timeout} s, --peer-timeout"
        )
        command: Sequence[str]
        if self.checkpoint.exists():
            again, command = f"resume from {self.checkpoint}", resume_command(argv)
        else:
            again, command = f"no epoch had finished ({self.checkpoint} does not exist)", argv
        return (
            f"jaxcnn train: error: lost process {process} of {self.count} ({why}), so this "
            f"process stops too; {again}: start every process again with "
            f"{shlex.join(['jaxcnn', *command])}"
        )


def resume_command(argv: Sequence[str]) -> list[str]:
    """``argv`` (a ``train`` command line) continuing its run: ``--resume``, not ``--overwrite``."""
    kept = [word for word in argv if not (len(word) > 3 and "--overwrite".startswith(word))]
    return kept if "--resume" in kept else [*kept, "--resume"]


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
