"""A learnt version on its way into the engine (`play --learn-me`): its model, brought up to
the engine's committed stream by replaying it (`replay`), then taken at a pause
(`Engine._take_learnt`). The engine's side of the hand-over; `neuralband.live.learner` makes the
versions."""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field


def replay(stepper, tokens, control_changes, beat_changes, start: int = 0,
           stop: int | None = None) -> int:
    """Feed ``tokens[start:stop]`` of an engine's committed stream into ``stepper``, each
    control change and beat placement at the event it came before (the engine's
    ``control_changes`` and ``beat_changes``): the state the engine's own model reached on it.
    Returns where it stopped."""
    stop = len(tokens) if stop is None else stop
    # The changes are kept in stream order: only those in [start, stop) are read, so a swap at
    # a pause costs the few events it feeds, not the whole session's changes.
    controls = dict(_between(control_changes, start, stop))
    beats: dict[int, list] = {}
    for i, where in _between(beat_changes, start, stop):
        beats.setdefault(i, []).append(where)
    for i in range(start, stop):
        if i in controls:
            stepper.set_controls(controls[i])
        for where in beats.get(i, ()):
            stepper.place_beat(*where) if where is not None else stepper.place_beat(None)
        stepper.feed(int(tokens[i]))
    return stop


def _between(changes: list, start: int, stop: int) -> list:
    """The (event, value) changes at events start..stop-1 of a list in event order."""
    first = bisect_left(changes, start, key=lambda change: change[0])
    return changes[first:bisect_left(changes, stop, lo=first, key=lambda change: change[0])]


@dataclass
class Offer:
    """A learnt version on its way into the engine: its stepper, brought up to ``fed`` events
    of the engine's stream."""

    stepper: object
    fed: int
    version: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def behind(self, engine) -> int:
        """How many events of the engine's stream it has yet to be fed (a thread feeding it
        now: as good as all of them)."""
        return 1 << 30 if self.lock.locked() else len(engine.tokens) - self.fed

    def bring_up(self, engine) -> bool:
        """Feed it the events committed since (False: a thread is feeding it now)."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            self.fed = replay(self.stepper, engine.tokens, engine.control_changes,
                              engine.beat_changes, self.fed, len(engine.tokens))
            return True
        finally:
            self.lock.release()
