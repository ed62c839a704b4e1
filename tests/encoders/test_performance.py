"""The Performance-RNN vocabulary and note_seq's semantics, case by case."""

from __future__ import annotations

import numpy as np
import pytest

from neuralband.encoders import VOCAB_SIZE, EncoderSettings, MidiError, decode, describe, encode
from neuralband.encoders.performance import (
    NOTE_OFF,
    NOTE_ON,
    TIME_SHIFT,
    VELOCITY,
    Event,
    decode_notes,
)
from tests.helpers import midi_bytes, off, on, pedal, pretty, tempo

S = TIME_SHIFT - 1  # S + n is TIME_SHIFT(n steps)
V = VELOCITY - 1  # V + b is VELOCITY(bin b)


# The fixed (event, token) table, as note_seq's PerformanceOneHotEncoding lays it out.
@pytest.mark.parametrize(("token", "words"), [
    (0, "NOTE_ON 0"), (60, "NOTE_ON 60"), (127, "NOTE_ON 127"),
    (128, "NOTE_OFF 0"), (188, "NOTE_OFF 60"), (255, "NOTE_OFF 127"),
    (256, "TIME_SHIFT 10 ms"), (280, "TIME_SHIFT 250 ms"), (355, "TIME_SHIFT 1000 ms"),
    (356, "VELOCITY 1"), (372, "VELOCITY 17"), (387, "VELOCITY 32"),
])
def test_vocabulary_table(token, words):
    assert describe(token) == words


def test_vocabulary_constants():
    assert (VOCAB_SIZE, NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY) == (388, 0, 128, 256, 356)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        describe(388)


def test_velocity_bins_as_note_seq():
    s = EncoderSettings()
    assert s.velocity_bin_size == 4
    assert [s.velocity_to_bin(v) for v in (1, 4, 5, 64, 127)] == [1, 1, 2, 16, 32]
    assert [s.bin_to_velocity(b) for b in (1, 2, 16, 32)] == [1, 5, 61, 125]


def test_a_single_note():
    toks = encode(pretty([(60, 80, 0.5, 1.0)]))
    assert toks.tolist() == [S + 50, V + 20, NOTE_ON + 60, S + 50, NOTE_OFF + 60]


def test_quantisation_rounds_to_nearest_step_and_keeps_zero_length_notes():
    # 0.0149 s -> step 1; 0.015 s -> step 2 (cutoff 0.5); a 1 ms note lasts one step.
    toks = encode(pretty([(60, 64, 0.0149, 0.0151)]))
    assert toks.tolist() == [S + 1, V + 16, 60, S + 1, NOTE_OFF + 60]


def test_long_gaps_become_full_shifts_plus_the_rest():
    toks = encode(pretty([(60, 64, 2.5, 2.6)]))
    assert toks.tolist()[:3] == [S + 100, S + 100, S + 50]
    toks = encode(pretty([(60, 64, 0.0, 2.0), (62, 64, 3.0, 3.1)]))
    assert toks.tolist()[2:6] == [S + 100, S + 100, NOTE_OFF + 60, S + 100]


def test_velocity_only_when_the_bin_changes():
    notes = [(60, 64, 0, 1), (62, 65, 0, 1), (64, 66, 0, 1), (65, 80, 0, 1)]
    toks = encode(pretty(notes)).tolist()
    assert toks[:6] == [V + 16, 60, 62, V + 17, 64, V + 20][:6] or toks[:7] == [
        V + 16, 60, V + 17, 62, 64, V + 20, 65]
    assert [describe(t) for t in toks if t >= VELOCITY] == ["VELOCITY 16", "VELOCITY 17",
                                                            "VELOCITY 20"]


def test_offs_before_ons_within_a_step():
    toks = encode(pretty([(60, 64, 0.0, 0.5), (64, 64, 0.5, 1.0)])).tolist()
    assert toks[1:5] == [60, S + 50, NOTE_OFF + 60, 64]


def test_chord_is_ordered_by_pitch():
    toks = encode(pretty([(67, 64, 0, 1), (60, 64, 0, 1), (64, 64, 0, 1)])).tolist()
    assert toks[1:4] == [60, 64, 67]
    assert toks[5:8] == [NOTE_OFF + 60, NOTE_OFF + 64, NOTE_OFF + 67]


def test_sustain_extends_to_pedal_release():
    pm = pretty([(60, 64, 0.0, 0.2)], pedals=[(0.1, 127), (1.0, 0)])
    assert encode(pm).tolist() == [V + 16, 60, S + 100, NOTE_OFF + 60]
    assert encode(pm, EncoderSettings(sustain=False)).tolist() == [V + 16, 60, S + 20,
                                                                   NOTE_OFF + 60]


def test_sustain_cut_by_next_onset_of_the_same_pitch():
    pm = pretty([(60, 64, 0.0, 0.2), (60, 64, 0.5, 0.6)], pedals=[(0.1, 100), (2.0, 0)])
    toks = encode(pm).tolist()
    assert toks == [V + 16, 60, S + 50, NOTE_OFF + 60, 60, S + 100, S + 50, NOTE_OFF + 60]


def test_sustain_without_release_holds_to_the_last_event():
    pm = pretty([(60, 64, 0.0, 0.2), (62, 64, 0.3, 0.4)], pedals=[(0.0, 127), (1.5, 127)])
    toks = encode(pm).tolist()
    assert toks[-4:] == [S + 100, S + 20, NOTE_OFF + 60, NOTE_OFF + 62]
    assert toks[-5] == NOTE_ON + 62


def test_drums_left_out_by_default_and_kept_on_request():
    pm = pretty([(60, 64, 0, 1)])
    drums = pretty([(36, 100, 0.5, 0.6)], is_drum=True).instruments[0]
    pm.instruments.append(drums)
    assert 36 not in encode(pm).tolist()
    assert 36 in encode(pm, EncoderSettings(include_drums=True)).tolist()


def test_sources_path_bytes_and_pretty_midi_agree(tmp_path):
    data = midi_bytes([[(0, tempo(100))],
                       [(0, on(60, 90)), (240, on(64, 50)), (480, off(60)), (960, off(64))]])
    path = tmp_path / "two.mid"
    path.write_bytes(data)
    import pretty_midi

    a, b = encode(path), encode(data)
    c = encode(pretty_midi.PrettyMIDI(str(path)))
    d = encode(str(path), parser="pretty_midi")
    assert a.tolist() == b.tolist() == c.tolist() == d.tolist()
    assert a.dtype == np.int64 and len(a) > 0


def test_tempo_changes_and_tracks_in_absolute_time():
    # 120 bpm, 480 tpq: one beat is 0.5 s; at tick 960 the tempo halves to 60 bpm.
    data = midi_bytes([[(0, tempo(120)), (960, tempo(60))],
                       [(0, on(60)), (960, off(60))],
                       [(960, on(72, channel=1)), (1440, off(72, channel=1))]])
    notes = decode_notes(encode(data))
    assert notes == [(0, 100, 60, 61), (100, 200, 72, 61)]


def test_overlapping_same_pitch_notes_follow_pretty_midi(tmp_path):
    # pretty_midi (and so note_seq) closes both open notes at the first NOTE_OFF.
    data = midi_bytes([[(0, on(60)), (240, on(60, 100)), (480, off(60)), (960, off(60))]])
    assert encode(data).tolist() == encode(data, parser="pretty_midi").tolist()
    assert decode_notes(encode(data)) == [(0, 50, 60, 61), (25, 50, 60, 97)]


def test_empty_midi_gives_empty_tokens():
    data = midi_bytes([[(0, tempo(120))]])
    assert encode(data).tolist() == []


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "the file is empty"),
    (b"this is a text file, not MIDI at all", "not a MIDI file"),
    (b"MThd\x00\x00", "cut short"),
])
def test_not_midi_raises_midi_error(data, reason, tmp_path):
    path = tmp_path / "fake.mid"
    path.write_bytes(data)
    with pytest.raises(MidiError, match=reason) as info:
        encode(path)
    assert info.value.source == str(path)
    assert str(path) in str(info.value)


def test_truncated_file_raises_midi_error(tmp_path):
    data = midi_bytes([[(i * 10, on(60 + i % 12)) for i in range(200)]])
    path = tmp_path / "cut.mid"
    path.write_bytes(data[: len(data) // 2])
    for parser in ("auto", "pretty_midi"):
        with pytest.raises(MidiError, match="cut.mid: cut short"):
            encode(path, parser=parser)


@pytest.mark.parametrize("parser", ["auto", "pretty_midi"])
def test_a_damaged_file_is_said_to_be_damaged_in_plain_words(parser, tmp_path):
    """A value above 127 in an event or a header of an unknown format: what is wrong with the
    file, not the parser's own text ("Get control_value=168", "MiniMidi: ... iostream error")."""
    good = midi_bytes([[(0, on(60)), (480, off(60))]])
    at = good.index(bytes([0x90, 60]))
    cases = [
        (good[:at + 1] + bytes([200]) + good[at + 2:], "damaged: .* 200|value above 127"),
        (good[:8] + b"\x00\x07" + good[10:], "damaged header: MIDI format 7"),
    ]
    for k, (data, words) in enumerate(cases):
        if parser == "pretty_midi" and k == 1:
            continue  # pretty_midi reads a file of an unknown format as format 1
        path = tmp_path / f"bad{k}.mid"
        path.write_bytes(data)
        with pytest.raises(MidiError, match=words) as info:
            encode(path, parser=parser)
        for raw in ("Get ", "MiniMidi", "iostream", "data byte"):
            assert raw not in info.value.reason


def test_missing_file_raises_midi_error(tmp_path):
    with pytest.raises(MidiError, match="No such file"):
        encode(tmp_path / "nope.mid")


def test_bad_event_raises_midi_error(miditok_tests):
    bad = miditok_tests / "MIDIs_corrupted" / "ValueError_Control168.mid"
    for parser in ("auto", "pretty_midi"):
        with pytest.raises(MidiError, match="ValueError_Control168.mid"):
            encode(bad, parser=parser)


def test_decode_rules():
    # NOTE_OFF closes the earliest open note; unmatched NOTE_OFF dropped; zero-length dropped;
    # notes still open at the end close at the last step; velocity 100 before any VELOCITY.
    toks = [60, S + 10, 60, S + 10, NOTE_OFF + 60, NOTE_OFF + 62, 64, NOTE_OFF + 64,
            V + 20, 67, S + 5]
    assert decode_notes(toks) == [(0, 20, 60, 100), (10, 25, 60, 100), (20, 25, 67, 77)]
    pm = decode(toks)
    assert [(n.pitch, round(n.start, 3), round(n.end, 3)) for n in pm.instruments[0].notes] == [
        (60, 0.0, 0.2), (60, 0.1, 0.25), (67, 0.2, 0.25)]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        decode([400])


def test_settings_validation_and_serialisation():
    s = EncoderSettings(include_drums=True)
    assert EncoderSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="velocity_bins"):
        EncoderSettings(velocity_bins=0)
    with pytest.raises(TypeError, match="steps_per_second"):
        EncoderSettings(steps_per_second=100.0)
    with pytest.raises(ValueError, match="unknown"):
        EncoderSettings.from_dict({"colour": 1})


def test_pedal_in_a_file_through_both_parsers():
    data = midi_bytes([[(0, pedal(127)), (0, on(60)), (240, off(60)), (480, on(60)),
                        (600, off(60)), (960, pedal(0)), (1200, on(62)), (1300, off(62))]])
    toks = encode(data)
    assert toks.tolist() == encode(data, parser="pretty_midi").tolist()
    # 60 held by the pedal until re-struck at 0.5 s, then until the release at 1.0 s.
    assert decode_notes(toks)[:2] == [(0, 50, 60, 61), (50, 100, 60, 61)]


def test_real_empty_midi_file_gives_empty_tokens(miditok_tests):
    empty = miditok_tests / "MIDIs_one_track" / "empty.mid"
    assert encode(empty).tolist() == []
    assert len(decode([]).instruments[0].notes) == 0


@pytest.mark.parametrize("settings", [EncoderSettings(),
                                      EncoderSettings(max_shift_steps=50, velocity_bins=16)])
def test_the_vocabulary_is_one_table_every_token_reads(settings):
    """`EncoderSettings.table`: per event type its first token, first value and count; the
    per-token kinds and values, `token`, `span` and `describe` all agree with it."""
    firsts = [first for first, _, _ in settings.table]
    assert firsts == [settings.note_on, settings.note_off, settings.time_shift, settings.velocity]
    assert len(settings.kinds) == len(settings.values) == settings.vocab_size
    for event in Event:
        span = settings.span(event)
        first, low, count = settings.table[event]
        assert (settings.kinds[span] == event).all() and span.stop - span.start == count
        assert list(settings.values[span]) == list(range(low, low + count))
        tokens = settings.token(event, settings.values[span])
        assert tokens.tolist() == list(range(first, first + count))
        assert describe(first, settings).startswith(event.name)
    assert describe(settings.token(Event.TIME_SHIFT, 25), settings) == "TIME_SHIFT 250 ms"
