"""Key and density controls: computed from the notes that follow each token, read by the model
beside each token, carried by the numpy Stepper exactly as torch computes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders.controls import (
    ControlSettings,
    control_vector,
    drop_controls,
    key_histogram,
    token_controls,
)
from neuralband.encoders.keys import estimate_key, scale_mask
from neuralband.encoders.performance import DEFAULT_SETTINGS as S
from neuralband.encoders.schemes import EventScheme
from neuralband.model import EventLSTM, ModelConfig, save_model
from neuralband.modelfile import bundled_model, read_info
from neuralband.runtime import Stepper
from neuralband.training.config import TrainConfig
from neuralband.training.dataset import build_dataset
from neuralband.training.train import train
from neuralband.training.windows import TokenWindows
from tests.helpers.data import TRAIN_CHORALES

CS = ControlSettings()


@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    out = tmp_path_factory.mktemp("chorales") / "ds"
    build_dataset(TRAIN_CHORALES[:12], out, workers=1, fractions=(0.75, 0.25, 0.0))
    return out


def shift(steps: int) -> int:
    return S.time_shift + steps - 1


def test_histogram_and_density_count_the_notes_that_follow():
    # C, E, G at 0.0/0.5/1.0 s, then silence for 20 s, then one A.
    tokens = [60, shift(50), 64, shift(50), 67] + [shift(100)] * 20 + [69]
    c = token_controls(np.array(tokens), CS)
    # After the first token (C is already played): E and G follow within 10 s, A does not.
    assert c[0, 4] == pytest.approx(0.5) and c[0, 7] == pytest.approx(0.5)
    assert c[0, CS.key_flag] == 1.0
    # 2 notes in the next 4 s: 0.5 notes/s, bin 0 (below 1 note/s).
    assert c[0, CS.density_start] == 1.0 and c[0, CS.density_flag] == 1.0
    # In the silence, 15 s before the A: no note follows within 10 s, so no key.
    silent = 5 + 5
    assert c[silent, CS.key_flag] == 0.0 and not c[silent, :12].any()
    assert c[silent, CS.density_start] == 1.0  # density 0 is a real density: bin 0
    # Every row is one-hot in its density part when given.
    given_rows = c[:, CS.density_flag] == 1.0
    assert (c[given_rows, CS.density_start:CS.density_flag].sum(axis=1) == 1).all()


def test_density_bins_follow_notes_per_second():
    for rate in (2, 4, 5, 10, 20):
        tokens = np.array([60, shift(100 // rate)] * (rate * 10))
        c = token_controls(tokens, CS)
        k = int(np.argmax(c[0, CS.density_start:CS.density_flag]))
        # the first note is behind: (4 s x rate - 1) notes in the next 4 s
        assert k == CS.density_bin((4 * rate - 1) / 4), rate
        assert abs(CS.bin_centre(k) - rate) <= max(1.0, rate / 3), rate


def test_an_unfinished_span_counts_density_over_the_time_it_covers():
    tokens = np.array([60, shift(25)] * 8)  # 4 notes/s for 2 s, the piece goes on after
    full = token_controls(tokens, CS, complete=True)
    part = token_controls(tokens, CS, complete=False)
    # after the first note: 7 more in the 2 s the tokens cover, 3.5 notes/s
    assert np.argmax(part[0, CS.density_start:CS.density_flag]) == CS.density_bin(3.5)
    assert np.argmax(full[0, CS.density_start:CS.density_flag]) < \
        np.argmax(part[0, CS.density_start:CS.density_flag])
    assert part[-1, CS.density_flag] == 0.0  # under a second left: not known


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, S.vocab_size - 1), min_size=1, max_size=300))
def test_controls_are_well_formed_for_any_tokens(tokens):
    c = token_controls(np.array(tokens), CS, complete=False)
    assert c.shape == (len(tokens), CS.size)
    hist, key = c[:, :12], c[:, CS.key_flag]
    np.testing.assert_allclose(hist.sum(axis=1), key, atol=1e-5)
    dens = c[:, CS.density_start:CS.density_flag].sum(axis=1)
    np.testing.assert_array_equal(dens, c[:, CS.density_flag])


def test_dropping_zeroes_a_part_and_its_flag():
    c = np.ones((200, 3, CS.size), np.float32)
    drop_controls(c, np.random.default_rng(0), 0.3, CS)
    key_off = c[:, 0, CS.key_flag] == 0
    assert 0.15 < key_off.mean() < 0.45
    assert not c[key_off, :, :CS.density_start].any()
    assert (c[~key_off, :, :CS.density_start] == 1).all()


def test_a_key_histogram_is_in_its_key():
    profiles = {"major": [8, 0, 3, 0, 4, 3, 0, 6, 0, 3, 0, 2], "minor": list(range(12))}
    cs = ControlSettings(key_profiles={"major": profiles["major"]})
    h = key_histogram(3, "major", cs)  # Eb major from the data's profile
    assert estimate_key(h) == (3, "major")
    assert h.sum() == pytest.approx(1.0)
    plain = key_histogram(9, "minor", ControlSettings())  # A minor: the scale, equally
    np.testing.assert_array_equal(plain > 0, scale_mask(9, "minor"))
    v = control_vector(cs, h, density=6.0)
    assert v[CS.key_flag] == 1 and v[CS.density_flag] == 1
    assert CS.bin_centre(int(np.argmax(v[CS.density_start:CS.density_flag]))) == 6.5
    with pytest.raises(ValueError):
        control_vector(cs, np.zeros(12))


def test_settings_round_trip():
    cs = ControlSettings(8.0, 3.0, (1, 2, 4), {"major": [1.0] * 12})
    assert ControlSettings.from_dict(cs.to_dict()).to_dict() == cs.to_dict()
    with pytest.raises(ValueError):
        ControlSettings.from_dict({"window": 3})
    with pytest.raises(ValueError):
        ControlSettings(density_edges=(2, 1))


def test_stepper_with_controls_matches_torch(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=32, hidden=48, layers=2, controls=CS.size)
    model = EventLSTM(config).eval()
    save_model(tmp_path / "m", model, EventScheme(), dtype="float32", controls=CS)
    assert read_info(tmp_path / "m").controls == CS
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 388, 300)
    ctrl = token_controls(tokens, CS)
    with torch.no_grad():
        want = model(torch.from_numpy(tokens)[None], None,
                     torch.from_numpy(ctrl)[None])[0][0].numpy()
        free = model(torch.from_numpy(tokens)[None])[0][0].numpy()
    stepper = Stepper.load(tmp_path / "m")
    got = np.empty_like(want)
    for t, tok in enumerate(tokens):
        stepper.set_controls(ctrl[t])
        stepper.feed(int(tok))
        got[t] = stepper.logits()[0]
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(free - want).max() > 1e-3  # the controls change what it predicts
    stepper.reset()
    stepper.set_controls(np.zeros(CS.size))  # zeros: the model running free
    for t, tok in enumerate(tokens[:50]):
        stepper.feed(int(tok))
        assert np.abs(stepper.logits()[0] - free[t]).max() < 1e-4


def test_a_model_without_controls_refuses_them(tmp_path):
    model = EventLSTM(ModelConfig(embed_dim=8, hidden=8, layers=1)).eval()
    save_model(tmp_path / "m", model, EventScheme(), dtype="float32")
    with pytest.raises(ValueError, match="no controls"):
        Stepper.load(tmp_path / "m").set_controls(np.zeros(CS.size))
    with pytest.raises(ValueError, match="control"):
        save_model(tmp_path / "n", model, EventScheme(), controls=CS)


def test_windows_carry_the_controls_of_their_augmented_notes(chorales):
    w = TokenWindows(chorales, "train", 64, 8, seed=3, transpose=3, stretch=0.05,
                     controls=CS)
    tokens, ctrl = w.batch_with_controls(5)
    again = w.batch_with_controls(5)
    np.testing.assert_array_equal(tokens, again[0])
    np.testing.assert_array_equal(ctrl, again[1])
    assert ctrl.shape == (8, 64, CS.size)
    # The first row's key part is what its own (transposed) notes that follow say.
    for row in range(8):
        notes = tokens[row][tokens[row] < 128]
        if len(notes) > 4:
            seen = set(int(p) % 12 for p in notes[1:])
            heard = set(np.flatnonzero(ctrl[row, 0, :12] > 0).tolist())
            assert heard <= set(range(12)) and (heard & seen)
    dropped = TokenWindows(chorales, "train", 64, 64, seed=3, controls=CS
                           ).batch_with_controls(0, drop=0.5)[1]
    assert 0.2 < (dropped[:, 0, CS.key_flag] == 0).mean() < 0.8


def test_training_with_controls_writes_a_conditioned_model(chorales, tmp_path):
    result = train(TrainConfig(str(chorales), str(tmp_path / "run"), preset="tiny", steps=30,
                               batch=8, window=32, eval_every=15, eval_windows=8,
                               controls=True, progress=False))
    info = read_info(tmp_path / "run" / "model")
    assert info.config.controls == CS.size and info.controls is not None
    assert set(info.controls.key_profiles) <= {"major", "minor"} and info.controls.key_profiles
    assert 0.5 < info.summary["max_note_s"] < 10  # the chorales' own long notes, not a flat 5 s
    assert np.isfinite(info.summary["valid_nll_with_controls"])
    assert result["best_valid_nll"] == pytest.approx(info.summary["valid_nll"], abs=1e-4)
    stepper = Stepper.load(tmp_path / "run" / "model")
    stepper.set_controls(control_vector(info.controls, key_histogram(0, "major", info.controls),
                                        density=4.0))
    stepper.feed(shift(10))
    assert np.isfinite(stepper.logits()).all()


def test_scoring_with_a_files_own_controls_matches_torch(tmp_path):
    from neuralband.encoders.performance import encode
    from neuralband.score import score_files
    from tests.helpers.data import CHORALES

    torch.manual_seed(2)
    model = EventLSTM(ModelConfig(embed_dim=16, hidden=24, layers=2, controls=CS.size)).eval()
    save_model(tmp_path / "m", model, EventScheme(), dtype="float32", controls=CS)
    tokens = encode(CHORALES[0])
    ctrl = token_controls(tokens, CS)
    x = torch.from_numpy(tokens)[None]
    with torch.no_grad():
        for given, c in ((True, torch.from_numpy(ctrl)[None]), (False, None)):
            logits = model(x[:, :-1], None, None if c is None else c[:, :-1])[0][0]
            want = torch.nn.functional.cross_entropy(logits, x[0, 1:]).item()
            scores, _ = score_files(tmp_path / "m", [CHORALES[0]], controls=given)
            assert scores[0].nll == pytest.approx(want, abs=1e-4), given
    with pytest.raises(ValueError, match="no controls"):
        score_files(bundled_model("chorale-folk"), [CHORALES[0]], controls=True)
