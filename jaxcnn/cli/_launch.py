"""``jaxcnn launch -n N -- train ...``: start N local processes of one distributed run.

For trying multi-process training on one machine (real clusters use their own
launcher: ``srun`` on Slurm, an indexed Job or JobSet on Kubernetes; see
docs/scaling.md). Each process runs ``python -m jaxcnn <command...>`` with

* ``JAX_COORDINATOR_ADDRESS=127.0.0.1:<port>`` (loopback; a free port unless
  ``--port``), ``JAX_NUM_PROCESSES=N``, ``JAX_PROCESS_ID=i``;
* ``--devices-per-process K`` devices: on CPU ``K`` forced host devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=K``), on GPUs the
  accelerators ``i*K .. i*K+K-1`` (``JAX_LOCAL_DEVICE_IDS``).

Process 0's output goes straight to this terminal; the others' lines are
prefixed with ``[process i]``. When a process fails (exit code other than 0,
or killed by a signal), the launcher stops the others (SIGTERM, then SIGKILL
after ``--grace`` seconds), says which process failed first, and exits with
its exit code (128 + the signal number for a signal). When that process was
lost (killed by a signal, stopped by one, or exit code 4: it lost a peer)
rather than failing with an error of its own, the same line gives the
``jaxcnn launch ... --resume`` command that continues the run from its last
checkpoint: the launcher names process 0's loss too, which the processes
themselves cannot (see ``_peers``). Ctrl-C or SIGTERM to the launcher stops
every process the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

from jaxcnn.cli._cluster import resume_command
from jaxcnn.cli._common import EXIT_INTERRUPTED, EXIT_PEER_LOST, UsageError, positive
from jaxcnn.train._distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID

FORCE_DEVICES = "--xla_force_host_platform_device_count"
POLL_SECONDS = 0.1
GRACE = 10.0
"""Default ``--grace``: seconds the others get to stop after a failure."""
EXIT_TERMINATED = 128 + signal.SIGTERM


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``launch`` subcommand."""
    parser = subparsers.add_parser(
        "launch",
        help="start N local processes of one distributed run (for trying it on one machine)",
        description=(
            "Start N processes of 'jaxcnn COMMAND ...' on this machine, joined through a "
            "loopback coordinator, e.g. 'jaxcnn launch -n 2 -- train shapes --out runs/two'."
        ),
    )
    parser.add_argument("-n", "--processes", type=positive(int), required=True, metavar="N")
    parser.add_argument(
        "--devices-per-process",
        type=positive(int),
        default=1,
        metavar="K",
        help="CPU: forced host devices per process; GPU: accelerators per process (default 1)",
    )
    parser.add_argument(
        "--port", type=_port, help="coordinator port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--grace",
        type=positive(float),
        default=GRACE,
        metavar="SECONDS",
        help=f"after a failure, how long the others get to stop before SIGKILL (default {GRACE:g})",
    )
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="the jaxcnn command to run, after '--'"
    )
    parser.set_defaults(handler=run_launch)


def _port(text: str) -> int:
    port = positive(int)(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1..65535), got {text!r}")
    return int(port)


def run_launch(args: argparse.Namespace) -> int:
    """Start the processes, relay their output, stop them all when one fails."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("launch: give the command to run after '--', e.g. -- train shapes")
    if command[0] != "train":
        raise UsageError(
            f"launch: only 'train' runs as several processes, got {command[0]!r} "
            f"(e.g. jaxcnn launch -n 2 -- train shapes)"
        )
    port = args.port if args.port is not None else free_port()
    resume = _resume(args, command)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with _processes(command, args.processes, args.devices_per_process, port) as processes:
            return _supervise(processes, args.grace, resume)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _resume(args: argparse.Namespace, command: Sequence[str]) -> str:
    """The launch command that continues this run from its last checkpoint (shell-quoted)."""
    launch = ["jaxcnn", "launch", "-n", str(args.processes)]
    launch += ["--devices-per-process", str(args.devices_per_process)]
    launch += [] if args.port is None else ["--port", str(args.port)]
    launch += [] if args.grace == GRACE else ["--grace", f"{args.grace:g}"]
    return shlex.join([*launch, "--", *resume_command(command)])


class _StopRequestError(Exception):
    """The launcher itself was told to stop (SIGTERM)."""


def _terminated(signum: int, frame: Any) -> None:
    raise _StopRequestError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_environment(
    index: int, count: int, devices: int, port: int, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of process ``index`` of ``count`` (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    flags = [
        flag for flag in env.get("XLA_FLAGS", "").split() if not flag.startswith(FORCE_DEVICES)
    ]
    env |= {
        ENV_COORDINATOR: f"127.0.0.1:{port}",
        ENV_NUM_PROCESSES: str(count),
        ENV_PROCESS_ID: str(index),
        "XLA_FLAGS": " ".join([*flags, f"{FORCE_DEVICES}={devices}"]),
        "JAX_LOCAL_DEVICE_IDS": ",".join(str(index * devices + k) for k in range(devices)),
        "PYTHONUNBUFFERED": "1",
    }
    return env


@contextlib.contextmanager
def _processes(
    command: Sequence[str], count: int, devices: int, port: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the processes; on leaving, make sure none is left running."""
    processes: list[subprocess.Popen[bytes]] = []
    relays: list[threading.Thread] = []
    try:
        for index in range(count):
            piped = index > 0
            process = subprocess.Popen(
                [sys.executable, "-m", "jaxcnn", *command],
                env=process_environment(index, count, devices, port),
                stdout=subprocess.PIPE if piped else None,
                stderr=subprocess.PIPE if piped else None,
            )
            processes.append(process)
            if process.stdout is not None and process.stderr is not None:  # piped
                relays += [
                    _relay(process.stdout, sys.stdout, index),
                    _relay(process.stderr, sys.stderr, index),
                ]
        yield processes
    finally:
        _stop(processes, grace=1.0)
        for relay in relays:
            relay.join(timeout=5)


def _relay(source: IO[bytes], target: IO[str], index: int) -> threading.Thread:
    """Copy ``source`` to ``target`` line by line, prefixed with ``[process index]``."""

    def copy() -> None:
        for line in iter(source.readline, b""):
            text = line.decode("utf-8", "replace")
            target.write(f"[process {index}] {text}")
            target.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def _supervise(processes: list[subprocess.Popen[bytes]], grace: float, resume: str) -> int:
    """Wait for all to finish; on the first failure stop the rest; the launch's exit code."""
    try:
        while True:
            codes = [process.poll() for process in processes]
            failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                index, code = failed[0]
                return _fail(processes, index, int(code or 0), grace, resume)
            if all(code == 0 for code in codes):
                return 0
            time.sleep(POLL_SECONDS)
    except (KeyboardInterrupt, _StopRequestError) as stop:
        what = "interrupted" if isinstance(stop, KeyboardInterrupt) else "terminated"
        print(f"jaxcnn launch: {what}; stopping every process", file=sys.stderr, flush=True)
        _stop(processes, grace)
        return EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else EXIT_TERMINATED


def _fail(
    processes: list[subprocess.Popen[bytes]], index: int, code: int, grace: float, resume: str
) -> int:
    running = [p for p in processes if p.poll() is None]
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    stopping = f"; stopping the other {len(running)}" if running else ""
    lost = code < 0 or code == EXIT_PEER_LOST or code > 128  # not an error of its own
    again = f"; to resume from the last checkpoint: {resume}" if lost else ""
    print(f"jaxcnn launch: process {index} {how}{stopping}{again}", file=sys.stderr, flush=True)
    _stop(processes, grace)
    return 128 - code if code < 0 else code


def _stop(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every running process, SIGKILL those still running after ``grace`` seconds."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
