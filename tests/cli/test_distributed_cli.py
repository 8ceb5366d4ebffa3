"""``jaxcnn train --distributed`` and ``jaxcnn launch``: only process 0 writes, resume after a
kill, a dead or missing process ends the others within a bounded time.

Every run is real: 2 processes x 2 forced CPU devices joined through a loopback
coordinator (gloo collectives). Each waits with a timeout, so a hang fails the
test instead of blocking it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import pytest

from jaxcnn import cli
from jaxcnn.cli._common import EXIT_PEER_LOST
from jaxcnn.cli._launch import free_port, process_environment
from jaxcnn.cli._peers import jax_heartbeat_timeout
from jaxcnn.train import load_checkpoint
from tests.train.test_parallel import ROOT, forced_env

RUN_SECONDS = 300  # any command here that runs longer has hung
GRACE = 5  # jaxcnn launch --grace: seconds the survivors get before SIGKILL
SHORT = ["--batch-size", "64", "--quiet"]  # shapes, 50 steps per epoch
GLOO_PIECES = (
    "[Gloo] Rank ",
    " is connected to ",
    " peer ranks. Expected number of connected peer ranks is : ",
)


def jaxcnn(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start ``python -m jaxcnn ARGS`` from the checkout, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "jaxcnn", *args],
        cwd=ROOT,
        env=env or forced_env(1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(process: subprocess.Popen[str], seconds: float = RUN_SECONDS) -> tuple[int, str, str]:
    """Wait (bounded) for ``process``; its exit code, stdout and stderr."""
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running after {seconds} s (hung?): {err[-3000:]}")
    return process.returncode, out, err


def launch(*args: str) -> tuple[int, str, str]:
    return finish(jaxcnn("launch", "-n", "2", "--devices-per-process", "2", "--", *args))


def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = RUN_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, f"ended before writing {path}: {process.communicate()}"
        assert time.monotonic() < deadline, f"no {path} after {seconds} s"
        time.sleep(0.02)


def child_process(parent: int, process_id: int) -> int:
    """The pid of the child of ``parent`` started with ``JAX_PROCESS_ID=process_id`` (Linux)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"JAX_PROCESS_ID={process_id}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no child of {parent} with JAX_PROCESS_ID={process_id}")


def without_gloo(output: str) -> str:
    """``output`` less gloo's greetings ("[Gloo] Rank 2 is connected to 3 peer ranks.
    Expected number of connected peer ranks is : 3", printed by each device's thread, so
    two can interleave mid-line) and the launcher's ``[process i]`` prefixes."""
    for piece in GLOO_PIECES:
        output = output.replace(piece, "")
    return re.sub(r"\[process \d+\] ", "", output)


def summary(out: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((out / "history.json").read_text())
    return found


# ------------------------------------------------------- kill, then resume


@pytest.mark.slow
def test_a_killed_process_stops_the_launch_and_the_run_resumes(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    code, out, err = launch("train", "shapes", "--epochs", "4", "--out", str(straight), *SHORT)
    assert code == 0, err
    # --quiet: process 0 prints the final line, process 1 nothing (but gloo's greetings,
    # which jaxcnn cannot silence: once they are taken out, only their numbers are left).
    final = re.compile(r"^test accuracy \d+\.\d\d% \(800 images\) in \d+\.\d s$", re.MULTILINE)
    assert len(final.findall(without_gloo(out))) == 1, out
    assert re.fullmatch(r"[\d\s]*", final.sub("", without_gloo(out))), out

    # Killed as soon as epoch 1 is saved: epochs 2-4 take seconds here (0.8-2.5 s each).
    runner = jaxcnn(
        "launch", "-n", "2", "--devices-per-process", "2", "--grace", str(GRACE), "--",
        "train", "shapes", "--epochs", "4", "--out", str(killed), "--overwrite", *SHORT,
    )  # fmt: skip
    wait_for(killed / "checkpoint.npz", runner)
    os.kill(child_process(runner.pid, 1), signal.SIGKILL)
    killed_at = time.monotonic()
    code, _, err = finish(runner)
    # The launcher SIGTERMs process 0 at once and SIGKILLs it after --grace seconds (a
    # process blocked in a collective with the dead one cannot act on SIGTERM).
    assert time.monotonic() - killed_at < GRACE + 15, err
    assert code == 128 + signal.SIGKILL
    done = load_checkpoint(killed / "checkpoint.npz").epoch
    assert 1 <= done < 4, f"the run got to epoch {done} before the kill"
    # One line names the lost process and the command that resumes (--overwrite dropped).
    resume = (
        f"jaxcnn launch -n 2 --devices-per-process 2 --grace {GRACE} -- train shapes --epochs 4 "
        f"--out {killed} {' '.join(SHORT)} --resume"
    )
    assert (
        f"jaxcnn launch: process 1 was killed by SIGKILL; stopping the other 1; "
        f"to resume from the last checkpoint: {resume}\n"
    ) in err

    code, out, err = finish(jaxcnn(*shlex.split(resume)[1:]))  # exactly that command
    assert code == 0, err
    assert summary(killed)["history"] == summary(straight)["history"]  # bit for bit
    assert summary(killed)["test"] == summary(straight)["test"]
    assert "jaxcnn launch:" not in err  # it did not fail


@pytest.mark.slow
def test_a_killed_process_is_named_with_the_resume_command(tmp_path: Path) -> None:
    # No launcher: the processes are started by hand. The survivor's own heartbeat watch
    # (jaxcnn.cli._peers) notices the dead process after --peer-timeout seconds, before
    # JAX's coordination service would abort it, and says so in one line (exit code 4).
    out, timeout = tmp_path / "run", 10
    command = [
        "train", "shapes", "--epochs", "6", "--out", str(out), "--peer-timeout", str(timeout),
        *SHORT,
    ]  # fmt: skip
    processes = start_by_hand(command)
    try:
        wait_for(out / "checkpoint.npz", processes[0])  # epochs 2-6 take seconds more
        processes[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        code, _, err = finish(processes[0], seconds=jax_heartbeat_timeout(timeout) + 60)
        elapsed = time.monotonic() - killed_at
    finally:
        stop(processes)
    checkpoint = out / "checkpoint.npz"
    done = load_checkpoint(checkpoint).epoch  # intact: written atomically
    assert 1 <= done < 6, f"the run got to epoch {done} before the kill"
    assert code == EXIT_PEER_LOST, err[-3000:]
    resume = f"jaxcnn {shlex.join(command)} --resume"
    assert err == (
        f"jaxcnn train: error: lost process 1 of 2 (no heartbeat for {timeout} s, "
        f"--peer-timeout), so this process stops too; resume from {checkpoint}: start every "
        f"process again with {resume}\n"
    )
    # The watch speaks within --peer-timeout and a beat; JAX would only after at least half
    # its own heartbeat timeout (jax_heartbeat_timeout). Generous: a loaded machine.
    assert elapsed < timeout + 30, elapsed

    resumed = start_by_hand(shlex.split(resume)[1:])  # exactly that command, in each process
    try:
        codes = [finish(process) for process in resumed]
    finally:
        stop(resumed)
    assert [code for code, _, _ in codes] == [0, 0], [err[-2000:] for _, _, err in codes]
    assert load_checkpoint(checkpoint).epoch == 6
    assert len(summary(out)["history"]["train_loss"]) == 6


@pytest.mark.slow
def test_a_lost_coordinator_is_named_by_the_launcher_only(tmp_path: Path) -> None:
    # Process 0 hosts JAX's coordination service: when it dies, JAX aborts the others from
    # a C++ thread within ~0.1 s (exit 134), before any Python code runs; the launcher
    # names it (docs/scaling.md).
    out = tmp_path / "run"
    runner = jaxcnn(
        "launch", "-n", "2", "--devices-per-process", "2", "--grace", str(GRACE), "--",
        "train", "shapes", "--epochs", "40", "--out", str(out), *SHORT,
    )  # fmt: skip
    wait_for(out / "checkpoint.npz", runner)
    os.kill(child_process(runner.pid, 0), signal.SIGKILL)
    code, _, err = finish(runner)
    assert code == 128 + signal.SIGKILL
    resume = (
        f"jaxcnn launch -n 2 --devices-per-process 2 --grace {GRACE} -- train shapes "
        f"--epochs 40 --out {out} {' '.join(SHORT)} --resume"
    )
    assert re.search(
        rf"^jaxcnn launch: process 0 was killed by SIGKILL(; stopping the other 1)?; "
        rf"to resume from the last checkpoint: {re.escape(resume)}$",
        err,
        re.MULTILINE,
    ), err[-3000:]


def start_by_hand(command: list[str]) -> list[subprocess.Popen[str]]:
    """``jaxcnn COMMAND`` as 2 processes x 2 CPU devices, started without the launcher."""
    port = free_port()
    return [jaxcnn(*command, env=process_environment(i, 2, 2, port, forced_env(2))) for i in (0, 1)]


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_a_process_that_cannot_reach_the_others_fails_with_one_line(tmp_path: Path) -> None:
    env = process_environment(1, 2, 1, free_port(), forced_env(1))  # process 0 never starts
    started = time.monotonic()
    code, out, err = finish(
        jaxcnn("train", "shapes", "--out", str(tmp_path / "run"), "--peer-timeout", "3", env=env),
        seconds=120,
    )
    assert code == 2
    assert time.monotonic() - started < 3 + 60  # import, then 3 s of waiting
    assert err.count("\n") == 1, err
    assert re.fullmatch(
        r"jaxcnn train: error: process 1 of 2 could not reach every process through the "
        r"coordinator at 127\.0\.0\.1:\d+ within 3 s \(--peer-timeout\); start all processes "
        r"with the same JAX_COORDINATOR_ADDRESS and JAX_NUM_PROCESSES, each with its own "
        r"JAX_PROCESS_ID \(docs/scaling\.md\)\n",
        err,
    ), err
    assert out == ""
    assert not (tmp_path / "run").exists()


def test_launch_passes_on_the_first_failure(tmp_path: Path) -> None:
    # batch 30 does not split over 4 devices: every process fails with exit code 2.
    code, _, err = launch("train", "shapes", "--batch-size", "30", "--out", str(tmp_path / "r"))
    assert code == 2
    assert re.search(r"^jaxcnn launch: process [01] exited with code 2", err, re.MULTILINE), err
    assert "jaxcnn train: error: --batch-size 30 must be divisible by the 4 devices" in err
    assert "resume" not in err  # an error of its own, not a lost process
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


# ------------------------------------------------------------- usage errors


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = cli.main(args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("beyond", [False, True], ids=["one device", "beyond this process"])
def test_distributed_uses_every_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], beyond: bool
) -> None:
    # Asking for more devices than this process has gets the same rule, not a device count:
    # the count is checked only once the run is known not to be distributed (issue 24).
    devices = str(jax.device_count() + 1 if beyond else 1)
    args = ["train", "shapes", "--distributed", "--devices", devices, "--out", str(tmp_path / "r")]
    code, err = run(args, capsys)
    assert code == 2
    assert err == (
        "jaxcnn train: error: --devices cannot be combined with --distributed: a distributed "
        "run splits every batch over every device of every process\n"
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"JAX_PROCESS_ID": "one"}, "environment variable JAX_PROCESS_ID must be an integer"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, r"process_id must be in 0\.\.1"),
    ],
)
def test_bad_distributed_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    code, err = run(["train", "shapes", "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert re.match(rf"jaxcnn train: error: init_distributed: .*{message}", err), err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["launch", "-n", "2"], "give the command to run after '--'"),
        (["launch", "-n", "2", "--", "launch", "-n", "2"], "only 'train' runs as several"),
        (["launch", "-n", "2", "--", "eval", "runs/x"], "only 'train' runs as several"),
        (["launch", "-n", "0", "--", "train", "shapes"], "-n/--processes: must be an integer"),
        (["launch", "-n", "2", "--port", "70000", "--", "train", "x"], "must be a TCP port"),
    ],
)
def test_launch_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, err = run(args, capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert message in err


def test_process_environment() -> None:
    base = {"XLA_FLAGS": "--xla_foo=1 --xla_force_host_platform_device_count=8", "HOME": "/h"}
    env = process_environment(1, 3, 2, 1234, base)
    assert env["HOME"] == "/h"
    assert env["JAX_COORDINATOR_ADDRESS"] == "127.0.0.1:1234"
    assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == ("3", "1")
    assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_force_host_platform_device_count=2"
    assert env["JAX_LOCAL_DEVICE_IDS"] == "2,3"  # process 1's two accelerators
    assert base["XLA_FLAGS"].endswith("=8")  # not modified
