"""``jaxcnn explore`` as a user runs it: arguments, the printed URL, Ctrl-C, a run in progress."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from jaxcnn import train
from jaxcnn.cli import main
from jaxcnn.explore import Explorer

START_SECONDS = 300
"""Bound on compiling the page's functions and printing the URL (seconds on 2 loaded cores)."""


def explore(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["explore", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_missing_run_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = explore([str(tmp_path / "nothing"), "--no-browser"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "no run at" in err


@pytest.mark.parametrize("port", ["-1", "65536", "http", "8e3"])
def test_a_bad_port_is_refused_by_the_parser(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["explore", "--port", port])
    assert stop.value.code == 2
    assert "--port: must be a port in 0..65535" in capsys.readouterr().err


def test_a_port_in_use_says_so(bare_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    port = bare_url.rsplit(":", 1)[1].strip("/")
    code, _, err = explore(["--port", port, "--no-browser"], capsys)
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "--port 0" in err


def start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """``jaxcnn explore ARGS`` in a child process; returns it and the URL it printed."""
    child = subprocess.Popen(
        [sys.executable, "-m", "jaxcnn", "explore", *args, "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    deadline = time.monotonic() + START_SECONDS
    assert child.stdout is not None
    for line in child.stdout:
        found = re.search(r"serving (http://\S+)", line)
        if found:
            return child, found.group(1)
        if time.monotonic() > deadline:
            break
    child.kill()
    raise AssertionError(f"no URL printed: {child.communicate()}")


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return dict(json.load(response))


def test_the_command_serves_the_run_prints_its_url_and_stops_on_ctrl_c(shapes_run: Path) -> None:
    child, url = start([str(shapes_run), "--port", "0"])
    try:
        assert url.startswith("http://127.0.0.1:")
        info = get_json(url + "api/info")
        run = info["run"]
        assert isinstance(run, dict)
        assert run["classes"] == ["square", "circle"]
        with urllib.request.urlopen(url, timeout=60) as page:
            assert b"<html" in page.read()
    finally:
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "stopped" in err


def test_another_host_than_loopback_is_served_with_a_warning() -> None:
    child, url = start(["--host", "0.0.0.0", "--port", "0"])
    try:
        assert get_json(url + "api/info")["run"] is None
    finally:
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    assert "warning: listening on 0.0.0.0, not loopback" in err


def test_a_run_in_progress_is_followed_epoch_by_epoch(shapes_run: Path, tmp_path: Path) -> None:
    """A run directory without a checkpoint yet, then one epoch, then another."""
    run = tmp_path / "growing"
    run.mkdir()
    explorer = Explorer(run, note=lambda _: None)
    explorer.warm_up()
    first = explorer.run_state(None)
    assert first["changed"] is False
    assert "waiting for the run's first checkpoint" in str(first["status"])
    finished = train.load_checkpoint(shapes_run / "checkpoint.npz")
    for epoch in (1, 2):
        history = {name: values[:epoch] for name, values in (finished.history or {}).items()}
        train.save_checkpoint(
            run / "checkpoint.npz",
            model=finished.model,
            params=finished.params,
            epoch=epoch,
            config=finished.config,
            history=history,
            data=finished.data,
        )
        state = explorer.run_state(None if epoch == 1 else str(first["version"]))
        assert state["changed"] is True
        assert state["epoch"] == epoch
        assert len(state["history"]["train_loss"]) == epoch
        assert state["status"] == f"epoch {epoch} of 3"
        first = state
        assert explorer.run_state(str(state["version"]))["changed"] is False
    shutil.rmtree(run)
