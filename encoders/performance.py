"""Performance-RNN events: MIDI <-> 388 token classes, token for token as Magenta's note_seq.

The vocabulary (note_seq ``PerformanceOneHotEncoding`` with 32 velocity bins)::

    0..127    NOTE_ON(pitch)
    128..255  NOTE_OFF(pitch)
    256..355  TIME_SHIFT(1..100 steps of 10 ms)
    356..387  VELOCITY(bin 1..32)

Encoding: sustain pedal folded into note lengths, times rounded to the nearest 10 ms step, a note
that rounds to zero length lasts one step, notes ordered by (start, pitch), events by (step,
note, off-after-on for one note), a VELOCITY event before a NOTE_ON only when the bin changes.
Decoding: a NOTE_OFF closes the earliest open note of its pitch; unmatched NOTE_OFFs and
zero-length notes are dropped; notes still open at the end close at the last step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from encoders.midi_io import MidiSource, NoteTable, Parser, read_notes
from encoders.sustain import apply_sustain


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

    # The token layout, derived from the settings (one table for encode, decode and describe).
    @property
    def note_on(self) -> int:
        return 0

    @property
    def note_off(self) -> int:
        return 128

    @property
    def time_shift(self) -> int:
        """Token of TIME_SHIFT(1); TIME_SHIFT(n) is ``time_shift + n - 1``."""
        return 256

    @property
    def velocity(self) -> int:
        """Token of VELOCITY(1); VELOCITY(b) is ``velocity + b - 1``."""
        return 256 + self.max_shift_steps

    @property
    def vocab_size(self) -> int:
        return 256 + self.max_shift_steps + self.velocity_bins

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

    # TIME_SHIFTs before each event: full shifts of max_shift_steps, then the remainder.
    max_shift = settings.max_shift_steps
    gap = np.diff(steps, prepend=0)
    n_full = np.where(gap > 0, (gap - 1) // max_shift, 0)
    n_shift = np.where(gap > 0, n_full + 1, 0)
    remainder = gap - n_full * max_shift

    # VELOCITY before a NOTE_ON whose bin differs from the last one sent (starting from 0).
    on_bins = vel_bin[note_idx[~is_off]]
    changed = on_bins != np.concatenate([[0], on_bins[:-1]])
    needs_vel = np.zeros(len(steps), bool)
    needs_vel[~is_off] = changed

    length = n_shift + needs_vel + 1
    first = np.cumsum(length) - length
    tokens = np.full(int(length.sum()), settings.time_shift + max_shift - 1, np.int64)
    shifted = n_shift > 0
    tokens[first[shifted] + n_shift[shifted] - 1] = settings.time_shift + remainder[shifted] - 1
    vel_pos = first + n_shift
    tokens[vel_pos[needs_vel]] = settings.velocity + vel_bin[note_idx[needs_vel]] - 1
    note_tok = np.where(is_off, settings.note_off, settings.note_on) + pitch[note_idx]
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
    t_shift, t_vel = settings.time_shift, settings.velocity
    for tok in toks.tolist():
        if tok < settings.note_off:
            open_notes.setdefault(tok, []).append((step, velocity))
        elif tok < t_shift:
            pitch = tok - settings.note_off
            waiting = open_notes.get(pitch)
            if waiting:
                start, vel = waiting.pop(0)
                if start != step:
                    notes.append((start, step, pitch, vel))
        elif tok < t_vel:
            step += tok - t_shift + 1
        else:
            velocity = int(settings.bin_to_velocity(tok - t_vel + 1))
    for pitch, waiting in open_notes.items():
        notes.extend((start, step, pitch, vel) for start, vel in waiting if start != step)
    notes.sort()
    return notes


def describe(token: int, settings: EncoderSettings = DEFAULT_SETTINGS) -> str:
    """A token in words: "NOTE_ON 60", "NOTE_OFF 60", "TIME_SHIFT 250 ms", "VELOCITY 17"."""
    tok = int(token)
    if not 0 <= tok < settings.vocab_size:
        raise ValueError(f"token {tok} is outside the vocabulary 0..{settings.vocab_size - 1}")
    if tok < settings.note_off:
        return f"NOTE_ON {tok}"
    if tok < settings.time_shift:
        return f"NOTE_OFF {tok - settings.note_off}"
    if tok < settings.velocity:
        ms = (tok - settings.time_shift + 1) * 1000 / settings.steps_per_second
        return f"TIME_SHIFT {ms:g} ms"
    return f"VELOCITY {tok - settings.velocity + 1}"
