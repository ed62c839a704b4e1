"""Waiting for a moment on the monotonic clock: sleep most of the way, spin the rest; and the
real-time scheduling the loop's thread asks for.

`time.sleep` alone wakes late by up to a millisecond or more (mido#160), so the last stretch is
spun; the spin calls `time.sleep(0)`, which hands the GIL to a waiting MIDI callback thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SPIN_S = 0.0015  # the last stretch before a deadline is spun, not slept
SLICE_S = 0.1  # the longest single sleep, so a stop request is seen quickly


class Stop:
    """A request to stop waiting: a plain attribute, so a signal handler may raise it (no lock
    to take, unlike `threading.Event.set`); the waits below look at it between slices."""

    __slots__ = ("up",)

    def __init__(self) -> None:
        self.up = False


def sleep_until(deadline: float, stop: Stop | None = None) -> bool:
    """Return at ``deadline`` (time.perf_counter seconds); False if ``stop`` went up first."""
    stop = stop or Stop()
    while (rest := deadline - time.perf_counter()) > SPIN_S:
        if stop.up:
            return False
        time.sleep(min(rest - SPIN_S, SLICE_S))
    while time.perf_counter() < deadline:
        if stop.up:
            return False
        time.sleep(0)
    return not stop.up


def wait_for_input(until: float, inbox: deque, wake: threading.Event, stop: Stop,
                   clock: Callable[[], float] = time.perf_counter, spin: bool = True) -> None:
    """A live loop's wait: sleep until ``until`` or a queued message (``wake`` set by the MIDI
    callback), then spin the last stretch on ``clock``; back at once if input is there or
    ``stop`` is up. With ``spin=False`` (a moment that needs no precision) it only sleeps.
    """
    if inbox or stop.up:
        return
    rest = until - clock()
    if not spin:
        if rest > 0:
            wake.wait(min(rest, SLICE_S))
            wake.clear()
        return
    if rest > SPIN_S:
        wake.wait(min(rest - SPIN_S, SLICE_S))
        wake.clear()
        # A message queued between the check and clear() is still in the deque.
    while not inbox and clock() < until and not stop.up:
        if until - clock() > SPIN_S:
            return  # woke early (a short sleep cap): let the loop look again
        time.sleep(0)  # spin, but hand the GIL to the MIDI callback if it is waiting


REALTIME = getattr(os, "SCHED_FIFO", 1), getattr(os, "SCHED_RR", 2)
RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)  # a flag in the policy word


def midi_thread_priority() -> int | None:
    """The highest real-time priority among this process's other threads (JACK's process
    thread, which runs the MIDI callback, when the server runs real-time); None if none does."""
    me, top = threading.get_native_id(), None
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return None
    for tid in tids:
        try:  # the reset-on-fork flag (PipeWire's JACK sets it) is no policy of its own
            if tid != me and os.sched_getscheduler(tid) & ~RESET_ON_FORK in REALTIME:
                priority = os.sched_getparam(tid).sched_priority
                top = priority if top is None else max(top, priority)
        except OSError:  # the thread ended meanwhile
            continue
    return top


@contextmanager
def realtime_scheduling() -> Iterator[str]:
    """Real-time scheduling (SCHED_FIFO) for the calling thread, the loop's, one step below the
    MIDI callback's thread, where that thread runs real-time itself (a JACK server with
    real-time on): then nothing ordinary delays the band, and the callback still comes first.
    Not otherwise: the callback holds the GIL when it wakes the loop, and a real-time loop woken
    by an ordinary thread waits for it (measured on a 2-core VM: a wake-up 0.15 ms instead of
    0.01). Yields what was granted, in words (a refusal is no error: the loop plays as before);
    threads started meanwhile do not inherit it, and the thread's own scheduling comes back
    after."""
    if not hasattr(os, "sched_setscheduler"):
        yield "off (not on this system)"
        return
    top = midi_thread_priority()
    if top is None:
        yield "off (the MIDI thread is not real-time: JACK runs without it, or ALSA)"
        return
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    priority = max(1, top - 1)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | RESET_ON_FORK, os.sched_param(priority))
    except OSError as err:
        yield f"off ({err.strerror.lower()}: see 'ulimit -r', or the audio group)"
        return
    try:
        yield f"SCHED_FIFO {priority}"
    finally:
        try:
            os.sched_setscheduler(0, before[0], before[1])
        except OSError:
            pass
