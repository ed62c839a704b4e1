"""Grid models (the Neural iPad Band's packed ensemble): real chorales encoded on a grid, a model
trained on them that reads (lead at t+1, band at t) and predicts the band at t+1, and the band it
plays offline, which never holds a note it did not start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.cli import main
from neuralband.encoders.grid import (
    HOLD,
    NEW,
    REST,
    STATES,
    GridSettings,
    codes_states,
    codes_summary,
    encode_grid,
    grid_states,
    training_pairs,
    transpose_codes,
)
from neuralband.encoders.performance import DEFAULT_SETTINGS, prepare_notes
from neuralband.encoders.schemes import GridScheme
from neuralband.encoders.voices import VoiceSettings, split_parts
from neuralband.grid_band import GridBand, accompany_file, accompany_grid, melody_states
from neuralband.model import EventLSTM, load_model, save_model
from neuralband.modelconfig import ModelConfig
from neuralband.modelfile import ModelFileError, read_info
from neuralband.runtime import Stepper
from neuralband.training.baselines import baselines
from neuralband.training.config import TrainConfig
from neuralband.training.dataset import build_dataset
from neuralband.training.train import train
from neuralband.training.windows import TokenWindows
from tests.helpers import every_nth_valid
from tests.helpers.data import CHORALES, TRAIN_CHORALES

GRID = GridSettings(0.125, 4, "track:Soprano")  # sixteenths at the chorales' 120 bpm


def satb_states(path: Path) -> np.ndarray:
    """A chorale's (T, 4) states, computed here from its parts: the reference for encode_grid."""
    pm = pretty_midi.PrettyMIDI(str(path))
    parts = split_parts(pm, VoiceSettings(4, GRID.lead, DEFAULT_SETTINGS))
    return grid_states([prepare_notes(p, DEFAULT_SETTINGS) for p in parts], GRID)


@pytest.fixture(scope="module")
def grid_dataset(tmp_path_factory) -> Path:
    """The 36 training chorales on the grid, every 6th piece valid."""
    out = tmp_path_factory.mktemp("grid") / "ds"
    build_dataset(TRAIN_CHORALES, out, workers=1, fractions=(1.0, 0.0, 0.0),
                  scheme=GridScheme(GRID))
    return every_nth_valid(out)


@pytest.fixture(scope="module")
def grid_run(grid_dataset, tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("grid-run")
    result = train(TrainConfig(str(grid_dataset), str(run), preset="tiny", steps=80, batch=16,
                               window=64, lr=1e-2, warmup=5, eval_every=40, eval_windows=16,
                               threads=1, transpose=5, progress=False))
    return run / "model", result


# --- encoding -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", CHORALES, ids=lambda p: p.name)
def test_encode_grid_is_the_training_pairs_of_the_parts_from_silence(path: Path) -> None:
    states = satb_states(path)
    codes = encode_grid(path, GRID)
    silent = np.concatenate([np.zeros((1, 4), np.uint8), states])
    inputs, targets = training_pairs(silent)
    assert np.array_equal(codes, inputs)
    # The stored classes hold the targets too: the band's part of the next class.
    assert np.array_equal(codes[1:] % GRID.output_classes, targets[:-1])
    # Row t of the classes is (lead at t, band at t - 1): the first, the lead entering alone.
    rows = codes_states(codes, 4)
    assert np.array_equal(rows[:, 0], states[:, 0]) and not rows[0, 1:].any()
    seconds, notes = codes_summary(codes, GRID)
    assert seconds == len(states) * 0.125 and notes == int((states >= NEW).sum())
    assert np.all(states[:, 0] < STATES) and (states[:, 1:] >= NEW).any()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, STATES**4 - 1), max_size=50), st.integers(-11, 11))
def test_transposing_moves_every_new_note_and_nothing_else(codes: list[int], k: int) -> None:
    before = codes_states(np.array(codes, np.int64), 4)
    moved = transpose_codes(np.array(codes, np.int64), k, 4)
    after = codes_states(moved, 4)
    new = before >= NEW
    assert np.array_equal(after[~new], before[~new])  # rests and holds stay
    assert np.array_equal((after[new] - NEW) % 12, (before[new].astype(int) - NEW + k) % 12)
    assert np.array_equal(transpose_codes(moved, -k, 4), np.array(codes, np.int64))


# --- the dataset and training -------------------------------------------------------------------

def test_the_dataset_records_its_grid_and_refuses_another(grid_dataset: Path, tmp_path) -> None:
    info = json.loads((grid_dataset / "settings.json").read_text())
    assert info["scheme"]["grid"] == {"step_s": 0.125, "voices": 4, "lead": "track:Soprano"}
    shard = np.load(next((grid_dataset / "shards").glob("*.npy")))
    assert shard.dtype == np.uint16 and shard.max() < STATES**4
    with pytest.raises(ValueError, match="grid"):
        build_dataset(TRAIN_CHORALES[:1], grid_dataset, workers=1,
                      scheme=GridScheme(GridSettings(0.25, 4, "track:Soprano")))


def test_grid_windows_transpose_pitch_classes_and_never_stretch(grid_dataset: Path) -> None:
    plain = TokenWindows(grid_dataset, window=64, batch_size=8, seed=3, stretch=0.2)
    moved = TokenWindows(grid_dataset, window=64, batch_size=8, seed=3, transpose=6)
    a, b = codes_states(plain.batch(0), 4), codes_states(moved.batch(0), 4)
    assert plain.stretch == 0.0
    assert np.array_equal(a < NEW, b < NEW) and np.array_equal(a[a < NEW], b[a < NEW])
    assert not np.array_equal(a, b)  # some window moved (k = 0 in all 8 is unlikely)


def test_a_grid_model_trains_below_its_baselines(grid_run, grid_dataset) -> None:
    model, result = grid_run
    info = read_info(model)
    assert info.scheme.grid_settings == GRID
    assert info.config.vocab_size == 14**4 and info.config.classes == 14**3
    assert info.config.fields == (14, 14, 14, 14)
    # The bigram here is the band following itself (p(band at t+1 | band at t)), a strong one.
    base = result["baselines"]
    assert result["best_valid_nll"] < base["unigram_nll"]
    windows = TokenWindows(grid_dataset, "valid", 64, 16, 1).batch(0)
    assert baselines(grid_dataset, windows)["bigram_nll"] == base["bigram_nll"]


def test_the_numpy_stepper_computes_what_the_torch_model_computes(grid_run) -> None:
    model, _ = grid_run
    torch_model, info = load_model(model)
    codes = encode_grid(CHORALES[0], GRID)[:200]
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(codes)[None])[0][0].numpy()
    stepper = Stepper.load(model)
    got = []
    for code in codes.tolist():
        stepper.feed(code)
        got.append(stepper.logits()[0].copy())
    assert np.allclose(np.array(got), expected, atol=1e-4)
    batched = Stepper.load(model, batch=3)
    batched.feed(codes[:3])
    for row, code in enumerate(codes[:3].tolist()):
        one = Stepper.load(model)
        one.feed(code)
        assert np.allclose(batched.logits()[row], one.logits()[0], atol=1e-5)


def test_a_model_file_that_does_not_fit_its_grid_is_refused(tmp_path) -> None:
    wrong = EventLSTM(ModelConfig(vocab_size=14**4, embed_dim=8, hidden=8, layers=1))
    with pytest.raises(ValueError, match="predicts"):
        save_model(tmp_path / "m", wrong, GridScheme(GRID, DEFAULT_SETTINGS))
    good = EventLSTM(ModelConfig(vocab_size=14**4, out_size=14**3, fields=(14,) * 4,
                                 embed_dim=8, hidden=8, layers=1))
    save_model(tmp_path / "m", good, GridScheme(GRID, DEFAULT_SETTINGS))
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["model"]["fields"] = [STATES**2, STATES**2]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="fields"):
        read_info(tmp_path / "m")


# --- the band -------------------------------------------------------------------------------------

def hold_loving_model(path: Path) -> Path:
    """A model whose head prefers classes where every band voice HOLDs: only the mask can keep
    a resting voice from holding."""
    model = EventLSTM(ModelConfig(vocab_size=14**4, out_size=14**3, fields=(14,) * 4,
                                  embed_dim=8, hidden=8, layers=1))
    with torch.no_grad():
        states = torch.arange(14**3)
        holds = sum((states // 14**k % 14 == HOLD).int() for k in range(3))
        model.head.bias.copy_(3.0 * holds)
    save_model(path, model, GridScheme(GRID, DEFAULT_SETTINGS))
    return path


def test_the_band_never_holds_a_note_it_did_not_start(tmp_path, grid_run) -> None:
    lead = melody_states(prepare_notes(split_parts(
        pretty_midi.PrettyMIDI(str(CHORALES[1])), VoiceSettings(4, GRID.lead))[0]), GRID)
    for model in (hold_loving_model(tmp_path / "holds"), grid_run[0]):
        band = GridBand(Stepper.load(model), seed=7)
        states = accompany_grid(band, lead)
        assert np.array_equal(states[:, 0], lead)
        previous = np.concatenate([np.zeros((1, 3), np.uint8), states[:-1, 1:]])
        assert not np.any((states[:, 1:] == HOLD) & (previous == REST))
        assert (states[:, 1:] >= NEW).any()  # it plays
        again = accompany_grid(GridBand(Stepper.load(model), seed=7), lead)
        assert np.array_equal(states, again)  # a seed is a performance


def test_accompany_a_chorale_melody(grid_run) -> None:
    model, _ = grid_run
    pieces = accompany_file(model, CHORALES[2], variations=2, seed=1)
    soprano = next(i for i in pretty_midi.PrettyMIDI(str(CHORALES[2])).instruments
                   if i.name == "Soprano")
    for pm in pieces:
        assert [i.name for i in pm.instruments] == ["lead", "band 1", "band 2", "band 3"]
        assert [(n.pitch, n.start) for n in pm.instruments[0].notes] == [
            (n.pitch, n.start) for n in soprano.notes]
        assert all(i.notes for i in pm.instruments[1:])
        assert pm.get_end_time() <= soprano.notes[-1].end + 0.25
    assert pieces[0].instruments[1].notes != pieces[1].instruments[1].notes


def test_the_command_line(grid_run, tmp_path, capsys) -> None:
    model, _ = grid_run
    out = tmp_path / "ds"
    assert main(["encode", *map(str, CHORALES), "-o", str(out), "--voices", "4",
                 "--lead", "track:Soprano", "--grid", "120", "-q"]) == 0
    assert json.loads((out / "settings.json").read_text())["scheme"]["grid"]["step_s"] == 0.125
    assert "steps" in capsys.readouterr().out
    assert main(["encode", str(CHORALES[0]), "-o", str(tmp_path / "x"), "--grid", "120"]) == 2
    assert "--voices" in capsys.readouterr().err
    assert main(["generate", "--model", str(model), "--lead", str(CHORALES[0]), "-o",
                 str(tmp_path / "acc.mid"), "--seed", "3"]) == 0
    assert "band 3" in capsys.readouterr().out
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / "acc.mid")).instruments) == 4
    assert main(["generate", "--model", str(model), "-o", str(tmp_path / "no.mid")]) == 2
    assert "--lead" in capsys.readouterr().err


# --- the bundled grid model ---------------------------------------------------------------------

def band_nll(model: str, codes: np.ndarray) -> float:
    """Mean -log p(band at t+1) over a piece's classes, teacher-forced."""
    stepper, total = Stepper.load(model), 0.0
    for now, after in zip(codes[:-1].tolist(), codes[1:].tolist(), strict=True):
        stepper.feed(now)
        logits = stepper.logits()[0].astype(np.float64)
        top = logits.max()
        total += top + np.log(np.exp(logits - top).sum()) - logits[after % 14**3]
    return total / (len(codes) - 1)


def consonance(pm: pretty_midi.PrettyMIDI) -> float:
    """The share of the lead-band intervals sounding at each sixteenth that are consonant
    (unison, thirds, fourth, fifth, sixths, octaves): about 7/12 for pitches drawn at random."""
    lead, band = pm.instruments[0].notes, [n for i in pm.instruments[1:] for n in i.notes]
    good = total = 0
    for t in np.arange(0.0625, pm.get_end_time(), 0.125):
        for a in (n.pitch for n in lead if n.start <= t < n.end):
            for b in (n.pitch for n in band if n.start <= t < n.end):
                total += 1
                good += abs(a - b) % 12 in (0, 3, 4, 5, 7, 8, 9)
    return good / total


def test_the_bundled_grid_model_listens_to_the_melody() -> None:
    info = read_info("grid")
    assert info.scheme.grid_settings == GRID
    assert info.summary["valid_nll"] < info.summary["baselines"]["bigram_nll"]
    for path in CHORALES:
        codes = encode_grid(path, GRID)
        hidden = codes % GRID.output_classes  # the lead resting throughout, the band as written
        assert band_nll("grid", codes) < band_nll("grid", hidden) - 0.5
        pm = accompany_file("grid", path, seed=0)[0]
        assert [len(i.notes) > 20 for i in pm.instruments] == [True] * 4
        assert consonance(pm) > 0.7


def test_the_event_paths_refuse_a_grid_model() -> None:
    from neuralband.generate import generate
    from neuralband.live.engine import Engine

    with pytest.raises(ValueError, match="grid model"):
        generate("grid", None, 1.0)
    with pytest.raises(ValueError, match="grid model"):
        Engine(Stepper.load("grid"), lambda data: None)
