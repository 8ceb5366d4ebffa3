"""Peak memory of a child process, read so that the parent's size cannot leak into it.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the wrong figure for a child
started by ``subprocess``: Linux carries the high-water mark across ``execve``
(``exec_mmap`` folds the old address space's peak into the process's), and
Python starts children with ``vfork``, whose old address space is the parent's.
A child of a pytest worker that had grown to 2 GB reports ``ru_maxrss`` >= 2 GB
before it has done anything: a memory test then fails on a busy worker (as CI's
did) or passes without measuring (``after - before`` of two inflated figures).

``VmHWM`` in ``/proc/self/status`` is the peak of the child's own address space,
which ``execve`` creates new. :data:`PEAK_RSS_SOURCE` defines ``peak_rss()`` and
``rss()`` (bytes) for the source code of such a child.
"""

from __future__ import annotations

import textwrap

PEAK_RSS_SOURCE = textwrap.dedent(
    """
    def _status_bytes(field):
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024  # the kernel writes kB

    def rss():
        return _status_bytes("VmRSS")

    def peak_rss():
        return _status_bytes("VmHWM")
    """
)
