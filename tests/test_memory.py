"""The peak-memory probe of :mod:`tests.memory` measures the child, not its parent."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.memory import PEAK_RSS_SOURCE

PARENT_BYTES = 512 * 2**20


def test_a_child_of_a_large_parent_reports_its_own_peak() -> None:
    held = np.ones(PARENT_BYTES // 8)  # touched: resident in this process
    script = PEAK_RSS_SOURCE + "print(peak_rss(), rss())\n"
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    peak, now = (int(word) for word in child.stdout.split())
    assert held.sum() == PARENT_BYTES // 8
    assert now <= peak < PARENT_BYTES // 4, child.stdout  # a bare interpreter: tens of MB
