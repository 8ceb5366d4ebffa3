"""The distributed run's own heartbeat watch (jaxcnn.cli._peers) against an in-memory store,
and the lines and commands a lost process gets (_cluster, _launch).

The real thing (2 processes x 2 CPU devices, one SIGKILLed) is in test_distributed_cli.py;
here the key-value store is a dict, the peers are values the test writes, and every wait is
bounded by a multiple of the watch's own timeout.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import pytest

from jaxcnn.cli._cluster import _Lost, resume_command
from jaxcnn.cli._launch import _resume
from jaxcnn.cli._peers import KEY, LATE, LEFT, PeerWatch, jax_heartbeat_timeout

TIMEOUT = 1.0  # seconds of silence after which the watch names a peer (it reads 4 times a second)
WAIT = 30.0  # a bound no passing run comes near (the watch decides within ~TIMEOUT + 0.25 s)


class Store:
    """JAX's key-value client, as the watch uses it."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.lock = threading.Lock()
        self.broken = False

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        with self.lock:
            if self.broken:
                raise RuntimeError("UNAVAILABLE: Failed to send RPC to coordination service")
            assert allow_overwrite or key not in self.values
            self.values[key] = value

    def key_value_dir_get(self, key: str) -> list[tuple[str, str]]:
        with self.lock:
            if self.broken:
                raise RuntimeError("UNAVAILABLE: Failed to send RPC to coordination service")
            return [(k, v) for k, v in self.values.items() if k.startswith(key)]


class Verdicts:
    """``on_lost``: records the calls (the CLI's prints a line and exits instead)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.called = threading.Event()

    def __call__(self, process: int, unreachable: bool) -> None:
        self.calls.append((process, unreachable))
        self.called.set()


def watch(store: Store, process: int = 0, count: int = 3) -> tuple[PeerWatch, Verdicts]:
    verdicts = Verdicts()
    return PeerWatch(store, process, count, TIMEOUT, verdicts).start(), verdicts


def beat_until(store: Store, peer: int, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        n = 0
        while not stop.wait(TIMEOUT / 8):
            n += 1
            with store.lock:  # the peer's own beats, not through this process's client
                store.values[f"{KEY}{peer}"] = str(n)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_silent_peer_is_named_and_a_beating_one_is_not() -> None:
    store, stop = Store(), threading.Event()
    beat_until(store, 1, stop)  # process 2 never beats
    started = time.monotonic()
    peers, verdicts = watch(store)
    try:
        assert verdicts.called.wait(WAIT)
        assert time.monotonic() - started > TIMEOUT  # never before the timeout
        assert verdicts.calls == [(2, False)]
        assert store.values[f"{KEY}0"].isdigit()  # it beats itself
    finally:
        stop.set()
        peers.stop()


def test_a_peer_that_stops_beating_later_is_named() -> None:
    store, stop = Store(), threading.Event()
    beat_until(store, 1, stop)
    peers, verdicts = watch(store, count=2)
    try:
        assert not verdicts.called.wait(3 * TIMEOUT)  # alive: nothing said
        stop.set()  # process 1 "dies"
        assert verdicts.called.wait(WAIT)
        assert verdicts.calls == [(1, False)]
    finally:
        peers.stop()


def test_a_peer_that_left_is_not_named_and_stop_leaves() -> None:
    store = Store()
    store.values[f"{KEY}1"] = LEFT  # process 1 ended on purpose
    peers, verdicts = watch(store, count=2)
    assert not verdicts.called.wait(3 * TIMEOUT)
    peers.stop()
    assert store.values[f"{KEY}0"] == LEFT  # its peers stop watching it
    assert verdicts.calls == []


def test_a_store_that_stops_answering_names_the_coordinator() -> None:
    store, stop = Store(), threading.Event()
    beat_until(store, 0, stop)
    peers, verdicts = watch(store, process=1, count=2)
    try:
        store.broken = True  # process 0, which holds the store, is gone
        assert verdicts.called.wait(WAIT)
        assert verdicts.calls == [(0, True)]
    finally:
        stop.set()
        peers.stop()


def test_settle_returns_once_every_peer_has_beaten_again() -> None:
    store, stop = Store(), threading.Event()
    beat_until(store, 1, stop)
    peers, verdicts = watch(store, count=2)
    try:
        started = time.monotonic()
        peers.settle()  # the peer is alive: it returns on the next beat or two it reads
        assert time.monotonic() - started < LATE  # not the full TIMEOUT + 3 beats + LATE
        assert verdicts.calls == []
    finally:
        stop.set()
        peers.stop()


def test_jax_heartbeat_timeout_leaves_the_watch_room() -> None:
    # JAX may declare a silent process dead after half its heartbeat timeout (measured:
    # 13.6-20.5 s after a SIGKILL with 20 s); the watch needs --peer-timeout plus a beat.
    for timeout in (1, 10, 60):
        assert jax_heartbeat_timeout(timeout) / 2 >= timeout + 1 + 5


@pytest.mark.parametrize(
    ("argv", "resumed"),
    [
        (["train", "shapes", "--out", "r"], ["train", "shapes", "--out", "r", "--resume"]),
        (["train", "shapes", "--overwrite"], ["train", "shapes", "--resume"]),
        (["train", "shapes", "--overw", "--quiet"], ["train", "shapes", "--quiet", "--resume"]),
        (["train", "shapes", "--resume"], ["train", "shapes", "--resume"]),
        (["--no-compile-cache", "train", "x"], ["--no-compile-cache", "train", "x", "--resume"]),
    ],
)
def test_resume_command(argv: list[str], resumed: list[str]) -> None:
    assert resume_command(argv) == resumed


def test_the_lost_line(tmp_path: Path) -> None:
    checkpoint = tmp_path / "my run" / "checkpoint.npz"
    lost = _Lost(3, 60, checkpoint)
    argv = ["train", "shapes", "--out", str(tmp_path / "my run"), "--overwrite"]
    quoted = f"'{tmp_path}/my run'"
    assert lost.line(2, False, argv) == (
        f"jaxcnn train: error: lost process 2 of 3 (no heartbeat for 60 s, --peer-timeout), so "
        f"this process stops too; no epoch had finished ({checkpoint} does not exist): start "
        f"every process again with jaxcnn train shapes --out {quoted} --overwrite"
    )
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    assert lost.line(0, True, argv) == (
        f"jaxcnn train: error: lost process 0 of 3 (the coordinator, which stopped answering), "
        f"so this process stops too; resume from {checkpoint}: start every process again with "
        f"jaxcnn train shapes --out {quoted} --resume"
    )


def test_the_launch_resume_command() -> None:
    args = argparse.Namespace(processes=2, devices_per_process=2, port=None, grace=10.0)
    command = ["train", "shapes", "--epochs", "4", "--overwrite"]
    assert _resume(args, command) == (
        "jaxcnn launch -n 2 --devices-per-process 2 -- train shapes --epochs 4 --resume"
    )
    args = argparse.Namespace(processes=3, devices_per_process=1, port=1234, grace=2.5)
    assert _resume(args, ["train", "shapes"]) == (
        "jaxcnn launch -n 3 --devices-per-process 1 --port 1234 --grace 2.5 -- train shapes "
        "--resume"
    )
