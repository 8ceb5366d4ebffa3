"""A distributed run's own heartbeat: name a lost process before JAX aborts this one.

JAX's coordination service ends every process of a run when one of them stops
sending heartbeats, but it does so from a C++ thread (absl ``LOG(FATAL)``,
then ``abort()``: exit code 134), so no Python code runs and nothing can say
which process was lost or how to go on. jaxlib's ``missed_heartbeat_callback``
would run instead of that abort, but it cannot reach Python: handing its
``absl::Status`` over fails (``std::bad_cast``, then ``std::terminate``).

So every process of a ``jaxcnn train --distributed`` run beats itself: a
:class:`PeerWatch` thread writes a counter into JAX's key-value store every
``interval`` seconds and reads every other process's. A process whose counter
has not moved for ``timeout`` seconds is lost: the watch calls ``on_lost``
(which prints one line and ends the process). JAX's own heartbeat timeout is
set longer (:func:`jax_heartbeat_timeout`), so this watch speaks first.

It cannot speak first when process 0 dies: process 0 hosts JAX's coordination
service, and every other process's JAX client aborts within about 0.1 s of
losing it (measured), before any Python code notices.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

KEY = "jaxcnn/alive/"
"""The key-value directory of the beats: ``jaxcnn/alive/<process id>`` holds a counter."""
LEFT = "left"
"""The last value a process writes when it stops watching (it is ending on purpose)."""
LATE = 10
"""Seconds of slack for a watch thread that runs late (a loaded machine)."""
BEATS_PER_TIMEOUT = 4
"""At least this many beats per ``timeout`` (and at most one a second)."""


def jax_heartbeat_timeout(timeout: int) -> int:
    """JAX's heartbeat timeout for a run whose :class:`PeerWatch` uses ``timeout``.

    JAX declares a silent process dead between about half and all of its
    heartbeat timeout after it fell silent (measured with 20 s: 13.6 to 20.5 s
    after a SIGKILL), and the watch within ``timeout`` plus one beat; twice
    ``timeout + LATE`` keeps JAX's verdict the later one.
    """
    return 2 * (timeout + LATE)


class _Seen(NamedTuple):
    value: str | None  # the peer's last counter (None: not seen yet)
    changed: float  # time.monotonic() when it last changed (or the watch started)
    counted_from: float  # silence counts from here: `changed`, or later after a stall of ours


class PeerWatch:
    """Beat into JAX's key-value store; call ``on_lost(process_id)`` when a peer falls silent.

    Args:
      client: JAX's distributed runtime client (``key_value_set``,
        ``key_value_dir_get``).
      process_id: this process.
      num_processes: how many processes the run has.
      timeout: seconds of silence after which a peer is lost.
      on_lost: called from the watch thread with the lost process's id (and
        ``unreachable=True`` when the key-value store itself stopped
        answering, i.e. process 0 is gone); it should end the process.
    """

    def __init__(
        self,
        client: Any,
        process_id: int,
        num_processes: int,
        timeout: float,
        on_lost: Callable[[int, bool], None],
    ) -> None:
        self.timeout = timeout
        self.interval = min(1.0, timeout / BEATS_PER_TIMEOUT)
        self._client = client
        self._id = process_id
        self._on_lost = on_lost
        start = time.monotonic()
        self._seen = {
            peer: _Seen(None, start, start) for peer in range(num_processes) if peer != process_id
        }
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jaxcnn-peer-watch", daemon=True)

    def start(self) -> PeerWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and watching; the peers then stop watching this process."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + LATE)

    def settle(self) -> None:
        """Wait until every peer has beaten again, or the watch has named a lost one.

        For an error in the main thread that a lost peer can cause (gloo's
        "Connection reset by peer" reaches a collective at once, the watch
        only after ``timeout``). Returns within ``timeout`` plus a few beats.
        """
        since = time.monotonic()
        with self._changed:
            self._changed.wait_for(
                lambda: all(seen.changed > since for seen in self._seen.values()),
                timeout=self.timeout + 3 * self.interval + LATE,
            )

    def _run(self) -> None:
        beat, last_round = 0, time.monotonic()
        while not self._stop.wait(self.interval):
            beat += 1
            try:
                self._client.key_value_set(f"{KEY}{self._id}", str(beat), allow_overwrite=True)
                values = dict(self._client.key_value_dir_get(KEY))
            except Exception:  # the store is process 0's: it is gone (or going)
                if not self._stop.is_set() and self._id != 0:
                    self._on_lost(0, True)
                return
            now = time.monotonic()
            stalled = now - last_round > self.timeout / 2  # this thread ran late: judge no one
            last_round = now
            lost = self._update(values, now, stalled)
            if lost is not None:
                self._on_lost(lost, False)
                return
        with contextlib.suppress(Exception):  # best effort: the run may be ending anyway
            self._client.key_value_set(f"{KEY}{self._id}", LEFT, allow_overwrite=True)

    def _update(self, values: dict[str, str], now: float, stalled: bool) -> int | None:
        """Record the peers' counters; the first peer silent for ``timeout`` s, if any."""
        with self._changed:
            for peer, seen in list(self._seen.items()):
                value = values.get(f"{KEY}{peer}")
                if value == LEFT:
                    del self._seen[peer]
                elif value != seen.value:
                    self._seen[peer] = _Seen(value, now, now)
                elif stalled:
                    self._seen[peer] = seen._replace(counted_from=now)
                elif now - seen.counted_from > self.timeout:
                    return peer
            self._changed.notify_all()
        return None
