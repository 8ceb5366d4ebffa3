"""The run the page shows: its checkpoint, followed while it trains, and its test images.

``jaxcnn train`` writes ``checkpoint.npz`` atomically after every epoch, so a
run that is still training is followed by looking at the file's size and
modification time whenever the page asks (:meth:`RunWatcher.refresh`), and
loading it again when they change. The test images are loaded once: the
run's data does not change while it trains (its SHA-256 is checked).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxcnn import train
from jaxcnn.data import load_recorded
from jaxcnn.errors import InputError, JaxcnnError, MissingFileError

CHECKPOINT = "checkpoint.npz"
"""The checkpoint file of a run directory, as ``jaxcnn train`` names it."""
NO_RUN_HINT = (
    "No run is loaded. Train one, then open it: `jaxcnn train shapes && jaxcnn explore "
    "runs/shapes` (or mnist-dense, mnist-cnn, or `--data FOLDER` for your own images)."
)


@dataclass(frozen=True)
class Snapshot:
    """One loaded state of the run."""

    checkpoint: train.Checkpoint
    preprocessing: train.Preprocessing
    version: str  # changes whenever the checkpoint file does


@dataclass(frozen=True)
class TestImages:
    """The run's test split (or why it is not available)."""

    images: Any  # [N, H, W, C] float32 array or ImageRows; None when unavailable
    labels: np.ndarray  # [N] int32
    note: str | None  # why there are none, for the page

    @property
    def count(self) -> int:
        return 0 if self.images is None else len(self.labels)


def checkpoint_path(run: Path) -> Path:
    """``RUN/checkpoint.npz`` for a run directory, or ``run`` itself for a file."""
    return run / CHECKPOINT if run.is_dir() or run.suffix != ".npz" else run


class RunWatcher:
    """The latest checkpoint of one run; thread-safe.

    Args:
      run: a run directory (it may not hold a checkpoint yet: a run that has
        just started) or a checkpoint file.

    Raises:
      MissingFileError: neither the directory nor the file exists.
    """

    def __init__(self, run: Path) -> None:
        self.run = Path(run).expanduser()
        if not self.run.exists():
            raise MissingFileError(
                f"explore: no run at {self.run}; pass a run directory that `jaxcnn train` "
                f"wrote (e.g. runs/shapes) or its {CHECKPOINT}"
            )
        self.path = checkpoint_path(self.run)
        self.snapshot: Snapshot | None = None
        self.error: str | None = None
        self.test: TestImages | None = None
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> bool:
        """Load the checkpoint again if its file changed; whether a new one was loaded."""
        with self._lock:
            stamp = _stamp(self.path)
            if stamp is None or (self.snapshot is not None and self.snapshot.version == stamp):
                return False
            try:
                checkpoint = train.load_checkpoint(self.path)
                how = train.preprocessing(checkpoint, "explore")
            except JaxcnnError as err:  # e.g. a checkpoint of another model being written
                self.error = str(err)
                return False
            self.snapshot, self.error = Snapshot(checkpoint, how, stamp), None
            if self.test is None:
                self.test = _test_images(checkpoint)
            return True

    def status(self) -> str:
        """One line on the run's state, for the page."""
        if self.snapshot is None:
            waiting = f"waiting for the run's first checkpoint ({self.path})"
            return waiting if self.error is None else f"{waiting}; {self.error}"
        config = self.snapshot.checkpoint.config
        planned = f" of {config.epochs}" if config is not None else ""
        return f"epoch {self.snapshot.checkpoint.epoch}{planned}"


def _stamp(path: Path) -> str | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return f"{info.st_mtime_ns}-{info.st_size}"


def _test_images(checkpoint: train.Checkpoint) -> TestImages:
    """The run's test split, loaded as it was recorded; a note instead when it cannot be."""
    empty = np.zeros((0,), np.int32)
    source, config = checkpoint.data, checkpoint.config
    if source is None:
        return TestImages(None, empty, "the checkpoint records no data source")
    try:
        data = load_recorded(source, seed=0 if config is None else config.seed)
    except JaxcnnError as err:
        return TestImages(None, empty, f"the run's test images are not available: {err}")
    images, labels = data.test
    return TestImages(images, np.asarray(labels, np.int32), None)


def test_image(test: TestImages | None, index: int) -> tuple[np.ndarray, int]:
    """Test image ``index`` ``[H, W, C]`` and its label.

    Raises:
      InputError: no test images, or ``index`` outside them.
    """
    if test is None or test.images is None:
        note = "no run is loaded" if test is None else test.note
        raise InputError(f"image: there are no test images ({note})")
    if not 0 <= index < test.count:
        raise InputError(f"image: test image must be in 0..{test.count - 1}, got {index}")
    return np.asarray(test.images[index], np.float32), int(test.labels[index])
