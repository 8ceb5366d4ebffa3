"""Checkpoints of training runs (the same names as in :mod:`jaxcnn.train`).

See :func:`jaxcnn.train.save_checkpoint` and :func:`jaxcnn.train.load_checkpoint`
for the format.
"""

from jaxcnn.train._checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "save_checkpoint",
]
