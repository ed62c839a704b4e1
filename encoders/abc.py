"""ABC tunes (folk-rnn's and the music21 corpus's notation) -> MIDI bytes, through symusic.

An ABC file is usually a collection: a file header, then tunes that each start with an ``X:``
line. Each tune is rendered on its own (with the file header before it, as the ABC standard
says) by symusic's bundled abc2midi, and the MIDI bytes then take the same encoding path as any
MIDI file, so ABC and MIDI tokens follow one set of rules.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from neuralband.encoders.errors import MidiError

_TUNE_START = re.compile(r"(?m)^(?=X:)")


@dataclass(frozen=True)
class Tune:
    """One tune of an ABC collection: its X: reference, title and full text (header included)."""

    ref: str
    title: str
    text: str


def split_tunes(text: str) -> list[Tune]:
    """Split an ABC collection into tunes; the file header is prepended to each."""
    parts = _TUNE_START.split(text)
    header, bodies = parts[0], parts[1:]
    tunes = []
    for body in bodies:
        first = body.split("\n", 1)[0]
        ref = "X:" + first[2:].strip()
        title = next((line[2:].strip() for line in body.splitlines() if line.startswith("T:")), "")
        tunes.append(Tune(ref, title, header + body))
    return tunes


@contextmanager
def _quiet_c_output() -> Iterator[None]:
    """Silence stdout/stderr at the file-descriptor level: abc2midi prints its warnings there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def tune_to_midi(tune: Tune, name: str) -> bytes:
    """Render one tune to MIDI bytes; MidiError naming ``name`` if abc2midi cannot read it."""
    import symusic

    try:
        with _quiet_c_output():
            score = symusic.Score.from_abc(tune.text)
        return bytes(score.dumps_midi())
    except Exception as err:  # noqa: BLE001 - one readable line per bad tune
        text = str(err).strip()
        reason = "abc2midi made nothing of it" if "did not create" in text or not text else (
            text.splitlines()[0])
        raise MidiError(name, f"ABC tune could not be read: {reason}") from err
