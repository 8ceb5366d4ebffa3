"""A validation split carved from the training data, so the test split chooses nothing."""

from __future__ import annotations

import jax
import numpy as np

from jaxcnn.errors import InputError
from jaxcnn.train._config import check_fraction
from jaxcnn.train._dataset import Dataset, check_dataset
from jaxcnn.train._feed import check_host_dataset, is_streamed


def validation_split(data: Dataset, fraction: float, *, key: jax.Array) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of each class of ``data`` for validation.

    Stratified: of the ``n_c`` samples of class ``c``, ``round(fraction *
    n_c)`` (Python's ``round``) go to validation, chosen by ``jax.random.permutation(key, N)`` (the
    first ones of each class in that order), so the split is a function of
    ``key`` alone and both parts keep the class balance of ``data``. Both
    parts keep the samples' original order.

    Args:
      data: ``(images [N, H, W, C], labels [N])``, e.g. the training split.
      fraction: in ``(0, 1)``.
      key: PRNG key of the split.

    Returns:
      ``(train, val)``, two ``(images, labels)`` pairs of NumPy arrays that
      partition ``data``. Streamed images (:class:`jaxcnn.data.ImageRows`)
      are indexed, not read: each part is again an ``ImageRows``.

    Raises:
      InputError: when either part would be empty.
    """
    fn = "validation_split"
    streamed = isinstance(data, tuple | list) and len(data) == 2 and is_streamed(data[0])
    (check_host_dataset if streamed else check_dataset)(fn, "data", data)
    fraction = check_fraction(fn, fraction, "fraction")
    if fraction == 0:
        raise InputError(f"{fn}: fraction must be in (0, 1), got 0")
    images = data[0] if streamed else np.asarray(data[0])  # streamed rows stay on disk
    labels = np.asarray(data[1])
    held_out = _held_out(labels, fraction, np.asarray(jax.random.permutation(key, len(labels))))
    count = int(held_out.sum())
    if count == 0 or count == len(labels):
        part = "validation" if count == 0 else "training"
        raise InputError(
            f"{fn}: fraction {fraction} of {len(labels)} samples leaves the {part} part "
            f"empty; expected a fraction that keeps at least one sample of a class on each side"
        )
    return (images[~held_out], labels[~held_out]), (images[held_out], labels[held_out])


def _held_out(labels: np.ndarray, fraction: float, order: np.ndarray) -> np.ndarray:
    """``[N]`` bool mask: the first ``round(fraction * n_c)`` of each class in ``order``."""
    mask = np.zeros(len(labels), bool)
    ordered = labels[order]
    for value in np.unique(labels):
        members = order[ordered == value]  # this class, in the key's order
        mask[members[: round(fraction * len(members))]] = True
    return mask
