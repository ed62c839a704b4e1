"""Ensemble grid: several monophonic voices on a fixed time grid, packed as in the Neural iPad Band.

Martin, Ellefsen & Torresen (2017) packed four players' 9-class gestures into one class per time
step: the model read the lead's gesture at t+1 and the band's at t (9**4 classes) and predicted the
band's at t+1 (9**3 classes). Here a gesture is a voice's state at one grid step::

    REST = 0            nothing sounds
    HOLD = 1            the note sounding at the previous step continues
    2 + pitch_class     a new note starts at this step (pitch class 0..11)

Pitch classes rather than pitches keep the packed class counts small, as the paper's 9 gesture
classes did: 14**4 = 38,416 input and 14**3 = 2,744 output classes for four voices. Octaves come
back on decoding from each voice's register and voice leading (`grid_notes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np

from neuralband.encoders.midi_io import MidiSource, NoteTable, source_name
from neuralband.encoders.packing import Packer
from neuralband.encoders.performance import DEFAULT_SETTINGS, EncoderSettings, prepare_notes
from neuralband.encoders.voices import VoiceSettings, parse_lead, read_pretty_midi, split_parts

REST = 0
HOLD = 1
NEW = 2  # state of a new note of pitch class 0; pitch class c is NEW + c
STATES = 14
MAX_VOICES = 16  # 14**16 still fits the int64 codes of Packer; 14**17 does not
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
DECODE_VELOCITY = 80
# Median MIDI pitch per voice (S, A, T, B), over the notes of all 39 Bach chorales in tests/data
# (chorales/ and chorales_train/; the 3 in chorales/ alone: 72, 65, 60, 52).
SATB_REGISTERS = (71, 66, 60, 52)
DEFAULT_SPAN = 9

Note = tuple[float, float, int]  # (start_s, end_s, pitch)


@dataclass(frozen=True)
class GridSettings:
    """The grid step, the number of voices (voice 0 is the lead, 1.. the band) and the rule that
    picks the lead from a multi-track file (`encoders.voices.parse_lead`)."""

    step_s: float
    voices: int = 4
    lead: str = "top"

    def __post_init__(self) -> None:
        if isinstance(self.step_s, bool) or not isinstance(self.step_s, (int, float)):
            raise TypeError(f"step_s must be a number, not {type(self.step_s).__name__}")
        if not self.step_s > 0 or not np.isfinite(self.step_s):
            raise ValueError(f"step_s must be a finite number > 0, got {self.step_s}")
        object.__setattr__(self, "step_s", float(self.step_s))
        if isinstance(self.voices, bool) or not isinstance(self.voices, int):
            raise TypeError(f"voices must be an int, not {type(self.voices).__name__}")
        if not 2 <= self.voices <= MAX_VOICES:
            raise ValueError(f"voices must be in 2..{MAX_VOICES} (a lead and a band), "
                             f"got {self.voices}")
        parse_lead(self.lead)  # a ValueError naming the rules if it is none of them

    @property
    def input_classes(self) -> int:
        """How many input classes a grid model reads: STATES ** voices (38,416 for 4)."""
        return STATES ** self.voices

    @property
    def output_classes(self) -> int:
        """How many output classes it predicts: STATES ** (voices - 1) (2,744 for 4)."""
        return STATES ** (self.voices - 1)

    @classmethod
    def from_tempo(cls, bpm: float, steps_per_beat: int = 4, voices: int = 4,
                   lead: str = "top") -> GridSettings:
        """A grid of ``steps_per_beat`` steps per beat at ``bpm`` (4: sixteenth notes)."""
        if not bpm > 0 or steps_per_beat < 1:
            raise ValueError(f"need bpm > 0 and steps_per_beat >= 1, got {bpm}, {steps_per_beat}")
        return cls(step_s=60.0 / (bpm * steps_per_beat), voices=voices, lead=lead)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GridSettings:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown grid settings: {sorted(unknown)}")
        return cls(**d)


def describe_state(s: int) -> str:
    """A state as text: "rest", "hold", or the pitch name of a new note ("C", "C#", ...)."""
    s = int(s)
    if not 0 <= s < STATES:
        raise ValueError(f"state out of range(0, {STATES}): got {s}")
    return ("rest", "hold")[s] if s < NEW else PITCH_NAMES[s - NEW]


def _quantise(t: np.ndarray, step_s: float) -> np.ndarray:
    """Seconds -> nearest step, half up, as int(t / step_s + 0.5)."""
    return (np.asarray(t, np.float64) / step_s + 0.5).astype(np.int64)


def _note_steps(part: NoteTable, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end steps of each note (end exclusive); a note lasts at least one step."""
    if np.any(np.asarray(part.start_s) < 0):
        raise ValueError("notes at negative times cannot be put on the grid")
    start = _quantise(part.start_s, step_s)
    return start, np.maximum(_quantise(part.end_s, step_s), start + 1)


def _voice_states(part: NoteTable, step_s: float, n_steps: int) -> np.ndarray:
    """One voice's states: at each step the sounding note that started last (then highest) wins.

    A note that wins again after a later one ended (an overlap) restarts there as a new note, so
    that HOLD always continues the note of the step before.
    """
    start, end = _note_steps(part, step_s)
    winner = np.full(n_steps, -1, np.int64)
    if len(part) == 0:
        return np.full(n_steps, REST, np.uint8)
    # Paint in (start, pitch, end) order: later paints win, the longest of duplicates last.
    for i in np.lexsort((end, part.pitch, start)):
        winner[start[i]:end[i]] = i
    previous = np.concatenate([[-1], winner[:-1]])
    pitch_class = np.asarray(part.pitch, np.int64)[np.maximum(winner, 0)] % 12
    states = np.where(winner == previous, HOLD, NEW + pitch_class)
    return np.where(winner < 0, REST, states).astype(np.uint8)


def grid_states(parts: Sequence[NoteTable], settings: GridSettings,
                n_steps: int | None = None) -> np.ndarray:
    """Prepared notes of each voice (``parts[v]``) -> (T, voices) uint8 states.

    T defaults to the last end step over all parts; voices without a part rest.
    """
    if len(parts) > settings.voices:
        raise ValueError(f"got {len(parts)} parts for {settings.voices} voices")
    if n_steps is None:
        n_steps = max([0, *(int(_note_steps(p, settings.step_s)[1].max(initial=0))
                             for p in parts)])
    elif n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    out = np.full((n_steps, settings.voices), REST, np.uint8)
    for v, part in enumerate(parts):
        out[:, v] = _voice_states(part, settings.step_s, n_steps)
    return out


def default_registers(voices: int) -> list[int]:
    """Registers: `SATB_REGISTERS` (4 voices) sampled evenly, lead 71 down to 52: 3: 71, 63, 52."""
    at = np.interp(np.linspace(0, 1, voices), np.linspace(0, 1, 4), SATB_REGISTERS)
    return [int(r + 0.5) for r in at]


def nearest_pitch(pitch_class: int, near: int) -> int:
    """The MIDI pitch of ``pitch_class`` nearest to ``near`` (ties go up), kept in 0..127."""
    up = (pitch_class - near) % 12
    pitch = near + up if up <= 6 else near + up - 12
    return pitch - 12 if pitch > 127 else pitch + 12 if pitch < 0 else pitch


def voice_pitch(pitch_class: int, previous: int, register: int, span: int = DEFAULT_SPAN) -> int:
    """The pitch of ``pitch_class`` nearest to ``previous`` (ties go up) among those in 0..127
    within ``span`` semitones of ``register``; if there is none, the one nearest to ``register``."""
    lo, hi = max(0, register - span), min(127, register + span)
    candidates = range(lo + (pitch_class - lo) % 12, hi + 1, 12)
    return min(candidates, key=lambda p: (abs(p - previous), -p),
               default=nearest_pitch(pitch_class, register))


def grid_notes(states: np.ndarray, settings: GridSettings, registers: Sequence[int] | None = None,
               span: int = DEFAULT_SPAN) -> list[list[Note]]:
    """(T, voices) states -> per voice a list of (start_s, end_s, pitch).

    Each note's octave by `voice_pitch`: nearest to the voice's previous note, within ``span``
    semitones of its register (``registers``, default `default_registers`). A note lasts from its
    new-note state through the HOLDs after it; a HOLD after a REST is read as REST.
    """
    states = np.asarray(states)
    if states.ndim != 2 or states.shape[1] != settings.voices:
        raise ValueError(f"states must have shape (T, {settings.voices}), got {states.shape}")
    if states.size and (states.min() < 0 or states.max() >= STATES):
        raise ValueError(f"states must lie in range(0, {STATES})")
    registers = default_registers(settings.voices) if registers is None else list(registers)
    if len(registers) != settings.voices or not all(0 <= int(r) <= 127 for r in registers):
        raise ValueError(f"need {settings.voices} registers in 0..127, got {registers}")
    if not isinstance(span, int) or span < 0:
        raise ValueError(f"span must be an int >= 0, got {span!r}")
    n_steps, step = states.shape[0], settings.step_s
    out: list[list[Note]] = []
    for v in range(settings.voices):
        column = states[:, v].astype(np.int64)
        not_hold = np.concatenate([np.flatnonzero(column != HOLD), [n_steps]])
        onsets = np.flatnonzero(column >= NEW)
        ends = not_hold[np.searchsorted(not_hold, onsets, side="right")]
        notes: list[Note] = []
        register = previous = int(registers[v])
        for t, e in zip(onsets.tolist(), ends.tolist(), strict=True):
            previous = voice_pitch(int(column[t]) - NEW, previous, register, span)
            notes.append((t * step, e * step, previous))
        out.append(notes)
    return out


def notes_table(notes: Sequence[Note], velocity: int = DECODE_VELOCITY) -> NoteTable:
    """(start_s, end_s, pitch) tuples -> a NoteTable (one group, no pedal), e.g. to re-encode."""
    arr = np.asarray(notes, np.float64).reshape(-1, 3)
    n = len(arr)
    return NoteTable(
        arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].astype(np.int64),
        np.full(n, velocity, np.int64), np.zeros(n, np.int64), np.zeros(n, bool),
        np.zeros(0, np.float64), np.zeros(0, np.int64), np.zeros(0, np.int64),
    )


def grid_to_pretty_midi(states: np.ndarray, settings: GridSettings,
                        registers: Sequence[int] | None = None, program: int = 0,
                        span: int = DEFAULT_SPAN) -> pretty_midi.PrettyMIDI:  # noqa: F821
    """States -> a PrettyMIDI, one instrument per voice ("lead", "band 1", ...), as `grid_notes`."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    for v, notes in enumerate(grid_notes(states, settings, registers, span)):
        inst = pretty_midi.Instrument(program=program, name="lead" if v == 0 else f"band {v}")
        inst.notes = [pretty_midi.Note(velocity=DECODE_VELOCITY, pitch=p, start=s, end=e)
                      for s, e, p in notes]
        pm.instruments.append(inst)
    return pm


@cache  # a Packer is immutable: one per voice count, so a live step builds none
def _input_packer(voices: int) -> Packer:
    names = ["lead_next", *(f"band{k}_now" for k in range(1, voices))]
    return Packer([STATES] * voices, names=names)


@cache
def _output_packer(voices: int) -> Packer:
    return Packer([STATES] * (voices - 1), names=[f"band{k}_next" for k in range(1, voices)])


def input_packer(settings: GridSettings) -> Packer:
    """The model's input class: (lead at t+1, band 1 at t, ..., band n at t), lead first."""
    return _input_packer(settings.voices)


def output_packer(settings: GridSettings) -> Packer:
    """The model's output class: (band 1, ..., band n) at t+1."""
    return _output_packer(settings.voices)


def training_pairs(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, voices) states -> int64 (inputs, targets) of length T-1, as the paper's model saw them:
    ``inputs[t] = pack(lead[t+1], band[t])``, ``targets[t] = pack(band[t+1])``."""
    states = np.asarray(states)
    if states.ndim != 2 or states.shape[1] < 2:
        raise ValueError(f"states must have shape (T, voices >= 2), got {states.shape}")
    voices = states.shape[1]
    fields = np.concatenate([states[1:, :1], states[:-1, 1:]], axis=1).astype(np.int64)
    inputs = np.asarray(_input_packer(voices).pack(fields), np.int64)
    targets = np.asarray(_output_packer(voices).pack(states[1:, 1:].astype(np.int64)), np.int64)
    return inputs, targets


def step_input(lead_next: int, band_now: Sequence[int]) -> int:
    """One live step's input class: the lead's new state and the band's current states."""
    return int(_input_packer(1 + len(band_now)).pack((lead_next, *band_now)))


def unpack_band(code: int, voices: int = 4) -> tuple[int, ...]:
    """A predicted output class -> the band's states at the next step."""
    return tuple(int(s) for s in _output_packer(voices).unpack(int(code)))


def grid_from_codes(inputs: np.ndarray, targets: np.ndarray, voices: int = 4,
                    first_lead: int = REST) -> np.ndarray:
    """Pairs from `training_pairs` -> the (T, voices) states again (empty when there are none).

    The pairs never hold the lead's first step, so it is given (``first_lead``). Raises
    ValueError where a target disagrees with the band in the next input.
    """
    inputs, targets = np.asarray(inputs, np.int64), np.asarray(targets, np.int64)
    if inputs.shape != targets.shape or inputs.ndim != 1:
        raise ValueError(f"inputs and targets must be 1-d of one length, got "
                         f"{inputs.shape} and {targets.shape}")
    if len(inputs) == 0:
        return np.zeros((0, voices), np.uint8)
    lead_next, *band_now = _input_packer(voices).unpack(inputs)
    band_next = np.stack(_output_packer(voices).unpack(targets), axis=1)
    band_now = np.stack(band_now, axis=1)
    if not np.array_equal(band_now[1:], band_next[:-1]):
        raise ValueError("targets disagree with the band states in the following inputs")
    out = np.empty((len(inputs) + 1, voices), np.uint8)
    out[0, 0], out[1:, 0] = first_lead, lead_next
    out[0, 1:], out[1:, 1:] = band_now[0], band_next
    return out


# --- multi-track MIDI -> a grid model's classes ---------------------------------------------------

def encode_grid(source: MidiSource, grid: GridSettings,
                settings: EncoderSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """A multi-track MIDI file (path, bytes or PrettyMIDI) -> the input classes of a grid model,
    int64, one per step after the first (`training_pairs`' inputs).

    The parts are chosen as `encoders.voices.encode_voices` chooses them (``grid.lead``, then the
    band tracks highest first), and each is prepared as the event encoder prepares notes (the
    pedal held into note lengths). Every piece starts from silence, one all-rest step before its
    first, so the first class is (the lead's first state, the band resting), as it is live when
    the band waits for the player. The targets need not be stored: with the lead the most
    significant field, ``inputs[t + 1] % grid.output_classes`` is ``targets[t]``.
    """
    name = source_name(source)
    pm = read_pretty_midi(source, name)
    scheme = VoiceSettings(grid.voices, grid.lead, settings)
    parts = [prepare_notes(part, settings) for part in split_parts(pm, scheme, name)]
    states = grid_states(parts, grid)
    if len(states) == 0:
        return np.zeros(0, np.int64)
    silence = np.full((1, grid.voices), REST, np.uint8)
    return training_pairs(np.concatenate([silence, states]))[0]


def codes_states(codes: np.ndarray, voices: int) -> np.ndarray:
    """Stored input classes -> (T, voices) states as the model saw them: the lead at t+1 and the
    band at t in row t (each row is one class's fields)."""
    return np.stack(_input_packer(voices).unpack(np.asarray(codes, np.int64)),
                    axis=1).reshape(-1, voices).astype(np.uint8)


def transpose_codes(codes: np.ndarray, k: int, voices: int) -> np.ndarray:
    """Every new note of every voice moved by k semitones (its pitch class, mod 12); rests and
    holds kept. Always possible: pitch classes wrap, so no window is ever refused."""
    states = codes_states(codes, voices).astype(np.int64)
    new = states >= NEW
    states[new] = NEW + (states[new] - NEW + k) % 12
    return np.asarray(_input_packer(voices).pack(states), np.int64).reshape(-1)


def codes_summary(codes: np.ndarray, grid: GridSettings) -> tuple[float, int]:
    """(seconds, new notes) of a piece's stored classes (`encode_grid`): one step per class,
    and the onsets of every voice."""
    states = codes_states(codes, grid.voices)
    return len(codes) * grid.step_s, int((states >= NEW).sum())
