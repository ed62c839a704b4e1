"""The band's controls while it plays: one panel of named values that MIDI knobs and pads, OSC
and the browser write, and the engine thread reads once per turn.

Each control has a kind: a *range* (a number between two ends; `density` and `register` may also
be unset, "follow" the player or "any" pitch), a *choice* (one of a few names), a *switch* (on or
off) or a *trigger* (`end`, `panic`: a press that acts once). Sources only write: `Panel.set`
checks and converts a value, stores one float in a preallocated array and bumps `version`; the
engine compares `version` with the last it applied (one integer comparison per turn) and acts on
what changed. There is no lock: storing one numpy element and one int are atomic under the GIL,
and two writers racing can only leave `version` bumped once, which still tells the engine to
look. A trigger's value counts its presses, so no press is lost between two looks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neuralband.encoders.keys import MODES as KEY_MODES
from neuralband.encoders.keys import key_name, parse_key

RANGE, CHOICE, SWITCH, TRIGGER = "range", "choice", "switch", "trigger"
FOLLOW = "follow"
KEYS = (FOLLOW, *(key_name(t, m) for m in KEY_MODES for t in range(12)))
PLAY_MODES = ("call", "solo", "duet")  # as `engine.MODES`; the engine checks they agree
TURNS = ("player", "band")


@dataclass(frozen=True)
class Control:
    """One named control: its kind, its range or choices, and what unset reads as."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[str, ...] = ()
    unset: str | None = None  # a range's word for "not set" (the value NaN), or None
    unit: str = ""
    help: str = ""

    def parse(self, value: object) -> float:
        """A value from any source (a number, a name, a bool) -> the float the panel stores;
        ValueError in one line when it is wrong for this control. Triggers take anything."""
        if self.kind == TRIGGER:
            return 1.0
        if self.kind == RANGE:
            if self.unset and isinstance(value, str) and value.strip().lower() in (
                    self.unset, "none", "off", "auto", ""):
                return math.nan
            number = _number(value, self.name)
            if not self.low <= number <= self.high:
                raise ValueError(f"{self.name} must be {self.low:g}..{self.high:g}"
                                 f"{' ' + self.unit if self.unit else ''}"
                                 f"{' or ' + repr(self.unset) if self.unset else ''}, "
                                 f"got {number:g}")
            return number
        if self.kind == SWITCH:
            if isinstance(value, str):
                word = value.strip().lower()
                if word in ("on", "true", "yes", "1"):
                    return 1.0
                if word in ("off", "false", "no", "0"):
                    return 0.0
                raise ValueError(f"{self.name} is on or off, not {value!r}")
            return 1.0 if _number(value, self.name) >= 0.5 else 0.0
        if isinstance(value, str):  # a choice by name
            return float(self.index(value))
        number = _number(value, self.name)
        if number != int(number) or not 0 <= number < len(self.choices):
            raise ValueError(f"{self.name} is one of {', '.join(self.choices)} "
                             f"(or 0..{len(self.choices) - 1}), got {number:g}")
        return number

    def index(self, name: str) -> int:
        """A choice's position from its name (keys in any spelling `parse_key` reads)."""
        word = name.strip().lower()
        for i, choice in enumerate(self.choices):
            if word == choice.lower():
                return i
        if self.name == "key":
            if word in ("", "auto"):
                return 0
            try:
                return self.choices.index(key_name(*parse_key(name)))
            except ValueError:
                pass
        raise ValueError(f"{self.name} is one of {', '.join(self.choices[:6])}"
                         f"{', ...' if len(self.choices) > 6 else ''}, not {name!r}")

    def from_midi(self, value: int, previous: int | None = None) -> float | None:
        """A CC's 0..127 (or a pad's velocity) as this control's value; None: no change (a
        trigger fires only when the value crosses 64 upwards, a pedal press, not its release).
        Ranges spread 0..127 over low..high, and 0 unsets where the control may be unset."""
        if self.kind == TRIGGER:
            return 1.0 if value >= 64 and (previous is None or previous < 64) else None
        if self.kind == SWITCH:
            return 1.0 if value >= 64 else 0.0
        if self.kind == CHOICE:
            return float(round(value / 127 * (len(self.choices) - 1)))
        if self.unset and value == 0:
            return math.nan
        return self.low + value / 127 * (self.high - self.low)

    def show(self, value: float) -> str:
        """The stored float as a person reads it."""
        if self.kind == RANGE:
            return self.unset if math.isnan(value) else f"{value:.2f}".rstrip("0").rstrip(".")
        if self.kind == SWITCH:
            return "on" if value else "off"
        if self.kind == CHOICE:
            return self.choices[int(value)]
        return str(int(value))


def _number(value: object, name: str) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} takes a finite number, not {value!r}")
    return number


CONTROLS = (
    Control("temperature", RANGE, 0.1, 2.0,
            help="randomness of the band's choices (low: safe, high: adventurous)"),
    Control("density", RANGE, 0.5, 16.0, unset=FOLLOW, unit="notes/s",
            help="how busily the band plays; 'follow': as the player (or the model) does"),
    Control("key", CHOICE, choices=KEYS,
            help="the key the band keeps to; 'follow': the key the player plays in"),
    Control("register", RANGE, 30.0, 90.0, unset="any", unit="MIDI pitch",
            help="the centre of the band's new notes (an octave and a half either side)"),
    Control("mode", CHOICE, choices=PLAY_MODES,
            help="call: answer your pauses; solo: play on; duet: play while you play"),
    Control("answer", RANGE, 0.5, 16.0, unit="s", help="the longest answer in call mode"),
    Control("mute", SWITCH, help="the band listens but plays nothing"),
    Control("handover", CHOICE, choices=TURNS,
            help="whose turn: 'band' plays now until handed back; 'player' hands it back"),
    Control("end", TRIGGER, help="the band closes the piece within a couple of seconds"),
    Control("panic", TRIGGER, help="every note off at once; the band rests until you play"),
    Control("tap", TRIGGER, help="tap the beat: the band plays at the tempo of your last taps, "
            "the first tap a downbeat (a model that reads the beat)"),
)
BY_NAME = {c.name: c for c in CONTROLS}
INDEX = {c.name: i for i, c in enumerate(CONTROLS)}


def control(name: str) -> Control:
    """The control named ``name``; ValueError naming the controls otherwise."""
    try:
        return BY_NAME[name.strip().lower()]
    except KeyError:
        raise ValueError(f"no control {name!r}; the controls are "
                         f"{', '.join(BY_NAME)}") from None


class Panel:
    """The current value of every control, written by any thread, read by the engine."""

    def __init__(self, temperature: float = 1.0, mode: str = "call", answer_s: float = 4.0,
                 density: float | None = None, key: str | None = None):
        self.values = np.zeros(len(CONTROLS))
        self.values[INDEX["density"]] = math.nan if density is None else density
        self.values[INDEX["register"]] = math.nan
        self.values[INDEX["temperature"]] = temperature
        self.values[INDEX["mode"]] = PLAY_MODES.index(mode)
        self.values[INDEX["answer"]] = answer_s
        if key is not None:
            self.values[INDEX["key"]] = BY_NAME["key"].index(key)
        self.version = 0
        self.on_change: Callable[[], None] | None = None  # e.g. wake the engine (OSC's thread)

    def set(self, name: str, value: object = 1.0) -> float:
        """Set a control from a value any source sends (`Control.parse`); the stored float.
        ValueError for an unknown control or a bad value, with nothing changed."""
        c = control(name)
        self.store(INDEX[c.name], c.parse(value))
        return self.values[INDEX[c.name]]

    def store(self, index: int, value: float) -> None:
        """Store an already checked value (a trigger counts a press), and tell the engine."""
        if CONTROLS[index].kind == TRIGGER:
            value = self.values[index] + 1.0
        self.values[index] = value
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    def get(self, name: str) -> float:
        return float(self.values[INDEX[control(name).name]])

    def show(self, name: str) -> str:
        c = control(name)
        return c.show(self.values[INDEX[c.name]])

    def state(self) -> dict[str, str | float]:
        """Every control's current value: numbers as numbers, names as names (OSC, the view)."""
        out: dict[str, str | float] = {}
        for i, c in enumerate(CONTROLS):
            v = float(self.values[i])
            out[c.name] = v if c.kind in (RANGE, TRIGGER) and not math.isnan(v) else c.show(v)
        return out

    def summary(self) -> str:
        """The status line's part: the temperature always, the others where they steer."""
        v = self.values
        parts = [f"T {self.show('temperature')}"]
        if not math.isnan(v[INDEX["density"]]):
            parts.append(f"density {self.show('density')}")
        if v[INDEX["key"]]:
            parts.append(f"key {self.show('key')}")
        if not math.isnan(v[INDEX["register"]]):
            parts.append(f"register {self.show('register')}")
        if v[INDEX["mode"]] == PLAY_MODES.index("call"):
            parts.append(f"answer {self.show('answer')}s")
        if v[INDEX["mute"]]:
            parts.append("MUTED")
        if v[INDEX["handover"]]:
            parts.append("band's turn")
        return " ".join(parts)
