"""Performance-RNN events: MIDI <-> 388 token classes, token for token as Magenta's note_seq.

The vocabulary (note_seq ``PerformanceOneHotEncoding`` with 32 velocity bins)::

    0..127    NOTE_ON(pitch)
    128..255  NOTE_OFF(pitch)
    256..355  TIME_SHIFT(1..100 steps of 10 ms)
    356..387  VELOCITY(bin 1..32)

The layout is one table, `EncoderSettings.table` (as note_seq keeps (event type, min, max)
ranges): encoding, decoding, `describe`, the live encoder and the sampler's grammar masks read
it, per token through ``settings.kinds`` / ``settings.values``, per event through ``span``.

Encoding: sustain pedal folded into note lengths, times rounded to the nearest 10 ms step, a note
that rounds to zero length lasts one step, notes ordered by (start, pitch), events by (step,
note, off-after-on for one note), a VELOCITY event before a NOTE_ON only when the bin changes.
Decoding: a NOTE_OFF closes the earliest open note of its pitch; unmatched NOTE_OFFs and
zero-length notes are dropped; notes still open at the end close at the last step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import IntEnum
from functools import cached_property

import numpy as np

from neuralband.encoders.midi_io import MidiSource, NoteTable, Parser, read_notes
from neuralband.encoders.sustain import apply_sustain


class Event(IntEnum):
    """The vocabulary's event types, in token order (`EncoderSettings.table`)."""

    NOTE_ON = 0  # value: pitch 0..127
    NOTE_OFF = 1  # value: pitch 0..127
    TIME_SHIFT = 2  # value: steps 1..max_shift_steps
    VELOCITY = 3  # value: bin 1..velocity_bins


@dataclass(frozen=True)
class EncoderSettings:
    """Everything that changes which token a piece of music becomes; stored with datasets and
    models so that tokens made with other settings are refused."""

    steps_per_second: int = 100
    max_shift_steps: int = 100
    velocity_bins: int = 32
    sustain: bool = True
    include_drums: bool = False

    def __post_init__(self) -> None:
        for name in ("steps_per_second", "max_shift_steps", "velocity_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if self.steps_per_second < 1:
            raise ValueError(f"steps_per_second must be >= 1, got {self.steps_per_second}")
        if self.max_shift_steps < 1:
            raise ValueError(f"max_shift_steps must be >= 1, got {self.max_shift_steps}")
        if not 1 <= self.velocity_bins <= 127:
            raise ValueError(f"velocity_bins must be in 1..127, got {self.velocity_bins}")

    # The token layout: one table, as note_seq keeps its (event type, min, max) ranges, that
    # encoding, decoding, describing and the grammar's masks all read.
    @cached_property
    def table(self) -> tuple[tuple[int, int, int], ...]:
        """Per `Event`, in token order: (first token, its value, how many values)."""
        counts = (128, 128, self.max_shift_steps, self.velocity_bins)
        lows = (0, 0, 1, 1)
        firsts = np.cumsum((0, *counts[:-1])).tolist()
        return tuple(zip(firsts, lows, counts, strict=True))

    @cached_property
    def kinds(self) -> np.ndarray:
        """The `Event` of every token (an int8 array of vocab_size): ``kinds[tokens]``."""
        return np.repeat(np.arange(len(Event), dtype=np.int8), [n for _, _, n in self.table])

    @cached_property
    def values(self) -> np.ndarray:
        """The value of every token: a pitch, a number of steps or a velocity bin."""
        return np.concatenate([np.arange(low, low + n) for _, low, n in self.table])

    def span(self, event: Event) -> slice:
        """The tokens of ``event``, as a slice of the vocabulary (for masks over it)."""
        first, _, count = self.table[event]
        return slice(first, first + count)

    def token(self, event: Event, value: int | np.ndarray) -> int | np.ndarray:
        """The token of ``event`` with ``value`` (e.g. ``token(Event.NOTE_ON, 60)``)."""
        first, low, _ = self.table[event]
        return first + value - low

    @property
    def note_on(self) -> int:
        """Token of NOTE_ON(0); NOTE_ON(p) is ``note_on + p``."""
        return self.table[Event.NOTE_ON][0]

    @property
    def note_off(self) -> int:
        """Token of NOTE_OFF(0); NOTE_OFF(p) is ``note_off + p``."""
        return self.table[Event.NOTE_OFF][0]

    @property
    def time_shift(self) -> int:
        """Token of TIME_SHIFT(1); TIME_SHIFT(n) is ``time_shift + n - 1``."""
        return self.table[Event.TIME_SHIFT][0]

    @property
    def velocity(self) -> int:
        """Token of VELOCITY(1); VELOCITY(b) is ``velocity + b - 1``."""
        return self.table[Event.VELOCITY][0]

    @property
    def vocab_size(self) -> int:
        first, _, count = self.table[-1]
        return first + count

    @property
    def velocity_bin_size(self) -> int:
        return math.ceil(127 / self.velocity_bins)

    def velocity_to_bin(self, velocity: np.ndarray | int) -> np.ndarray | int:
        """MIDI velocity 1..127 -> bin 1..velocity_bins, as note_seq."""
        return (velocity - 1) // self.velocity_bin_size + 1

    def bin_to_velocity(self, bin_: np.ndarray | int) -> np.ndarray | int:
        """Bin -> the lowest MIDI velocity in it, as note_seq decodes."""
        return 1 + (bin_ - 1) * self.velocity_bin_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderSettings:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown encoder settings: {sorted(unknown)}")
        return cls(**d)


DEFAULT_SETTINGS = EncoderSettings()
VOCAB_SIZE = DEFAULT_SETTINGS.vocab_size  # 388
NOTE_ON = DEFAULT_SETTINGS.note_on  # 0
NOTE_OFF = DEFAULT_SETTINGS.note_off  # 128
TIME_SHIFT = DEFAULT_SETTINGS.time_shift  # 256: TIME_SHIFT(1)
VELOCITY = DEFAULT_SETTINGS.velocity  # 356: VELOCITY(1)
DEFAULT_DECODE_VELOCITY = 100  # note_seq's default before the first VELOCITY event


def shift_run(gap: np.ndarray | int, max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """The shift rule, the one place it is written: a gap of g > 0 steps is (g - 1) // max_shift
    full TIME_SHIFT(max_shift), then TIME_SHIFT of the remainder (1..max_shift); a gap of 0 has
    none. Per gap: how many shift tokens, and the steps of the last one."""
    gap = np.asarray(gap, np.int64)
    full = np.maximum(gap - 1, 0) // max_shift
    return np.where(gap > 0, full + 1, 0), gap - full * max_shift


def shifts_before(gap: np.ndarray, payload: np.ndarray | int, time_shift: int,
                  max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """A token stream of groups, each ``gap[i]`` steps after the one before (`shift_run`'s
    TIME_SHIFTs, ``time_shift`` the token of TIME_SHIFT(1)) followed by ``payload[i]`` tokens:
    the stream with its shifts written, and where each group's payload starts (the caller's to
    fill)."""
    count, last = shift_run(gap, max_shift)
    length = count + payload
    first = np.cumsum(length) - length
    out = np.full(int(np.sum(length)), time_shift + max_shift - 1, np.int64)
    shifted = count > 0
    out[(first + count - 1)[shifted]] = time_shift + last[shifted] - 1
    return out, first + count


def encode(source: MidiSource, settings: EncoderSettings = DEFAULT_SETTINGS,
           parser: Parser = "auto") -> np.ndarray:
    """MIDI file path, bytes or PrettyMIDI -> int64 token array (empty for a file with no notes).

    Raises `encoders.MidiError` naming the source when it is not readable MIDI.
    """
    return encode_notes(read_notes(source, parser=parser), settings)


def prepare_notes(table: NoteTable, settings: EncoderSettings = DEFAULT_SETTINGS) -> NoteTable:
    """The notes that get encoded: drums dropped unless kept, sustain pedal folded in."""
    if not settings.include_drums:
        table = table.select(~table.is_drum)
    if settings.sustain:
        table = apply_sustain(table)
    return table


def encode_notes(table: NoteTable, settings: EncoderSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """The semantics in one place: notes and pedals -> tokens."""
    return tokens_from_notes(prepare_notes(table, settings), settings)


def tokens_from_notes(table: NoteTable,
                      settings: EncoderSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Prepared notes (see `prepare_notes`) -> tokens, vectorised."""
    n = len(table)
    if n == 0:
        return np.zeros(0, np.int64)

    # Quantise as note_seq: int(seconds * steps_per_second + 0.5), zero length -> one step.
    sps = settings.steps_per_second
    q_start = (table.start_s * sps + 0.5).astype(np.int64)
    q_end = (table.end_s * sps + 0.5).astype(np.int64)
    q_end = np.where(q_end == q_start, q_end + 1, q_end)
    if np.any(q_start < 0):
        raise ValueError("notes at negative times cannot be encoded")

    # Notes by (start time, pitch), stable; events by (step, note index, is_offset).
    note_order = np.lexsort((table.pitch, table.start_s))
    pitch = table.pitch[note_order]
    vel_bin = settings.velocity_to_bin(table.velocity[note_order])
    steps = np.concatenate([q_start[note_order], q_end[note_order]])
    note_idx = np.concatenate([np.arange(n), np.arange(n)])
    is_off = np.concatenate([np.zeros(n, bool), np.ones(n, bool)])
    ev = np.lexsort((is_off, note_idx, steps))
    steps, note_idx, is_off = steps[ev], note_idx[ev], is_off[ev]

    # VELOCITY before a NOTE_ON whose bin differs from the last one sent (starting from 0).
    on_bins = vel_bin[note_idx[~is_off]]
    changed = on_bins != np.concatenate([[0], on_bins[:-1]])
    needs_vel = np.zeros(len(steps), bool)
    needs_vel[~is_off] = changed

    # Each event: the TIME_SHIFTs since the last one (`shift_run`), [VELOCITY], the note.
    tokens, vel_pos = shifts_before(np.diff(steps, prepend=0), needs_vel + 1,
                                    settings.time_shift, settings.max_shift_steps)
    tokens[vel_pos[needs_vel]] = settings.token(Event.VELOCITY, vel_bin[note_idx[needs_vel]])
    note_tok = np.where(is_off, settings.token(Event.NOTE_OFF, pitch[note_idx]),
                        settings.token(Event.NOTE_ON, pitch[note_idx]))
    tokens[vel_pos + needs_vel] = note_tok
    return tokens


def decode(tokens: np.ndarray | list[int], settings: EncoderSettings = DEFAULT_SETTINGS,
           program: int = 0) -> pretty_midi.PrettyMIDI:  # noqa: F821
    """Tokens -> a one-instrument PrettyMIDI, with note_seq's rules for unmatched events."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    pm.instruments.append(inst)
    seconds_per_step = 1.0 / settings.steps_per_second
    for start, end, pitch, velocity in decode_notes(tokens, settings):
        inst.notes.append(pretty_midi.Note(
            velocity=int(velocity), pitch=int(pitch),
            start=start * seconds_per_step, end=end * seconds_per_step))
    return pm


def decode_notes(tokens: np.ndarray | list[int],
                 settings: EncoderSettings = DEFAULT_SETTINGS) -> list[tuple[int, int, int, int]]:
    """Tokens -> (start_step, end_step, pitch, velocity) sorted by (start, pitch, end)."""
    toks = np.asarray(tokens, dtype=np.int64).ravel()
    if toks.size and (toks.min() < 0 or toks.max() >= settings.vocab_size):
        bad = toks[(toks < 0) | (toks >= settings.vocab_size)][0]
        raise ValueError(f"token {bad} is outside the vocabulary 0..{settings.vocab_size - 1}")
    open_notes: dict[int, list[tuple[int, int]]] = {}
    notes: list[tuple[int, int, int, int]] = []
    step = 0
    velocity = DEFAULT_DECODE_VELOCITY
    on, off, shift = Event.NOTE_ON, Event.NOTE_OFF, Event.TIME_SHIFT
    for kind, value in zip(settings.kinds[toks].tolist(), settings.values[toks].tolist(),
                           strict=True):
        if kind == on:
            open_notes.setdefault(value, []).append((step, velocity))
        elif kind == off:
            waiting = open_notes.get(value)
            if waiting:
                start, vel = waiting.pop(0)
                if start != step:
                    notes.append((start, step, value, vel))
        elif kind == shift:
            step += value
        else:
            velocity = int(settings.bin_to_velocity(value))
    for pitch, waiting in open_notes.items():
        notes.extend((start, step, pitch, vel) for start, vel in waiting if start != step)
    notes.sort()
    return notes


def describe(token: int, settings: EncoderSettings = DEFAULT_SETTINGS) -> str:
    """A token in words: "NOTE_ON 60", "NOTE_OFF 60", "TIME_SHIFT 250 ms", "VELOCITY 17"."""
    tok = int(token)
    if not 0 <= tok < settings.vocab_size:
        raise ValueError(f"token {tok} is outside the vocabulary 0..{settings.vocab_size - 1}")
    kind, value = Event(settings.kinds[tok]), int(settings.values[tok])
    if kind == Event.TIME_SHIFT:
        return f"TIME_SHIFT {value * 1000 / settings.steps_per_second:g} ms"
    return f"{kind.name} {value}"
