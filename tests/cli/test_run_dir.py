"""One writer per run directory, leftovers, ``--overwrite``, devices, batch bounds, signals.

In-process tests of ``jaxcnn train``; the real concurrent processes and kills
are in ``test_faults.py``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from jaxcnn import _io, cli, train
from jaxcnn.cli import _run_dir
from jaxcnn.cli import _train as train_command
from jaxcnn.train import TrainConfig, load_checkpoint, save_checkpoint
from tests.cli.test_cli import FINAL_LINE, assert_usage_error, run, small_shapes

__all__ = ["small_shapes"]  # the autouse fixture: 400 shapes instead of 4000


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A run directory whose lock another holder (here: another open file) has."""
    out = tmp_path / "run"
    out.mkdir()
    descriptor = os.open(out / _run_dir.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder = {"pid": 4242, "host": "elsewhere", "started": "2026-11-30T12:00:00+00:00"}
    os.write(descriptor, json.dumps(holder).encode())
    yield out
    os.close(descriptor)


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", "shapes", "--epochs", "1", "--out", str(out), *extra]


def test_a_held_run_directory_refuses_a_second_train_at_once(
    held: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_data(seed: int) -> Any:
        raise AssertionError("a refused run must not load data")

    monkeypatch.setitem(train_command.DATA, "shapes", no_data)
    result = run(train_args(held), capsys)
    assert_usage_error(
        result,
        r"jaxcnn train: error: .*/run is in use by another jaxcnn train \(pid 4242 on host "
        r"elsewhere since 2026-11-30T12:00:00\+00:00\); wait for it to end, or pass another --out",
    )
    assert sorted(p.name for p in held.iterdir()) == [_run_dir.LOCK]
    assert_usage_error(run(train_args(held, "--resume"), capsys), r"is in use by another")


def test_a_lock_left_by_a_dead_process_is_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    holder = {"pid": pid, "host": socket.gethostname(), "started": "2026-11-30T12:00:00+00:00"}
    (out / _run_dir.LOCK).write_text(json.dumps(holder))
    code, stdout, err = run(train_args(out, "--quiet"), capsys)
    assert code == 0
    assert FINAL_LINE.match(stdout.strip())
    assert err == ""  # --quiet: no notes
    (out / "checkpoint.npz").unlink()
    (out / _run_dir.LOCK).write_text(json.dumps(holder))
    code, _, err = run(train_args(out), capsys)
    assert code == 0
    assert f"took over the lock of a run that is no longer running (pid {pid} on host" in err
    assert not (out / _run_dir.LOCK).exists()  # released at the end


def test_leftovers_of_killed_runs_are_removed_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run(train_args(out, "--quiet"), capsys)[0] == 0
    pid = dead_pid()
    leftovers = [f".checkpoint.npz.{pid}.0badf00d.tmp", f".history.json.{pid}.0ddba11a.tmp"]
    for name in leftovers:
        (out / name).write_bytes(b"half written")
    (out / _run_dir.DISCARDED).mkdir()
    (out / _run_dir.DISCARDED / "checkpoint.npz").write_bytes(b"old")
    code, _, err = run(train_args(out, "--epochs", "2", "--resume"), capsys)
    assert code == 0
    assert "removed 3 leftover file(s) of a killed run" in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.json"]


def test_overwrite_moves_the_old_run_out_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe: an --overwrite run killed in its first epoch left the old run in place,
    # and a later --resume silently continued the old run.
    out = tmp_path / "run"
    assert run(train_args(out, "--quiet"), capsys)[0] == 0

    def killed_in_the_first_epoch(*args: Any, **kwargs: Any) -> Any:
        assert not (out / "checkpoint.npz").exists()  # already out of the way
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", killed_in_the_first_epoch)
    code, _, err = run(train_args(out, "--overwrite"), capsys)
    assert code == 130
    assert err == "jaxcnn train: interrupted\n"
    assert sorted(p.name for p in out.iterdir()) == []
    assert_usage_error(
        run(train_args(out, "--resume"), capsys), r"--resume: .*checkpoint.npz does not exist"
    )


def rewrite_config(path: Path, **changes: Any) -> None:
    """Save ``path``'s checkpoint again with a changed config (what another run would write)."""
    old = load_checkpoint(path)
    assert old.config is not None
    config = TrainConfig(**{**old.config.to_dict(), **changes})
    save_checkpoint(
        path,
        model=old.model,
        data=old.data,
        params=old.params,
        opt_state=old.opt_state,
        epoch=old.epoch,
        key=old.key,
        config=config,
        history=old.history,
    )


def config_of(path: Path) -> TrainConfig:
    config = load_checkpoint(path / "checkpoint.npz" if path.is_dir() else path).config
    assert config is not None  # jaxcnn train records one
    return config


def test_the_device_count_is_recorded_and_a_resume_on_another_count_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run(train_args(out, "--quiet"), capsys)[0] == 0
    assert config_of(out / "checkpoint.npz").devices == 1
    assert json.loads((out / "history.json").read_text())["config"]["devices"] == 1
    rewrite_config(out / "checkpoint.npz", devices=2)  # as if run with --devices 2
    code, _, err = run(train_args(out, "--epochs", "2", "--resume"), capsys)
    assert code == 0
    assert (
        "jaxcnn train: note: the run was trained on 2 device(s) up to epoch 1; resuming on 1: "
        "the same math, but the numbers will not be bit-identical to an uninterrupted run"
    ) in err
    assert config_of(out / "checkpoint.npz").devices == 1


def test_a_batch_larger_than_the_data_is_clamped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The probe: --batch-size 320000 on 3,200 samples peaked at 23.6 GB for the result of
    # 3200, and 2000000000 died asking for 148 TB. Here: the result of 320, with a note.
    results = {}
    for batch in ("320", "2000000000"):
        out = tmp_path / batch
        code, _, err = run(train_args(out, "--batch-size", batch), capsys)
        assert code == 0
        results[batch] = load_checkpoint(out / "checkpoint.npz")
    assert (
        "jaxcnn train: note: --batch-size 2000000000 is larger than the 320 training images; "
        "each epoch is one step over all of them"
    ) in err
    assert config_of(out).batch_size == 2000000000  # recorded as given
    for a, b in zip(
        jax.tree.leaves(results["320"].params),
        jax.tree.leaves(results["2000000000"].params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_resuming_a_checkpoint_with_the_largest_batch_size_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run(train_args(out, "--quiet"), capsys)[0] == 0
    rewrite_config(out / "checkpoint.npz", batch_size=2**31 - 1)
    code, _, err = run(train_args(out, "--epochs", "2", "--resume"), capsys)
    assert code == 0, err
    assert "--batch-size 2147483647 is larger than the 320 training images" in err
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_during_a_checkpoint_write_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
    code: int,
) -> None:
    out = tmp_path / "run"
    assert run(train_args(out, "--quiet"), capsys)[0] == 0
    good = (out / "checkpoint.npz").read_bytes()
    before = signal.getsignal(signum)

    def signalled_savez(file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"PK\x03\x04 half a checkpoint")
        os.kill(os.getpid(), signum)
        time.sleep(30)  # the handler raises before this ends

    monkeypatch.setattr(np, "savez", signalled_savez)
    exit_code, _, err = run(train_args(out, "--epochs", "3", "--resume"), capsys)
    assert exit_code == code
    assert err == f"jaxcnn train: terminated by {signal.Signals(signum).name}\n"
    assert (out / "checkpoint.npz").read_bytes() == good
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.json"]
    assert signal.getsignal(signum) == before  # the command's handler is gone again


def test_a_full_disk_while_writing_history_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe: ENOSPC during the history write left an empty .history.json.tmp, no
    # history.json, and a message naming no file.
    out = tmp_path / "run"
    assert run(train_args(out, "--quiet"), capsys)[0] == 0
    history = (out / "history.json").read_bytes()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        if ".history.json." in os.readlink(f"/proc/self/fd/{descriptor}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(_io.os, "fsync", fsync)
    code, _, err = run(train_args(out, "--epochs", "2", "--resume"), capsys)
    assert code == 2
    assert (
        err
        == f"jaxcnn train: error: cannot write {out / 'history.json'}: No space left on device\n"
    )
    assert (out / "history.json").read_bytes() == history
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2  # written before the history
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.json"]
    monkeypatch.setattr(_io.os, "fsync", real_fsync)  # space again (the small data stays):
    # a resume with nothing left to train rewrites the history
    assert cli.main(train_args(out, "--epochs", "2", "--resume", "--quiet")) == 0
    assert len(json.loads((out / "history.json").read_text())["history"]["train_loss"]) == 2


@pytest.mark.parametrize(
    ("option", "match"),
    [
        (["--seed", str(2**32)], r"TrainConfig: seed must be < 4294967296, got 4294967296"),
        (["--epochs", str(2**31)], r"TrainConfig: epochs must be < 2147483648"),
        (["--batch-size", str(2**31)], r"TrainConfig: batch_size must be < 2147483648"),
    ],
)
def test_out_of_range_settings_are_refused_and_leave_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], match: str
) -> None:
    # A seed of 2**32 used to wrap silently to the key of seed 0.
    out = tmp_path / "run"
    assert_usage_error(run(["train", "shapes", "--out", str(out), *option], capsys), match)
    assert not out.exists()
