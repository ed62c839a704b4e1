"""The grid band's two ends (`grid_engine.GridEngine`): the player's notes read as the lead's
state at each tick, and the band's states at each tick sounded as notes. No clock, no I/O of
their own: each is tested alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from neuralband.encoders.grid import (
    DECODE_VELOCITY,
    HOLD,
    NEW,
    REST,
    default_registers,
    voice_pitch,
)
from neuralband.live.notes_out import NOTE_OFF, NOTE_ON, OutputNotes


@dataclass
class _Note:
    start: int  # the grid step its onset rounds to
    pitch: int
    serial: int  # arrival order: a re-struck pitch is another note
    seen: bool = False  # whether a tick has counted it


class LeadReader:
    """The player's note messages in, the lead's grid state at each tick out (no clock, no I/O).

    Times are seconds since the grid started. As offline (`encoders.grid._voice_states`) each
    onset rounds to the nearest step, and at tick n the note that started last (then highest)
    wins, among those sounding and those pressed and released since the last tick (still a new
    note). The same winner as at the last tick holds, another is a new note, none is a rest.
    All channels alike; a note-on of velocity 0 is a note-off.
    """

    def __init__(self, step_s: float):
        self.step_s = step_s
        self.reset()

    def reset(self) -> None:
        """No notes, no winner, the default velocity."""
        self.held: dict[tuple[int, int], _Note] = {}  # (channel, pitch) -> the note sounding
        self._brief: list[_Note] = []  # released before any tick counted them
        self._winner: _Note | None = None
        self._serial = 0
        self.velocity = DECODE_VELOCITY  # the last note-on's: the band plays at the player's

    def message(self, t: float, data: Sequence[int]) -> bool:
        """One raw message at ``t`` seconds; False (nothing done) unless a note-on or -off."""
        return self.at_step(t / self.step_s, data)

    def at_step(self, position: float, data: Sequence[int]) -> bool:
        """One raw message at ``position`` grid steps (an external clock says where)."""
        status = data[0] & 0xF0 if len(data) >= 3 else 0
        if status not in (NOTE_ON, NOTE_OFF):
            return False
        key = (data[0] & 0x0F, data[1])
        self._release(key)  # a note-off, or a re-struck key: the note before ends here
        if status == NOTE_ON and data[2] > 0:
            self._serial += 1
            start = max(0, math.floor(position + 0.5))
            self.held[key] = _Note(start, data[1], self._serial)
            self.velocity = data[2]
        return True

    def _release(self, key: tuple[int, int]) -> None:
        note = self.held.pop(key, None)
        if note is not None and not note.seen:
            self._brief.append(note)

    def release_all(self) -> None:
        """Every held note ends (the keyboard went away)."""
        for key in list(self.held):
            self._release(key)

    def tick(self, n: int) -> int:
        """The lead's state at tick ``n`` (ticks in increasing order), from what came so far."""
        candidates = [x for x in (*self.held.values(), *self._brief) if x.start <= n]
        for x in candidates:
            x.seen = True
        self._brief = [x for x in self._brief if not x.seen]
        winner = max(candidates, key=lambda x: (x.start, x.pitch, x.serial), default=None)
        previous, self._winner = self._winner, winner
        if winner is None:
            return REST
        return HOLD if winner is previous else NEW + winner.pitch % 12


class BandVoices:
    """The band's states per tick -> notes through `OutputNotes`: band voice k (1..) on channel
    ``channel + k - 1``, one note at a time, each new note's octave by `voice_pitch` (nearest the
    voice's last note, near its register in `default_registers`)."""

    def __init__(self, out: OutputNotes, voices: int, channel: int = 0):
        self.out = out
        self.channels = [(channel + k) % 16 for k in range(voices - 1)]
        self.registers = default_registers(voices)[1:]
        self.reset()

    def reset(self) -> None:
        """Forget the sounding notes, and lead each voice from its register again."""
        self.sounding: list[int | None] = [None] * len(self.channels)
        self.previous = list(self.registers)

    def play(self, states: Sequence[int], velocity: int, now: float) -> None:
        """One tick: a new note ends the voice's note and starts its own; a rest ends it; a hold
        does nothing. A failed send raises (the port is gone) with the voices still true."""
        for k, state in enumerate(states):
            if state == HOLD:
                continue
            self.end(k)
            if state >= NEW:
                channel = self.channels[k]
                pitch = voice_pitch(int(state) - NEW, self.previous[k], self.registers[k])
                self.out.note_on(channel, pitch, velocity, now)
                self.sounding[k] = self.previous[k] = pitch

    def end(self, k: int) -> None:
        """End voice ``k``'s note, if it sounds."""
        pitch, self.sounding[k] = self.sounding[k], None
        if pitch is not None:
            self.out.note_off(self.channels[k], pitch)

    def silence(self) -> None:
        """End every voice's note."""
        for k in range(len(self.channels)):
            self.end(k)

    def forget(self) -> None:
        """The output went away with the notes: nothing of ours sounds."""
        self.sounding = [None] * len(self.channels)

    def overdue(self, now: float) -> list[int]:
        """The voices whose note has sounded longer than the output's maximum note length."""
        limit = now - self.out.max_note_s
        return [k for k, pitch in enumerate(self.sounding)
                if pitch is not None and self.out.started[self.channels[k], pitch] <= limit]
