"""MIDI -> tokens -> MIDI, with a report of what came back: what `neuralband demo` shows."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from neuralband.encoders.midi_io import read_notes
from neuralband.encoders.performance import (
    DEFAULT_SETTINGS,
    EncoderSettings,
    decode,
    prepare_notes,
    tokens_from_notes,
)


def bundled_example() -> Path:
    """The MIDI file shipped with the package (a Bach chorale from the music21 corpus)."""
    return Path(str(resources.files("neuralband") / "data" / "chorale_bwv1.6.mid"))


@dataclass(frozen=True)
class RoundTrip:
    """What happened to one file on its way through the tokens and back."""

    source: str
    output: str
    notes_in: int
    notes_out: int
    seconds: float
    tokens: np.ndarray
    max_onset_error_ms: float
    max_offset_error_ms: float


def round_trip(source: str | os.PathLike, output: str | os.PathLike,
               settings: EncoderSettings = DEFAULT_SETTINGS) -> RoundTrip:
    """Encode ``source``, decode the tokens, write them to ``output`` and compare notes."""
    table = prepare_notes(read_notes(source), settings)
    tokens = tokens_from_notes(table, settings)
    pm = decode(tokens, settings)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    pm.write(os.fspath(output))
    notes = pm.instruments[0].notes
    # Onsets and offsets are compared per pitch as sorted lists: two overlapping notes of one
    # pitch (a unison of two voices) come back with their ends paired first-in first-out.
    on_in = np.sort(table.pitch * 1e6 + table.start_s)
    off_in = np.sort(table.pitch * 1e6 + table.end_s)
    on_out = np.sort(np.array([n.pitch * 1e6 + n.start for n in notes]))
    off_out = np.sort(np.array([n.pitch * 1e6 + n.end for n in notes]))
    if len(on_in) == len(on_out):
        onset_err = float(np.abs(on_in - on_out).max(initial=0.0)) * 1000
        offset_err = float(np.abs(off_in - off_out).max(initial=0.0)) * 1000
    else:
        onset_err = offset_err = float("nan")
    return RoundTrip(
        source=os.fspath(source), output=os.fspath(output), notes_in=len(table),
        notes_out=len(notes), seconds=float(table.end_s.max(initial=0.0)), tokens=tokens,
        max_onset_error_ms=onset_err, max_offset_error_ms=offset_err,
    )
