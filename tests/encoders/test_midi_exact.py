"""The lean exact reader gives pretty_midi's notes, pedals and instruments, table for table."""

from __future__ import annotations

import warnings

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralband.encoders import MidiError
from neuralband.encoders.midi_exact import read_exact
from neuralband.encoders.midi_io import NoteTable, _read_pretty_midi
from tests.helpers import midi_bytes, tempo
from tests.helpers.data import CHORALES


def assert_tables_equal(a: NoteTable, b: NoteTable) -> None:
    for field in NoteTable.__dataclass_fields__:
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def reference(data: bytes) -> NoteTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_pretty_midi(data, "reference")


@pytest.mark.slow
def test_real_files(miditok_tests):
    files = sorted(miditok_tests.glob("MIDIs_one_track/*.mid"))
    files += sorted(miditok_tests.glob("MIDIs_multitrack/*.mid")) + CHORALES
    for path in files:
        data = path.read_bytes()
        assert_tables_equal(read_exact(data, path.name), reference(data))


# Random multi-track files with several channels, program changes mid-track, pedals before the
# first note, same-pitch overlaps, zero-length notes, note-on with velocity 0 as note-off, and
# volume changes and pitch bends (which make pretty_midi's stragglers too).
channel_msg = st.one_of(
    st.builds(lambda c, n, v: mido.Message("note_on", channel=c, note=n, velocity=v),
              st.integers(0, 3), st.integers(58, 62), st.integers(0, 127)),
    st.builds(lambda c, n: mido.Message("note_off", channel=c, note=n),
              st.integers(0, 3), st.integers(58, 62)),
    st.builds(lambda c, v: mido.Message("control_change", channel=c, control=64, value=v),
              st.integers(0, 3), st.integers(0, 127)),
    st.builds(lambda c, p: mido.Message("program_change", channel=c, program=p),
              st.integers(0, 3), st.integers(0, 2)),
    st.builds(lambda c: mido.Message("control_change", channel=c, control=7, value=100),
              st.integers(0, 3)),
    st.builds(lambda c, v: mido.Message("pitchwheel", channel=c, pitch=v),
              st.integers(0, 3), st.integers(-8192, 8191)),
)
track = st.lists(st.tuples(st.integers(0, 2000), channel_msg), max_size=40)
tempos = st.lists(st.tuples(st.integers(0, 2000), st.integers(30, 240).map(tempo)), max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(track, min_size=1, max_size=4), tempos, st.sampled_from([96, 220, 480, 960]))
def test_random_files(tracks, tempo_map, tpq):
    data = midi_bytes([tempo_map + tracks[0], *tracks[1:]], ticks_per_beat=tpq)
    assert_tables_equal(read_exact(data, "random"), reference(data))


@pytest.mark.parametrize("first", [
    mido.Message("control_change", channel=3, control=7, value=100),
    mido.Message("pitchwheel", channel=3, pitch=512),
])
def test_a_pedal_under_a_program_with_no_notes_joins_the_straggler(first):
    # A seed sweep found it: the volume change (or bend) makes channel 3's straggler, the note
    # makes program 0's instrument sharing its list, and the pedal sent after the program change
    # goes to the straggler, so pretty_midi files it under program 0's instrument.
    data = midi_bytes([[(0, first), (0, mido.Message("note_on", channel=3, note=58, velocity=1)),
                        (1, mido.Message("note_off", channel=3, note=58)),
                        (2, mido.Message("program_change", channel=3, program=1)),
                        (2, mido.Message("control_change", channel=3, control=64, value=0))]],
                      ticks_per_beat=96)
    table = read_exact(data, "straggler")
    assert table.pedal_value.tolist() == [0] and table.pedal_group.tolist() == [0]
    assert_tables_equal(table, reference(data))


def test_running_status_and_sysex():
    # Track bytes by hand: sysex, note on with running status, meta text, note off.
    body = bytes([0x00, 0xF0, 0x03, 0x7E, 0x7F, 0xF7,
                  0x00, 0x90, 60, 100, 0x00, 64, 90,  # running status: a second note on
                  0x60, 0xFF, 0x01, 0x02, 0x68, 0x69,  # text meta
                  0x00, 0x80, 60, 0, 0x00, 64, 0,  # running status: a second note off
                  0x00, 0xFF, 0x2F, 0x00])
    data = (b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
            + (480).to_bytes(2, "big") + b"MTrk" + len(body).to_bytes(4, "big") + body)
    table = read_exact(data, "hand")
    assert table.pitch.tolist() == [60, 64]
    assert_tables_equal(table, reference(data))


@pytest.mark.parametrize("cut", [20, 30, 41])
def test_truncated_bytes_raise_midi_error(cut):
    data = midi_bytes([[(i * 10, mido.Message("note_on", note=60)) for i in range(20)]])
    with pytest.raises(MidiError, match="truncated.mid"):
        read_exact(data[:cut], "truncated.mid")
