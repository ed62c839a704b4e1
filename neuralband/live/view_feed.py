"""What the engine tells the live view (`neuralband.live.view`): each note in or out, appended in
the engine's thread to a bounded deque, read by the view's thread. Its own module, so the engine
writes it without reaching into the view's server (which reads the engine)."""

from __future__ import annotations

from collections import deque
from itertools import islice


class ViewFeed:
    """What the engine tells the view, appended in the engine's thread without a lock: a
    bounded deque (CPython's append is atomic) and a running count that readers go by."""

    def __init__(self, keep: int = 16384):
        self.notes: deque[tuple[int, float, int, int, int, int]] = deque(maxlen=keep)
        self.count = 0

    def note(self, t: float, band: bool, channel: int, pitch: int, velocity: int) -> None:
        """A note message in (the player) or out (the band); velocity 0 is a NOTE_OFF."""
        self.notes.append((self.count, t, int(band), channel, pitch, velocity))
        self.count += 1

    def since(self, seen: int) -> list[tuple[int, float, int, int, int, int]]:
        """The notes after the ``seen``-th (all that are still kept), oldest first. Only the
        new ones are copied, from the right, in one C call (the engine never waits long)."""
        if self.count <= seen:
            return []
        # A margin for notes appended between reading the count and copying.
        new = min(self.count - seen + 64, len(self.notes))
        for _ in range(10):
            try:
                kept = list(islice(reversed(self.notes), new))
                break
            except RuntimeError:  # appended to meanwhile: look again
                continue
        else:
            return []
        kept.reverse()
        return [n for n in kept if n[0] >= seen]
