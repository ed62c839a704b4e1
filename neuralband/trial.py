"""A wait on trial: the machine a band under a lead waits by, offline (`generate.accompany`) and
live (`live.engine`), written once.

A band's TIME_SHIFT says "nothing happens for this long", which only holds if the lead (the
player, the melody) does not come in meanwhile. So the wait is fed on trial: the model and the
grammar step through it, the band's next event is drawn from the state at its end, and then
either the wait happened (`commit`) or they are put back exactly as they were before it
(`take_back`: the lead came first, and its events go in instead). Where the model expected the
lead at the wait's end and the lead did not come, the wait is no moment for the band: `again`
puts the state back and says which events the band may draw from the times after it. The
machine keeps no clock: the caller says when a wait ends.
"""

from __future__ import annotations

import numpy as np

from neuralband.runtime import Snapshot, Stepper


class Trial:
    """One wait on trial at a time over a stepper (stream 0) and a grammar tracker; the snapshot
    is allocated once."""

    def __init__(self, stepper: Stepper) -> None:
        self.stepper = stepper
        self.snap: Snapshot = stepper.snapshot()  # the model before the wait, while open
        self.shift = 0  # the wait on trial
        self._tracker = None
        self._mark: tuple | None = None  # the grammar before the wait, while open

    @property
    def open(self) -> bool:
        return self._mark is not None

    def begin(self, shift: int, tracker) -> None:
        """Feed the wait ``shift`` on trial to the model and to ``tracker`` (the grammar)."""
        self.stepper.snapshot(into=self.snap)
        self._tracker, self._mark, self.shift = tracker, tracker.save(), shift
        self.stepper.feed(shift)
        tracker.update(shift)

    def commit(self) -> None:
        """The wait happened: the model and the grammar stay where it took them."""
        self._mark = None

    def take_back(self) -> None:
        """The wait did not happen: the model and the grammar as they were before it."""
        self.stepper.restore(self.snap)
        self._tracker.restore(self._mark)
        self._mark = None

    def again(self, voicing, mask: np.ndarray, after: int) -> np.ndarray | None:
        """The wait ended (``after`` steps on) where the model expected the lead, who did not
        come: the state is put back to the wait's start and the events the band may draw from
        ``after`` steps on are returned (`Voicing.band_mask`, in ``mask``). None where the
        grammar allows nothing from there (a note reaches its cap): the trial stays open, the
        grammar at the wait's end, and the wait is to be committed as it is."""
        self._tracker.restore(self._mark)
        later = voicing.band_mask(self._tracker.allowed(), mask, after=after)
        if not later.any():
            self._tracker.update(self.shift)  # back to the wait's end, where the model is
            return None
        self.stepper.restore(self.snap)
        self._mark = None
        return later
