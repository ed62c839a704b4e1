"""Reading MIDI into flat note and pedal arrays, the one input the encoders work on.

Parsers that fill the same `NoteTable` (`encoders.note_table`):

- ``symusic`` (C++ core, ~200x faster than pretty_midi) is the bulk path;
- ``pretty_midi`` is the reference: it is what note_seq parses with, so its note pairing,
  instrument split and tempo map define the semantics we match;
- `encoders.midi_exact`, a lean byte walker with pretty_midi's semantics at ~4x its speed.

symusic and pretty_midi agree except where a file holds overlapping notes of one pitch on one
channel (pretty_midi closes them all at the first NOTE_OFF, symusic one at a time), zero-length
notes, or unison notes whose order depends on how instruments are numbered. Those files are
detected after the fast parse and read again by `midi_exact` (``parser="auto"``, the default).
Times are computed from ticks with pretty_midi's own floating-point steps, so that quantisation
agrees to the last bit.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Literal, Union

import numpy as np

from neuralband.encoders.errors import MidiError, check_header, plain_reason
from neuralband.encoders.note_table import MAX_TICK, SUSTAIN_CC, NoteTable, tick_to_seconds_fn

Parser = Literal["auto", "symusic", "pretty_midi"]
MidiSource = Union[str, os.PathLike, bytes, bytearray, "pretty_midi.PrettyMIDI"]  # noqa: F821

def source_name(source: object) -> str:
    """How a source is named in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes of MIDI>"
    return f"<{type(source).__name__}>"


def read_notes(source: MidiSource, parser: Parser = "auto") -> NoteTable:
    """Parse a MIDI file path, its bytes, or a PrettyMIDI object into a `NoteTable`.

    Raises `MidiError` naming the source for anything that is not readable MIDI.
    """
    name = source_name(source)
    if parser not in ("auto", "symusic", "pretty_midi"):
        raise ValueError(f"parser must be 'auto', 'symusic' or 'pretty_midi', not {parser!r}")
    if not isinstance(source, (str, os.PathLike, bytes, bytearray)):
        import pretty_midi

        if isinstance(source, pretty_midi.PrettyMIDI):
            return table_from_pretty_midi(source)
        raise TypeError(f"expected a path, bytes or pretty_midi.PrettyMIDI, not {type(source)}")
    if isinstance(source, (str, os.PathLike)):
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise MidiError(name, err.strerror or str(err)) from err
    else:
        data = bytes(source)
    check_header(data, name)
    if parser == "pretty_midi":
        return _read_pretty_midi(data, name)
    table, ambiguous = _read_symusic(data, name)
    if ambiguous and parser == "auto":
        from neuralband.encoders.midi_exact import read_exact

        return read_exact(data, name)
    return table


def parse_pretty_midi(data: bytes, name: str) -> pretty_midi.PrettyMIDI:  # noqa: F821
    """MIDI bytes -> PrettyMIDI, quietly (its warnings about tempo events off track 0 are not
    the user's business), or one MidiError that says what is wrong with the file."""
    import pretty_midi

    check_header(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - any parser failure is one readable MidiError
        raise MidiError(name, plain_reason(err)) from err


def _read_pretty_midi(data: bytes, name: str) -> NoteTable:
    return table_from_pretty_midi(parse_pretty_midi(data, name))


def table_from_pretty_midi(pm: pretty_midi.PrettyMIDI) -> NoteTable:  # noqa: F821
    """Flatten a PrettyMIDI object; instrument index is the group, as in note_seq."""
    starts, ends, pitches, vels, groups, drums = [], [], [], [], [], []
    p_time, p_val, p_group = [], [], []
    for g, inst in enumerate(pm.instruments):
        for n in inst.notes:
            starts.append(n.start)
            ends.append(n.end)
            pitches.append(n.pitch)
            vels.append(n.velocity)
            groups.append(g)
            drums.append(inst.is_drum)
        for cc in inst.control_changes:
            if cc.number == SUSTAIN_CC:
                p_time.append(cc.time)
                p_val.append(cc.value)
                p_group.append(g)
    return NoteTable(
        np.asarray(starts, np.float64), np.asarray(ends, np.float64),
        np.asarray(pitches, np.int64), np.asarray(vels, np.int64),
        np.asarray(groups, np.int64), np.asarray(drums, bool),
        np.asarray(p_time, np.float64), np.asarray(p_val, np.int64),
        np.asarray(p_group, np.int64),
    )


def _read_symusic(data: bytes, name: str) -> tuple[NoteTable, bool]:
    """Fast parse; also says whether the file needs pretty_midi's pairing to be exact."""
    import symusic

    try:
        score = symusic.Score.from_midi(data, ttype="tick")
    except Exception as err:  # noqa: BLE001
        raise MidiError(name, plain_reason(err)) from err
    tpq = int(score.ticks_per_quarter)
    if tpq <= 0:
        raise MidiError(name, f"invalid ticks per quarter note: {tpq}")

    starts, ends, pitches, vels, groups, drums = [], [], [], [], [], []
    p_tick, p_val, p_group = [], [], []
    for g, track in enumerate(score.tracks):
        notes = track.notes.numpy()
        n = len(notes["time"])
        if n:
            t0 = notes["time"].astype(np.int64)
            starts.append(t0)
            ends.append(t0 + notes["duration"].astype(np.int64))
            pitches.append(notes["pitch"].astype(np.int64))
            vels.append(notes["velocity"].astype(np.int64))
            groups.append(np.full(n, g, np.int64))
            drums.append(np.full(n, bool(track.is_drum)))
        controls = track.controls.numpy()
        if len(controls["time"]):
            is_sus = controls["number"] == SUSTAIN_CC
            p_tick.append(controls["time"][is_sus].astype(np.int64))
            p_val.append(controls["value"][is_sus].astype(np.int64))
            p_group.append(np.full(int(is_sus.sum()), g, np.int64))

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

    start_t, end_t = cat(starts, np.int64), cat(ends, np.int64)
    pitch, group = cat(pitches, np.int64), cat(groups, np.int64)
    ped_t = cat(p_tick, np.int64)
    last_tick = max(int(end_t.max(initial=0)), int(ped_t.max(initial=0)))
    if last_tick > MAX_TICK:
        raise MidiError(name, f"last event at tick {last_tick}, beyond {MAX_TICK}: likely corrupt")

    tempo_ticks = [int(t.time) for t in score.tempos]
    tempo_mspq = [int(t.mspq) for t in score.tempos]
    to_seconds = tick_to_seconds_fn(tpq, tempo_ticks, tempo_mspq)
    table = NoteTable(
        to_seconds(start_t), to_seconds(end_t), pitch, cat(vels, np.int64), group,
        cat(drums, bool), to_seconds(ped_t), cat(p_val, np.int64), cat(p_group, np.int64),
    )
    return table, _parsers_may_disagree(start_t, end_t, pitch, table.velocity, group)


def _parsers_may_disagree(start: np.ndarray, end: np.ndarray, pitch: np.ndarray,
                          velocity: np.ndarray, group: np.ndarray) -> bool:
    """True where symusic's reading may give other tokens than pretty_midi's.

    That is: zero-length notes or same-pitch overlaps within a track (the two pair NOTE_OFFs
    differently), and notes of one pitch starting together in two instruments with different
    velocities (the tokens then depend on instrument order, which the two parsers number
    differently).
    """
    if len(start) == 0:
        return False
    if np.any(end <= start):
        return True
    order = np.lexsort((start, pitch, group))
    s, e, p, g = start[order], end[order], pitch[order], group[order]
    same = (p[1:] == p[:-1]) & (g[1:] == g[:-1])
    if np.any(same & (s[1:] < e[:-1])):
        return True
    order = np.lexsort((pitch, start))
    s, p, v = start[order], pitch[order], velocity[order]
    tie = (s[1:] == s[:-1]) & (p[1:] == p[:-1]) & (v[1:] != v[:-1])
    return bool(np.any(tie))
