"""Waiting for a moment on the monotonic clock: sleep most of the way, spin the rest.

`time.sleep` alone wakes late by up to a millisecond or more (mido#160), so the last stretch is
spun; the spin calls `time.sleep(0)`, which hands the GIL to a waiting MIDI callback thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from threading import Event

SPIN_S = 0.0015  # the last stretch before a deadline is spun, not slept
SLICE_S = 0.1  # the longest single sleep, so a stop request is seen quickly


def sleep_until(deadline: float, stop: Callable[[], bool] = lambda: False) -> bool:
    """Return at ``deadline`` (time.perf_counter seconds); False if ``stop()`` came true first."""
    while (rest := deadline - time.perf_counter()) > SPIN_S:
        if stop():
            return False
        time.sleep(min(rest - SPIN_S, SLICE_S))
    while time.perf_counter() < deadline:
        if stop():
            return False
        time.sleep(0)
    return not stop()


def wait_for_input(until: float, inbox: deque, wake: Event, stopping: Callable[[], bool],
                   clock: Callable[[], float] = time.perf_counter) -> None:
    """A live loop's wait: sleep until ``until`` or a queued message (``wake`` set by the MIDI
    callback), then spin the last stretch on ``clock``; back at once if input or a stop is there.
    """
    if inbox or stopping():
        return
    rest = until - clock()
    if rest > SPIN_S:
        wake.wait(min(rest - SPIN_S, SLICE_S))
        wake.clear()
        # A message queued between the check and clear() is still in the deque.
    while not inbox and clock() < until and not stopping():
        if until - clock() > SPIN_S:
            return  # woke early (a short sleep cap): let the loop look again
        time.sleep(0)  # spin, but hand the GIL to the MIDI callback if it is waiting
