"""Voice-packed tokens: the layout, the merge/split round trip, lead selection on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders.errors import MidiError
from neuralband.encoders.performance import DEFAULT_SETTINGS, decode_notes, encode
from neuralband.encoders.voices import (
    VoiceSettings,
    band_enters,
    decode_voices,
    encode_voices,
    merge,
    parse_lead,
    split,
)
from tests.helpers import pretty
from tests.helpers.data import DATA

CHORALES = sorted(DATA.glob("chorales*/*.mid"))
SATB = ["Soprano", "Alto", "Tenor", "Bass"]


def satb_files() -> list[Path]:
    """The test chorales whose tracks are exactly the four voices."""
    return [f for f in CHORALES
            if [i.name for i in pretty_midi.PrettyMIDI(str(f)).instruments] == SATB]


def one_track(inst: pretty_midi.Instrument) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(inst)
    return pm


def test_layout_sizes_and_order():
    duet, choir = VoiceSettings(2), VoiceSettings(4)
    assert (duet.vocab_size, choir.vocab_size) == (676, 1252)
    assert duet.names == ("lead", "band") and choir.names[1:] == ("band 1", "band 2", "band 3")
    s = DEFAULT_SETTINGS
    # Voiced tokens are Packer codes: their order is the order of (voice, event).
    codes = [duet.pack(v, b) for v in range(2) for b in (0, 127, s.note_off + 5, s.velocity)]
    assert codes == sorted(codes) and codes[4] == 288
    assert duet.pack(1, s.time_shift + 9) == duet.pack(0, s.time_shift + 9) == 2 * 288 + 9
    assert duet.describe(duet.pack(1, 60)) == "band NOTE_ON 60"
    assert choir.describe(choir.time_shift + 24) == "TIME_SHIFT 250 ms"


def test_pack_unpack_cover_the_vocabulary():
    scheme = VoiceSettings(3)
    tokens = np.arange(scheme.vocab_size)
    voice, base = scheme.unpack(tokens)
    assert np.array_equal(scheme.pack(voice, base), tokens)
    is_shift = voice < 0
    assert is_shift.sum() == DEFAULT_SETTINGS.max_shift_steps
    assert set(base[is_shift] - DEFAULT_SETTINGS.time_shift) == set(range(100))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        scheme.unpack(scheme.vocab_size)


notes = st.lists(st.tuples(st.integers(21, 108), st.integers(1, 127),
                           st.floats(0, 4), st.floats(0.001, 2.5)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(notes, min_size=2, max_size=4))
def test_split_undoes_merge(parts):
    """Any voices' Performance streams survive being interleaved on one clock."""
    scheme = VoiceSettings(len(parts))
    streams = [encode(pretty([(p, v, t, t + d) for p, v, t, d in part])) for part in parts]
    merged = merge(streams, scheme)
    assert merged.min(initial=0) >= 0 and merged.max(initial=0) < scheme.vocab_size
    for got, want in zip(split(merged, scheme), streams, strict=True):
        assert np.array_equal(got, want)
    # Within a step the lead comes first, then band voices in order.
    voice, base = scheme.unpack(merged)
    step = np.cumsum(np.where(voice < 0, base - DEFAULT_SETTINGS.time_shift + 1, 0))
    voiced = voice >= 0
    key = step[voiced] * 100 + voice[voiced]
    assert np.all(np.diff(key) >= 0)


def test_the_band_enters_with_its_velocity_and_without_stray_note_offs():
    """A band chord held across the entry point is dropped whole (no NOTE_OFF without its
    NOTE_ON); the note after it is kept, with the band's velocity set where it comes in."""
    scheme = VoiceSettings(2)
    lead = encode(pretty([(72, 90, 0.0, 0.4), (74, 90, 0.5, 0.9), (76, 90, 1.0, 1.4)]))
    band = encode(pretty([(48, 50, 0.0, 0.8), (55, 50, 0.0, 0.8), (52, 70, 1.0, 1.5)]))
    entered = band_enters(merge([lead, band], scheme), scheme, step=50)
    new_lead, new_band = split(entered, scheme)
    assert np.array_equal(new_lead, lead)
    notes = decode_notes(new_band)
    assert [(start, end, pitch) for start, end, pitch, _ in notes] == [(100, 150, 52)]
    # the velocity token of the 70 is still there: it was set after the entry point
    assert notes[0][3] == DEFAULT_SETTINGS.bin_to_velocity(DEFAULT_SETTINGS.velocity_to_bin(70))
    held = band_enters(merge([lead, encode(pretty([(48, 50, 0.0, 0.3), (52, 50, 0.6, 1.0)]))],
                             scheme), scheme, step=50)
    velocity = DEFAULT_SETTINGS.bin_to_velocity(DEFAULT_SETTINGS.velocity_to_bin(50))
    assert [(s, e, p, v) for s, e, p, v in decode_notes(split(held, scheme)[1])] == \
        [(60, 100, 52, velocity)]  # its velocity came before the entry: set again at step 50


@settings(max_examples=100, deadline=None)
@given(st.lists(notes, min_size=2, max_size=3), st.integers(0, 500))
def test_the_band_entering_keeps_the_lead_and_the_later_band_notes(parts, step):
    """After the entry point the band plays just what it played (notes that began there or
    later, at their times and velocities); the lead and the clock are untouched."""
    scheme = VoiceSettings(len(parts))
    streams = [encode(pretty([(p, v, t, t + d) for p, v, t, d in part])) for part in parts]
    entered = band_enters(merge(streams, scheme), scheme, step)
    got = split(entered, scheme)
    assert np.array_equal(got[0], streams[0])
    for new, old in zip(got[1:], streams[1:], strict=True):
        later = [n for n in decode_notes(old) if n[0] >= step]
        assert decode_notes(new) == later


def test_real_chorales_each_voice_is_its_own_encoding():
    files = satb_files()
    assert len(files) >= 20
    scheme = VoiceSettings(4, lead="track:Soprano")
    for f in files:
        pm = pretty_midi.PrettyMIDI(str(f))
        tokens = encode_voices(f, scheme)
        for stream, inst in zip(split(tokens, scheme), pm.instruments, strict=True):
            assert np.array_equal(stream, encode(one_track(inst))), (f.name, inst.name)
        decoded = decode_voices(tokens, scheme)
        assert [i.name for i in decoded.instruments] == list(scheme.names)
        for inst, stream in zip(decoded.instruments, split(tokens, scheme), strict=True):
            got = [(round(n.start * 100), round(n.end * 100), n.pitch) for n in inst.notes]
            assert got == [(s, e, p) for s, e, p, _ in decode_notes(stream)]


def test_lead_rules_on_a_chorale():
    f = satb_files()[0]
    pm = pretty_midi.PrettyMIDI(str(f))
    soprano, alto = (encode(one_track(i)) for i in pm.instruments[:2])
    top = split(encode_voices(f, VoiceSettings(2)), VoiceSettings(2))
    assert np.array_equal(top[0], soprano)  # the highest track leads
    named = VoiceSettings(4, lead="track:alto")
    assert np.array_equal(split(encode_voices(f, named), named)[0], alto)
    # Two voices: the whole band is one voice, as the file's three lower parts together.
    rest = pretty_midi.PrettyMIDI()
    rest.instruments.extend(pm.instruments[1:])
    assert sorted(decode_notes(top[1])) == sorted(decode_notes(encode(rest)))


def test_piano_split_and_missing_track():
    piano = pretty([(40, 80, 0.0, 1.0), (60, 80, 0.0, 1.0), (72, 90, 0.5, 1.0)],
                   pedals=[(0.0, 127), (2.0, 0)])
    scheme = VoiceSettings(2, lead="split:60")
    lead, band = split(encode_voices(piano, scheme), scheme)
    assert [n[2] for n in decode_notes(lead)] == [60, 72]
    assert [n[2] for n in decode_notes(band)] == [40]
    assert decode_notes(band)[0][1] == 200  # the pedal holds the left hand too
    with pytest.raises(MidiError, match=r"no track named 'Flute' \(tracks with notes: ''\)"):
        encode_voices(piano, VoiceSettings(2, lead="track:Flute"))
    with pytest.raises(MidiError, match="MThd"):
        encode_voices(b"not midi at all", scheme)


@pytest.mark.parametrize("bad", ["", "highest", "track:", "split:200", "split:x"])
def test_bad_lead_rules_are_refused(bad):
    with pytest.raises(ValueError, match="lead must be"):
        parse_lead(bad)
    with pytest.raises(ValueError, match="lead must be"):
        VoiceSettings(2, lead=bad)


def test_scheme_round_trips_through_a_dict():
    scheme = VoiceSettings(4, lead="track:Soprano")
    assert VoiceSettings.from_dict(scheme.to_dict()) == scheme
    with pytest.raises(ValueError, match="voices must be"):
        VoiceSettings(1)
    with pytest.raises(ValueError, match="unknown voice settings"):
        VoiceSettings.from_dict({"voices": 2, "colour": "red"})


def test_tokens_command_lists_voiced_events(capsys):
    from neuralband.cli import main

    f = str(satb_files()[0])
    assert main(["tokens", f, "--voices", "4", "--lead", "track:Soprano", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "vocabulary of 1252" in out and "lead NOTE_ON" in out
    assert main(["tokens", f, "--voices", "2", "--lead", "bogus"]) == 2
    assert "lead must be" in capsys.readouterr().err


def test_pretty_midi_s_warnings_stay_off_the_terminal(tmp_path):
    """A file with a tempo on its second track makes pretty_midi warn; reading it for a duet
    (encode --voices, generate --lead) keeps that to itself."""
    import subprocess
    import sys

    from tests.helpers import midi_bytes, off, on, tempo

    path = tmp_path / "two_tracks.mid"
    path.write_bytes(midi_bytes([[(0, on(72)), (480, off(72))],
                                 [(0, tempo(100)), (0, on(48)), (960, off(48))]]))
    code = ("import warnings; warnings.simplefilter('always');"
            "from neuralband.encoders.voices import VoiceSettings, encode_voices, melody_tokens;"
            f"encode_voices({str(path)!r}, VoiceSettings(2)); melody_tokens({str(path)!r}, "
            "VoiceSettings(2))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr


def test_the_melody_to_accompany_is_found_or_named(tmp_path):
    """generate --lead: a melody + chords file (a Nottingham tune) whose tracks are not named as
    the model's lead is read by its melody-like track (one note at a time, above the chords);
    --lead-track picks a track by name; a wrong name lists the tracks."""
    from neuralband.encoders.errors import MidiError
    from neuralband.encoders.voices import melody_part
    from tests.helpers import midi_bytes, off, on, track_name

    melody = [(0, track_name("Tune"))] + [e for k, p in enumerate([72, 74, 76, 77])
                                          for e in ((k * 480, on(p)), (k * 480 + 400, off(p)))]
    chords = [(0, track_name("Chords"))] + [e for k in range(2) for p in (48, 52, 55)
                                            for e in ((k * 960, on(p)), (k * 960 + 900, off(p)))]
    path = tmp_path / "tune.mid"
    path.write_bytes(midi_bytes([chords, melody]))
    pop_duet = VoiceSettings(2, lead="track:MELODY")
    assert sorted(set(melody_part(path, pop_duet).pitch.tolist())) == [72, 74, 76, 77]
    assert sorted(set(melody_part(path, pop_duet, "chord").pitch.tolist())) == [48, 52, 55]
    with pytest.raises(MidiError, match=r"no track named 'Bass' .*'Chords', 'Tune'"):
        melody_part(path, pop_duet, "Bass")
