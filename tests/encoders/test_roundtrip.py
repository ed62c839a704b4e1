"""decode(encode(m)) gives every note back: pitch exact, onset and offset within one 10 ms step's
rounding (5 ms), velocity within its bin; sustain is applied before the comparison."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders import EncoderSettings, decode, encode
from neuralband.encoders.midi_io import read_notes
from neuralband.encoders.performance import decode_notes, prepare_notes
from tests.helpers import pretty

DEFAULT = EncoderSettings()
seconds = st.floats(0.0, 6.0, allow_nan=False)
durations = st.one_of(st.floats(0.001, 0.05), st.floats(0.05, 3.0))  # includes sub-step notes
note = st.tuples(st.integers(0, 127), st.integers(1, 127), seconds, durations)
pedal = st.tuples(seconds, st.integers(0, 127))


def expected_notes(pm, settings: EncoderSettings = DEFAULT):
    """What decoding should give: the sustained notes, rounded to steps as note_seq does."""
    table = prepare_notes(read_notes(pm), settings)
    start = (table.start_s * 100 + 0.5).astype(np.int64)
    end = (table.end_s * 100 + 0.5).astype(np.int64)
    end = np.where(end == start, end + 1, end)
    vel = settings.bin_to_velocity(settings.velocity_to_bin(table.velocity))
    return table, start, end, vel


def check_round_trip(pm, settings: EncoderSettings = DEFAULT) -> None:
    table, start, end, vel = expected_notes(pm, settings)
    tokens = encode(pm, settings)
    back = decode_notes(tokens, settings)
    assert len(back) == len(table)
    # Onsets with their velocities, and offsets, per pitch as multisets: a unison of two
    # overlapping notes comes back with its ends paired first-in first-out.
    assert sorted((p, s, v) for s, _, p, v in back) == sorted(
        zip(table.pitch.tolist(), start.tolist(), vel.tolist(), strict=True))
    assert sorted((p, e) for _, e, p, _ in back) == sorted(
        zip(table.pitch.tolist(), end.tolist(), strict=True))
    # And in seconds, through the PrettyMIDI that users get back.
    notes = decode(tokens, settings).instruments[0].notes
    got = np.sort(np.array([n.pitch * 1e4 + n.start for n in notes]))
    want = np.sort(table.pitch * 1e4 + table.start_s)
    assert np.abs(got - want).max(initial=0) <= 0.005 + 1e-9


@settings(max_examples=300, deadline=None)
@given(st.lists(note, max_size=60))
def test_round_trip_without_pedal(notes):
    check_round_trip(pretty([(p, v, s, s + d) for p, v, s, d in notes]))


@settings(max_examples=300, deadline=None)
@given(st.lists(note, max_size=60), st.lists(pedal, max_size=10))
def test_round_trip_with_pedal(notes, pedals):
    check_round_trip(pretty([(p, v, s, s + d) for p, v, s, d in notes], pedals))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(40, 80), min_size=1, max_size=8, unique=True), seconds,
       st.floats(1.0, 5.0))
def test_chords_after_long_silences(pitches, start, silence):
    notes = [(p, 80, start, start + 0.3) for p in pitches]
    notes += [(p, 40, start + 0.3 + silence, start + 0.6 + silence) for p in pitches]
    check_round_trip(pretty(notes))


@settings(max_examples=100, deadline=None)
@given(st.lists(note, max_size=40))
def test_round_trip_same_pitch_overlaps(notes):
    # Everything on two pitches: unisons and re-strikes of held notes throughout.
    check_round_trip(pretty([(60 + p % 2, v, s, s + d) for p, v, s, d in notes]))
