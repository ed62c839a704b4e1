"""Where an offline piece's beat comes from: ``--bpm`` (a steady grid), the primer's or the
melody's own beats (`encoders.beats.beats_of_file`: annotations, a tempo map that fits the notes,
else the tracker), or none (``--beat free``, or from silence without ``--bpm``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuralband.encoders.beats import Beats, beats_of_file, parse_meter, steady_beats

BEAT_CHOICES = ("follow", "free")
FROM_SILENCE_S = 0.1  # from silence the first downbeat comes as the music starts


@dataclass(frozen=True)
class BeatChoice:
    """The command line's beat: ``bpm`` (None: follow the file's or the player's), ``meter``
    (beats to the bar; None: the file's, else 4), ``free`` (no beat at all)."""

    bpm: float | None = None
    meter: int | None = None
    free: bool = False

    @classmethod
    def parse(cls, bpm: float | None, meter: str | None, beat: str | None) -> BeatChoice:
        if beat not in (None, *BEAT_CHOICES):
            raise ValueError(f"--beat is one of {', '.join(BEAT_CHOICES)}, not {beat!r}")
        free = beat == "free"
        if free and (bpm is not None or meter is not None):
            raise ValueError("--beat free plays without a beat: leave out --bpm and --meter")
        if bpm is not None and not 20 <= bpm <= 400:
            raise ValueError(f"--bpm is 20..400 beats a minute, got {bpm:g}")
        return cls(bpm, None if meter is None else parse_meter(meter), free)


def offline_beats(choice: BeatChoice, source: str | None, start_s: float, until_s: float
                  ) -> Beats | None:
    """The beats a piece of ``until_s`` seconds plays on: a steady ``--bpm`` grid from
    ``start_s`` (with a ``source`` file: its first beat's place), else ``source``'s beats (a
    primer or melody file) carried on at their last tempo, else none."""
    if choice.free:
        return None
    found = beats_of_file(source, choice.meter or 4) if source is not None else None
    if choice.bpm is not None:
        first = float(found.times_s[0]) if found is not None else start_s
        return steady_beats(choice.bpm, first, until_s, choice.meter or 4)
    if found is None:
        return None
    if choice.meter is not None and found.meter != choice.meter:  # the file's beats, re-barred
        first = int(np.argmax(found.downbeats)) if found.downbeats.any() else 0
        found = Beats(found.times_s, (np.arange(len(found)) - first) % choice.meter == 0,
                      found.source)
    return found.carried_on(until_s)
