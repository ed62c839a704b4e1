"""MIDI knobs, pads and pedals onto the panel's controls: ``--map 74=temperature``, a map file,
and learning one by moving each knob in turn.

A source is a CC or a note, on one channel or any: ``74`` or ``cc74`` (CC 74), ``note36`` (a pad
sending note 36), ``10:note36`` (only on channel 10). A CC spreads its 0..127 over a range
control (0 unsets density and register: they follow the player again), picks a choice, holds a
switch on from 64 up and fires a trigger when it crosses 64 upwards (a pedal's press). A pad
toggles a switch, steps through a choice (handover: your turn, the band's turn), fires a trigger
and sets a range from its velocity. Messages a map takes are the panel's, never the model's.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from neuralband.live.panel import CHOICE, CONTROLS, INDEX, RANGE, SWITCH, TRIGGER, Panel, control

CC, NOTE = "cc", "note"
_SOURCE = re.compile(r"(?:(\d+):)?(cc|note)?(\d+)")
_SLOTS = 2 * 16 * 128  # (CC or note) x channel x number


@dataclass(frozen=True)
class Source:
    """A CC or note number, on one channel (0-based) or any (None)."""

    kind: str
    number: int
    channel: int | None = None

    @classmethod
    def parse(cls, text: str) -> Source:
        """``74``, ``cc74``, ``note36``, ``10:note36`` (channel 1..16) -> a Source."""
        m = _SOURCE.fullmatch(str(text).strip().lower().replace(" ", ""))
        if m is None:
            raise ValueError(f"not a MIDI source: {text!r} (a CC number such as 74 or cc74, "
                             "or a note such as note36; a channel before it: 10:note36)")
        channel, kind, number = m.group(1), m.group(2) or CC, int(m.group(3))
        if not 0 <= number <= 127:
            raise ValueError(f"{text!r}: a CC or note number is 0..127")
        if channel is not None and not 1 <= int(channel) <= 16:
            raise ValueError(f"{text!r}: a MIDI channel is 1..16")
        return cls(kind, number, None if channel is None else int(channel) - 1)

    def __str__(self) -> str:
        where = "" if self.channel is None else f"{self.channel + 1}:"
        return f"{where}{self.kind}{self.number}"


def source_of(data: list[int], channel: bool = True) -> Source | None:
    """The source a raw message comes from: a CC, or a note-on (velocity > 0); else None."""
    if len(data) < 3:
        return None
    status, ch = data[0] & 0xF0, data[0] & 0x0F
    if status == 0xB0:
        return Source(CC, data[1], ch if channel else None)
    if status == 0x90 and data[2] > 0:
        return Source(NOTE, data[1], ch if channel else None)
    return None


def parse_map(pairs: list[str]) -> dict[Source, str]:
    """``--map`` values ("74=temperature", ...) -> {source: control}; ValueError in one line."""
    out: dict[Source, str] = {}
    for pair in pairs:
        source, sep, name = pair.partition("=")
        if not sep:
            raise ValueError(f"--map takes SOURCE=CONTROL (e.g. 74=temperature), not {pair!r}")
        out[Source.parse(source)] = control(name).name
    return out


def load_map(path: str | os.PathLike) -> dict[Source, str]:
    """A map file: JSON ``{"map": {"74": "temperature"}}`` or TOML with a ``[map]`` table of
    the same pairs. ValueError naming the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read the map file {path}: {err.strerror or err}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise ValueError(f"{path}: TOML map files need Python 3.11 or later; "
                                 "write it as JSON (a .json name)") from None
            data = tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError, TOMLDecodeError
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                         f"{err}") from None
    table = data.get("map") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ValueError(f"{path} has no map table (a [map] table of SOURCE = \"CONTROL\")")
    try:
        return parse_map([f"{k}={v}" for k, v in table.items()])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def save_map(pairs: dict[Source, str], path: str | os.PathLike) -> Path:
    """Write a map file (JSON for a .json name, else TOML) that `load_map` reads back; an
    existing file is not replaced (ValueError)."""
    path = Path(path)
    if path.exists():
        raise ValueError(f"{path} exists; name a new file (or delete it first)")
    if path.suffix.lower() == ".json":
        text = json.dumps({"map": {str(s): c for s, c in pairs.items()}}, indent=2) + "\n"
    else:
        lines = ["# neuralband control map (neuralband play --map-file THIS)",
                 "# SOURCE = CONTROL; a source is ccN or noteN, CHANNEL: before it for one channel",
                 "[map]"]
        lines += [f'"{s}" = "{c}"' for s, c in pairs.items()]
        text = "\n".join(lines) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise ValueError(f"cannot write the map file {path}: {err.strerror or err}") from None
    return path


class MidiMap:
    """Mapped messages -> panel values, looked up in a flat table (no allocation per message)."""

    def __init__(self, panel: Panel, pairs: dict[Source, str]):
        self.panel = panel
        self.pairs = dict(pairs)
        self._table = [-1] * _SLOTS
        self._last = [-1] * _SLOTS  # each CC slot's last value (a trigger fires on the rise)
        # Any-channel sources first, so that a channel's own mapping wins over them.
        for source, name in sorted(pairs.items(), key=lambda p: p[0].channel is not None):
            channels = range(16) if source.channel is None else (source.channel,)
            for ch in channels:
                self._table[self._slot(source.kind, ch, source.number)] = INDEX[name]

    @staticmethod
    def _slot(kind: str, channel: int, number: int) -> int:
        return (kind == NOTE) * 2048 + channel * 128 + number

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def handle(self, data: list[int]) -> bool:
        """Take a raw message if it comes from a mapped source (True: it is the panel's)."""
        if len(data) < 3:
            return False
        status, number = data[0] & 0xF0, data[1] & 0x7F  # (a data byte is 7 bits)
        if status == 0xB0:
            slot = (data[0] & 0x0F) * 128 + number
        elif status in (0x80, 0x90):
            slot = 2048 + (data[0] & 0x0F) * 128 + number
        else:
            return False
        index = self._table[slot]
        if index < 0:
            return False
        c, value = CONTROLS[index], None
        if status == 0xB0:
            value = c.from_midi(data[2] & 0x7F,
                                None if self._last[slot] < 0 else self._last[slot])
            self._last[slot] = data[2] & 0x7F
        elif status == 0x90 and data[2] > 0:  # a pad's press; its release does nothing
            value = self._press(index, data[2] & 0x7F)
        if value is not None:
            self.panel.store(index, value)
        return True

    def _press(self, index: int, velocity: int) -> float:
        c, now = CONTROLS[index], self.panel.values[index]
        if c.kind == SWITCH:
            return 0.0 if now else 1.0
        if c.kind == CHOICE:
            return float((int(now) + 1) % len(c.choices))
        if c.kind == RANGE:
            return c.low + velocity / 127 * (c.high - c.low)
        assert c.kind == TRIGGER
        return 1.0


def learn(next_message: Callable[[float], list[int] | None], say: Callable[[str], None],
          skip: Callable[[], bool], quiet_s: float = 0.4,
          names: tuple[str, ...] | None = None) -> dict[Source, str]:
    """Ask for each control in turn; the first CC or note-on that comes (from a source not yet
    taken) is its source. ``next_message(timeout)`` gives the next raw message or None,
    ``skip()`` says the player skipped this one (Enter). After each, the knob's burst is let
    pass (``quiet_s`` without messages) so one turn of a knob maps one control."""
    pairs: dict[Source, str] = {}
    for name in names or tuple(c.name for c in CONTROLS):
        c = control(name)
        hint = ("move its knob or fader" if c.kind == RANGE else "press its pad, pedal or "
                "button, or move a knob")
        say(f"{c.name}: {hint} ({c.help}); Enter skips")
        found = None
        while found is None and not skip():
            data = next_message(0.05)
            source = None if data is None else source_of(data)
            if source is None:
                continue
            if source in pairs:
                say(f"  {source} is already {pairs[source]}; another one, please")
                _let_pass(next_message, quiet_s)
                continue
            found = source
        if found is None:
            say(f"  {c.name}: skipped")
            continue
        pairs[found] = c.name
        say(f"  {c.name} <- {found}")
        _let_pass(next_message, quiet_s)
    return pairs


def _let_pass(next_message: Callable[[float], list[int] | None], quiet_s: float) -> None:
    last = time.monotonic()
    while time.monotonic() - last < quiet_s:
        if next_message(0.02) is not None:
            last = time.monotonic()
