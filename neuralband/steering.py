"""What a conditioned model is told to play: the key and density controls of a session.

Each control is fixed by the musician (``--key "Eb major"``, ``--density 6``), left free, or, by
default, follows the music heard so far: offline the primer, live the player's last notes (the
band keeps to the key you play in and to how busily you play). `Steering` turns those choices and
the notes heard into the model's control vector (`encoders.controls`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from neuralband.encoders.controls import ControlSettings, control_vector, key_histogram
from neuralband.encoders.keys import estimate_key, parse_key
from neuralband.encoders.schemes import EventScheme

FOLLOW, FREE = "follow", "free"
FOLLOW_KEY_S = 20.0  # the player's notes of the last 20 s say the key
FOLLOW_DENSITY_S = 8.0  # and those of the last 8 s (up to the last note) how busily to play
CAPACITY = 1024  # player notes remembered, preallocated


@dataclass(frozen=True)
class ControlChoice:
    """The musician's choice per control: "follow" (the music heard), "free", or a value (a key
    name such as "Eb major"; notes per second)."""

    key: str = FOLLOW
    density: str | float = FOLLOW

    @classmethod
    def parse(cls, key: str | None, density: str | float | None) -> ControlChoice:
        """Command-line values -> a choice; ValueError in one line on a bad key or density."""
        key = FOLLOW if key in (None, "", FOLLOW, "auto") else key
        if key not in (FOLLOW, FREE):
            parse_key(key)  # raises a readable ValueError
        if density in (None, "", FOLLOW, "auto"):
            density = FOLLOW
        elif density != FREE:
            try:
                density = float(density)
            except (TypeError, ValueError) as err:
                raise ValueError(f"--density is notes per second, 'follow' or 'free', "
                                 f"not {density!r}") from err
            if not 0 <= density <= 100:
                raise ValueError(f"--density must be 0..100 notes per second, got {density:g}")
        return cls(key, density)

    @property
    def fixed(self) -> bool:
        """Whether nothing follows the music (the vector never changes)."""
        return self.key != FOLLOW and self.density != FOLLOW

    def words(self, follows: str = "yours") -> str:
        """The choice as a player reads it: ``key: follows yours; pace: 6 notes/s``."""
        def say(value: object, unit: str = "") -> str:
            if value == FOLLOW:
                return f"follows {follows}"
            if value == FREE:
                return "free (as the model likes)"
            return f"{value:g}{unit}" if isinstance(value, float) else str(value)

        return f"key: {say(self.key)}; pace: {say(self.density, ' notes/s')}"


class Steering:
    """The control vector of a session: the fixed parts from the choice, the following parts
    from the notes heard (`heard`: a few microseconds per note, into preallocated rings)."""

    def __init__(self, settings: ControlSettings, choice: ControlChoice = ControlChoice(),
                 arrangement: dict | None = None):
        """``arrangement`` (a duet model's ``arrangement_density``, `training.windows`): the notes
        heard are a lead's, and following density means playing as busily as the data's
        arrangements under a lead this busy (the lead's own notes per second say too little
        of the whole band's)."""
        self.settings, self.choice = settings, choice
        self.arrangement = None
        if arrangement:
            self.arrangement = (np.asarray(arrangement["lead_edges"], np.float64),
                                np.asarray(arrangement["density"], np.float64))
        self.vector = np.zeros(settings.size, np.float32)
        self._times = np.zeros(CAPACITY)
        self._pitch = np.zeros(CAPACITY, np.int64)
        self._count = 0
        self._hist = np.zeros(12)
        self._now = 0.0  # the last note's time
        self.choose(choice)

    def choose(self, choice: ControlChoice) -> np.ndarray:
        """A new choice mid-session (the live controls turn a knob): the vector after it."""
        self.choice = choice
        self._fixed_key = None
        if choice.key not in (FOLLOW, FREE):
            self._fixed_key = key_histogram(*parse_key(choice.key), self.settings)
        self._fixed_density = None if choice.density in (FOLLOW, FREE) else choice.density
        self._update(self._now)
        return self.vector

    def heard(self, t: float, pitch: int) -> np.ndarray:
        """A NOTE_ON at ``t`` seconds: remember it; the (reused) vector after it."""
        i = self._count % CAPACITY
        self._times[i], self._pitch[i] = t, pitch
        self._count += 1
        self._now = t
        if not self.choice.fixed:
            self._update(t)
        return self.vector

    def heard_tokens(self, tokens: np.ndarray, scheme: EventScheme) -> np.ndarray:
        """Every NOTE_ON of a primer in ``scheme``'s tokens (every voice's), at its time; the
        vector after them."""
        steps, where, pitch = scheme.onsets(tokens)
        for at, p in zip(steps[where].tolist(), pitch.tolist(), strict=True):
            self.heard(at / scheme.settings.steps_per_second, p)
        return self.vector

    def _recent(self, now: float, seconds: float) -> np.ndarray:
        n = min(self._count, CAPACITY)
        return self._pitch[:n][self._times[:n] > now - seconds]

    def _update(self, now: float = 0.0) -> None:
        key = self._fixed_key
        if key is None and self.choice.key == FOLLOW and self._count:
            self._hist.fill(0.0)
            np.add.at(self._hist, self._recent(now, FOLLOW_KEY_S) % 12, 1.0)
            key = self._hist if self._hist.sum() > 0 else None
        density = self._fixed_density
        if density is None and self.choice.density == FOLLOW and self._count > 1:
            n = min(self._count, CAPACITY)
            times = self._times[:n]
            recent = times[times > now - FOLLOW_DENSITY_S]
            span = max(float(recent.max() - recent.min()), 1.0) if len(recent) > 1 else None
            density = None if span is None else (len(recent) - 1) / span
            if density is not None and self.arrangement is not None:
                edges, arranged = self.arrangement
                density = float(arranged[np.searchsorted(edges, density, side="right")])
        control_vector(self.settings, key, density, out=self.vector)

    def key(self) -> tuple[int, str] | None:
        """The key the model is told now (the fixed one, or the one the notes heard say);
        None where it runs free of a key or has heard nothing."""
        if self._fixed_key is not None:
            return parse_key(self.choice.key)
        if self.choice.key == FOLLOW and self._hist.any():
            return estimate_key(self._hist)
        return None

    def describe(self) -> str:
        """One line: what the model is told now."""
        from neuralband.encoders.controls import describe_controls

        return describe_controls(self.vector, self.settings)


def steer(stepper, choice: ControlChoice | None, heard: np.ndarray | None = None
          ) -> Steering | None:
    """Set a conditioned model's controls from the choice (by default following ``heard``,
    the primer's tokens); None for a model without controls, which refuses a fixed choice.

    A duet model (voice-packed) that hears only the lead (``heard`` None: live, or
    accompanying) follows the lead's key; the density it learnt counts every voice's notes,
    which the lead's alone do not say, so it follows the density of the data's arrangements
    under a lead as busy (the model's ``arrangement_density``), or is left free where the model
    does not know it. A primer of every voice says it, and is followed."""
    info = stepper.info
    if info is None or info.controls is None:
        if choice is not None and (choice.key != "follow" or choice.density != "follow"):
            raise ValueError("this model reads no key or density controls (it was trained "
                             "without --controls)")
        return None
    choice = choice or ControlChoice()
    arrangement = None
    if info.scheme.accompanies and heard is None:
        arrangement = info.summary.get("arrangement_density")
        if choice.density == FOLLOW and not arrangement:
            choice = replace(choice, density=FREE)
    steering = Steering(info.controls, choice, arrangement)
    if heard is not None and len(heard):
        steering.heard_tokens(heard, info.scheme)
    stepper.set_controls(steering.vector)
    return steering
