"""Beats: the beat control's values, the grid measures, where a file's beats come from (its
annotations, its tempo map where that fits the notes, the tracker), the windows training reads,
the step runtime's beat clock against the torch model, and generate's --bpm / --beat."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders.beats import (
    BEAT_BINS,
    BEAT_SIZE,
    BEAT_START,
    EIGHTH_START,
    Beats,
    beat_features,
    best_phase_on_grid,
    chance_on_grid,
    find_beats,
    fitted_tempo_map,
    on_grid,
    parse_meter,
    positions,
    read_annotations,
    steady_beats,
    tempo_map_fits,
    track_beats,
    write_beat,
)
from neuralband.encoders.controls import ControlSettings, drop_controls
from neuralband.encoders.performance import encode_notes
from neuralband.encoders.schemes import EventScheme
from tests.helpers import models

# --- the beat control -----------------------------------------------------------------------


def test_features_on_a_steady_grid():
    beats = steady_beats(120, 1.0, 10.0, meter=4)  # a beat every 0.5 s, downbeats at 1, 3, ...
    f = beat_features(np.array([1.0, 1.125, 1.5, 3.0, 0.0, 100.0]), beats)
    assert f.shape == (6, BEAT_SIZE)
    assert f[:4, 0].tolist() == [1, 1, 1, 1]  # given
    assert np.allclose(f[0, 1:7], [0, 1, 0, 1, 0, 1], atol=1e-6)  # on a beat: every line
    assert np.allclose(f[1, 1:3], [1, 0], atol=1e-6)  # a quarter of the beat on
    assert np.allclose(f[1, 3:5], [0, -1], atol=1e-6)  # the eighth line's opposite
    assert np.allclose(f[2, 7:9], [1, 0], atol=1e-6)  # a quarter of the bar
    assert np.allclose(f[3, 7:9], [0, 1], atol=1e-6)  # the next downbeat
    assert np.allclose(f[:4, 9], 0.0, atol=1e-6)  # log2(0.5 / 0.5)
    assert f[:4, BEAT_START:].sum(axis=1).tolist() == [1, 1, 1, 1]  # one bin hot each
    assert f[4, 0] == 1.0  # within a bar before the first beat: carried on
    assert not f[5].any()  # far beyond the beats: no beat


def test_write_beat_is_the_features_row():
    beats = steady_beats(90, 0.0, 20.0, meter=3)
    # (off the exact half-step ties, where the two roundings may part by float noise)
    times = np.linspace(0.0013, 15.0, 97)
    rows = beat_features(times, beats)
    pos = positions(times, beats)
    out = np.zeros(BEAT_SIZE, np.float32)
    for k in range(len(times)):
        bar = float(pos.bar_beats[k])
        out[:] = 0.0
        hot = write_beat(out, float(pos.bar_phase[k] * bar), float(pos.bar_phase[k]),
                         float(pos.period_s[k]))
        out[list(hot)] = 1.0
        assert np.allclose(out, rows[k], atol=1e-5)


def test_the_time_to_the_next_lines_is_a_wait_that_lands_on_them():
    beats = steady_beats(100, 0.0, 30.0)  # beats every 0.6 s, eighths every 0.3 s
    f = beat_features(np.array([0.0, 0.1, 0.29, 0.61, 1.0]), beats)
    eighth = np.argmax(f[:, EIGHTH_START:BEAT_START], axis=1)
    beat = np.argmax(f[:, BEAT_START:], axis=1)
    assert eighth.tolist() == [30, 20, 1, 29, 20]  # 10 ms steps to the next eighth line
    assert beat.tolist() == [60, 50, 31, 59, 20]  # and to the next beat
    slow = beat_features(np.array([0.0]), steady_beats(40, 0.0, 30.0))
    assert slow[0, BEAT_START + BEAT_BINS - 1] == 1  # 1.5 s: the last bin


def test_downbeats_set_the_bar_phase_of_an_uneven_piece():
    times = np.arange(12) * 0.5
    downs = np.zeros(12, bool)
    downs[[1, 4, 8]] = True  # a pickup beat, a bar of 3, then bars of 4
    beats = Beats(times, downs)
    pos = positions(times, beats)
    assert np.allclose(pos.bar_phase[[1, 4, 8]], 0.0)
    assert np.allclose(pos.bar_phase[2], 1 / 3)
    assert np.allclose(pos.bar_phase[5], 1 / 4)
    assert pos.bar_beats[2] == 3 and pos.bar_beats[5] == 4


def test_beats_refuse_what_is_not_a_beat():
    with pytest.raises(ValueError, match="two rising"):
        Beats(np.array([1.0, 1.0]), np.zeros(2, bool))
    with pytest.raises(ValueError, match="BPM"):
        steady_beats(5, 0, 10)
    assert parse_meter("3/4") == 3 and parse_meter("6/8") == 6 and parse_meter("4") == 4
    with pytest.raises(ValueError, match="beats to the bar"):
        parse_meter("waltz")


def test_beat_dicts_round_trip():
    beats = Beats(np.array([0.1, 0.6, 1.1, 1.65]), np.array([True, False, False, True]),
                  "tracker")
    back = Beats.from_dict(beats.to_dict())
    assert np.allclose(back.times_s, beats.times_s) and back.source == "tracker"
    assert back.downbeats.tolist() == beats.downbeats.tolist()


def test_drop_controls_drops_the_beat_apart():
    cs = ControlSettings(beat=True)
    assert cs.size == cs.beat_start + BEAT_SIZE and ControlSettings().size == cs.beat_start
    controls = np.ones((400, 3, cs.size), np.float32)
    drop_controls(controls, np.random.default_rng(0), 0.3, cs)
    beat_off = ~controls[:, 0, cs.beat_start:].any(axis=1)
    key_off = ~controls[:, 0, :cs.density_start].any(axis=1)
    assert 0.2 < beat_off.mean() < 0.4
    assert (beat_off != key_off).any()  # drawn apart
    assert ControlSettings.from_dict(cs.to_dict()) == cs
    assert not ControlSettings.from_dict({"key_window_s": 10.0}).beat  # older model files


# --- measuring onsets on a grid ---------------------------------------------------------------


def test_on_grid_counts_onsets_near_the_eighth_lines():
    beats = steady_beats(120, 0.0, 10.0)  # eighths every 0.25 s
    onsets = np.array([0.0, 0.26, 0.5, 0.625, 1.02, 1.2])  # on, on, on, off, on, off
    assert on_grid(onsets, beats) == pytest.approx(4 / 6)
    assert chance_on_grid(beats) == pytest.approx(0.08 / 0.25)
    assert math.isnan(on_grid(np.array([50.0]), beats))  # beyond the beats: nothing to judge


@settings(max_examples=30, deadline=None)
@given(bpm=st.floats(60, 160), phase=st.floats(0, 1), seed=st.integers(0, 1000))
def test_a_steady_player_holds_its_tempo_at_any_phase(bpm, phase, seed):
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    onsets = (phase + np.sort(rng.choice(200, 60, replace=False)) / 2) * period
    assert best_phase_on_grid(onsets, period) > 0.97
    random = np.sort(rng.uniform(0, onsets[-1], 60))
    assert best_phase_on_grid(random, period) < 0.7


# --- where a file's beats come from -----------------------------------------------------------


def _steady_notes(bpm: float, seconds: float, seed: int = 0, jitter: float = 0.01):
    """A pianist's notes at ``bpm``: eighths, quarters and halves, a bass note on each
    downbeat, with timing jitter."""
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    starts, pitches, velocities = [], [], []
    beat = 0.0
    while beat * period < seconds:
        starts.append(beat * period + rng.normal(0, jitter))
        pitches.append(int(rng.integers(60, 80)))
        velocities.append(int(rng.integers(60, 90)))
        if beat % 4 == 0:
            starts.append(beat * period + rng.normal(0, jitter))
            pitches.append(40)
            velocities.append(100)
        beat += float(rng.choice([0.5, 1.0, 1.0, 2.0]))
    order = np.argsort(starts)
    return (np.maximum(np.array(starts)[order], 0.0), np.array(pitches)[order],
            np.array(velocities)[order])


def _write_steady(path, bpm: float, seconds: float, seed: int = 0, jitter: float = 0.01):
    """`_steady_notes` as a MIDI file whose tempo map says ``bpm`` (and means it)."""
    import pretty_midi

    start, pitch, velocity = _steady_notes(bpm, seconds, seed=seed, jitter=jitter)
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(int(v), int(p), float(s), float(s) + 0.2)
                  for s, p, v in zip(start, pitch, velocity, strict=True)]
    pm.instruments.append(inst)
    pm.write(str(path))


@pytest.mark.parametrize("bpm", [64, 72, 96, 110, 128])
def test_the_tracker_finds_a_steady_pianists_beat(bpm):
    start, pitch, velocity = _steady_notes(bpm, 40.0, seed=bpm)
    beats = track_beats(start, velocity / 127.0, 4, velocity / 127.0 * (pitch < 55))
    assert beats is not None and beats.source == "tracker"
    # its tempo, or above 100 BPM half of it: eighth-note runs at 110 are a ballad's sixteenths
    # at 55, and POP909's annotators hear the slow beat (`encoders.beats.FASTER_MARGIN`); then
    # the onsets sit on that half tempo's sixteenth lines
    downs = beats.times_s[beats.downbeats]
    if beats.bpm == pytest.approx(bpm, rel=0.03):
        assert on_grid(start, beats) > 0.9
    else:
        assert bpm > 100 and beats.bpm == pytest.approx(bpm / 2, rel=0.03)
        assert on_grid(start, beats, subdivision=4) > 0.9
        first = int(np.argmax(beats.downbeats))  # its bars are two of the player's
        downs = beats.times_s[(np.arange(len(beats)) - first) % 2 == 0]
    # bars: most bass notes fall on the downbeats it marks (bars are less sure than beats: a
    # half-beat slip late in a piece keeps the eighth lines and moves the bar; on POP909 the
    # tracker's downbeats meet the annotated ones 60% of the time)
    bass = start[pitch < 55]
    gap = np.min(np.abs(bass[:, None] - downs[None, :]), axis=1)
    assert np.mean(gap < 0.05) >= 0.7


def test_the_tracker_needs_notes():
    assert track_beats(np.array([0.0, 0.5, 1.0])) is None


def test_a_tempo_map_is_trusted_only_where_it_fits_the_notes():
    start, _, _ = _steady_notes(96, 30.0)
    fits = steady_beats(96, 0.0, 31.0, source="tempo map")
    default = steady_beats(120, 0.0, 31.0, source="tempo map")  # a recorder's 120 BPM
    assert tempo_map_fits(start, fits)
    assert not tempo_map_fits(start, default)


@pytest.mark.parametrize("bpm", [64, 80, 96, 128])
def test_a_tempo_map_at_the_music_s_tempo_is_moved_onto_its_beat(bpm):
    """POP909's maps hold the right tempo with bars starting beside the music's beats: moved,
    their eighth lines meet the notes'; a map at another tempo fits at no phase."""
    start, _, _ = _steady_notes(bpm, 15.0, seed=bpm, jitter=0.015)
    late = steady_beats(bpm, 0.0, 16.0, source="tempo map").shifted(0.3 * 60.0 / bpm)
    moved = fitted_tempo_map(start, late)
    assert moved is not None and moved.bpm == pytest.approx(bpm)
    eighth = 30.0 / bpm
    off = (moved.times_s[0] + eighth / 2) % eighth - eighth / 2  # from the notes' eighth lines
    assert abs(off) < 0.015
    for wrong in (120.0, 100.0, 0.75 * bpm, 1.5 * bpm):  # a recorder's default, thirds
        assert fitted_tempo_map(start, steady_beats(wrong, 0.0, 16.0)) is None


def test_find_beats_prefers_annotations_then_the_tempo_map(tmp_path):
    import pretty_midi

    start, pitch, velocity = _steady_notes(100, 20.0)
    song = tmp_path / "song"
    song.mkdir()
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(int(v), int(p), float(s), float(s) + 0.2)
                   for s, p, v in zip(start, pitch, velocity, strict=True)]
    pm.instruments.append(piano)
    path = song / "song.mid"
    pm.write(str(path))
    midi = pretty_midi.PrettyMIDI(str(path))
    assert find_beats(start, pitch, velocity, path, midi).source == "tempo map"
    wrong = pretty_midi.PrettyMIDI(initial_tempo=120)  # the file a keyboard recorder writes
    wrong.instruments.append(piano)
    assert find_beats(start, pitch, velocity, None, wrong).source == "tracker"
    (song / "beat_midi.txt").write_text("0.0 1.0 1.0\n0.6 0.0 0.0\n1.2 1.0 0.0\n1.8 0.0 0.0\n")
    found = find_beats(start, pitch, velocity, path, midi)
    assert found.source == "annotations" and found.downbeats.tolist() == [1, 0, 0, 0]
    (song / "beat_midi.txt").write_text("not beats\n")
    assert find_beats(start, pitch, velocity, path, midi).source == "tempo map"
    with pytest.raises(ValueError, match="beat file"):
        read_annotations(song / "beat_midi.txt")


def test_encode_keeps_each_pieces_beats(tmp_path):
    import json

    from neuralband.training.dataset import build_dataset

    src = tmp_path / "midi"
    src.mkdir()
    for k, bpm in enumerate((80, 110)):
        _write_steady(src / f"{k}.mid", bpm, 20.0, seed=k)
    build_dataset([src], tmp_path / "ds", workers=1)
    rows = [json.loads(line) for line in (tmp_path / "ds" / "manifest.jsonl").open()]
    assert sorted(r["beats"]["source"] for r in rows) == ["tempo map", "tempo map"]
    assert all(len(r["beats"]["times_s"]) > 20 for r in rows)


# --- the windows training reads ----------------------------------------------------------------


@pytest.fixture(scope="module")
def beat_dataset(tmp_path_factory):
    """Pieces at 75 to 120 BPM whose notes sit on their eighth lines (the last one valid)."""
    import json

    from neuralband.training.dataset import build_dataset

    root = tmp_path_factory.mktemp("beats")
    src = root / "midi"
    src.mkdir()
    for k, bpm in enumerate((90, 120, 100, 75)):
        _write_steady(src / f"{k}.mid", bpm, 60.0, seed=k, jitter=0.0)
    build_dataset([src], root / "ds", workers=1, fractions=(1.0, 0.0, 0.0))
    manifest = root / "ds" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[-1]["split"] = "valid"  # one piece to validate on, whatever the hashes say
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "ds"


@pytest.mark.parametrize("stretch", [0.0, 0.1])
def test_windows_read_their_notes_on_the_beat(beat_dataset, stretch):
    from neuralband.training.windows import TokenWindows

    cs = ControlSettings(beat=True)
    windows = TokenWindows(beat_dataset, "train", window=128, batch_size=16, seed=1,
                           transpose=3, stretch=stretch, controls=cs)
    tokens, controls = windows.batch_with_controls(0)
    beat = controls[:, :, cs.beat_start:]
    assert (beat[:, :, 0] == 1).all()
    on = tokens[:, :-1] < 128  # NOTE_ONs: their control is the time they sound at
    eighth = np.arctan2(beat[..., 3], beat[..., 4]) / (4 * np.pi)  # beats off an eighth line
    period = 0.5 * 2.0 ** beat[..., 9]
    assert np.mean((np.abs(eighth) * period)[on] < 0.011) > 0.98  # a step, stretched or not
    # on a line, the next eighth line is a whole eighth away (stretched, a window's start and
    # the piece's rounded apart put a few onsets up to a step before their line)
    to_next = np.argmax(beat[..., EIGHTH_START:BEAT_START], axis=-1) * 0.01
    assert np.mean(np.abs(to_next - period / 2)[on] < 0.015) > (0.98 if not stretch else 0.95)
    # without the beat, the same windows and key/density controls as before
    plain = TokenWindows(beat_dataset, "train", window=128, batch_size=16, seed=1,
                         transpose=3, stretch=stretch, controls=ControlSettings())
    plain_tokens, plain_controls = plain.batch_with_controls(0)
    assert np.array_equal(plain_tokens, tokens)
    assert np.array_equal(plain_controls, controls[:, :, :cs.beat_start])


def test_windows_track_the_beats_of_a_dataset_without_them(beat_dataset, tmp_path):
    import json
    import shutil

    from neuralband.training.windows import TokenWindows

    copy = tmp_path / "ds"
    shutil.copytree(beat_dataset, copy)
    rows = [json.loads(line) for line in (copy / "manifest.jsonl").open()]
    (copy / "manifest.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if k != "beats"}) + "\n" for r in rows))
    windows = TokenWindows(copy, "train", window=128, batch_size=8, seed=0,
                           controls=ControlSettings(beat=True))
    assert windows.piece_beats(0).source == "tracker"
    tokens, controls = windows.batch_with_controls(0)
    assert (controls[:, :, ControlSettings(beat=True).beat_start] == 1).mean() > 0.9


# --- the step runtime's beat clock --------------------------------------------------------------


@pytest.fixture(scope="module")
def beat_model(tmp_path_factory):
    return models.beat_model(tmp_path_factory.mktemp("beatmodel") / "m")


def test_the_stepper_reads_the_beat_as_torch_does(beat_model):
    import torch

    from neuralband.encoders.voices import event_steps
    from neuralband.runtime import Stepper

    path, model, cs = beat_model
    start, pitch, velocity = _steady_notes(100, 8.0)
    from neuralband.encoders.midi_io import NoteTable

    n = len(start)
    table = NoteTable(start, start + 0.3, pitch, velocity, np.zeros(n, np.int64),
                      np.zeros(n, bool), np.zeros(0), np.zeros(0, np.int64),
                      np.zeros(0, np.int64))
    tokens = encode_notes(table)[:200]
    times = event_steps(tokens, EventScheme().settings)[1] / 100.0
    beats = steady_beats(100, 0.13, 20.0, meter=3)
    controls = np.zeros((len(tokens), cs.size), np.float32)
    controls[:, cs.beat_start:] = beat_features(times, beats)
    with torch.no_grad():
        want = model(torch.from_numpy(tokens[None]), None, torch.from_numpy(controls[None]))[0]
    want = want[0].numpy()
    stepper = Stepper.load(path)
    assert stepper.reads_beat
    stepper.set_controls(np.zeros(cs.size, np.float32))
    stepper.place_on(beats, 0.0)  # then each token moves the clock on by its time
    for k, tok in enumerate(tokens):
        stepper.feed(int(tok))
        assert np.allclose(stepper.logits()[0], want[k], atol=1e-4)
    # a snapshot holds the clock; speculating leaves it where it was
    snap = stepper.snapshot()
    stepper.speculate(int(tokens[5]))
    assert stepper.beat_pos[0] == snap.beat[0]
    stepper.feed(300)  # TIME_SHIFT of 1 step... moves the clock
    assert stepper.beat_pos[0] != snap.beat[0]
    stepper.restore(snap)
    assert stepper.beat_pos[0] == snap.beat[0]


def test_no_beat_reads_zeros(beat_model):
    import torch

    from neuralband.runtime import Stepper

    path, model, cs = beat_model
    tokens = np.array([300, 60, 320, 188, 60], np.int64)
    with torch.no_grad():
        want = model(torch.from_numpy(tokens[None]), None,
                     torch.zeros(1, len(tokens), cs.size))[0][0].numpy()
    stepper = Stepper.load(path)
    stepper.place_beat(1.5, 0.5)
    stepper.place_beat(None)
    for k, tok in enumerate(tokens):
        stepper.feed(int(tok))
        assert np.allclose(stepper.logits()[0], want[k], atol=1e-4)


def test_generate_plays_on_the_bpm_grid_it_is_given(beat_model, tmp_path):
    from neuralband.cli import main

    path, _, _ = beat_model
    out = tmp_path / "g.mid"
    assert main(["generate", "--model", str(path), "--bpm", "96", "--meter", "3/4",
                 "--seconds", "4", "-o", str(out), "-q", "--seed", "1"]) == 0
    assert out.exists()
    assert main(["generate", "--model", str(path), "--beat", "free", "--bpm", "96",
                 "-o", str(out), "-q"]) == 2
    assert main(["generate", "--model", str(path), "--bpm", "9000", "-o", str(out), "-q"]) == 2


def test_generate_lead_at_a_bpm_keeps_the_beat_to_the_melody_s_end(tmp_path, monkeypatch):
    """Accompanying at ``--bpm``, the steady grid covers the whole melody and its tail (it
    stopped 5 s in once: the melody's length was read as 0)."""
    import neuralband.generate as generate
    from neuralband.cli import main
    from neuralband.encoders.performance import encode
    from neuralband.encoders.schemes import duration_s

    given = []

    def accompany(*args, **kw):
        given.append(kw["beats"])
        return real(*args, **kw)

    real = generate.accompany
    monkeypatch.setattr(generate, "accompany", accompany)
    from tests.helpers.data import CHORALES

    melody = CHORALES[0]
    assert main(["generate", "--model", "pop-duet", "--lead", str(melody), "--bpm", "90",
                 "-o", str(tmp_path / "x.mid"), "-q", "--seed", "1"]) == 0
    (beats,) = given
    assert beats.times_s[-1] >= duration_s(encode(melody)) + 1.0
    assert np.allclose(np.diff(beats.times_s), 60 / 90)


def test_generate_refuses_bpm_for_a_model_without_the_beat(tmp_path, capsys):
    from neuralband.cli import main

    assert main(["generate", "--model", "chorale-folk", "--bpm", "96",
                 "-o", str(tmp_path / "x.mid"), "-q"]) == 2
    assert "reads no beat" in capsys.readouterr().err


# --- training a model that reads the beat --------------------------------------------------------


def test_a_fine_tune_that_adds_the_beat_starts_from_what_the_model_played(beat_dataset, tmp_path):
    """--beat --init: the file's weights, the new beat inputs at zero weight, so the first
    forward pass is the base model's; the result reads the beat and says so in its file."""
    import torch

    from neuralband.model import EventLSTM, load_model
    from neuralband.modelfile import read_info
    from neuralband.training.config import TrainConfig
    from neuralband.training.train import train, warm_start

    def run(out, **kw):
        return TrainConfig(str(beat_dataset), str(out), preset="tiny", steps=6, batch=4,
                           window=32, lr=5e-3, warmup=2, eval_every=3, eval_windows=8,
                           threads=1, progress=False, transpose=0, **kw)

    train(run(tmp_path / "base", controls=True))
    base, info = load_model(tmp_path / "base" / "model")
    cs = ControlSettings(beat=True)
    from dataclasses import replace

    model = EventLSTM(replace(info.config, controls=cs.size))
    warm_start(model, str(tmp_path / "base" / "model"), cs)
    tokens = torch.randint(0, 388, (2, 20))
    controls = torch.rand(2, 20, cs.size)
    want, _ = base(tokens, None, controls[..., :cs.beat_start])
    model.eval()
    got, _ = model(tokens, None, controls)  # whatever the beat says: zero weight yet
    assert torch.allclose(got, want, atol=1e-4)
    train(run(tmp_path / "beat", beat=True, init=str(tmp_path / "base" / "model")))
    tuned = read_info(tmp_path / "beat" / "model")
    assert tuned.controls.beat and tuned.config.controls == cs.size
    assert "valid_nll_with_controls" in tuned.summary
    with pytest.raises(ValueError, match="token classes|needs"):
        warm_start(EventLSTM(replace(info.config, vocab_size=400, controls=cs.size)),
                   str(tmp_path / "base" / "model"), cs)


def test_feeding_with_the_beat_clock_allocates_nothing(beat_model):
    """The per-event beat: the clock moved on, its phases written, its rows added, allocate
    nothing beyond what a step without the beat does (tracemalloc's peak: what was allocated at
    once, however briefly; a buffer of gates would be 8 kB)."""
    import tracemalloc

    from neuralband.runtime import Stepper

    stepper = Stepper.load(beat_model[0])
    stepper.set_controls(np.zeros(beat_model[2].size, np.float32))
    tokens = [300, 60, 320, 188, 370, 64, 192]
    peaks = []
    for beat in (None, 0.5):
        stepper.place_beat(beat, 0.6, 4)
        for tok in tokens:
            stepper.feed(tok)
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            for _ in range(200):
                for tok in tokens:
                    stepper.feed(tok)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks.append(peak - base)
    assert stepper.beat_on
    assert peaks[1] - peaks[0] < 256 and peaks[1] < 4096, peaks


def test_each_stream_keeps_its_own_beat(beat_model):
    """Batched streams (generate's variations): one placed off the beats reads no beat, the
    other keeps its own, each exactly as a stream stepped alone."""
    from neuralband.runtime import Stepper

    path, _, cs = beat_model
    tokens = [300, 60, 320, 188, 370, 64, 192, 310]
    both = Stepper.load(path, batch=2)
    both.set_controls(np.zeros(cs.size, np.float32))
    both.place_beat(1.25, 0.55, 4)
    both.place_beat(None, stream=1)
    alone = [Stepper.load(path), Stepper.load(path)]
    for one in alone:
        one.set_controls(np.zeros(cs.size, np.float32))
    alone[0].place_beat(1.25, 0.55, 4)
    for tok in tokens:
        both.feed(np.array([tok, tok]))
        for one in alone:
            one.feed(tok)
        for b in range(2):
            assert np.allclose(both.logits()[b], alone[b].logits()[0], atol=1e-5)
    assert both.beat_streams.tolist() == [True, False] and both.beat_on


def test_a_files_unreadable_annotations_leave_its_tempo_map(tmp_path):
    """encode's path (`beats_of_midi`): annotations where readable, else the file's own beats
    (they used to end in no beat at all)."""
    from neuralband.encoders.beats import beats_of_file

    song = tmp_path / "song"
    song.mkdir()
    _write_steady(song / "song.mid", 100, 20.0)
    (song / "beat_midi.txt").write_text("0.0 1.0 1.0\n0.6 0.0 0.0\n1.2 1.0 0.0\n")
    assert beats_of_file(song / "song.mid").source == "annotations"
    (song / "beat_midi.txt").write_text("not beats\n")
    assert beats_of_file(song / "song.mid").source == "tempo map"
