"""Metrics of pieces with known answers, `neuralband evaluate` and `neuralband score` end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from neuralband.encoders.midi_io import table_from_pretty_midi
from neuralband.evaluate import (
    accompaniment_metrics,
    js_divergence,
    key_relative,
    load_parts,
    melody_at,
    piece_metrics,
    polyphony,
    solo_rows,
    timing_histograms,
)
from neuralband.score import score_files
from tests.helpers import pretty
from tests.helpers.data import DATA

CHORALE = DATA / "chorales" / "bwv10.7.mid"
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def table(notes):
    """notes: (pitch, velocity, start_s, end_s) -> a NoteTable of one instrument."""
    return table_from_pretty_midi(pretty(notes))


def scale(pitches, step_s: float = 0.5, velocity: int = 80):
    return [(p, velocity, i * step_s, (i + 1) * step_s) for i, p in enumerate(pitches)]


def test_a_c_major_scale_is_all_in_c_major():
    m = piece_metrics(table(scale(C_MAJOR)), key=(0, "major"))
    assert m["in_key_share"] == 1.0
    assert m["notes_per_s"] == pytest.approx(2.0)  # 8 notes in 4 s
    assert m["polyphony"] == pytest.approx(1.0)
    assert m["median_length_s"] == pytest.approx(0.5)
    assert m["velocity_sd"] == 0.0
    assert m["capped_share"] == 0.0
    assert math.isnan(m["pc_distance"])  # no reference given
    one_off = piece_metrics(table(scale([*C_MAJOR[:7], 66])), key=(0, "major"))
    assert one_off["in_key_share"] == pytest.approx(7 / 8)


def test_the_key_is_estimated_from_the_piece_when_not_given():
    assert piece_metrics(table(scale(C_MAJOR)))["in_key_share"] == 1.0
    e_major = [p + 4 for p in C_MAJOR]
    assert piece_metrics(table(scale(e_major)), key=(0, "major"))["in_key_share"] == 0.5
    assert piece_metrics(table(scale(e_major)))["in_key_share"] == 1.0


def test_polyphony_is_time_weighted_over_the_time_something_sounds():
    # Two notes overlapping for the whole of their length: 2.
    assert polyphony(np.array([0.0, 0.0]), np.array([2.0, 2.0])) == pytest.approx(2.0)
    # Overlapping for 1 s of the 3 s something sounds: (1 + 2 + 1) / 3.
    assert polyphony(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == pytest.approx(4 / 3)
    # A rest between two notes does not count: 1.
    assert polyphony(np.array([0.0, 5.0]), np.array([1.0, 6.0])) == pytest.approx(1.0)
    # Clipped to the range: only the overlap [1, 2) is inside it.
    assert polyphony(np.array([0.0, 1.0]), np.array([2.0, 3.0]), 1.0, 2.0) == pytest.approx(2.0)
    assert math.isnan(polyphony(np.zeros(0), np.zeros(0)))
    m = piece_metrics(table([(60, 80, 0.0, 2.0), (64, 80, 1.0, 3.0)]))
    assert m["polyphony"] == pytest.approx(4 / 3)


def test_notes_as_long_as_the_cap_count_as_capped():
    notes = [(60, 80, 0.0, 5.0), (62, 80, 5.0, 9.9), (64, 80, 10.0, 10.5), (65, 80, 11, 15.99)]
    m = piece_metrics(table(notes))
    assert m["capped_share"] == pytest.approx(2 / 4)  # 5.0 s and 4.99 s (within 15 ms)
    assert m["median_length_s"] == pytest.approx((4.9 + 4.99) / 2)
    assert piece_metrics(table(notes), cap_s=4.9)["capped_share"] == pytest.approx(3 / 4)


def test_a_time_range_measures_only_the_onsets_inside_it():
    notes = [(60, 40, float(t), t + 0.5) for t in range(60)]  # one note a second for 60 s
    notes += [(64, 120, t + 0.25, t + 0.75) for t in range(10, 40)]  # a second voice, 10..40 s
    m = piece_metrics(table(notes), start_s=10.0, end_s=40.0)
    assert m["notes_per_s"] == pytest.approx(2.0)
    assert m["polyphony"] == pytest.approx(4 / 3)  # in each second 0.75 s sound, 0.25 s of it two
    assert m["velocity_sd"] == pytest.approx(40.0)  # half at 40, half at 120
    # A range beyond the end is cut at the last note-off: 10 notes in 9.5 s.
    tail = piece_metrics(table(notes), start_s=50.0, end_s=80.0)
    assert tail["notes_per_s"] == pytest.approx(10 / 9.5)


def test_jensen_shannon_divergence_in_bits():
    p = np.array([0.5, 0.5, 0, 0])
    assert js_divergence(p, p) == 0.0
    assert js_divergence(p, np.array([0, 0, 0.5, 0.5])) == pytest.approx(1.0)
    q = np.array([0.25, 0.25, 0.25, 0.25])
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))
    assert 0 < js_divergence(p, q) < 1


def test_key_relative_histograms_put_every_key_on_c():
    g_major = np.zeros(12)
    g_major[[7, 11, 2]] = 1 / 3  # G, B, D
    assert np.flatnonzero(key_relative(g_major, (7, "major"))).tolist() == [0, 4, 7]
    a_minor = np.zeros(12)
    a_minor[[9, 0, 4]] = 1 / 3  # A, C, E: A minor is C major's relative, left as it is
    assert (key_relative(a_minor, (9, "minor")) == a_minor).all()
    assert (key_relative(np.roll(a_minor, 2), (11, "minor")) == a_minor).all()  # B minor


def test_pc_distance_is_zero_against_a_transposed_copy_and_positive_otherwise():
    c = table(scale(C_MAJOR))
    d = table(scale([p + 2 for p in C_MAJOR]))
    rows = solo_rows([c, d])  # each compared with the other, key-relative
    assert rows[0]["pc_distance"] == pytest.approx(0.0, abs=1e-12)
    chromatic = table(scale(range(60, 73)))
    row = solo_rows([chromatic], reference=[c, d])[0]
    assert row["pc_distance"] > 0.05


def test_timing_histograms_count_chords_once_and_note_lengths_each():
    # Two-note chords every 0.5 s, each note 0.25 s: one interval per chord, two lengths each.
    chords = [(p, 80, i * 0.5 + dt, i * 0.5 + dt + 0.25) for i in range(8)
              for p, dt in ((60, 0.0), (64, 0.01))]
    ioi, length = timing_histograms(table(chords), 0.0, 10.0)
    assert ioi.sum() == pytest.approx(1.0) and length.sum() == pytest.approx(1.0)
    assert np.count_nonzero(ioi) == 1 and np.count_nonzero(length) == 1
    assert np.flatnonzero(ioi)[0] > np.flatnonzero(length)[0]  # 0.5 s lies above 0.25 s


def test_timing_distances_tell_a_rhythm_from_its_own_kind():
    quarters = table(scale(C_MAJOR, step_s=0.5))
    also_quarters = table(scale([p + 2 for p in C_MAJOR], step_s=0.5))
    sixteenths = table(scale(C_MAJOR * 4, step_s=0.125))
    same = solo_rows([quarters], reference=[also_quarters])[0]
    assert same["ioi_distance"] == pytest.approx(0.0, abs=1e-12)
    assert same["length_distance"] == pytest.approx(0.0, abs=1e-12)
    other = solo_rows([sixteenths], reference=[quarters])[0]
    assert other["ioi_distance"] == pytest.approx(1.0) and other["length_distance"] > 0.9
    assert math.isnan(piece_metrics(quarters)["ioi_distance"])  # nothing to compare with


def test_melody_at_picks_the_note_that_began_last():
    melody = table([(72, 80, 0.0, 4.0), (76, 80, 1.0, 2.0)])
    at = melody_at(melody, np.array([0.5, 1.0, 1.5, 2.0, 4.0]))
    assert melody.pitch[at[:4]].tolist() == [72, 76, 76, 72]
    assert at[4] == -1  # nothing sounds at 4.0 (a note sounds in [start, end))


def test_accompaniment_metrics_with_known_answers():
    melody = table([(72, 80, 0.0, 4.0), (74, 80, 4.0, 5.0), (76, 80, 6.0, 7.0)])
    band = table([
        (60, 60, 0.0, 1.0),   # an octave below C5, at its onset: below, consonant, meets it
        (66, 60, 1.0, 2.0),   # a tritone below: below, dissonant
        (76, 60, 2.0, 3.0),   # a major third above: consonant, not below
        (67, 60, 4.03, 4.5),  # a fifth below D5, 30 ms after its onset: meets it
        (50, 60, 5.5, 5.9),   # nothing sounds in the melody: not counted below or consonant
    ])
    m = accompaniment_metrics(melody, band, key=(0, "major"))
    assert m["band_below_share"] == pytest.approx(3 / 4)
    assert m["band_consonant_share"] == pytest.approx(3 / 4)
    assert m["melody_met_share"] == pytest.approx(2 / 3)  # E5 at 6.0 s is met by nothing
    assert m["band_in_key_share"] == pytest.approx(4 / 5)  # F# is out of C major
    assert m["band_notes_per_s"] == pytest.approx(5 / 7)
    late = accompaniment_metrics(melody, band, start_s=3.0, end_s=7.0, key=(0, "major"))
    assert late["band_notes_per_s"] == pytest.approx(2 / 4)
    assert late["melody_met_share"] == pytest.approx(1 / 2)


def two_tracks(melody, band, names=("MELODY", "PIANO")) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    for name, notes in zip(names, (melody, band), strict=True):
        inst = pretty_midi.Instrument(0, name=name)
        inst.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, v, s, e in notes]
        pm.instruments.append(inst)
    return pm


def test_the_melody_is_the_track_named_for_it(tmp_path):
    melody, band = scale(C_MAJOR), scale([48, 52, 55])
    path = tmp_path / "song.mid"
    two_tracks(band, melody, names=("BRIDGE", "MELODY")).write(str(path))
    lead, rest = load_parts(path)
    assert lead.pitch.tolist() == C_MAJOR and rest.pitch.tolist() == [48, 52, 55]
    two_tracks(melody, band, names=("", "")).write(str(path))  # no names: the first track
    assert load_parts(path)[0].pitch.tolist() == C_MAJOR


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuralband", *args], capture_output=True,
                          text=True, timeout=300)


def write_sets(tmp_path: Path) -> tuple[Path, Path]:
    """Two generated pieces (C major scales over a band) and two real ones (E major, and the
    same a semitone up)."""
    gen, real = tmp_path / "gen", tmp_path / "real"
    gen.mkdir()
    real.mkdir()
    two_tracks(scale(C_MAJOR), scale([48, 52, 55, 57])).write(str(gen / "a.mid"))
    two_tracks(scale(C_MAJOR, 0.25), scale([48, 53])).write(str(gen / "b.mid"))
    e_major = [p + 4 for p in C_MAJOR]
    two_tracks(scale(e_major), scale([40, 44])).write(str(real / "a.mid"))
    two_tracks(scale([p + 1 for p in e_major]), scale([41, 45])).write(str(real / "b.mid"))
    return gen, real


def table_and_json(out: subprocess.CompletedProcess) -> tuple[dict[str, list[str]], dict]:
    lines = out.stdout.strip().splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    return rows, json.loads(lines[-1])


def test_evaluate_prints_a_table_and_a_json_line(tmp_path):
    gen, real = write_sets(tmp_path)
    out = run("evaluate", str(gen), "--against", str(real), "--json", str(tmp_path / "m.json"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["metric", "generated", "real"]
    rows, result = table_and_json(out)
    assert rows["files"] == ["2", "2"] and result["generated"]["files"] == 2
    assert result["generated"]["in_key_share"] == 1.0 and result["real"]["in_key_share"] == 1.0
    assert float(rows["polyphony"][0]) == pytest.approx(result["generated"]["polyphony"],
                                                        abs=1e-3)
    assert result["real"]["pc_distance"] == 0.0  # one real piece is the other transposed
    assert {"ioi_distance", "length_distance"} <= set(rows) <= set(result["generated"]) | {
        "files"}
    assert json.loads((tmp_path / "m.json").read_text()) == result
    in_d = run("evaluate", str(gen / "a.mid"), "--key", "D major", "--seconds", "2")
    rows, result = table_and_json(in_d)
    assert result["key"] == "D major" and result["range_s"] == [0.0, 2.0]
    # Onsets before 2 s: C D E F (melody) and C E G A (band); D major holds D, E, E, G, A.
    assert result["generated"]["in_key_share"] == pytest.approx(5 / 8)
    assert list(result) == ["generated", "range_s", "key"]


def test_evaluate_accompaniment(tmp_path):
    gen, real = write_sets(tmp_path)
    out = run("evaluate", str(gen), "--against", str(real), "--accompaniment")
    assert out.returncode == 0, out.stderr
    rows, result = table_and_json(out)
    assert result["generated"]["band_below_share"] == 1.0
    assert result["generated"]["melody_met_share"] == pytest.approx((4 / 8 + 2 / 8) / 2)
    assert set(rows) == set(result["generated"])


def test_evaluate_skips_a_corrupt_file_by_name(tmp_path):
    gen, real = write_sets(tmp_path)
    (gen / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    out = run("evaluate", str(gen), "--against", str(real))
    assert out.returncode == 0, out.stderr
    assert "broken.mid" in out.stderr and out.stderr.count("\n") == 1
    assert table_and_json(out)[1]["generated"]["files"] == 2
    bad = run("evaluate", str(gen), "--key", "H minor")
    assert bad.returncode == 2 and "not a key" in bad.stderr


def test_score_matches_torch(tmp_path):
    """The numpy stepper's NLL per event is the torch model's cross-entropy of the same tokens."""
    import torch

    from neuralband.encoders.performance import encode
    from neuralband.model import load_model

    model, info = load_model("default")
    tokens = torch.from_numpy(encode(CHORALE, info.encoder))[None]
    with torch.no_grad():
        logits, _ = model(tokens[:, :-1])
    expected = torch.nn.functional.cross_entropy(logits[0].double(), tokens[0, 1:]).item()
    out = run("score", "default", str(CHORALE), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["files"][0]["events"] == tokens.shape[1] - 1
    assert math.isfinite(result["mean_nll"])
    assert result["mean_nll"] == pytest.approx(expected, abs=1e-3)


def test_score_batches_like_one_file_at_a_time():
    chorales = sorted(CHORALE.parent.glob("*.mid"))[:3]
    one, _ = score_files("default", chorales, batch=1)
    batched, _ = score_files("default", chorales, batch=3)
    assert [s.path for s in batched] == [str(p) for p in chorales]
    assert [s.events for s in one] == [s.events for s in batched]
    assert [s.total_nll for s in batched] == pytest.approx([s.total_nll for s in one], rel=1e-5)


def test_score_table_skips_a_corrupt_file_and_refuses_a_bad_model(tmp_path):
    broken = tmp_path / "broken.mid"
    broken.write_text("not midi")
    out = run("score", "default", str(broken), str(CHORALE))
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("\n") == 1 and str(broken) in out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split()[-1] == str(CHORALE) and "mean over 1 file" in lines[-1]
    assert float(lines[1].split()[1]) == pytest.approx(float(lines[-1].split()[1]))
    bad = run("score", str(tmp_path / "nothing"), str(CHORALE))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_evaluate_measures_onsets_on_a_reference_grid(tmp_path, capsys):
    """--beats: the share of onsets on the reference's eighth lines; --primer-beats: on the
    grid of each file's own primer, carried on."""
    from neuralband.cli import main

    rng = np.random.default_rng(0)
    steady = [(60 + int(rng.integers(0, 12)), 80, k * 0.3, k * 0.3 + 0.25) for k in range(60)]
    drifting = [(p, v, s * 1.13 + 0.07, e * 1.13 + 0.07) for p, v, s, e in steady]
    pretty(steady).write(str(tmp_path / "steady.mid"))
    pretty(drifting).write(str(tmp_path / "drifting.mid"))
    beats = tmp_path / "beat_midi.txt"
    beats.write_text("".join(f"{k * 0.6:.3f} 1.0 {float(k % 4 == 0)}\n" for k in range(40)))
    assert main(["evaluate", str(tmp_path / "steady.mid"), "--against",
                 str(tmp_path / "drifting.mid"), "--beats", str(beats)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["generated"]["on_grid"] == pytest.approx(1.0)
    assert result["real"]["on_grid"] < 0.6  # a slower tempo drifts off the reference's grid
    assert result["real"]["tempo_held"] < 0.7  # nor does it hold the reference's tempo
    # the drifting file keeps its own primer's tempo: on its own carried-on grid
    assert main(["evaluate", str(tmp_path / "drifting.mid"), "--primer-s", "6",
                 "--primer-beats"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["generated"]["on_grid"] > 0.9
    assert main(["evaluate", str(tmp_path / "steady.mid"), "--beats",
                 str(tmp_path / "nosuch.txt")]) == 2
