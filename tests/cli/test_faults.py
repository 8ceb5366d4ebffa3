"""Faults injected into real ``jaxcnn train`` processes: concurrent runs, signals, kills, full disk.

Each child is ``python -c CHILD`` running the real command on 400 shapes
(``HOOK`` code may slow a write first); the parent signals or kills it at a
chosen point and checks what is left on disk, then resumes in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxcnn.cli import _run_dir
from jaxcnn.train import load_checkpoint
from tests.cli.test_cli import assert_usage_error, run, small_shapes

__all__ = ["small_shapes"]  # the autouse fixture: 400 shapes instead of 4000

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys
from jaxcnn.cli import _train, main
from jaxcnn.data import shapes_data
_train.DATA["shapes"] = lambda seed: shapes_data(seed, 200)
{hook}
sys.exit(main(sys.argv[1:]))
"""
SLOW_SECOND_CHECKPOINT = """
import pathlib, time
import numpy as np
real_savez, calls = np.savez, []
def slow_savez(file, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # inside epoch 2's checkpoint write: half a file, then wait
        file.write(b"PK\\x03\\x04 half a checkpoint")
        file.flush()
        pathlib.Path({inside!r}).touch()
        time.sleep(300)
    return real_savez(file, *args, **kwargs)
np.savez = slow_savez
"""


def start(args: list[str], hook: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD.format(hook=hook), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 240
    while not condition():
        if child.poll() is not None:
            pytest.fail(f"the child ended early ({child.returncode}): {child.communicate()}")
        assert time.monotonic() < deadline, "timed out waiting for the child"
        time.sleep(0.05)


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), pytest.param(signal.SIGHUP, 129, marks=pytest.mark.slow)],
)
def test_a_second_run_is_refused_and_a_signal_stops_the_first_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], signum: int, code: int
) -> None:
    out = tmp_path / "run"
    first = start(["train", "shapes", "--epochs", "1000000", "--out", str(out), "--quiet"])
    try:
        # Both files of epoch 1: a signal between the checkpoint's write and the first
        # history's would leave no history.json to read below.
        wait_for(
            lambda: (out / "checkpoint.npz").exists() and (out / "history.json").exists(), first
        )
        holder = rf"\(pid {first.pid} on host {socket.gethostname()} since [-0-9T:+]+\)"
        for extra in ([], ["--resume"], ["--overwrite"]):
            result = run(["train", "shapes", "--out", str(out), "--epochs", "2", *extra], capsys)
            assert_usage_error(result, rf"is in use by another jaxcnn train {holder}")
        first.send_signal(signum)
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == code
    assert stderr == f"jaxcnn train: terminated by {signal.Signals(signum).name}\n"
    assert leftovers(out) == []  # no lock file, no temporary
    checkpoint = load_checkpoint(out / "checkpoint.npz")
    assert checkpoint.epoch >= 1
    assert checkpoint.history is not None
    assert len(checkpoint.history["train_loss"]) == checkpoint.epoch
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history["train_loss"]) in (checkpoint.epoch - 1, checkpoint.epoch)
    epochs = str(checkpoint.epoch + 1)
    code_, _, err = run(
        ["train", "shapes", "--out", str(out), "--epochs", epochs, "--resume"], capsys
    )
    assert code_ == 0
    assert "note" not in err


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_write_loses_nothing_and_the_resume_is_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, inside = tmp_path / "run", tmp_path / "inside"
    child = start(
        ["train", "shapes", "--epochs", "3", "--out", str(out)],
        hook=SLOW_SECOND_CHECKPOINT.format(inside=str(inside)),
    )
    try:
        wait_for(inside.exists, child)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    assert load_checkpoint(out / "checkpoint.npz").epoch == 1  # epoch 2's write never landed
    (temporary,) = [name for name in leftovers(out) if name.endswith(".tmp")]
    assert temporary.startswith(f".checkpoint.npz.{child.pid}.")
    assert json.loads((out / _run_dir.LOCK).read_text())["pid"] == child.pid  # a stale lock

    code, _, err = run(["train", "shapes", "--epochs", "3", "--out", str(out), "--resume"], capsys)
    assert code == 0
    assert f"took over the lock of a run that is no longer running (pid {child.pid} " in err
    assert f"removed 1 leftover file(s) of a killed run: {temporary}" in err
    assert leftovers(out) == []
    straight = tmp_path / "straight"
    assert run(["train", "shapes", "--epochs", "3", "--out", str(straight)], capsys)[0] == 0
    a, b = load_checkpoint(out / "checkpoint.npz"), load_checkpoint(straight / "checkpoint.npz")
    assert a.history == b.history
    for x, y in zip(
        jax.tree.leaves((a.params, a.opt_state)),
        jax.tree.leaves((b.params, b.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


FULL_DISK_CHILD = """
import errno, json, os, sys
import numpy as np
from jaxcnn.cli import _train, main
from jaxcnn.data import Data, DataSource, arrays_sha256

def tiny_mnist(seed):
    rng = np.random.default_rng(seed)
    def split(n):
        return rng.random((n, 28, 28, 1), np.float32), rng.integers(0, 10, n).astype(np.int32)
    train, test = split(64), split(16)
    return Data(train, test, DataSource("mnist", arrays_sha256(*train, *test)))

_train.DATA["mnist-dense"] = tiny_mnist
disk, out = sys.argv[1], os.path.join(sys.argv[1], "run")
args = ["train", "mnist-dense", "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "32"]
args += ["--out", out, "--quiet"]  # an SGD checkpoint of 407 KB: two fit in the 2 MiB disk
report = {"first": main([*args, "--epochs", "1"])}
checkpoint = os.path.join(out, "checkpoint.npz")
report["size"] = os.path.getsize(checkpoint)
before = open(checkpoint, "rb").read()
filler = os.path.join(disk, "filler")
with open(filler, "wb") as handle:  # fill the disk, then free 128 KiB (room for a lock file)
    try:
        while True:
            handle.write(bytes(65536))
            handle.flush()
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
    handle.truncate(max(0, handle.tell() - 131072))
report["full"] = main([*args, "--epochs", "2", "--resume"])
report["intact"] = open(checkpoint, "rb").read() == before
report["files"] = sorted(os.listdir(out))
os.remove(filler)
report["after"] = main([*args, "--epochs", "2", "--resume"])
print(json.dumps(report))
"""


def can_mount_tmpfs(folder: Path) -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c"]
    probe += [f"mount -t tmpfs -o size=64k tmpfs {folder}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@pytest.mark.slow
def test_a_real_full_disk_keeps_the_old_checkpoint_and_names_the_file(tmp_path: Path) -> None:
    # A 2 MiB tmpfs in a private mount namespace (no root needed where user namespaces are
    # allowed); elsewhere the injected-ENOSPC tests (tests/test_io.py, test_run_dir.py) cover it.
    disk = tmp_path / "disk"
    disk.mkdir()
    if not can_mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (needs unprivileged user namespaces)")
    command = f'mount -t tmpfs -o size=2m tmpfs "$0" && exec "{sys.executable}" -c "$1" "$0"'
    result = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            command,
            str(disk),
            FULL_DISK_CHILD,
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["first"] == 0
    assert report["size"] > 131072  # the free space left is smaller than a checkpoint
    assert report["full"] == 2
    assert "cannot write " in result.stderr
    assert "/run/checkpoint.npz: No space left on device" in result.stderr
    assert report["intact"]
    assert report["files"] == ["checkpoint.npz", "history.json"]  # no temporary, no lock
    assert report["after"] == 0
