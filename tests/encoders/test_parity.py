"""Token-for-token parity with Magenta's note_seq 0.0.5, on real files and on random pieces.

note_seq keeps drum tracks, so parity is with ``include_drums=True``.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralband.encoders import EncoderSettings, MidiError, encode
from tests.helpers import pretty
from tests.helpers.data import CHORALES

WITH_DRUMS = EncoderSettings(include_drums=True)


def assert_same(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    if len(ours) == len(theirs) and np.array_equal(ours, theirs):
        return
    i = next((k for k in range(min(len(ours), len(theirs))) if ours[k] != theirs[k]),
             min(len(ours), len(theirs)))
    raise AssertionError(f"{what}: {len(ours)} vs {len(theirs)} tokens, first difference at {i}: "
                         f"ours {ours[i:i + 6].tolist()} note_seq {theirs[i:i + 6].tolist()}")


@pytest.mark.parametrize("path", CHORALES, ids=lambda p: p.name)
def test_bach_chorales(path, note_seq_reference):
    assert_same(encode(path, WITH_DRUMS), note_seq_reference(path), path.name)


@pytest.mark.slow
def test_miditok_real_files(miditok_tests, note_seq_reference):
    """Piano performances with pedal (MAESTRO), POP909 songs, multitrack pop with drums."""
    files = sorted(miditok_tests.glob("MIDIs_one_track/*.mid"))
    files += sorted(miditok_tests.glob("MIDIs_multitrack/*.mid"))
    assert len(files) >= 25
    notes = 0
    for path in files:
        theirs = note_seq_reference(path)
        for parser in ("auto", "pretty_midi"):
            assert_same(encode(path, WITH_DRUMS, parser=parser), theirs, f"{path.name} {parser}")
        notes += int((theirs < 128).sum())
    assert notes > 100_000


# Random pieces: notes on a coarse grid (so that ties, chords, same-pitch overlaps and gaps over
# a second are frequent) plus a sustain pedal, fed to both sides as a PrettyMIDI object.
times = st.integers(0, 400).map(lambda k: k * 0.0125)
note = st.tuples(st.integers(48, 60), st.integers(1, 127), times, st.integers(1, 120))
pedal = st.tuples(times, st.sampled_from([0, 30, 63, 64, 100, 127]))


@st.composite
def pieces(draw):
    notes = [(p, v, s, s + d * 0.0125) for p, v, s, d in draw(st.lists(note, max_size=40))]
    pedals = draw(st.lists(pedal, max_size=8))
    pm = pretty(notes, pedals)
    if draw(st.booleans()):
        extra = pretty([(p + 12, v, s, e) for p, v, s, e in notes[::2]], pedals[::2], program=40)
        pm.instruments.append(extra.instruments[0])
    if draw(st.booleans()):
        drums = pretty([(36, v, s, e) for _, v, s, e in notes[::3]], is_drum=True)
        pm.instruments.append(drums.instruments[0])
    return pm


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces())
def test_random_pieces_match_note_seq(note_seq_reference, pm):
    assert_same(encode(pm, WITH_DRUMS), note_seq_reference(pm), "random piece")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces())
def test_fast_parser_matches_reference_parser(pm):
    """The same file through symusic and through pretty_midi gives the same tokens."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.write(buf)
    data = buf.getvalue()
    try:
        reference = encode(data, WITH_DRUMS, parser="pretty_midi")
    except MidiError:
        return
    assert_same(encode(data, WITH_DRUMS, parser="auto"), reference, "symusic vs pretty_midi")


def test_hand_made_cases_match_note_seq(note_seq_reference):
    cases = [
        pretty([(60, 64, 0.0, 0.2), (60, 64, 0.5, 0.6)], [(0.1, 100), (2.0, 0)]),
        pretty([(60, 64, 0.0, 0.2), (62, 64, 0.3, 0.4)], [(0.0, 127), (1.5, 127)]),
        pretty([(60, 64, 0.0, 1.0), (60, 90, 0.0, 0.5)], [(0.0, 127)]),
        pretty([(60, 64, 0.0149, 0.0151), (61, 64, 0.005, 0.0051)]),
        pretty([(60, 64, 0.0, 2.0), (62, 64, 3.0, 3.1)], [(1.0, 64), (1.0, 0), (2.0, 127)]),
        pretty_midi.PrettyMIDI(),
    ]
    for k, pm in enumerate(cases):
        assert_same(encode(pm, WITH_DRUMS), note_seq_reference(pm), f"case {k}")
