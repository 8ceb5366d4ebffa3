"""Process memory readings for ``python -m benchmarks`` (imports neither jax nor torch).

The training children import this before their framework, so that a PyTorch
child's memory holds no JAX and a JAX child's no PyTorch.
"""

from __future__ import annotations

import os
import resource


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    ``VmHWM`` of ``/proc/self/status`` (the high-water mark of this process's
    own address space). Not ``ru_maxrss``: Linux carries it over ``exec`` from
    the forked parent, so a child started by a 400 MiB parent would report at
    least 400 MiB whatever it does. ``ru_maxrss`` where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident set size now (``/proc/self/statm``), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
