"""The event engine on a fake clock: time moves only when the harness moves it, so a test sees
the same band on a busy machine as on an idle one (the model's sampling is seeded; every turn's
compute costs no time but `COMPUTE_S` where the loop has more to do at once)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

COMPUTE_S = 0.001  # what a turn that leaves work for "now" is charged before the next turn


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class ClockedCapture:
    """A raw sender that remembers what went out, and when on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, list[int]]] = []

    def __call__(self, data: list[int]) -> None:
        self.sent.append((self.clock(), list(data)))


def drive(engine, clock: FakeClock, seconds: float,
          messages: Sequence[tuple[float, list[int]]] = (),
          actions: Sequence[tuple[float, Callable]] = ()) -> float:
    """Start ``engine`` (an `Engine` made with ``clock=clock``) and run it for ``seconds``:
    each message (seconds from the start, raw MIDI) arrives at its time and each action (seconds,
    f(engine)) runs at its time, as the real loop's callback and a hand on the panel would; the
    loop turns at every deadline it names. Closes the engine at the end; returns the start."""
    engine.start()
    start = clock.t
    events = sorted([(t, 0, k, m) for k, (t, m) in enumerate(messages)]
                    + [(t, 1, k, a) for k, (t, a) in enumerate(actions)],
                    key=lambda e: (e[0], e[1], e[2]))
    end = start + seconds
    while clock.t < end:
        while events and start + events[0][0] <= clock.t:
            _, kind, _, what = events.pop(0)
            if kind == 0:
                engine.receive(clock.t, what)
            else:
                what(engine)
        engine.turn(clock.t)
        chase = engine.bias.next_chase if engine.bias.chasing else math.inf
        arrival = start + events[0][0] if events else math.inf  # always after now
        look = engine._ahead(clock.t)  # what the real loop computes ahead while it waits
        nxt = min(engine._next_deadline(clock.t), engine.out.next_repeat(), engine._next_check,
                  chase, look, end)
        clock.t = min(max(nxt, clock.t + COMPUTE_S), arrival, end)
    engine.close()
    return start
